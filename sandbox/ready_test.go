package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// awaitReady waits until the manager has a ready sandbox and returns its
// id and PID 1 (a host pid).
func (e *testEnv) awaitReady(t *testing.T) (string, int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e.m.ready.mu.Lock()
		var b *readyBox
		if len(e.m.ready.boxes) > 0 {
			b = e.m.ready.boxes[0]
		}
		e.m.ready.mu.Unlock()
		if b != nil {
			st, err := b.c.State()
			require.NoError(t, err, "state of ready sandbox %s", b.id)
			return b.id, st.InitProcessPid
		}
		require.True(t, time.Now().Before(deadline), "a sandbox gets ready")
		time.Sleep(5 * time.Millisecond)
	}
}

// sandboxView is what a command sees of its sandbox, and the limits of its
// session's cgroup: all that must not tell a bound ready sandbox from one
// the session started itself.
func (e *testEnv) sandboxView(t *testing.T, s Session) map[string]string {
	t.Helper()
	view := map[string]string{}
	for name, cmd := range map[string]string{
		"hostname": "hostname",
		"nice":     "nice; cut -d' ' -f19 /proc/1/stat",
		"ids":      "id",
		"status":   "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/1/status",
		"writable": "for d in / /usr /etc /tmp /workspace /workspace/shared /opt/venv /dev/shm; do touch $d/.w 2>/dev/null && echo $d && rm $d/.w; done",
		"tmp":      "df -k /tmp | tail -1 | awk '{print $2}'",
		"net":      "ls /sys/class/net",
		"masked":   "cat /proc/kcore /proc/keys 2>&1 | wc -c; ls /sys/firmware | wc -l",
		"passwd":   "grep sandbox /etc/passwd; grep sandbox /etc/group",
		// Mount points, file system types and options; not the IDs, the
		// sources or, for an overlay, its directories, which are the
		// session's own.
		"mounts": `awk '{for (i = 7; $i != "-"; i++); split($(i+3), o, ","); s = ""; ` +
			`for (k in o) if (o[k] !~ /dir=|^index|^xino|^uuid/) s = s "," o[k]; print $5, $6, $(i+1), s}' /proc/self/mountinfo | sort`,
	} {
		res := e.run(t, s.ID, cmd, 10)
		require.Equal(t, 0, res.ExitCode, "%s: %s", cmd, res.Stderr)
		view[name] = strings.ReplaceAll(res.Stdout, s.ID, "<id>")
	}
	cgPath := e.m.cg.SessionPath(s.UserID, s.ID)
	for _, dir := range e.m.cg.Dirs(cgPath) {
		for _, f := range []string{"cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max", "memory.limit_in_bytes",
			"memory.memsw.limit_in_bytes", "memory.max", "memory.swap.max", "pids.max", "devices.list"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				view[f] = string(b)
			}
		}
	}
	// The last command's supervisor leaves its cgroup just after the
	// command's result: count once it has.
	e.live(t, s.ID).tails.Wait()
	pids, err := e.m.cg.Pids(cgPath)
	require.NoError(t, err, "processes of %s", s.ID)
	view["processes in the session's cgroup"] = strings.Repeat("p", len(pids))
	return view
}

