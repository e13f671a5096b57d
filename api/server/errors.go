package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
)

// codeMethodNotAllowed is the one code the server adds to api's: a client
// that speaks the API never sees it.
const codeMethodNotAllowed = "method_not_allowed"

var errMethodNotAllowed = &api.Error{Code: codeMethodNotAllowed, Message: "method not allowed"}

// statuses is the one mapping from sentinel errors to HTTP statuses. An
// error matching none of them is a 500 "internal".
var statuses = []struct {
	sentinel *api.Error
	status   int
}{
	{api.ErrInvalidArgument, http.StatusBadRequest},
	{api.ErrPermission, http.StatusForbidden},
	{api.ErrNotFound, http.StatusNotFound},
	{errMethodNotAllowed, http.StatusMethodNotAllowed},
	{api.ErrConflict, http.StatusConflict},
	{api.ErrAlreadyExists, http.StatusConflict},
	{api.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{api.ErrUnsupported, http.StatusUnsupportedMediaType},
	{api.ErrQuotaExceeded, http.StatusTooManyRequests},
	{api.ErrUnavailable, http.StatusServiceUnavailable},
}

// classify returns the status and code err answers with.
func classify(err error) (int, string) {
	for _, st := range statuses {
		if errors.Is(err, st.sentinel) {
			return st.status, st.sentinel.Code
		}
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
