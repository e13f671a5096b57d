package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// testSession is session s1 of the fake, as the wire has it.
var testSession = api.Session{
	ID:        "s1",
	UserID:    "u1",
	CreatedAt: time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC),
	Limits:    api.Limits{CPUs: 1, MemoryMB: 512, Pids: 128, TmpMB: 64},
	Status:    "running",
	Workspace: "/workspace",
}

// fileCap is the fake's MaxFileBytes.
const fileCap = servertest.MaxFileBytes

// newFake returns a fake backend knowing session s1 of user u1.
func newFake() *servertest.Backend {
	fb := servertest.New()
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	return fb
}

// write stores data as path in root of session s1 of fb.
func write(t *testing.T, fb *servertest.Backend, root sandbox.Root, path, data string) {
	t.Helper()
	_, err := fb.WriteFile(context.Background(), "s1", root, path, strings.NewReader(data), true)
	require.NoError(t, err, "write %s %s", root, path)
}

// syncBuffer is a log sink the server's goroutines and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON log lines written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "log line %q is JSON", sc.Text())
		recs = append(recs, rec)
	}
	return recs
}

func newServer(fb server.Backend, maxBody int64) (*server.Server, *syncBuffer) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return server.New(fb, server.Config{MaxBodyBytes: maxBody, Logger: logger, Version: "1.2.3"}), logs
}

func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"), "response content type")
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), "response body %q decodes", rec.Body.String())
	return v
}

