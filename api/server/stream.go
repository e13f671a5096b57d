package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// acceptsNDJSON reports whether r's Accept header lists api.NDJSON (and
// not with q=0), which asks exec to stream.
func acceptsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for rng := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(rng)
			if err != nil || mt != api.NDJSON {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				continue
			}
			return true
		}
	}
	return false
}

// execStream answers exec with its events as NDJSON while the command
// runs. The status line waits for the first event, so that a failure to
// start still answers with its envelope and status; a failure after it is
// a final error event, and success a final exit event.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request, id string, req api.ExecRequest) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := &eventWriter{w: w, rc: http.NewResponseController(w)}
	res, err := s.backend.ExecStream(ctx, id, req, func(ev api.ExecEvent) error {
		if err := out.send(ev); err != nil {
			// Nobody can see the rest of the output: end the command now
			// rather than when net/http notices the client is gone.
			cancel()
			return err
		}
		return nil
	})
	switch {
	case out.err != nil:
		// The client is gone; it can be told nothing more.
	case err != nil && !out.started:
		return err
	case err != nil:
		_, code := s.report(r, err)
		_ = out.send(api.ExecEvent{Type: api.EventError, Error: err.Error(), Code: code})
	default:
		_ = out.send(api.ExecEvent{Type: api.EventExit, Result: &res})
	}
	if out.err != nil {
		s.log.WarnContext(r.Context(), "write response",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", out.err))
	}
	return nil
}

// eventWriter writes exec events as NDJSON, one flushed line each. Its
// first failure sticks: a stream missing a line must not go on.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	err     error
}

func (e *eventWriter) send(ev api.ExecEvent) error {
	if e.err != nil {
		return e.err
	}
	if !e.started {
		e.w.Header().Set("Content-Type", api.NDJSON)
		e.w.WriteHeader(http.StatusOK)
		e.started = true
	}
	if err := json.NewEncoder(e.w).Encode(ev); err != nil {
		e.err = fmt.Errorf("write %s event: %w", ev.Type, err)
		return e.err
	}
	if err := e.rc.Flush(); err != nil {
		e.err = fmt.Errorf("flush %s event: %w", ev.Type, err)
		return e.err
	}
	return nil
}
