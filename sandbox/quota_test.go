package sandbox

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var defaultLimits = UserLimits{
	MaxSessions: 10, MaxWorkspaceMB: 1024, MaxFilesPerSession: 10000,
	MaxSessionDuration: 24 * time.Hour, IdleFreezeAfter: 10 * time.Minute, IdleDeleteAfter: 24 * time.Hour,
}

func TestParseUserLimits(t *testing.T) {
	def := defaultLimits
	withS := func(l UserLimits, s int64) UserLimits { l.SessionDiskMB = s; return l }
	for _, tc := range []struct {
		name, json string
		want       UserLimits
		err        string
	}{
		{"empty object", `{}`, withS(def, 102), ""},
		{"the design's, with its user_id", `{"user_id":"alice","limits":{"max_sessions":2}}`,
			func() UserLimits { l := withS(def, 512); l.MaxSessions = 2; return l }(), ""},
		{"every limit", `{"limits":{"max_sessions":4,"max_workspace_size_mb":100,"session_disk_mb":20,"max_files_per_session":50,
			"max_session_duration_hours":1.5,"idle_freeze_after":"30s","idle_delete_after":7200}}`,
			UserLimits{MaxSessions: 4, MaxWorkspaceMB: 100, SessionDiskMB: 20, MaxFilesPerSession: 50,
				MaxSessionDuration: 90 * time.Minute, IdleFreezeAfter: 30 * time.Second, IdleDeleteAfter: 2 * time.Hour}, ""},
		{"timers off", `{"limits":{"max_session_duration_hours":0,"idle_freeze_after":0,"idle_delete_after":"0s"}}`,
			func() UserLimits {
				l := withS(def, 102)
				l.MaxSessionDuration, l.IdleFreezeAfter, l.IdleDeleteAfter = 0, 0, 0
				return l
			}(), ""},
		{"unlimited sessions share the budget by ten", `{"limits":{"max_sessions":0}}`,
			func() UserLimits { l := withS(def, 102); l.MaxSessions = 0; return l }(), ""},
		{"a tiny budget still gives a session 1 MiB", `{"limits":{"max_workspace_size_mb":5}}`,
			func() UserLimits { l := withS(def, 1); l.MaxWorkspaceMB = 5; return l }(), ""},
		{"null limits", `{"limits":null}`, withS(def, 102), ""},
		{"not JSON", `{"limits":`, UserLimits{}, "unexpected end of JSON input"},
		{"not an object", `[1]`, UserLimits{}, "cannot unmarshal array"},
		{"JSON null", `null`, UserLimits{}, "not a JSON object"},
		{"a misspelt limit", `{"limits":{"max_session":2}}`, UserLimits{}, `unknown field "max_session"`},
		{"a wrong type", `{"limits":{"max_sessions":"two"}}`, UserLimits{}, "cannot unmarshal string"},
		{"a bad duration", `{"limits":{"idle_freeze_after":"ten minutes"}}`, UserLimits{}, "invalid duration"},
		{"a negative session count", `{"limits":{"max_sessions":-1}}`, UserLimits{}, "max_sessions -1 is negative"},
		{"no budget", `{"limits":{"max_workspace_size_mb":0}}`, UserLimits{}, "max_workspace_size_mb 0 must be at least 1"},
		{"a session larger than the budget", `{"limits":{"max_workspace_size_mb":10,"session_disk_mb":11}}`, UserLimits{}, "session_disk_mb 11 must lie between"},
		{"no files", `{"limits":{"max_files_per_session":0}}`, UserLimits{}, "max_files_per_session 0 must be at least 1"},
		{"a negative duration", `{"limits":{"max_session_duration_hours":-1}}`, UserLimits{}, "out of range"},
		{"a negative idle time", `{"limits":{"idle_delete_after":"-1h"}}`, UserLimits{}, "must not be negative"},
		{"two errors at once", `{"limits":{"max_sessions":-1,"max_files_per_session":0}}`, UserLimits{}, "negative; max_files_per_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUserLimits([]byte(tc.json), def)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err, "refused, saying why")
				return
			}
			require.NoError(t, err, "parse")
			assert.Equal(t, tc.want, got, "limits")
		})
	}
}

func TestReadUserLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "quota.json")
	got, err := readUserLimits(path, defaultLimits)
	require.NoError(t, err, "a missing file is the defaults")
	assert.Equal(t, int64(102), got.SessionDiskMB, "resolved")

	require.NoError(t, os.WriteFile(path, []byte(`{"limits":{"max_sessions":"x"}}`), 0o600))
	_, err = readUserLimits(path, defaultLimits)
	assert.ErrorIs(t, err, ErrInvalidQuota, "a malformed file is invalid_quota")
	assert.ErrorContains(t, err, path, "naming the file")
	assert.ErrorContains(t, err, "cannot unmarshal", "and its error")

	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o700))
	_, err = readUserLimits(path, defaultLimits)
	assert.ErrorIs(t, err, ErrInvalidQuota, "an unreadable file too")
}

func TestWithCurrentKeepsTheRest(t *testing.T) {
	cur := quotaCurrent{WorkspaceSizeMB: 3, ReservedMB: 200, ActiveSessions: 2, Files: 42, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	in := `{"user_id": "alice", "limits": {"max_sessions": 2, "idle_freeze_after": "1m"}, "current": {"workspace_size_mb": 999}, "note": [1, 2]}`
	out, err := withCurrent([]byte(in), cur)
	require.NoError(t, err, "rewrite")
	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(out, &got), "still JSON")
	assert.JSONEq(t, `"alice"`, string(got["user_id"]), "user_id kept")
	assert.JSONEq(t, `{"max_sessions": 2, "idle_freeze_after": "1m"}`, string(got["limits"]), "limits kept as written")
	assert.JSONEq(t, `[1, 2]`, string(got["note"]), "unknown keys kept")
	assert.JSONEq(t, `{"workspace_size_mb":3,"reserved_mb":200,"active_sessions":2,"files":42,"updated_at":"2026-01-02T03:04:05Z"}`,
		string(got["current"]), "current replaced")
	l, err := parseUserLimits(out, defaultLimits)
	require.NoError(t, err, "the limits still parse")
	assert.Equal(t, 2, l.MaxSessions, "and are the same")

	out, err = withCurrent(nil, cur)
	require.NoError(t, err, "a missing file")
	assert.JSONEq(t, `{"current":{"workspace_size_mb":3,"reserved_mb":200,"active_sessions":2,"files":42,"updated_at":"2026-01-02T03:04:05Z"}}`, string(out), "gets current only")

	for _, bad := range []string{`{"limits":`, `null`, `"x"`} {
		_, err := withCurrent([]byte(bad), cur)
		assert.Error(t, err, "%s is left for the operator to fix", bad)
	}
}

func TestCurrentOfRoundsUp(t *testing.T) {
	u := UserUsage{UsedBytes: mib + 1, ReservedBytes: 2 * mib, Files: 7}
	c := currentOf(u, 3, time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC))
	assert.Equal(t, quotaCurrent{WorkspaceSizeMB: 2, ReservedMB: 2, ActiveSessions: 3, Files: 7, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, c)
}

func TestQuotaSecondsAcceptsDurationsAndNumbers(t *testing.T) {
	for in, want := range map[string]time.Duration{`"90s"`: 90 * time.Second, `"1h30m"`: 90 * time.Minute, `600`: 10 * time.Minute, `0.5`: 500 * time.Millisecond} {
		var d quotaSeconds
		require.NoError(t, json.Unmarshal([]byte(in), &d), "%s", in)
		assert.Equal(t, want, time.Duration(d), "%s", in)
	}
	var d quotaSeconds
	err := json.Unmarshal([]byte(`1e300`), &d)
	assert.ErrorContains(t, err, "out of range", "a number no duration holds")
	err = json.Unmarshal([]byte(`true`), &d)
	assert.True(t, err != nil && !errors.Is(err, ErrInvalidQuota), "a boolean is no duration")
}
