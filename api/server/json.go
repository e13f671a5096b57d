package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
)

// decode reads r's body, which must be exactly one JSON value that fits v
// field for field; logRequests limits its size.
func (s *Server) decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("request body is empty: %w", api.ErrInvalidArgument)
		}
		return bodyError(err)
	}
	// A second value, or anything but white space, after the first is
	// refused rather than ignored: it is most likely a client bug.
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("request body: trailing data after the JSON value: %w", api.ErrInvalidArgument)
		}
		return bodyError(err)
	}
	return nil
}

func bodyError(err error) error {
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fmt.Errorf("request body exceeds %d bytes: %w", tooLarge.Limit, api.ErrTooLarge)
	}
	return fmt.Errorf("request body: %v: %w", err, api.ErrInvalidArgument)
}

// writeJSON answers with v as JSON. The status line is out by the time
// encoding could fail, so a failure is only logged.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.WarnContext(r.Context(), "write response",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
}
