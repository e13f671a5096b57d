package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// hostBytes is what a user's disk takes of the host's: in loop mode the
// blocks of their image, which holds their sessions' images too (the
// host's free space moves with every other job on the machine). 0 in the
// other modes.
func hostBytes(t *testing.T, e *testEnv, userID string) int64 {
	t.Helper()
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(e.m.layout.User(userID).Dir, "disk.img"), &st)
	if errors.Is(err, unix.ENOENT) {
		return 0
	}
	require.NoError(t, err, "stat the user's image")
	return st.Blocks * 512
}

// diskOf is a session's disk as the mechanism counts it.
func diskOf(t *testing.T, e *testEnv, s Session) DiskUsage {
	t.Helper()
	u, err := e.m.userUsage(s.UserID)
	require.NoError(t, err, "usage of %s", s.UserID)
	d, ok := u.Sessions[s.ID]
	require.True(t, ok, "session %s has a disk", s.ID)
	return d
}

// noTemporaries checks that no upload left a temporary file in dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err, "list %s", dir)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), ".sandboxd-tmp"), "%s: no temporary file left: %s", dir, e.Name())
	}
}

// TestDiskLimitsHoldAtWriteTime exceeds each disk limit from inside a
// sandbox and through the files API: the write fails there and then
// (ENOSPC, or ErrQuota naming the limit), nothing is written past the
// limit, the host's disk does not notice, and another user writes on.
func TestDiskLimitsHoldAtWriteTime(t *testing.T) {
	requireRoot(t)
	e := env
	ctx := context.Background()
	// U = 64 MiB, S = 16 MiB, F = 300.
	e.writeQuota(t, "disk-a", `{"limits":{"max_workspace_size_mb":64,"max_sessions":4,"max_files_per_session":300}}`)
	a := e.session(t, "disk-a", nil)
	b := e.session(t, "disk-b", nil)
	host := hostBytes(t, e, a.UserID)
	d := diskOf(t, e, a)
	assert.LessOrEqual(t, d.LimitBytes, int64(16*mib), "the session's disk is its reservation")
	assert.Greater(t, d.LimitBytes, int64(14*mib), "most of which its files may take")
	assert.GreaterOrEqual(t, d.LimitFiles, int64(300), "F files")

	// Files: a command writing past S.
	res := e.run(t, a.ID, "head -c 40M /dev/zero > /workspace/big", 60)
	assert.NotEqual(t, 0, res.ExitCode, "the write fails")
	assert.Contains(t, res.Stderr, "No space left on device", "with ENOSPC, inside the sandbox")
	size, err := strconv.ParseInt(strings.TrimSpace(e.run(t, a.ID, "stat -c %s /workspace/big", 10).Stdout), 10, 64)
	require.NoError(t, err, "size of the file")
	assert.LessOrEqual(t, size, d.LimitBytes, "nothing was written past the limit")
	assert.LessOrEqual(t, diskOf(t, e, a).Bytes, d.LimitBytes, "the mechanism agrees")

	// The venv layer shares the session's disk.
	res = e.run(t, a.ID, "head -c 40M /dev/zero > /opt/venv/big", 60)
	assert.Contains(t, res.Stderr, "No space left on device", "the venv layer is limited too")
	require.Equal(t, 0, e.run(t, a.ID, "rm -f /workspace/big /opt/venv/big", 10).ExitCode, "free the session's disk")

	// Logs: a background process's log is written by the daemon into the
	// session's disk, and stops there when it is full.
	res = e.run(t, a.ID, "head -c 40M /dev/zero > /workspace/big", 60)
	require.Contains(t, res.Stderr, "No space left on device", "the session's disk is full again")
	p, err := e.m.StartProcess(ctx, a.ID, Command{Shell: "head -c 3000000 /dev/zero | tr '\\0' x | fold -w 100"})
	require.NoError(t, err, "a background process")
	require.Eventually(t, func() bool {
		out, err := e.m.ProcessOutput(ctx, a.ID, p.ID, "")
		return err == nil && out.State != ProcessRunning
	}, 30*time.Second, 20*time.Millisecond, "it ends")
	logSize := int64(0)
	if st, err := os.Stat(filepath.Join(e.treesOf(t, a).Logs, "process-"+p.ID+".log")); err == nil {
		logSize = st.Size()
	}
	assert.Less(t, logSize, int64(3000000), "its log stopped at the full disk")
	assert.LessOrEqual(t, diskOf(t, e, a).Bytes, d.LimitBytes, "nothing past the limit")
	require.Equal(t, 0, e.run(t, a.ID, "rm -f /workspace/big", 10).ExitCode, "free the session's disk")

	// Files, counted: every file a command makes.
	res = e.run(t, a.ID, `mkdir /workspace/many && python3 -c '
import os
n = 0
try:
    while n < 100000:
        os.close(os.open("/workspace/many/f%d" % n, os.O_CREAT | os.O_WRONLY)); n += 1
except OSError as e:
    print(n, e.errno)'`, 60)
	var made, errno int64
	_, err = fmt.Sscan(res.Stdout, &made, &errno)
	require.NoError(t, err, "the count: %q %s", res.Stdout, res.Stderr)
	assert.Equal(t, int64(unix.ENOSPC), errno, "the file limit is ENOSPC")
	assert.GreaterOrEqual(t, made, int64(290), "about F files could be made")
	assert.LessOrEqual(t, made, d.LimitFiles, "and no more than the limit")
	_, err = e.m.WriteFile(ctx, a.ID, RootWorkspace, "one-more.txt", strings.NewReader("x"), false)
	assert.ErrorIs(t, err, ErrQuota, "the files API meets the same limit")
	assert.ErrorContains(t, err, "max_files_per_session 300", "and says which")
	require.Equal(t, 0, e.run(t, a.ID, "rm -rf /workspace/many", 30).ExitCode, "remove them")

	// Through the files API: an upload past S.
	_, err = e.m.WriteFile(ctx, a.ID, RootWorkspace, "upload.bin", io.LimitReader(zeroReader{}, 20*mib), false)
	assert.ErrorIs(t, err, ErrQuota, "an upload past the session's disk")
	assert.ErrorContains(t, err, "session_disk_mb 16 MiB", "names the limit")
	_, err = e.m.StatFile(ctx, a.ID, RootWorkspace, "upload.bin")
	assert.ErrorIs(t, err, ErrNotFound, "nothing of it is left")
	noTemporaries(t, e.treesOf(t, a).Files)

	// shared_files holds U less the reservations.
	shared := e.sharedOf(t, a.UserID)
	res = e.run(t, a.ID, "head -c 100M /dev/zero > /workspace/shared/big", 60)
	assert.Contains(t, res.Stderr, "No space left on device", "shared_files is limited inside")
	u, err := e.m.userUsage(a.UserID)
	require.NoError(t, err)
	// The limit is U less the reservations, and the 1 MiB allowance for
	// the disk's own directories.
	assert.LessOrEqual(t, u.Shared.Bytes, u.Shared.LimitBytes+mib, "nothing past shared_files' limit")
	assert.LessOrEqual(t, u.Shared.LimitBytes, int64(64*mib)+mib-u.ReservedBytes, "which is the budget less the reservations")
	_, err = e.m.CreateSession(ctx, CreateRequest{UserID: a.UserID})
	assert.ErrorIs(t, err, ErrQuota, "a full shared_files leaves no room for another session")
	require.NoError(t, os.Remove(filepath.Join(shared, "big")), "free shared_files")
	_, err = e.m.WriteFile(ctx, a.ID, RootShared, "upload.bin", io.LimitReader(zeroReader{}, 60*mib), false)
	assert.ErrorIs(t, err, ErrQuota, "an upload past shared_files' limit")
	assert.ErrorContains(t, err, "shared_files is full (max_workspace_size_mb 64 MiB", "names the limit")
	noTemporaries(t, shared)

	// The host's disk and the other user noticed nothing.
	assert.Equal(t, host, hostBytes(t, e, a.UserID), "the user's disk takes no more of the host's than before")
	res = e.run(t, b.ID, "head -c 30M /dev/zero > /workspace/big && head -c 30M /dev/zero > /workspace/shared/big && echo ok", 60)
	assert.Equal(t, "ok\n", res.Stdout, "another user writes on: %s", res.Stderr)
	assert.Equal(t, "ok\n", e.run(t, a.ID, "echo x > /workspace/small && echo ok", 10).Stdout, "and the full session again, once it has room")
}