func TestRoutesSucceed(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, fb *servertest.Backend)
		method     string
		target     string
		body       string
		wantStatus int
		check      func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend)
	}{
		{
			name: "info", method: http.MethodGet, target: "/v1", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				info := decodeBody[api.Info](t, rec)
				assert.Equal(t, "1.2.3", info.Version, "server fills the version the backend left empty")
				assert.Equal(t, api.Version, info.APIVersion, "API version")
				assert.Equal(t, "unified", info.CgroupMode, "backend's cgroup mode is passed on")
				assert.Equal(t, api.Limits{CPUs: 2, MemoryMB: 2048, Pids: 512, TmpMB: 256}, info.MaxLimits, "backend's maximum limits are passed on")
				assert.Equal(t, 1, info.Sessions, "session count")
				assert.Equal(t, "sandboxd/1.2.3", rec.Header().Get("Server"), "Server header names the version")
			},
		},
		{
			name: "create session", method: http.MethodPost, target: "/v1/sessions",
			body:       `{"user_id":"u1","session_id":"s2","limits":{"cpus":0.5,"memory_mb":256}}`,
			wantStatus: http.StatusCreated,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, sandbox.CreateRequest{UserID: "u1", SessionID: "s2", Limits: &sandbox.Limits{CPUs: 0.5, MemoryMB: 256}},
					fb.LastCreate(), "backend got the decoded request")
				assert.JSONEq(t, `{"id":"s2","user_id":"u1","created_at":"2025-06-01T12:00:02Z","status":"running","workspace":"/workspace",
					"limits":{"cpus":0.5,"memory_mb":256,"pids":128,"tmp_mb":64}}`, rec.Body.String(), "response is the created session")
				assert.Equal(t, "/v1/sessions/s2", rec.Header().Get("Location"), "Location names the new session")
			},
		},
		{
			name: "list sessions", method: http.MethodGet, target: "/v1/sessions", wantStatus: http.StatusOK,
			setup: func(_ *testing.T, fb *servertest.Backend) { fb.AddSession(sandbox.Session{ID: "s2", UserID: "u2"}) },
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				list := decodeBody[api.SessionList](t, rec).Sessions
				require.Len(t, list, 2, "no user filter without user_id")
				assert.Equal(t, testSession, list[0], "s1 listed first")
				assert.Equal(t, "s2", list[1].ID, "s2 listed")
			},
		},
		{
			name: "list sessions of a user", method: http.MethodGet, target: "/v1/sessions?user_id=u1", wantStatus: http.StatusOK,
			setup: func(_ *testing.T, fb *servertest.Backend) { fb.AddSession(sandbox.Session{ID: "s2", UserID: "u2"}) },
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, api.SessionList{Sessions: []api.Session{testSession}}, decodeBody[api.SessionList](t, rec),
					"user_id is passed as the filter")
			},
		},
		{
			name: "empty list is an empty array", method: http.MethodGet, target: "/v1/sessions?user_id=nobody", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"sessions":[]}`, rec.Body.String(), "nil list is encoded as []")
			},
		},
		{
			name: "get session", method: http.MethodGet, target: "/v1/sessions/s1", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, testSession, decodeBody[api.Session](t, rec), "response is the session")
				assert.NotContains(t, rec.Body.String(), `"reason"`, "a running session has no reason")
			},
		},
		{
			name: "get a broken session", method: http.MethodGet, target: "/v1/sessions/s3", wantStatus: http.StatusOK,
			setup: func(_ *testing.T, fb *servertest.Backend) {
				fb.AddSession(sandbox.Session{ID: "s3", UserID: "u1", State: sandbox.StateBroken, Reason: "restore failed: no rootfs"})
			},
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				sess := decodeBody[api.Session](t, rec)
				assert.Equal(t, "broken", sess.Status, "status")
				assert.Equal(t, "restore failed: no rootfs", sess.Reason, "reason says why")
			},
		},
		{
			name: "exec", method: http.MethodPost, target: "/v1/sessions/s1/exec",
			body: `{"argv":["ls","-l"],"cwd":"/workspace","env":{"A":"b"},"stdin":"in","timeout":2.5}`,
			setup: func(_ *testing.T, fb *servertest.Backend) {
				fb.SetScript(servertest.Script{
					Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("out")}, {Stream: sandbox.Stderr, Data: []byte("err")}},
					Result: sandbox.ExecResult{ExitCode: 137, Signal: "SIGKILL", TimedOut: true, Duration: 30 * time.Second, StdoutTruncated: true,
						CPU: 1500 * time.Millisecond, PeakMemory: 1 << 20},
				})
			},
			wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, servertest.ExecCall{ID: "s1", Req: sandbox.ExecRequest{
					Command: sandbox.Command{Argv: []string{"ls", "-l"}, Cwd: "/workspace", Env: map[string]string{"A": "b"}},
					Stdin:   "in", Timeout: 2500 * time.Millisecond,
				}}, fb.LastExec(), "backend got the decoded request")
				assert.JSONEq(t, `{"exit_code":137,"signal":"SIGKILL","timed_out":true,"oom_killed":false,"duration_ms":30000,
					"cpu_ms":1500,"peak_memory_bytes":1048576,
					"stdout":"out","stderr":"err","stdout_truncated":true,"stderr_truncated":false}`, rec.Body.String(), "the result")
			},
		},
		{
			name: "delete session", method: http.MethodDelete, target: "/v1/sessions/s1", wantStatus: http.StatusOK,
			setup: func(t *testing.T, fb *servertest.Backend) { write(t, fb, sandbox.RootWorkspace, "report.pdf", "%PDF") },
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.JSONEq(t, `{"id":"s1","kept_files":[],"not_kept":[]}`, rec.Body.String(), "keep_files defaults to false; empty lists are []")
				_, err := fb.GetSession(context.Background(), "s1")
				assert.ErrorIs(t, err, sandbox.ErrNotFound, "the session is gone")
			},
		},
		{
			name: "delete session keeping files", method: http.MethodDelete, target: "/v1/sessions/s1?keep_files=true", wantStatus: http.StatusOK,
			setup: func(t *testing.T, fb *servertest.Backend) {
				write(t, fb, sandbox.RootWorkspace, "report.pdf", "%PDF")
				write(t, fb, sandbox.RootWorkspace, "plan.docx", "PK")
				write(t, fb, sandbox.RootWorkspace, "notes.txt", "not kept")
				fb.AddOutput("u1", "report.pdf", []byte("an older one"))
				fb.SetNotKept("plan.docx", "not a regular file")
			},
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"id":"s1","kept_files":["report-1.pdf"],"not_kept":[{"name":"plan.docx","reason":"not a regular file"}]}`,
					rec.Body.String(), "kept files and those that could not be kept")
			},
		},
		{
			name: "delete session keep_files=0", method: http.MethodDelete, target: "/v1/sessions/s1?keep_files=0", wantStatus: http.StatusOK,
			setup: func(t *testing.T, fb *servertest.Backend) { write(t, fb, sandbox.RootWorkspace, "report.pdf", "%PDF") },
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Empty(t, decodeBody[api.DeleteSessionResult](t, rec).KeptFiles, "keep_files=0 parses as false")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			if tt.setup != nil {
				tt.setup(t, fb)
			}
			srv, _ := newServer(fb, 0)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			require.Equal(t, tt.wantStatus, rec.Code, "status of %s %s; body %s", tt.method, tt.target, rec.Body)
			tt.check(t, rec, fb)
		})
	}
}

