package server_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server/servertest"
)

// serveExec posts an exec request to h with the given Accept header.
func serveExec(h http.Handler, accept, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/exec", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// events decodes an NDJSON body, checking that every event is one line.
func events(t *testing.T, rec *httptest.ResponseRecorder) []api.ExecEvent {
	t.Helper()
	body := rec.Body.String()
	require.True(t, strings.HasSuffix(body, "\n"), "stream %q ends with a newline", body)
	var evs []api.ExecEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var ev api.ExecEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "line %q is one JSON event", sc.Text())
		evs = append(evs, ev)
	}
	return evs
}

// loggedStatus is the status of the one request in logs.
func loggedStatus(t *testing.T, logs *syncBuffer) any {
	t.Helper()
	var statuses []any
	for _, r := range logs.records(t) {
		if r["msg"] == "request" {
			statuses = append(statuses, r["status"])
		}
	}
	require.Len(t, statuses, 1, "one request logged")
	return statuses[0]
}

func TestExecStreams(t *testing.T) {
	out := []api.ExecEvent{
		{Type: api.EventStdout, Data: "hello\n"},
		{Type: api.EventStderr, DataB64: base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe})},
		{Type: api.EventStdout, Data: "<é>"},
	}
	result := api.ExecResult{ExitCode: 143, Signal: "SIGTERM", DurationMS: 12}
	tests := []struct {
		name   string
		accept string
		stream *servertest.Stream
		want   []api.ExecEvent
	}{
		{
			name: "output then exit", accept: api.NDJSON,
			stream: &servertest.Stream{Events: out, Result: result},
			want:   append(out, api.ExecEvent{Type: api.EventExit, Result: &result}),
		},
		{
			name: "no output", accept: "application/json, application/x-ndjson;q=0.9",
			stream: &servertest.Stream{Result: api.ExecResult{DurationMS: 1}},
			want:   []api.ExecEvent{{Type: api.EventExit, Result: &api.ExecResult{DurationMS: 1}}},
		},
		{
			name: "failure after the output began", accept: "*/*, " + api.NDJSON,
			stream: &servertest.Stream{Events: out[:1], Err: fmt.Errorf("session %q: %w", "s1", api.ErrUnavailable)},
			want:   []api.ExecEvent{out[0], {Type: api.EventError, Error: `session "s1": unavailable`, Code: api.CodeUnavailable}},
		},
		{
			name: "internal failure after the output began", accept: api.NDJSON,
			stream: &servertest.Stream{Events: out[:1], Err: errors.New("runc: exploded")},
			want:   []api.ExecEvent{out[0], {Type: api.EventError, Error: "runc: exploded", Code: api.CodeInternal}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake(nil)
			fb.Stream = tt.stream
			srv, logs := newServer(fb, 0)
			rec := serveExec(srv.Handler(), tt.accept, `{"command":"make","timeout":9}`)
			require.Equal(t, http.StatusOK, rec.Code, "status; body %s", rec.Body)
			assert.Equal(t, api.NDJSON, rec.Header().Get("Content-Type"), "content type")
			assert.Equal(t, tt.want, events(t, rec), "one line per event, the end last")
			assert.True(t, rec.Flushed, "events are flushed through the logging middleware")
			assert.EqualValues(t, http.StatusOK, loggedStatus(t, logs), "logged status")
			id, req := fb.Stream.Request()
			assert.Equal(t, "s1", id, "backend got the path's id")
			assert.Equal(t, api.ExecRequest{Command: "make", TimeoutSec: 9}, req, "backend got the decoded request")
			assert.Empty(t, fb.Calls(), "the plain Exec is not called")
		})
	}
}

func TestExecStreamFailingBeforeItBeginsAnswersTheEnvelope(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
	}{
		{fmt.Errorf("session %q: %w", "s1", api.ErrNotFound), http.StatusNotFound, api.CodeNotFound},
		{fmt.Errorf("argv and command: %w", api.ErrInvalidArgument), http.StatusBadRequest, api.CodeInvalidArgument},
		{fmt.Errorf("too many: %w", api.ErrQuotaExceeded), http.StatusTooManyRequests, api.CodeQuotaExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode, func(t *testing.T) {
			fb := newFake(nil)
			fb.Stream = &servertest.Stream{Err: tt.err}
			srv, logs := newServer(fb, 0)
			rec := serveExec(srv.Handler(), api.NDJSON, `{"command":"true"}`)
			assert.Equal(t, tt.wantStatus, rec.Code, "status")
			assert.Equal(t, api.Error{Message: tt.err.Error(), Code: tt.wantCode}, decodeBody[api.Error](t, rec), "envelope")
			assert.EqualValues(t, tt.wantStatus, loggedStatus(t, logs), "logged status")
		})
	}
}

func TestExecWithoutNDJSONAnswersPlainJSON(t *testing.T) {
	for _, accept := range []string{"", "application/json", "*/*", "application/x-ndjson;q=0", "application/x-ndjson-seq"} {
		t.Run(accept, func(t *testing.T) {
			fb := newFake(nil)
			fb.Stream = &servertest.Stream{Err: errors.New("the stream was called")}
			srv, _ := newServer(fb, 0)
			rec := serveExec(srv.Handler(), accept, `{"command":"true"}`)
			require.Equal(t, http.StatusOK, rec.Code, "status; body %s", rec.Body)
			assert.Equal(t, 137, decodeBody[api.ExecResult](t, rec).ExitCode, "the plain result")
			assert.Equal(t, []string{"Exec"}, fb.Calls(), "the plain Exec is called")
		})
	}
}

// brokenWriter is a connection that fails every write.
type brokenWriter struct {
	header http.Header
	writes int
}

func (w *brokenWriter) Header() http.Header { return w.header }
func (w *brokenWriter) WriteHeader(int)     {}

func (w *brokenWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("broken pipe")
}

func TestExecStreamStopsWritingWhenTheClientIsGone(t *testing.T) {
	fb := newFake(nil)
	fb.Stream = &servertest.Stream{Events: []api.ExecEvent{
		{Type: api.EventStdout, Data: "a"},
		{Type: api.EventStdout, Data: "b"},
	}}
	srv, logs := newServer(fb, 0)
	w := &brokenWriter{header: http.Header{}}
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/exec", strings.NewReader(`{"command":"yes"}`))
	req.Header.Set("Accept", api.NDJSON)
	srv.Handler().ServeHTTP(w, req)

	assert.Equal(t, 1, w.writes, "nothing is written after the first failure")
	var warned bool
	for _, r := range logs.records(t) {
		warned = warned || (r["level"] == "WARN" && strings.Contains(fmt.Sprint(r["error"]), "broken pipe"))
	}
	assert.True(t, warned, "the failed write is logged")
}