func TestDiskUsageIsReportedAndWrittenToQuotaJSON(t *testing.T) {
	requireRoot(t)
	e := env
	ctx := context.Background()
	e.writeQuota(t, "usage", `{"user_id":"usage","limits":{"max_workspace_size_mb":100,"max_sessions":5,"max_files_per_session":50}}`)
	s := e.session(t, "usage", nil)
	require.Equal(t, 0, e.run(t, s.ID, "head -c 3M /dev/urandom > /workspace/a && mkdir /workspace/d && touch /workspace/d/1 /workspace/d/2 && head -c 1M /dev/urandom > /workspace/shared/b", 30).ExitCode)

	u, err := e.m.User(ctx, "usage")
	require.NoError(t, err, "describe the user")
	assert.Equal(t, UserLimits{MaxSessions: 5, MaxWorkspaceMB: 100, SessionDiskMB: 20, MaxFilesPerSession: 50}, u.Limits, "limits from quota.json over the defaults")
	assert.Equal(t, string(e.m.quota.Mode()), u.Usage.QuotaMode, "the mechanism")
	require.Len(t, u.Sessions, 1, "the session")
	assert.Equal(t, s.ID, u.Sessions[0].ID)
	if !u.Usage.Enforced {
		t.Skip("quota mode none: no figures")
	}
	sd := u.Usage.Sessions[s.ID]
	assert.InDelta(t, 3*mib, sd.Bytes, float64(mib), "the session's bytes")
	assert.Equal(t, int64(4), sd.Files, "its files and directories (a, d, d/1, d/2)")
	assert.Equal(t, int64(100*mib), u.Usage.LimitBytes, "the budget")
	assert.Equal(t, int64(20*mib), u.Usage.ReservedBytes, "one reservation")
	assert.InDelta(t, 4*mib, u.Usage.UsedBytes, float64(2*mib), "what is written, shared_files included")

	// quota.json's current: written by the janitor once the figures moved.
	var cur quotaCurrent
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(e.m.layout.User("usage").QuotaFile())
		if err != nil {
			return false
		}
		var f struct {
			UserID  string       `json:"user_id"`
			Current quotaCurrent `json:"current"`
		}
		if json.Unmarshal(data, &f) != nil || f.UserID != "usage" {
			return false
		}
		cur = f.Current
		// The janitor may write it while the command still runs:
		// wait for every file (the session's 4, and shared_files'
		// data, outputs and b).
		return cur.Files >= 7
	}, 10*time.Second, 20*time.Millisecond, "current is written, the rest of the file kept")
	assert.Equal(t, 1, cur.ActiveSessions, "one session")
	assert.Equal(t, int64(20), cur.ReservedMB, "its reservation")
	assert.InDelta(t, 5, cur.WorkspaceSizeMB, 1, "4 MiB written, and the directories, rounded up")
	l, err := e.m.userLimits("usage")
	require.NoError(t, err, "the limits still parse")
	assert.Equal(t, 5, l.MaxSessions, "and are the operator's")

	_, err = e.m.User(ctx, "nobody-ever")
	assert.ErrorIs(t, err, ErrNotFound, "an unknown user")
	_, err = e.m.User(ctx, "../x")
	assert.ErrorIs(t, err, ErrInvalid, "an invalid id")
}