// TestBoundReadySandboxIsLikeAnOwnOne: a session given a ready sandbox
// sees and is limited by exactly what a session that started its own
// does.
func TestBoundReadySandboxIsLikeAnOwnOne(t *testing.T) {
	limits := &Limits{CPUs: 1.5, MemoryMB: 300, Pids: 40, TmpMB: 50}
	pooled := isolated(t, nil)
	readyID, readyPID := pooled.awaitReady(t)
	bound := pooled.session(t, "bound", limits)
	assert.Equal(t, readyPID, pooled.initPID(t, bound.ID), "the session got the ready sandbox")

	own := isolated(t, func(c *Config) { c.ReadySandboxes = 0 })
	started := own.session(t, "bound", limits)

	want, got := own.sandboxView(t, started), pooled.sandboxView(t, bound)
	for k := range want {
		assert.Equal(t, want[k], got[k], "%s of a bound sandbox and of an own one", k)
	}
	assert.Equal(t, len(want), len(got), "the same things were looked at")
	assert.Equal(t, "<id>\n", got["hostname"], "its hostname is the session's id")

	// The ready sandbox's cgroup goes once it is empty; its state and
	// socket took the session's name.
	pooled.m.cleanup.Wait()
	leftovers, err := pooled.m.cg.Leftovers()
	require.NoError(t, err, "list cgroups")
	assert.NotContains(t, leftovers, pooled.m.cg.SessionPath(readyUser, readyID), "the ready sandbox's cgroup is gone")
	assert.NoDirExists(t, filepath.Join(pooled.m.layout.Containers(), readyID), "its container state has the session's name")
	assert.NoFileExists(t, filepath.Join(pooled.m.layout.Agents(), readyID+".sock"), "its socket too")

	// It is a session like any other: adopted after a restart, deleted.
	require.NoError(t, os.WriteFile(filepath.Join(pooled.filesOf(t, bound), "f"), []byte("x"), 0o644))
	pooled.restart(t)
	assert.Equal(t, readyPID, pooled.initPID(t, bound.ID), "adopted, not restarted")
	assert.Equal(t, "x", pooled.run(t, bound.ID, "cat /workspace/f", 10).Stdout, "with its files")
	_, err = pooled.m.DeleteSession(context.Background(), bound.ID, false)
	require.NoError(t, err, "delete")
	pooled.assertGone(t, bound)
}

// initPID is the host pid of a session's PID 1.
func (e *testEnv) initPID(t *testing.T, id string) int {
	t.Helper()
	e.m.mu.Lock()
	s := e.m.sessions[id]
	e.m.mu.Unlock()
	require.NotNil(t, s, "session %s", id)
	st, err := s.box.State()
	require.NoError(t, err, "state of %s", id)
	return st.InitProcessPid
}

// TestDeadReadySandboxIsNotBound: a ready sandbox that died meanwhile is
// cleaned up, and the session starts its own.
func TestDeadReadySandboxIsNotBound(t *testing.T) {
	e := isolated(t, nil)
	_, pid := e.awaitReady(t)
	require.NoError(t, unix.Kill(pid, unix.SIGKILL), "kill the ready sandbox")
	s := e.session(t, "deadready", nil)
	assert.NotEqual(t, pid, e.initPID(t, s.ID), "the session started its own sandbox")
	assert.Equal(t, "ok\n", e.run(t, s.ID, "echo ok", 10).Stdout, "and works")
	e.m.cleanup.Wait()
	entries, err := os.ReadDir(e.m.layout.Containers())
	require.NoError(t, err, "list container state")
	var ready []string
	for _, c := range entries {
		if strings.HasPrefix(c.Name(), readyPrefix) {
			ready = append(ready, c.Name())
		}
	}
	assert.LessOrEqual(t, len(ready), 1, "the dead one is gone; a new one may be there: %v", ready)
	for _, id := range ready {
		c, err := os.ReadFile(filepath.Join(e.m.layout.Containers(), id, "state.json"))
		if err == nil {
			assert.NotContains(t, string(c), `"init_process_pid":`+strconv.Itoa(pid)+",", "not the dead one")
		}
	}
}

// TestFailedBindLeavesNothing: a create that fails as it binds a ready
// sandbox leaves neither the session nor the sandbox, and the same id is
// created at once.
func TestFailedBindLeavesNothing(t *testing.T) {
	faults := failing(false, "create:bind")
	e := isolated(t, func(c *Config) { c.Faults = faults })
	_, pid := e.awaitReady(t)
	_, err := e.m.CreateSession(context.Background(), CreateRequest{UserID: "bindfail", SessionID: "again"})
	require.ErrorIs(t, err, errInjected, "the create fails at create:bind")
	e.assertGone(t, Session{ID: "again", UserID: "bindfail"})
	e.m.cleanup.Wait()
	assert.NoDirExists(t, filepath.Join("/proc", strconv.Itoa(pid), "ns"), "the ready sandbox was destroyed")
	s, err := e.m.CreateSession(context.Background(), CreateRequest{UserID: "bindfail", SessionID: "again"})
	require.NoError(t, err, "the same id is created at once")
	assert.Equal(t, "ok\n", e.run(t, s.ID, "echo ok", 10).Stdout, "and works")
}
