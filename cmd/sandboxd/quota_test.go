package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

// writeQuotaFile replaces a user's quota.json, as an operator would.
func writeQuotaFile(t *testing.T, userID, content string) {
	t.Helper()
	dir := filepath.Join(suite.state, "workspaces", "user_"+userID)
	require.NoError(t, os.MkdirAll(dir, 0o700), "user directory")
	tmp := filepath.Join(dir, "quota.json.new")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600), "write quota.json")
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "quota.json")), "replace quota.json")
}

func sessionStatus(t *testing.T, id string) string {
	t.Helper()
	status, data := call(t, http.MethodGet, "/v1/sessions/"+id, "")
	require.Equal(t, http.StatusOK, status, "get %s: %s", id, data)
	var s api.Session
	require.NoError(t, json.Unmarshal(data, &s), "decode %s", data)
	return s.Status
}

// TestDiskQuotaThroughTheDaemon: a write past a session's disk fails
// inside, an upload past it answers 429 quota_exceeded naming the limit,
// the user route reports it, and a malformed quota.json is 400
// invalid_quota.
func TestDiskQuotaThroughTheDaemon(t *testing.T) {
	setup(t)
	// U = 32 MiB, S = 16 MiB.
	writeQuotaFile(t, "dq-u", `{"user_id":"dq-u","limits":{"max_workspace_size_mb":32,"max_sessions":2}}`)
	createSession(t, "dq-u", "dq-s")

	res := execIn(t, "dq-s", "head -c 40M /dev/zero > /workspace/big", 60)
	assert.NotEqual(t, 0, res.ExitCode, "a write past the session's disk fails")
	assert.Contains(t, res.Stderr, "No space left on device", "with ENOSPC inside the sandbox")
	require.Equal(t, 0, execIn(t, "dq-s", "rm /workspace/big", 10).ExitCode, "free it")

	// The daemon answers as soon as the disk is full, without reading the
	// rest of the upload: read the answer as curl does.
	resp, data, err := rawRoundTrip(http.MethodPut, "/v1/sessions/dq-s/files/content?path=upload.bin", strings.Repeat("x", 20<<20))
	require.NoError(t, err, "upload")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "an upload past the session's disk: %s", data)
	var e api.Error
	require.NoError(t, json.Unmarshal(data, &e), "decode %s", data)
	assert.Equal(t, api.CodeQuotaExceeded, e.Code, "quota_exceeded")
	assert.Contains(t, e.Message, "session_disk_mb 16 MiB", "naming the limit")
	status, _ := call(t, http.MethodGet, "/v1/sessions/dq-s/files/stat?path=upload.bin", "")
	assert.Equal(t, http.StatusNotFound, status, "nothing of it is left")

	status, data = call(t, http.MethodGet, "/v1/users/dq-u", "")
	require.Equal(t, http.StatusOK, status, "get the user: %s", data)
	var u api.User
	require.NoError(t, json.Unmarshal(data, &u), "decode %s", data)
	assert.Equal(t, int64(32), u.Limits.MaxWorkspaceSizeMB, "the user's limits")
	assert.Equal(t, int64(16), u.Limits.SessionDiskMB, "S = U/max_sessions")
	assert.Equal(t, 1, u.Usage.Sessions, "one session")
	require.Len(t, u.Sessions, 1, "listed")

	status, data = call(t, http.MethodGet, "/v1", "")
	require.Equal(t, http.StatusOK, status)
	var info api.Info
	require.NoError(t, json.Unmarshal(data, &info))
	assert.Contains(t, []string{"project", "loop", "none"}, info.QuotaMode, "GET /v1 says how disk limits are enforced")

	writeQuotaFile(t, "dq-u", `{"limits":{"max_workspace_size_mb":"lots"}}`)
	status, data = call(t, http.MethodPost, "/v1/sessions", `{"user_id":"dq-u"}`)
	assert.Equal(t, http.StatusBadRequest, status, "a malformed quota.json refuses the create: %s", data)
	require.NoError(t, json.Unmarshal(data, &e), "decode %s", data)
	assert.Equal(t, api.CodeInvalidQuota, e.Code, "invalid_quota")
	assert.Contains(t, e.Message, "quota.json", "naming the file")
}

// TestFrozenSessionSurvivesKill9: a session frozen when the daemon is
// killed is frozen again by the next one (its idle time counts from what
// session.json keeps), with its memory.
func TestFrozenSessionSurvivesKill9(t *testing.T) {
	d := setup(t)
	writeQuotaFile(t, "fz-u", `{"limits":{"idle_freeze_after":"1s"}}`)
	createSession(t, "fz-u", "fz-s")
	require.Equal(t, 0, execIn(t, "fz-s", "echo kept > /tmp/t", 10).ExitCode)
	// The janitor looks every 10 s.
	require.Eventually(t, func() bool { return sessionStatus(t, "fz-s") == "frozen" }, time.Minute, 100*time.Millisecond, "frozen when idle")

	d.kill()
	mustDaemon(t)
	require.Eventually(t, func() bool { return sessionStatus(t, "fz-s") == "frozen" }, time.Minute, 100*time.Millisecond,
		"frozen again by the next daemon")
	res := execIn(t, "fz-s", "cat /tmp/t", 10)
	assert.Equal(t, "kept\n", res.Stdout, "thawed by its next call, memory kept: %s", res.Stderr)
}