func TestBackendErrorsMapToStatus(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
	}{
		{sandbox.ErrInvalid, http.StatusBadRequest, api.CodeInvalidArgument},
		{sandbox.ErrForbidden, http.StatusForbidden, api.CodePermission},
		{sandbox.ErrNotFound, http.StatusNotFound, api.CodeNotFound},
		{sandbox.ErrConflict, http.StatusConflict, api.CodeConflict},
		{sandbox.ErrExists, http.StatusConflict, api.CodeAlreadyExists},
		{sandbox.ErrTooLarge, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		{sandbox.ErrNotText, http.StatusUnsupportedMediaType, api.CodeUnsupported},
		{sandbox.ErrQuota, http.StatusTooManyRequests, api.CodeQuotaExceeded},
		{sandbox.ErrPidsLimit, http.StatusTooManyRequests, api.CodePidsLimit},
		{sandbox.ErrPackageNotAllowed, http.StatusForbidden, api.CodePackageNotAllowed},
		{sandbox.ErrUnavailable, http.StatusServiceUnavailable, api.CodeUnavailable},
		{sandbox.ErrExpired, http.StatusGone, api.CodeExpired},
		{sandbox.ErrInvalidQuota, http.StatusBadRequest, api.CodeInvalidQuota},
		// An *api.Error keeps its own code, whoever wraps it.
		{api.ErrConflict, http.StatusConflict, api.CodeConflict},
		{api.ErrInternal, http.StatusInternalServerError, api.CodeInternal},
		{errors.New("disk on fire"), http.StatusInternalServerError, api.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode+"/"+tt.err.Error(), func(t *testing.T) {
			fb := newFake()
			fb.Fail(fmt.Errorf("session %q: %w", "s1", tt.err))
			srv, logs := newServer(fb, 0)
			rec := serve(srv.Handler(), http.MethodGet, "/v1/sessions/s1", "")
			assert.Equal(t, tt.wantStatus, rec.Code, "status for %v", tt.err)
			got := decodeBody[api.Error](t, rec)
			assert.Equal(t, api.Error{Message: `session "s1": ` + tt.err.Error(), Code: tt.wantCode}, got,
				"envelope carries the wrapped message and the code")

			var loggedError bool
			for _, r := range logs.records(t) {
				loggedError = loggedError || (r["level"] == "ERROR" && strings.Contains(fmt.Sprint(r["error"]), tt.err.Error()))
			}
			assert.Equal(t, tt.wantStatus == http.StatusInternalServerError, loggedError, "only 500s log the error in full")
		})
	}
}

