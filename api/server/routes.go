package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// route binds one method and path pattern to its handler. A handler returns
// an error instead of writing one, so every failure goes through writeError.
type route struct {
	method  string
	pattern string
	handle  func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// routes is the API. Patterns are both net/http ServeMux patterns and
// OpenAPI path templates; openapi_test.go keeps api/openapi.yaml in step.
var routes = []route{
	{http.MethodGet, "/v1", (*Server).info},
	{http.MethodPost, "/v1/sessions", (*Server).createSession},
	{http.MethodGet, "/v1/sessions", (*Server).listSessions},
	{http.MethodGet, "/v1/sessions/{id}", (*Server).getSession},
	{http.MethodDelete, "/v1/sessions/{id}", (*Server).deleteSession},
	{http.MethodPost, "/v1/sessions/{id}/exec", (*Server).exec},
}

// RouteInfo is one route of the API as OpenAPI names it.
type RouteInfo struct {
	Method string // upper case, e.g. "POST"
	Path   string // e.g. "/v1/sessions/{id}/exec"
}

// Routes lists every route the server answers.
func Routes() []RouteInfo {
	infos := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		infos[i] = RouteInfo{Method: rt.method, Path: rt.pattern}
	}
	return infos
}

// mux routes the table. Each path also gets a method-less pattern, which the
// mux ranks below the method ones, so a wrong method reaches a 405 envelope
// instead of ServeMux's plain-text answer; "/" catches unknown paths.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := rt.handle(s, w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
		allowed[rt.pattern] = append(allowed[rt.pattern], rt.method)
		if rt.method == http.MethodGet {
			// ServeMux answers HEAD with the GET handler.
			allowed[rt.pattern] = append(allowed[rt.pattern], http.MethodHead)
		}
	}
	for pattern, methods := range allowed {
		slices.Sort(methods)
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, fmt.Errorf("method %s not allowed on %s (allowed: %s): %w",
				r.Method, pattern, allow, errMethodNotAllowed))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("no route for %s %s: %w", r.Method, r.URL.Path, api.ErrNotFound))
	})
	return mux
}
