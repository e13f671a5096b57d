package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// codeMethodNotAllowed is the one code the server adds to api's: a client
// that speaks the API never sees it.
const codeMethodNotAllowed = "method_not_allowed"

var errMethodNotAllowed = &api.Error{Code: codeMethodNotAllowed, Message: "method not allowed"}

// kinds is the one mapping from the domain's error kinds to the wire's.
// The server's own failures (a body that does not decode, an unknown
// route) wrap an api sentinel directly.
var kinds = []struct {
	kind error
	wire *api.Error
}{
	{sandbox.ErrInvalid, api.ErrInvalidArgument},
	{sandbox.ErrNotFound, api.ErrNotFound},
	{sandbox.ErrExists, api.ErrAlreadyExists},
	{sandbox.ErrConflict, api.ErrConflict},
	{sandbox.ErrForbidden, api.ErrPermission},
	{sandbox.ErrTooLarge, api.ErrTooLarge},
	{sandbox.ErrNotText, api.ErrUnsupported},
	{sandbox.ErrQuota, api.ErrQuotaExceeded},
	{sandbox.ErrPidsLimit, api.ErrPidsLimit},
	{sandbox.ErrPackageNotAllowed, api.ErrPackageNotAllowed},
	{sandbox.ErrUnavailable, api.ErrUnavailable},
	{sandbox.ErrExpired, api.ErrExpired},
	{sandbox.ErrInvalidQuota, api.ErrInvalidQuota},
}

// statuses gives each wire code its HTTP status. A code missing here (and
// any error of no known kind) is a 500 "internal".
var statuses = map[string]int{
	api.CodeInvalidArgument:   http.StatusBadRequest,
	api.CodePermission:        http.StatusForbidden,
	api.CodePackageNotAllowed: http.StatusForbidden,
	api.CodeNotFound:          http.StatusNotFound,
	codeMethodNotAllowed:      http.StatusMethodNotAllowed,
	api.CodeConflict:          http.StatusConflict,
	api.CodeAlreadyExists:     http.StatusConflict,
	api.CodeTooLarge:          http.StatusRequestEntityTooLarge,
	api.CodeUnsupported:       http.StatusUnsupportedMediaType,
	api.CodeQuotaExceeded:     http.StatusTooManyRequests,
	api.CodePidsLimit:         http.StatusTooManyRequests,
	api.CodeUnavailable:       http.StatusServiceUnavailable,
	api.CodeExpired:           http.StatusGone,
	api.CodeInvalidQuota:      http.StatusBadRequest,
}

// classify returns the status and code err answers with.
func classify(err error) (int, string) {
	code := api.CodeInternal
	if wire, ok := errors.AsType[*api.Error](err); ok {
		code = wire.Code
	} else {
		for _, k := range kinds {
			if errors.Is(err, k.kind) {
				code = k.wire.Code
				break
			}
		}
	}
	if status, ok := statuses[code]; ok {
		return status, code
	}
	return http.StatusInternalServerError, api.CodeInternal
}

// writeError answers with err's envelope. The message is err's full text:
// the socket is local and the context helps the caller more than it could
// leak.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := s.report(r, err)
	s.writeJSON(w, r, status, api.Error{Message: err.Error(), Code: code})
}

// report classifies err and logs it in full when it is a 500: the request
// log line only has the status, and nothing else tells what broke.
func (s *Server) report(r *http.Request, err error) (int, string) {
	status, code := classify(err)
	if status == http.StatusInternalServerError {
		s.log.ErrorContext(r.Context(), "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	return status, code
}
