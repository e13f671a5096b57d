package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// seedProcesses starts p1 ("sleep 9", running, three unread lines) and p2
// ("make", exited 0, nothing unread) in s1.
func seedProcesses(t *testing.T, fb *servertest.Backend) {
	t.Helper()
	ctx := context.Background()
	_, err := fb.StartProcess(ctx, "s1", sandbox.Command{Shell: "sleep 9"})
	require.NoError(t, err, "start p1")
	require.NoError(t, fb.Print("s1", "p1", "one", "two", "error: x"), "print to p1")
	_, err = fb.StartProcess(ctx, "s1", sandbox.Command{Argv: []string{"make"}})
	require.NoError(t, err, "start p2")
	require.NoError(t, fb.Exit("s1", "p2", 0), "exit p2")
}

func TestProcessRoutes(t *testing.T) {
	type check func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend)
	lines := func(want ...string) check {
		return func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
			assert.Equal(t, want, decodeBody[api.ProcessOutput](t, rec).Lines, "unread lines")
		}
	}
	killedWith := func(grace time.Duration) check {
		return func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
			assert.Equal(t, grace, fb.LastGrace(), "grace passed to the backend")
			out := decodeBody[api.ProcessOutput](t, rec)
			assert.Equal(t, api.StatusKilled, out.Status, "killed")
		}
	}
	errorCode := func(want string) check {
		return func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
			assert.Equal(t, want, decodeBody[api.Error](t, rec).Code, "error code")
		}
	}
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		unseeded   bool
		wantStatus int
		check      check
	}{
		{
			name: "start", method: http.MethodPost, target: "/v1/sessions/s1/processes",
			body:       `{"argv":["python3","-m","http.server"],"cwd":"/workspace","env":{"A":"b"}}`,
			wantStatus: http.StatusCreated,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, "/v1/sessions/s1/processes/p3", rec.Header().Get("Location"), "Location names the process")
				assert.Equal(t, api.Process{ID: "p3", PID: 103, Command: "python3 -m http.server", Status: api.StatusRunning,
					StartedAt: fb.Epoch().Add(3 * time.Second)}, decodeBody[api.Process](t, rec), "the started process")
			},
		},
		{
			name: "start neither argv nor command", method: http.MethodPost, target: "/v1/sessions/s1/processes", body: `{"cwd":"/w"}`,
			wantStatus: http.StatusBadRequest, check: errorCode(api.CodeInvalidArgument),
		},
		{
			name: "start in a missing session", method: http.MethodPost, target: "/v1/sessions/nope/processes", body: `{"command":"x"}`,
			wantStatus: http.StatusNotFound, check: errorCode(api.CodeNotFound),
		},
		{
			name: "list", method: http.MethodGet, target: "/v1/sessions/s1/processes", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				list := decodeBody[api.ProcessList](t, rec).Processes
				require.Len(t, list, 2, "both processes listed")
				assert.Equal(t, "p1", list[0].ID, "oldest first")
				assert.Nil(t, list[0].ExitCode, "a running process has no exit code")
				require.NotNil(t, list[1].ExitCode, "an exited process has an exit code")
				assert.Equal(t, 0, *list[1].ExitCode, "p2's exit code")
				assert.Equal(t, fb.Epoch().Add(3*time.Second), list[1].EndedAt, "p2's end")
			},
		},
		{
			name: "empty list is an empty array", method: http.MethodGet, target: "/v1/sessions/s1/processes", unseeded: true, wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"processes":[]}`, rec.Body.String(), "no processes is []")
			},
		},
		{name: "output", method: http.MethodGet, target: "/v1/sessions/s1/processes/p1/output", wantStatus: http.StatusOK, check: lines("one", "two", "error: x")},
		{name: "output filtered", method: http.MethodGet, target: "/v1/sessions/s1/processes/p1/output?filter=%5Eerr", wantStatus: http.StatusOK, check: lines("error: x")},
		{
			name: "output with nothing unread", method: http.MethodGet, target: "/v1/sessions/s1/processes/p2/output", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Contains(t, rec.Body.String(), `"lines":[]`, "no lines is []")
				assert.Equal(t, api.StatusExited, decodeBody[api.ProcessOutput](t, rec).Status, "the process's state comes along")
			},
		},
		{
			name: "output with a bad filter", method: http.MethodGet, target: "/v1/sessions/s1/processes/p1/output?filter=(", wantStatus: http.StatusBadRequest,
			check: errorCode(api.CodeInvalidArgument),
		},
		{
			name: "output of a missing process", method: http.MethodGet, target: "/v1/sessions/s1/processes/p9/output", wantStatus: http.StatusNotFound,
			check: errorCode(api.CodeNotFound),
		},
		{
			name: "kill", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p1", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, 5*time.Second, fb.LastGrace(), "grace defaults to 5s")
				out := decodeBody[api.ProcessOutput](t, rec)
				assert.Equal(t, []string{"one", "two", "error: x"}, out.Lines, "unread lines")
				require.NotNil(t, out.ExitCode, "a killed process has an exit code")
				assert.Equal(t, 143, *out.ExitCode, "128+SIGTERM")
				assert.Equal(t, "SIGTERM", out.Signal, "signal")
				list, err := fb.ListProcesses(context.Background(), "s1")
				require.NoError(t, err, "list")
				assert.Len(t, list, 1, "the killed process is gone")
			},
		},
		{name: "kill with a Go duration", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p1?grace=500ms", wantStatus: http.StatusOK, check: killedWith(500 * time.Millisecond)},
		{name: "kill with seconds", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p1?grace=2", wantStatus: http.StatusOK, check: killedWith(2 * time.Second)},
		{name: "kill with a fraction of seconds", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p1?grace=0.25", wantStatus: http.StatusOK, check: killedWith(250 * time.Millisecond)},
		{name: "kill at once", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p1?grace=0", wantStatus: http.StatusOK, check: killedWith(0)},
		{
			name: "kill an exited process", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p2", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"id":"p2","pid":102,"command":"make","status":"exited","exit_code":0,
					"started_at":"2025-06-01T12:00:02Z","ended_at":"2025-06-01T12:00:03Z","lines":[],"dropped":0}`,
					rec.Body.String(), "the final state, flat, with no lines")
			},
		},
		{
			name: "kill a missing process", method: http.MethodDelete, target: "/v1/sessions/s1/processes/p9", wantStatus: http.StatusNotFound,
			check: errorCode(api.CodeNotFound),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			if !tt.unseeded {
				seedProcesses(t, fb)
			}
			srv, _ := newServer(fb, 0)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			require.Equal(t, tt.wantStatus, rec.Code, "status of %s %s; body %s", tt.method, tt.target, rec.Body)
			tt.check(t, rec, fb)
		})
	}
}