func TestEveryRouteReportsBackendErrors(t *testing.T) {
	tests := []struct{ method, target, body string }{
		{http.MethodPost, "/v1/sessions", `{"user_id":"u1"}`},
		{http.MethodGet, "/v1/sessions", ""},
		{http.MethodGet, "/v1/sessions/s1", ""},
		{http.MethodPost, "/v1/sessions/s1/exec", `{"command":"true"}`},
		{http.MethodDelete, "/v1/sessions/s1", ""},
		{http.MethodGet, "/v1/sessions/s1/files", ""},
		{http.MethodDelete, "/v1/sessions/s1/files?path=a.txt", ""},
		{http.MethodGet, "/v1/sessions/s1/files/stat?path=a.txt", ""},
		{http.MethodGet, "/v1/sessions/s1/files/content?path=a.txt", ""},
		{http.MethodPut, "/v1/sessions/s1/files/content?path=a.txt", "data"},
		{http.MethodGet, "/v1/sessions/s1/files/text?path=a.txt", ""},
		{http.MethodPost, "/v1/sessions/s1/files/edit", `{"path":"a.txt","old":"a","new":"b"}`},
		{http.MethodPost, "/v1/sessions/s1/files/mkdir", `{"path":"d"}`},
		{http.MethodPost, "/v1/sessions/s1/files/move", `{"from":"a.txt","to":"b.txt"}`},
		{http.MethodGet, "/v1/users/u1/files/outputs/report.pdf", ""},
		{http.MethodPost, "/v1/sessions/s1/processes", `{"command":"sleep 9"}`},
		{http.MethodGet, "/v1/sessions/s1/processes", ""},
		{http.MethodGet, "/v1/sessions/s1/processes/p1/output", ""},
		{http.MethodDelete, "/v1/sessions/s1/processes/p1", ""},
		{http.MethodGet, "/v1/sessions/s1/stats", ""},
		{http.MethodGet, "/v1/events?session_id=s1", ""},
		{http.MethodPost, "/v1/sessions/s1/packages", `{"requirements":["alpha"]}`},
		{http.MethodGet, "/v1/sessions/s1/packages", ""},
		{http.MethodGet, "/v1/envs", ""},
		{http.MethodGet, "/v1/users/u1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			fb := newFake()
			fb.Fail(fmt.Errorf("test: %w", sandbox.ErrQuota))
			srv, _ := newServer(fb, 0)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			assert.Equal(t, http.StatusTooManyRequests, rec.Code, "backend error's status")
			assert.Equal(t, api.CodeQuotaExceeded, decodeBody[api.Error](t, rec).Code, "backend error's code")
			assert.Len(t, fb.Calls(), 1, "the backend was asked once")
		})
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		target      string
		body        string
		wantStatus  int
		wantCode    string
		wantMessage string // a substring of the envelope's message
		wantAllow   string
	}{
		{"malformed JSON", http.MethodPost, "/v1/sessions", `{"user_id":`, 400, api.CodeInvalidArgument, "request body", ""},
		{"wrong type", http.MethodPost, "/v1/sessions", `{"user_id":7}`, 400, api.CodeInvalidArgument, "user_id", ""},
		{"unknown field", http.MethodPost, "/v1/sessions", `{"user_id":"u1","colour":"red"}`, 400, api.CodeInvalidArgument, `"colour"`, ""},
		{"unknown nested field", http.MethodPost, "/v1/sessions", `{"user_id":"u1","limits":{"gpus":1}}`, 400, api.CodeInvalidArgument, `"gpus"`, ""},
		{"empty body", http.MethodPost, "/v1/sessions", ``, 400, api.CodeInvalidArgument, "empty", ""},
		{"trailing garbage", http.MethodPost, "/v1/sessions", `{"user_id":"u1"} x`, 400, api.CodeInvalidArgument, "request body", ""},
		{"second object", http.MethodPost, "/v1/sessions/s1/exec", `{"command":"true"}{}`, 400, api.CodeInvalidArgument, "trailing data", ""},
		{"oversized body", http.MethodPost, "/v1/sessions/s1/exec", `{"command":"cat","stdin":"` + strings.Repeat("x", 300) + `"}`, 413, api.CodeTooLarge, "256 bytes", ""},
		{"bad keep_files", http.MethodDelete, "/v1/sessions/s1?keep_files=maybe", ``, 400, api.CodeInvalidArgument, `keep_files "maybe"`, ""},
		{"empty keep_files", http.MethodDelete, "/v1/sessions/s1?keep_files=", ``, 400, api.CodeInvalidArgument, "keep_files", ""},
		{"unknown route", http.MethodGet, "/v2/sessions", ``, 404, api.CodeNotFound, "/v2/sessions", ""},
		{"trailing slash", http.MethodGet, "/v1/sessions/s1/", ``, 404, api.CodeNotFound, "no route", ""},
		{"wrong method on exec", http.MethodGet, "/v1/sessions/s1/exec", ``, 405, "method_not_allowed", "GET", "POST"},
		{"wrong method on sessions", http.MethodPut, "/v1/sessions", ``, 405, "method_not_allowed", "PUT", "GET, HEAD, POST"},
		{"wrong method on a session", http.MethodPost, "/v1/sessions/s1", `{}`, 405, "method_not_allowed", "POST", "DELETE, GET, HEAD"},
		{"wrong method on info", http.MethodDelete, "/v1", ``, 405, "method_not_allowed", "DELETE", "GET, HEAD"},
		{"bad recursive", http.MethodGet, "/v1/sessions/s1/files?recursive=yes", ``, 400, api.CodeInvalidArgument, `recursive "yes"`, ""},
		{"bad recursive on delete", http.MethodDelete, "/v1/sessions/s1/files?path=d&recursive=", ``, 400, api.CodeInvalidArgument, `recursive ""`, ""},
		{"bad mkdirs", http.MethodPut, "/v1/sessions/s1/files/content?path=a&mkdirs=2", `x`, 400, api.CodeInvalidArgument, `mkdirs "2"`, ""},
		{"negative offset", http.MethodGet, "/v1/sessions/s1/files/content?path=a&offset=-1", ``, 400, api.CodeInvalidArgument, `offset "-1": want a non-negative integer`, ""},
		{"bad offset", http.MethodGet, "/v1/sessions/s1/files/content?path=a&offset=1k", ``, 400, api.CodeInvalidArgument, `offset "1k"`, ""},
		{"negative length", http.MethodGet, "/v1/sessions/s1/files/content?path=a&length=-5", ``, 400, api.CodeInvalidArgument, `length "-5"`, ""},
		{"bad length", http.MethodGet, "/v1/sessions/s1/files/content?path=a&length=", ``, 400, api.CodeInvalidArgument, `length ""`, ""},
		{"bad line", http.MethodGet, "/v1/sessions/s1/files/text?path=a&line=one", ``, 400, api.CodeInvalidArgument, `line "one"`, ""},
		{"bad limit", http.MethodGet, "/v1/sessions/s1/files/text?path=a&limit=1.5", ``, 400, api.CodeInvalidArgument, `limit "1.5"`, ""},
		{"unknown edit field", http.MethodPost, "/v1/sessions/s1/files/edit", `{"path":"a","old":"x","new":"y","all":true}`, 400, api.CodeInvalidArgument, `"all"`, ""},
		{"oversized edit", http.MethodPost, "/v1/sessions/s1/files/edit", `{"path":"a","old":"x","new":"` + strings.Repeat("y", 300) + `"}`, 413, api.CodeTooLarge, "256 bytes", ""},
		{"wrong method on files", http.MethodPatch, "/v1/sessions/s1/files", ``, 405, "method_not_allowed", "PATCH", "DELETE, GET, HEAD"},
		{"wrong method on content", http.MethodPost, "/v1/sessions/s1/files/content?path=a", `x`, 405, "method_not_allowed", "POST", "GET, HEAD, PUT"},
		{"wrong method on stat", http.MethodDelete, "/v1/sessions/s1/files/stat", ``, 405, "method_not_allowed", "DELETE", "GET, HEAD"},
		{"wrong method on text", http.MethodPut, "/v1/sessions/s1/files/text", `x`, 405, "method_not_allowed", "PUT", "GET, HEAD"},
		{"wrong method on edit", http.MethodGet, "/v1/sessions/s1/files/edit", ``, 405, "method_not_allowed", "GET", "POST"},
		{"wrong method on mkdir", http.MethodPut, "/v1/sessions/s1/files/mkdir", `{}`, 405, "method_not_allowed", "PUT", "POST"},
		{"wrong method on move", http.MethodDelete, "/v1/sessions/s1/files/move", ``, 405, "method_not_allowed", "DELETE", "POST"},
		{"wrong method on outputs", http.MethodDelete, "/v1/users/u1/files/outputs/a.pdf", ``, 405, "method_not_allowed", "DELETE", "GET, HEAD"},
		{"unknown files route", http.MethodGet, "/v1/sessions/s1/files/chmod", ``, 404, api.CodeNotFound, "no route", ""},
		{"wrong method on processes", http.MethodPut, "/v1/sessions/s1/processes", `{}`, 405, "method_not_allowed", "PUT", "GET, HEAD, POST"},
		{"wrong method on a process", http.MethodGet, "/v1/sessions/s1/processes/p1", ``, 405, "method_not_allowed", "GET", "DELETE"},
		{"wrong method on output", http.MethodDelete, "/v1/sessions/s1/processes/p1/output", ``, 405, "method_not_allowed", "DELETE", "GET, HEAD"},
		{"unknown process route", http.MethodGet, "/v1/sessions/s1/processes/p1/stdin", ``, 404, api.CodeNotFound, "no route", ""},
		{"unknown start field", http.MethodPost, "/v1/sessions/s1/processes", `{"command":"x","timeout":5}`, 400, api.CodeInvalidArgument, `"timeout"`, ""},
		{"oversized start", http.MethodPost, "/v1/sessions/s1/processes", `{"command":"` + strings.Repeat("x", 300) + `"}`, 413, api.CodeTooLarge, "256 bytes", ""},
		{"bad grace", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=soon", ``, 400, api.CodeInvalidArgument, `grace "soon": want a duration`, ""},
		{"empty grace", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=", ``, 400, api.CodeInvalidArgument, `grace ""`, ""},
		{"NaN grace", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=NaN", ``, 400, api.CodeInvalidArgument, `grace "NaN"`, ""},
		{"endless grace", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=1e300", ``, 400, api.CodeInvalidArgument, `grace "1e300"`, ""},
		// 1e10 s overflows a time.Duration: it used to kill the command at once.
		{"endless timeout", http.MethodPost, "/v1/sessions/s1/exec", `{"command":"true","timeout":1e10}`, 400, api.CodeInvalidArgument, "timeout 1e+10 is out of range", ""},
		{"huge negative timeout", http.MethodPost, "/v1/sessions/s1/exec", `{"command":"true","timeout":-1e300}`, 400, api.CodeInvalidArgument, "out of range", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			srv, _ := newServer(fb, 256)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			assert.Equal(t, tt.wantStatus, rec.Code, "status; body %s", rec.Body)
			got := decodeBody[api.Error](t, rec)
			assert.Equal(t, tt.wantCode, got.Code, "error code")
			assert.Contains(t, got.Message, tt.wantMessage, "error message says what is wrong")
			assert.Equal(t, tt.wantAllow, rec.Header().Get("Allow"), "Allow header")
			assert.Empty(t, fb.Calls(), "backend is not called for a bad request")
		})
	}
}

// TestBackendChecksAnswerAsTheServerDid covers the checks that moved from
// the server into the backend: the wire is what it was, status, code and a
// message saying what is wrong, but the backend makes the check.
func TestBackendChecksAnswerAsTheServerDid(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		target      string
		body        string
		wantCall    string
		wantMessage string // a substring of the envelope's message
	}{
		{"bad root", http.MethodGet, "/v1/sessions/s1/files?root=home", ``, "ListFiles", `root "home": want "workspace" or "shared"`},
		{"bad root on upload", http.MethodPut, "/v1/sessions/s1/files/content?root=Shared&path=a", `x`, "WriteFile", `root "Shared"`},
		{"bad root on edit", http.MethodPost, "/v1/sessions/s1/files/edit?root=..", `{"path":"a","old":"x","new":"y"}`, "EditFile", `root ".."`},
		{"bad root on mkdir", http.MethodPost, "/v1/sessions/s1/files/mkdir?root=tmp", `{"path":"a"}`, "Mkdir", `root "tmp"`},
		{"bad root on move", http.MethodPost, "/v1/sessions/s1/files/move?root=x", `{"from":"a","to":"b"}`, "MoveFile", `root "x"`},
		{"bad root on remove", http.MethodDelete, "/v1/sessions/s1/files?root=%2Fetc&path=a", ``, "RemoveFile", `root "/etc"`},
		{"bad root on read", http.MethodGet, "/v1/sessions/s1/files/content?root=home&path=a", ``, "OpenFile", `root "home"`},
		{"bad root on text", http.MethodGet, "/v1/sessions/s1/files/text?root=home&path=a", ``, "ReadText", `root "home"`},
		{"line 0", http.MethodGet, "/v1/sessions/s1/files/text?path=a&line=0", ``, "ReadText", "line must be at least 1"},
		{"negative line", http.MethodGet, "/v1/sessions/s1/files/text?path=a&line=-2", ``, "ReadText", "line must be at least 1"},
		{"negative limit", http.MethodGet, "/v1/sessions/s1/files/text?path=a&limit=-1", ``, "ReadText", "limit not negative"},
		{"negative grace", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=-1s", ``, "KillProcess", "grace must not be negative"},
		{"negative grace in seconds", http.MethodDelete, "/v1/sessions/s1/processes/p1?grace=-0.5", ``, "KillProcess", "grace must not be negative"},
		{"negative timeout", http.MethodPost, "/v1/sessions/s1/exec", `{"command":"true","timeout":-1}`, "Exec", "timeout must not be negative"},
		{"neither argv nor command", http.MethodPost, "/v1/sessions/s1/exec", `{"cwd":"/w"}`, "Exec", "argv or command is required"},
		{"both argv and command", http.MethodPost, "/v1/sessions/s1/processes", `{"argv":["a"],"command":"b"}`, "StartProcess", "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			srv, _ := newServer(fb, 256)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			assert.Equal(t, http.StatusBadRequest, rec.Code, "status; body %s", rec.Body)
			got := decodeBody[api.Error](t, rec)
			assert.Equal(t, api.CodeInvalidArgument, got.Code, "error code")
			assert.Contains(t, got.Message, tt.wantMessage, "error message says what is wrong")
			assert.Equal(t, []string{tt.wantCall}, fb.Calls(), "the backend makes the check")
		})
	}
}

// TestExplicitlyEmptyRootIsRefused holds the contract (api/openapi.yaml:
// root is workspace or shared, "anything else is 400") for root=: only an
// absent root means the workspace.
func TestExplicitlyEmptyRootIsRefused(t *testing.T) {
	fb := newFake()
	srv, _ := newServer(fb, 0)
	rec := serve(srv.Handler(), http.MethodGet, "/v1/sessions/s1/files/stat?root=&path=a", "")
	assert.Equal(t, http.StatusBadRequest, rec.Code, "status; body %s", rec.Body)
	got := decodeBody[api.Error](t, rec)
	assert.Equal(t, api.CodeInvalidArgument, got.Code, "error code")
	assert.Contains(t, got.Message, `root ""`, "error message says what is wrong")
}

// shortTempDir returns a temporary directory whose socket paths fit in
// sun_path (108 bytes), which t.TempDir's long names may not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx")
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func unixHTTPClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// serveUnix serves srv on a fresh socket and returns its path and Serve's
// result channel.
func serveUnix(t *testing.T, srv *server.Server) (string, <-chan error) {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "api.sock")
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on %s", path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return path, served
}

