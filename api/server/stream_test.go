package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// recorder is an httptest.ResponseRecorder that takes write deadlines, as
// net/http's own writer does: the server sets one before each event of a
// streamed exec.
type recorder struct{ *httptest.ResponseRecorder }

func (recorder) SetWriteDeadline(time.Time) error { return nil }

// serveExec posts an exec request to h with the given Accept header.
func serveExec(h http.Handler, accept, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/exec", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(recorder{rec}, req)
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

func stdout(data string) sandbox.Output {
	return sandbox.Output{Stream: sandbox.Stdout, Data: []byte(data)}
}

func stderr(data string) sandbox.Output {
	return sandbox.Output{Stream: sandbox.Stderr, Data: []byte(data)}
}

func TestExecStreams(t *testing.T) {
	out := []sandbox.Output{stdout("hello\n"), stderr("\xff\xfe"), stdout("<é>")}
	wantOut := []api.ExecEvent{
		{Type: api.EventStdout, Data: "hello\n"},
		{Type: api.EventStderr, DataB64: base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe})},
		{Type: api.EventStdout, Data: "<é>"},
	}
	tests := []struct {
		name   string
		accept string
		script servertest.Script
		want   []api.ExecEvent
	}{
		{
			name: "output then exit", accept: api.NDJSON,
			script: servertest.Script{Output: out, Result: sandbox.ExecResult{ExitCode: 143, Signal: "SIGTERM", Duration: 12 * time.Millisecond}},
			want:   append(wantOut, api.ExecEvent{Type: api.EventExit, Result: &api.ExecResult{ExitCode: 143, Signal: "SIGTERM", DurationMS: 12}}),
		},
		{
			name: "no output", accept: "application/json, application/x-ndjson;q=0.9",
			script: servertest.Script{Result: sandbox.ExecResult{Duration: time.Millisecond}},
			want:   []api.ExecEvent{{Type: api.EventExit, Result: &api.ExecResult{DurationMS: 1}}},
		},
		{
			name: "failure after the output began", accept: "*/*, " + api.NDJSON,
			script: servertest.Script{Output: out[:1], Err: fmt.Errorf("session %q: %w", "s1", sandbox.ErrUnavailable)},
			want:   []api.ExecEvent{wantOut[0], {Type: api.EventError, Error: `session "s1": unavailable`, Code: api.CodeUnavailable}},
		},
		{
			name: "internal failure after the output began", accept: api.NDJSON,
			script: servertest.Script{Output: out[:1], Err: errors.New("runc: exploded")},
			want:   []api.ExecEvent{wantOut[0], {Type: api.EventError, Error: "runc: exploded", Code: api.CodeInternal}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			fb.SetScript(tt.script)
			srv, logs := newServer(fb, 0)
			rec := serveExec(srv.Handler(), tt.accept, `{"command":"make","timeout":9}`)
			require.Equal(t, http.StatusOK, rec.Code, "status; body %s", rec.Body)
			assert.Equal(t, api.NDJSON, rec.Header().Get("Content-Type"), "content type")
			assert.Equal(t, tt.want, events(t, rec), "one line per event, the end last")
			assert.True(t, rec.Flushed, "events are flushed through the logging middleware")
			assert.EqualValues(t, http.StatusOK, loggedStatus(t, logs), "logged status")
			call := fb.LastExec()
			assert.Equal(t, "s1", call.ID, "backend got the path's id")
			assert.Equal(t, sandbox.ExecRequest{Command: sandbox.Command{Shell: "make"}, Timeout: 9 * time.Second}, call.Req,
				"backend got the decoded request")
			assert.Equal(t, []string{"ExecStream"}, fb.Calls(), "the plain Exec is not called")
		})
	}
}

