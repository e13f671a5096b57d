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
	limit   bodyLimit
	handle  func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// bodyLimit says which limit a route's request body gets.
type bodyLimit int

const (
	// defaultLimit is Config.MaxBodyBytes, sized for JSON.
	defaultLimit bodyLimit = iota
	// fileLimit is the backend's MaxFileBytes: the body is a file.
	fileLimit
)

// routes is the API. Patterns are both net/http ServeMux patterns and
// OpenAPI path templates; openapi_test.go keeps api/openapi.yaml in step.
var routes = []route{
	{http.MethodGet, "/v1", defaultLimit, (*Server).info},
	{http.MethodPost, "/v1/sessions", defaultLimit, (*Server).createSession},
	{http.MethodGet, "/v1/sessions", defaultLimit, (*Server).listSessions},
	{http.MethodGet, "/v1/sessions/{id}", defaultLimit, (*Server).getSession},
	{http.MethodDelete, "/v1/sessions/{id}", defaultLimit, (*Server).deleteSession},
	{http.MethodPost, "/v1/sessions/{id}/exec", defaultLimit, (*Server).exec},
	{http.MethodGet, "/v1/sessions/{id}/files", defaultLimit, (*Server).listFiles},
	{http.MethodDelete, "/v1/sessions/{id}/files", defaultLimit, (*Server).removeFile},
	{http.MethodGet, "/v1/sessions/{id}/files/stat", defaultLimit, (*Server).statFile},
	{http.MethodGet, "/v1/sessions/{id}/files/content", defaultLimit, (*Server).readFile},
	{http.MethodPut, "/v1/sessions/{id}/files/content", fileLimit, (*Server).writeFile},
	{http.MethodGet, "/v1/sessions/{id}/files/text", defaultLimit, (*Server).readText},
	{http.MethodPost, "/v1/sessions/{id}/files/edit", defaultLimit, (*Server).editFile},
	{http.MethodPost, "/v1/sessions/{id}/files/mkdir", defaultLimit, (*Server).mkdir},
	{http.MethodPost, "/v1/sessions/{id}/files/move", defaultLimit, (*Server).moveFile},
	{http.MethodGet, "/v1/users/{user_id}/files/outputs/{name}", defaultLimit, (*Server).downloadOutput},
	{http.MethodPost, "/v1/sessions/{id}/processes", defaultLimit, (*Server).startProcess},
	{http.MethodGet, "/v1/sessions/{id}/processes", defaultLimit, (*Server).listProcesses},
	{http.MethodGet, "/v1/sessions/{id}/processes/{pid}/output", defaultLimit, (*Server).processOutput},
	{http.MethodDelete, "/v1/sessions/{id}/processes/{pid}", defaultLimit, (*Server).killProcess},
	// Observability: observe.go.
	{http.MethodGet, "/v1/sessions/{id}/stats", defaultLimit, (*Server).sessionStats},
	{http.MethodGet, "/v1/events", defaultLimit, (*Server).events},
	{http.MethodGet, "/metrics", defaultLimit, (*Server).metrics},
	{http.MethodPost, "/v1/sessions/{id}/packages", defaultLimit, (*Server).installPackages},
	{http.MethodGet, "/v1/sessions/{id}/packages", defaultLimit, (*Server).listPackages},
	{http.MethodGet, "/v1/envs", defaultLimit, (*Server).listEnvs},
	{http.MethodGet, "/v1/users/{user_id}", defaultLimit, (*Server).getUser},
}

// muxPattern is the route's ServeMux pattern, which the mux also reports
// back for a request it matches.
func (rt route) muxPattern() string {
	return rt.method + " " + rt.pattern
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
		mux.HandleFunc(rt.muxPattern(), func(w http.ResponseWriter, r *http.Request) {
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

// fileBodies returns the mux patterns of the routes whose body is a file.
func fileBodies() map[string]bool {
	patterns := map[string]bool{}
	for _, rt := range routes {
		if rt.limit == fileLimit {
			patterns[rt.muxPattern()] = true
		}
	}
	return patterns
}

// bodyLimit is the body limit of the route r goes to. It matches r ahead of
// the mux because logRequests must set the limit before the mux runs, while
// it still holds net/http's own writer.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if _, pattern := s.router.Handler(r); s.fileBodies[pattern] {
		return s.backend.MaxFileBytes()
	}
	return s.maxBody
}
