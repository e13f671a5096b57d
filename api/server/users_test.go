package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func TestGetUser(t *testing.T) {
	fb := newFake()
	write(t, fb, sandbox.RootWorkspace, "a.txt", "12345")
	write(t, fb, sandbox.RootShared, "b.txt", "123")
	fb.AddSession(sandbox.Session{ID: "s0", UserID: "u1", State: sandbox.StateExpired, Reason: "expired at noon",
		CreatedAt: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)})
	srv, _ := newServer(fb, 0)

	rec := serve(srv.Handler(), http.MethodGet, "/v1/users/u1", "")
	require.Equal(t, http.StatusOK, rec.Code, "body %s", rec.Body)
	assert.JSONEq(t, `{
		"user_id": "u1",
		"limits": {"max_sessions": 10, "max_workspace_size_mb": 1024, "session_disk_mb": 102, "max_files_per_session": 10000,
			"max_session_duration_hours": 24, "idle_freeze_after_sec": 600, "idle_delete_after_sec": 86400},
		"usage": {"quota_mode": "loop", "enforced": true, "used_bytes": 8, "reserved_bytes": 106954752, "limit_bytes": 1073741824,
			"files": 2, "sessions": 1,
			"shared": {"bytes": 3, "limit_bytes": 966787072, "files": 1, "limit_files": 65536},
			"session_disks": [{"session_id": "s1", "bytes": 5, "limit_bytes": 106954752, "files": 1, "limit_files": 10000}]},
		"sessions": [
			{"id": "s0", "user_id": "u1", "created_at": "2025-06-01T11:00:00Z", "status": "expired", "reason": "expired at noon",
				"workspace": "/workspace", "limits": {"cpus": 1, "memory_mb": 512, "pids": 128, "tmp_mb": 64}},
			{"id": "s1", "user_id": "u1", "created_at": "2025-06-01T12:00:01Z", "status": "running",
				"workspace": "/workspace", "limits": {"cpus": 1, "memory_mb": 512, "pids": 128, "tmp_mb": 64}}
		]}`, rec.Body.String(), "limits, usage and sessions; durations in seconds, an expired session not counted")

	rec = serve(srv.Handler(), http.MethodGet, "/v1/users/nobody", "")
	assert.Equal(t, http.StatusNotFound, rec.Code, "an unknown user")
	assert.Equal(t, api.CodeNotFound, decodeBody[api.Error](t, rec).Code)
}

func TestExpiredAndFrozenSessions(t *testing.T) {
	fb := newFake()
	fb.AddSession(sandbox.Session{ID: "old", UserID: "u1", State: sandbox.StateExpired, Reason: "expired at noon"})
	fb.AddSession(sandbox.Session{ID: "idle", UserID: "u1", State: sandbox.StateFrozen})
	srv, _ := newServer(fb, 0)

	rec := serve(srv.Handler(), http.MethodPost, "/v1/sessions/old/exec", `{"command":"true"}`)
	assert.Equal(t, http.StatusGone, rec.Code, "exec in an expired session")
	got := decodeBody[api.Error](t, rec)
	assert.Equal(t, api.CodeExpired, got.Code, "code expired")
	assert.Contains(t, got.Message, "expired at noon", "with the reason")
	rec = serve(srv.Handler(), http.MethodGet, "/v1/sessions/old", "")
	assert.Equal(t, "expired", decodeBody[api.Session](t, rec).Status, "described as expired")
	rec = serve(srv.Handler(), http.MethodDelete, "/v1/sessions/old", "")
	assert.Equal(t, http.StatusOK, rec.Code, "and deleted")

	rec = serve(srv.Handler(), http.MethodGet, "/v1/sessions/idle", "")
	assert.Equal(t, "frozen", decodeBody[api.Session](t, rec).Status, "a frozen session")
	rec = serve(srv.Handler(), http.MethodPost, "/v1/sessions/idle/exec", `{"command":"true"}`)
	assert.Equal(t, http.StatusOK, rec.Code, "runs its next call")
	rec = serve(srv.Handler(), http.MethodGet, "/v1/sessions/idle", "")
	assert.Equal(t, "running", decodeBody[api.Session](t, rec).Status, "thawed by it")

	rec = serve(srv.Handler(), http.MethodGet, "/v1", "")
	assert.Equal(t, "loop", decodeBody[api.Info](t, rec).QuotaMode, "GET /v1 says how disk limits are enforced")
}