// TestExecStreamFramesOutput checks the framing the server does of the
// chunks the backend hands it: text when it is valid UTF-8, base64 when
// not, and a character split between chunks held back until it is whole,
// on each stream apart.
func TestExecStreamFramesOutput(t *testing.T) {
	text := func(typ, data string) api.ExecEvent { return api.ExecEvent{Type: typ, Data: data} }
	raw := func(typ, data string) api.ExecEvent {
		return api.ExecEvent{Type: typ, DataB64: base64.StdEncoding.EncodeToString([]byte(data))}
	}
	tests := []struct {
		name   string
		output []sandbox.Output
		want   []api.ExecEvent
	}{
		{
			name:   "a character split across two chunks arrives whole",
			output: []sandbox.Output{stdout("caf\xc3"), stdout("\xa9!")},
			want:   []api.ExecEvent{text(api.EventStdout, "caf"), text(api.EventStdout, "é!")},
		},
		{
			name:   "a character split into single bytes is one event",
			output: []sandbox.Output{stdout("\xf0"), stdout("\x9f"), stdout("\x98"), stdout("\x80")},
			want:   []api.ExecEvent{text(api.EventStdout, "😀")},
		},
		{
			name:   "stdout and stderr each keep their own carry",
			output: []sandbox.Output{stdout("a\xc3"), stderr("b\xe2\x82"), stdout("\xa9"), stderr("\xac")},
			want: []api.ExecEvent{
				text(api.EventStdout, "a"), text(api.EventStderr, "b"), text(api.EventStdout, "é"), text(api.EventStderr, "€"),
			},
		},
		{
			name:   "invalid UTF-8 goes as base64",
			output: []sandbox.Output{stdout("ok\xff\xfe"), stderr("\x80")},
			want:   []api.ExecEvent{raw(api.EventStdout, "ok\xff\xfe"), raw(api.EventStderr, "\x80")},
		},
		{
			name:   "invalid bytes go before a split character",
			output: []sandbox.Output{stdout("\xff\xc3"), stdout("\xa9")},
			want:   []api.ExecEvent{raw(api.EventStdout, "\xff"), text(api.EventStdout, "é")},
		},
		{
			name:   "a chunk that does not finish its character is not held for ever",
			output: []sandbox.Output{stdout("\xc3"), stdout("x")},
			want:   []api.ExecEvent{raw(api.EventStdout, "\xc3x")},
		},
		{
			name:   "what the command left mid-character comes before the exit",
			output: []sandbox.Output{stderr("\xc3"), stdout("x\xe2\x82")},
			want:   []api.ExecEvent{text(api.EventStdout, "x"), raw(api.EventStdout, "\xe2\x82"), raw(api.EventStderr, "\xc3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			fb.SetScript(servertest.Script{Output: tt.output, Result: sandbox.ExecResult{ExitCode: 1}})
			srv, _ := newServer(fb, 0)
			rec := serveExec(srv.Handler(), api.NDJSON, `{"command":"printf"}`)
			require.Equal(t, http.StatusOK, rec.Code, "status; body %s", rec.Body)
			want := append(tt.want, api.ExecEvent{Type: api.EventExit, Result: &api.ExecResult{ExitCode: 1}})
			assert.Equal(t, want, events(t, rec), "the events")

			var stdout, stderr []byte
			for _, ev := range events(t, rec) {
				data := []byte(ev.Data)
				if ev.DataB64 != "" {
					var err error
					data, err = base64.StdEncoding.DecodeString(ev.DataB64)
					require.NoError(t, err, "data_b64 %q decodes", ev.DataB64)
				}
				if ev.Type == api.EventStderr {
					stderr = append(stderr, data...)
				} else {
					stdout = append(stdout, data...)
				}
			}
			var wantStdout, wantStderr []byte
			for _, o := range tt.output {
				if o.Stream == sandbox.Stderr {
					wantStderr = append(wantStderr, o.Data...)
				} else {
					wantStdout = append(wantStdout, o.Data...)
				}
			}
			assert.Equal(t, wantStdout, stdout, "stdout's bytes arrive intact")
			assert.Equal(t, wantStderr, stderr, "stderr's bytes arrive intact")
		})
	}
}

func TestExecStreamFailingBeforeItBeginsAnswersTheEnvelope(t *testing.T) {
	tests := []struct {
		name       string
		session    string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"missing session", "s9", nil, http.StatusNotFound, api.CodeNotFound, `not found: session "s9"`},
		{"invalid", "s1", fmt.Errorf("argv and command: %w", sandbox.ErrInvalid), http.StatusBadRequest, api.CodeInvalidArgument, "argv and command: invalid argument"},
		{"quota", "s1", fmt.Errorf("too many: %w", sandbox.ErrQuota), http.StatusTooManyRequests, api.CodeQuotaExceeded, "too many: quota exceeded"},
		{"pids limit", "s1", fmt.Errorf("%w: session %q", sandbox.ErrPidsLimit, "s1"), http.StatusTooManyRequests, api.CodePidsLimit, `pids limit reached: session "s1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			fb.SetScript(servertest.Script{Err: tt.err})
			srv, logs := newServer(fb, 0)
			req := httptest.NewRequest(http.MethodPost, "/v1/sessions/"+tt.session+"/exec", strings.NewReader(`{"command":"true"}`))
			req.Header.Set("Accept", api.NDJSON)
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(recorder{rec}, req)
			assert.Equal(t, tt.wantStatus, rec.Code, "status")
			assert.Equal(t, api.Error{Message: tt.wantMsg, Code: tt.wantCode}, decodeBody[api.Error](t, rec), "envelope")
			assert.EqualValues(t, tt.wantStatus, loggedStatus(t, logs), "logged status")
		})
	}
}

func TestExecWithoutNDJSONAnswersPlainJSON(t *testing.T) {
	for _, accept := range []string{"", "application/json", "*/*", "application/x-ndjson;q=0", "application/x-ndjson-seq"} {
		t.Run(accept, func(t *testing.T) {
			fb := newFake()
			fb.SetScript(servertest.Script{Output: []sandbox.Output{stdout("out")}, Result: sandbox.ExecResult{ExitCode: 137}})
			srv, _ := newServer(fb, 0)
			rec := serveExec(srv.Handler(), accept, `{"command":"true"}`)
			require.Equal(t, http.StatusOK, rec.Code, "status; body %s", rec.Body)
			res := decodeBody[api.ExecResult](t, rec)
			assert.Equal(t, 137, res.ExitCode, "the plain result")
			assert.Equal(t, "out", res.Stdout, "the output in the result")
			assert.Equal(t, []string{"Exec"}, fb.Calls(), "the plain Exec is called")
		})
	}
}

// brokenWriter is a connection that fails every write.
type brokenWriter struct {
	header http.Header
	writes int
}

func (w *brokenWriter) Header() http.Header              { return w.header }
func (w *brokenWriter) WriteHeader(int)                  {}
func (w *brokenWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *brokenWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("broken pipe")
}

func TestExecStreamStopsWritingWhenTheClientIsGone(t *testing.T) {
	fb := newFake()
	fb.SetScript(servertest.Script{Output: []sandbox.Output{stdout("a"), stdout("b")}})
	srv, logs := newServer(fb, 0)
	w := &brokenWriter{header: http.Header{}}
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/exec", strings.NewReader(`{"command":"yes"}`))
	req.Header.Set("Accept", api.NDJSON)
	srv.Handler().ServeHTTP(w, req)

	assert.Equal(t, 1, w.writes, "nothing is written after the first failure")
	assert.ErrorContains(t, fb.LastExec().Err, "broken pipe", "the failed write stopped the exec")
	var warned bool
	for _, r := range logs.records(t) {
		warned = warned || (r["level"] == "WARN" && strings.Contains(fmt.Sprint(r["error"]), "broken pipe"))
	}
	assert.True(t, warned, "the failed write is logged")
}

// TestStalledStreamReaderIsReleased: a client that stops reading a
// streamed exec while it keeps its connection open must not pin the
// command and the handler. The fake streams far more than the socket
// buffers hold; the write deadline must end the exec and the request.
func TestStalledStreamReaderIsReleased(t *testing.T) {
	// bound is generous for a loaded machine: without a write deadline
	// the exec never ends.
	const bound = 10 * time.Second
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	output := make([]sandbox.Output, 1024) // 64 MiB
	for i := range output {
		output[i] = sandbox.Output{Stream: sandbox.Stdout, Data: chunk}
	}
	started, ended := make(chan struct{}), make(chan struct{})
	fb := newFake()
	fb.SetScript(servertest.Script{Output: output, Started: started, Ended: ended})
	logs := &syncBuffer{}
	srv := server.New(fb, server.Config{
		Logger:             slog.New(slog.NewJSONHandler(logs, nil)),
		StreamWriteTimeout: 100 * time.Millisecond,
	})
	path, served := serveUnix(t, srv)

	conn, err := net.Dial("unix", path)
	require.NoError(t, err, "dial %s", path)
	defer conn.Close()
	body := `{"command":"yes"}`
	_, err = fmt.Fprintf(conn, "POST /v1/sessions/s1/exec HTTP/1.1\r\nHost: sandboxd\r\nAccept: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", api.NDJSON, len(body), body)
	require.NoError(t, err, "send the request")
	// From here on the client reads nothing, and keeps the connection.

	select {
	case <-started:
	case <-time.After(bound):
		t.Fatal("the exec did not start")
	}
	select {
	case <-ended:
	case <-time.After(bound):
		t.Fatalf("the exec still runs %v after its reader stalled", bound)
	}
	err = fb.LastExec().Err
	require.Error(t, err, "the exec was stopped before its output was out")
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "the write deadline stopped it")

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx), "no request is left in flight: the handler returned")
	require.NoError(t, <-served, "Serve returns nil after Shutdown")
	var requests int
	for _, r := range logs.records(t) {
		if r["msg"] == "request" {
			requests++
		}
	}
	assert.Equal(t, 1, requests, "the request was logged, so its handler returned")
}
