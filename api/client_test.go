package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
)

// fakeBackend keeps sessions in a map; it is only used from one request at
// a time.
type fakeBackend struct {
	sessions map[string]api.Session
	lastExec api.ExecRequest
}

func (f *fakeBackend) Info(context.Context) api.Info {
	return api.Info{Version: "test", APIVersion: api.Version, Sessions: len(f.sessions)}
}

func (f *fakeBackend) CreateSession(_ context.Context, req api.CreateSessionRequest) (api.Session, error) {
	if req.UserID == "" {
		return api.Session{}, fmt.Errorf("user_id is required: %w", api.ErrInvalidArgument)
	}
	if _, ok := f.sessions[req.SessionID]; ok {
		return api.Session{}, fmt.Errorf("session %q: %w", req.SessionID, api.ErrAlreadyExists)
	}
	s := api.Session{ID: req.SessionID, UserID: req.UserID, Status: "running", Workspace: "/workspace",
		CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	if req.Limits != nil {
		s.Limits = *req.Limits
	}
	f.sessions[s.ID] = s
	return s, nil
}

func (f *fakeBackend) ListSessions(_ context.Context, userID string) ([]api.Session, error) {
	var list []api.Session
	for _, s := range f.sessions {
		if userID == "" || s.UserID == userID {
			list = append(list, s)
		}
	}
	return list, nil
}

func (f *fakeBackend) GetSession(_ context.Context, id string) (api.Session, error) {
	s, ok := f.sessions[id]
	if !ok {
		return api.Session{}, fmt.Errorf("session %q: %w", id, api.ErrNotFound)
	}
	return s, nil
}

func (f *fakeBackend) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	if _, err := f.GetSession(ctx, id); err != nil {
		return api.ExecResult{}, err
	}
	f.lastExec = req
	return api.ExecResult{ExitCode: 3, Stdout: "hello\n", Stderr: "oops\n", DurationMS: 5}, nil
}

func (f *fakeBackend) DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error) {
	if _, err := f.GetSession(ctx, id); err != nil {
		return api.DeleteSessionResult{}, err
	}
	delete(f.sessions, id)
	res := api.DeleteSessionResult{ID: id}
	if keepFiles {
		res.KeptFiles = []string{id + "-notes.txt"}
	}
	return res, nil
}

// startServer serves a fake-backed API on a fresh Unix socket and returns
// a client for it.
func startServer(t *testing.T) (*api.Client, *fakeBackend) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx") // short: socket paths must fit sun_path
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")

	fb := &fakeBackend{sessions: map[string]api.Session{}}
	srv := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on %s", path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
		assert.NoError(t, <-served, "serve")
	})
	return api.NewClient(path), fb
}

func TestClientSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)

	info, err := c.Info(ctx)
	require.NoError(t, err, "Info")
	assert.Equal(t, api.Info{Version: "test", APIVersion: "v1"}, info, "Info answer")

	limits := &api.Limits{CPUs: 0.5, MemoryMB: 256}
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "a/b c", Limits: limits})
	require.NoError(t, err, "CreateSession")
	assert.Equal(t, "a/b c", sess.ID, "an id with a slash and a space survives the path")
	assert.Equal(t, *limits, sess.Limits, "limits round-trip")
	_, err = c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u2", SessionID: "other"})
	require.NoError(t, err, "CreateSession other")

	all, err := c.ListSessions(ctx, "")
	require.NoError(t, err, "ListSessions")
	assert.Len(t, all, 2, "both sessions listed")
	mine, err := c.ListSessions(ctx, "u1")
	require.NoError(t, err, "ListSessions u1")
	assert.Equal(t, []api.Session{sess}, mine, "only u1's session listed")

	got, err := c.GetSession(ctx, "a/b c")
	require.NoError(t, err, "GetSession")
	assert.Equal(t, sess, got, "GetSession answer")

	req := api.ExecRequest{Command: "echo hello; exit 3", Env: map[string]string{"K": "v"}, Stdin: "in", TimeoutSec: 1.5}
	res, err := c.Exec(ctx, "a/b c", req)
	require.NoError(t, err, "Exec")
	assert.Equal(t, req, fb.lastExec, "backend got the request as sent")
	assert.Equal(t, api.ExecResult{ExitCode: 3, Stdout: "hello\n", Stderr: "oops\n", DurationMS: 5}, res, "Exec answer")

	del, err := c.DeleteSession(ctx, "a/b c", true)
	require.NoError(t, err, "DeleteSession")
	assert.Equal(t, api.DeleteSessionResult{ID: "a/b c", KeptFiles: []string{"a/b c-notes.txt"}}, del, "DeleteSession with keep_files")
	del, err = c.DeleteSession(ctx, "other", false)
	require.NoError(t, err, "DeleteSession other")
	assert.Empty(t, del.KeptFiles, "nothing kept without keep_files")

	all, err = c.ListSessions(ctx, "")
	require.NoError(t, err, "ListSessions after delete")
	assert.Empty(t, all, "no sessions left")
}

func TestClientTypedErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := startServer(t)
	_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "s1"})
	require.NoError(t, err, "CreateSession")

	tests := []struct {
		name       string
		call       func() error
		sentinel   error
		wantStatus int
		wantMsg    string
	}{
		{
			name:     "get missing",
			call:     func() error { _, err := c.GetSession(ctx, "nope"); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `session "nope": not found`,
		},
		{
			name:     "exec in missing",
			call:     func() error { _, err := c.Exec(ctx, "nope", api.ExecRequest{Command: "true"}); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `session "nope": not found`,
		},
		{
			name:     "delete missing",
			call:     func() error { _, err := c.DeleteSession(ctx, "nope", false); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `session "nope": not found`,
		},
		{
			name: "create duplicate",
			call: func() error {
				_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "s1"})
				return err
			},
			sentinel: api.ErrAlreadyExists, wantStatus: http.StatusConflict, wantMsg: `session "s1": already exists`,
		},
		{
			name:     "create without user",
			call:     func() error { _, err := c.CreateSession(ctx, api.CreateSessionRequest{}); return err },
			sentinel: api.ErrInvalidArgument, wantStatus: http.StatusBadRequest, wantMsg: "user_id is required: invalid argument",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err, "call fails")
			assert.ErrorIs(t, err, tt.sentinel, "error matches its sentinel")
			apiErr, ok := errors.AsType[*api.Error](err)
			require.True(t, ok, "error is an *api.Error: %T", err)
			assert.Equal(t, tt.wantStatus, apiErr.Status, "HTTP status")
			assert.Equal(t, tt.wantMsg, apiErr.Message, "server's message")
		})
	}
}

func TestClientNonJSONError(t *testing.T) {
	dir, err := os.MkdirTemp("", "sbx")
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "proxy.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err, "listen")
	// Something that is not sandboxd, answering in plain text.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	_, err = api.NewClient(path).GetSession(context.Background(), "s1")
	apiErr, ok := errors.AsType[*api.Error](err)
	require.True(t, ok, "error is an *api.Error: %v", err)
	assert.Equal(t, &api.Error{Code: api.CodeInternal, Message: "bad gateway", Status: http.StatusBadGateway}, apiErr,
		"plain-text body becomes an internal error carrying the text")
}

func TestClientContextCancels(t *testing.T) {
	c, _ := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Info(ctx)
	assert.ErrorIs(t, err, context.Canceled, "a cancelled context stops the request")
}

func TestClientNoDaemon(t *testing.T) {
	_, err := api.NewClient(filepath.Join(t.TempDir(), "absent.sock")).Info(context.Background())
	require.Error(t, err, "no daemon, no answer")
	assert.ErrorIs(t, err, os.ErrNotExist, "the dial error is kept")
	_, isAPI := errors.AsType[*api.Error](err)
	assert.False(t, isAPI, "a transport failure is not an API error")
}