func TestMalformedQuotaJSONRefusesCreate(t *testing.T) {
	requireRoot(t)
	e := env
	ctx := context.Background()
	for _, tc := range []struct {
		json, says string
		parses     bool
	}{
		{`{"limits": {"max_sessions": 2,}}`, "invalid character", false},
		{`{"limits": {"max_session": 2}}`, `unknown field "max_session"`, false},
		{`{"limits": {"max_workspace_size_mb": -5}}`, "max_workspace_size_mb -5 must be at least 1", false},
		// Limits the mechanism cannot hold: 100,000 inodes in 2 MiB.
		{`{"limits": {"max_files_per_session": 100000, "session_disk_mb": 2}}`, "inodes", true},
	} {
		e.writeQuota(t, "badquota", tc.json)
		_, err := e.m.CreateSession(ctx, CreateRequest{UserID: "badquota"})
		assert.ErrorIs(t, err, ErrInvalidQuota, "%s: refused as invalid_quota", tc.json)
		assert.ErrorContains(t, err, tc.says, "%s: saying why", tc.json)
		if !tc.parses {
			assert.ErrorContains(t, err, "quota.json", "%s: naming the file", tc.json)
			_, err = e.m.User(ctx, "badquota")
			assert.ErrorIs(t, err, ErrInvalidQuota, "%s: the user route says so too", tc.json)
		}
	}
	sessions, err := e.m.ListSessions(ctx, "badquota")
	require.NoError(t, err)
	assert.Empty(t, sessions, "nothing was created")
	e.writeQuota(t, "badquota", `{"limits": {"max_sessions": 2}}`)
	e.session(t, "badquota", nil)
}

// TestCreateTimeDoesNotGrowWithFiles: the create asks the mechanism, it
// does not walk the user's tree, so 20,000 files in shared_files cost it
// nothing.
func TestCreateTimeDoesNotGrowWithFiles(t *testing.T) {
	requireRoot(t)
	e := env
	ctx := context.Background()
	timeCreates := func(user string) time.Duration {
		var ds []time.Duration
		for range 3 {
			start := time.Now()
			s, err := e.m.CreateSession(ctx, CreateRequest{UserID: user})
			ds = append(ds, time.Since(start))
			require.NoError(t, err, "create for %s", user)
			_, err = e.m.DeleteSession(ctx, s.ID, false)
			require.NoError(t, err, "delete")
		}
		return slices.Min(ds)
	}
	s := e.session(t, "manyfiles", nil)
	shared := e.sharedOf(t, s.UserID)
	require.NoError(t, os.Mkdir(filepath.Join(shared, "many"), 0o755))
	for i := range 20000 {
		require.NoError(t, os.WriteFile(filepath.Join(shared, "many", fmt.Sprintf("f%05d", i)), []byte("x"), 0o644))
	}
	e.session(t, "fewfiles", nil)
	few := timeCreates("fewfiles")
	many := timeCreates("manyfiles")
	t.Logf("create: %v with no files, %v with 20,000 in shared_files", few, many)
	assert.Less(t, many, few*3/2+100*time.Millisecond, "create time does not grow with the user's files")
}
