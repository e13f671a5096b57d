package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// DefaultStreamWriteTimeout bounds each write of a streamed answer when
// Config.StreamWriteTimeout is 0: a client that stops reading while it
// keeps its connection open must not pin the command and its handler.
const DefaultStreamWriteTimeout = 30 * time.Second

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
// runs, ending with an exit event.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request, id string, req sandbox.ExecRequest) error {
	return s.streamOutput(w, r, func(ctx context.Context, emit func(sandbox.Output) error) (any, error) {
		res, err := s.backend.ExecStream(ctx, id, req, emit)
		if err != nil {
			return nil, err
		}
		wire := wireExec(res)
		return api.ExecEvent{Type: api.EventExit, Result: &wire}, nil
	})
}

// streamOutput answers with the output run hands to emit, as NDJSON
// events while it runs, then with the final event run returns. The
// status line waits for the first event, so that a failure to start
// still answers with its envelope and status; a failure after it is a
// final error event.
func (s *Server) streamOutput(w http.ResponseWriter, r *http.Request, run func(ctx context.Context, emit func(sandbox.Output) error) (final any, err error)) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := &eventWriter{w: w, rc: http.NewResponseController(w), timeout: s.streamTimeout}
	var carry [2][]byte // per stream: an unfinished UTF-8 sequence
	final, err := run(ctx, func(o sandbox.Output) error {
		data := append(carry[o.Stream], o.Data...)
		cut := len(data) - incompleteRune(data)
		carry[o.Stream] = append([]byte(nil), data[cut:]...)
		if cut == 0 {
			return nil
		}
		if err := out.send(outputEvent(o.Stream, data[:cut])); err != nil {
			// Nobody can see the rest of the output: end the command now
			// rather than when net/http notices the client is gone.
			cancel()
			return err
		}
		return nil
	})
	if err == nil {
		// The command ended mid-character: send what was held back.
		for st, rest := range carry {
			if len(rest) > 0 {
				_ = out.send(outputEvent(sandbox.Stream(st), rest))
			}
		}
	}
	switch {
	case out.err != nil:
		// The client is gone or stopped reading; it can be told nothing more.
	case err != nil && !out.started:
		return err
	case err != nil:
		_, code := s.report(r, err)
		_ = out.send(api.ExecEvent{Type: api.EventError, Error: err.Error(), Code: code})
	default:
		_ = out.send(final)
	}
	if out.err != nil {
		s.log.WarnContext(r.Context(), "write response",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", out.err))
	}
	return nil
}

// outputEvent frames a chunk of output: as text when it is valid UTF-8,
// else as base64, so any byte string arrives intact.
func outputEvent(st sandbox.Stream, chunk []byte) api.ExecEvent {
	ev := api.ExecEvent{Type: api.EventStdout}
	if st == sandbox.Stderr {
		ev.Type = api.EventStderr
	}
	if utf8.Valid(chunk) {
		ev.Data = string(chunk)
	} else {
		ev.DataB64 = base64.StdEncoding.EncodeToString(chunk)
	}
	return ev
}

// incompleteRune is the length of an unfinished UTF-8 sequence at the end
// of data, or 0.
func incompleteRune(data []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(data); i++ {
		if utf8.RuneStart(data[len(data)-i]) {
			if utf8.FullRune(data[len(data)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

// eventWriter writes events (api.ExecEvent, api.PackageEvent) as NDJSON, one flushed line each, each
// within its write deadline. Its first failure sticks: a stream missing a
// line must not go on.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
	err     error
}

func (e *eventWriter) send(ev any) error {
	if e.err != nil {
		return e.err
	}
	// Only a writer that cannot have deadlines (not net/http's) goes on
	// without one.
	if err := e.rc.SetWriteDeadline(time.Now().Add(e.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		e.err = fmt.Errorf("set write deadline: %w", err)
		return e.err
	}
	if !e.started {
		e.w.Header().Set("Content-Type", api.NDJSON)
		e.w.WriteHeader(http.StatusOK)
		e.started = true
	}
	if err := json.NewEncoder(e.w).Encode(ev); err != nil {
		e.err = fmt.Errorf("write event: %w", err)
		return e.err
	}
	if err := e.rc.Flush(); err != nil {
		e.err = fmt.Errorf("flush event: %w", err)
		return e.err
	}
	return nil
}