func TestPeerCredentialsAreLogged(t *testing.T) {
	srv, logs := newServer(newFake(), 0)
	path, served := serveUnix(t, srv)

	resp, err := unixHTTPClient(path).Get("http://sandboxd/v1")
	require.NoError(t, err, "GET /v1 over the socket")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET /v1 status")

	// Shutdown waits for the request to finish, log line included.
	require.NoError(t, srv.Shutdown(context.Background()), "shutdown")
	require.NoError(t, <-served, "Serve returns nil after Shutdown")

	var requests []map[string]any
	for _, r := range logs.records(t) {
		if r["msg"] == "request" {
			requests = append(requests, r)
		}
	}
	require.Len(t, requests, 1, "one log record per request")
	rec := requests[0]
	assert.Equal(t, "INFO", rec["level"], "request is logged at Info")
	assert.Equal(t, "GET", rec["method"], "logged method")
	assert.Equal(t, "/v1", rec["path"], "logged path")
	assert.EqualValues(t, http.StatusOK, rec["status"], "logged status")
	assert.Contains(t, rec, "duration", "logged duration")
	assert.EqualValues(t, os.Getuid(), rec["peer_uid"], "logged peer uid is this process's")
	assert.EqualValues(t, os.Getgid(), rec["peer_gid"], "logged peer gid is this process's")
	assert.EqualValues(t, os.Getpid(), rec["peer_pid"], "logged peer pid is this process's")
}

func TestRequestsWithoutPeerAreLogged(t *testing.T) {
	srv, logs := newServer(newFake(), 0)
	rec := serve(srv.Handler(), http.MethodGet, "/nowhere", "")
	require.Equal(t, http.StatusNotFound, rec.Code, "unknown route status")

	recs := logs.records(t)
	require.Len(t, recs, 1, "one log record")
	assert.EqualValues(t, http.StatusNotFound, recs[0]["status"], "logged status")
	assert.NotContains(t, recs[0], "peer_uid", "no peer credentials off a Unix socket")
}

func TestShutdownWaitsForInFlightRequests(t *testing.T) {
	fb := newFake()
	started, release := make(chan struct{}), make(chan struct{})
	fb.SetScript(servertest.Script{Started: started, Hold: release})
	srv, _ := newServer(fb, 0)
	path, served := serveUnix(t, srv)
	client := unixHTTPClient(path)

	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://sandboxd/v1/sessions/s1/exec", "application/json", strings.NewReader(`{"command":"sleep 1"}`))
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{status: resp.StatusCode}
	}()
	<-started

	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool {
		_, err := os.Stat(path)
		return errors.Is(err, os.ErrNotExist)
	}, 5*time.Second, 10*time.Millisecond, "Shutdown closes the listener, which removes the socket")
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}

	close(release)
	res := <-answered
	require.NoError(t, res.err, "in-flight exec is answered")
	assert.Equal(t, http.StatusOK, res.status, "in-flight exec completes")
	assert.NoError(t, <-shutdown, "Shutdown returns once the request is done")
	assert.NoError(t, <-served, "Serve returns nil after Shutdown")
}
