package cgroup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newUnifiedSession makes a session-like cgroup on the v2 hierarchy of m
// with an idle worker in it. On a hybrid host that hierarchy has no
// controller, so there is neither a limit to set nor "no internal
// processes" to prepare for.
func newUnifiedSession(t testing.TB, m *Manager, user, id string) *testSession {
	t.Helper()
	p := m.SessionPath(user, id)
	require.NoError(t, os.MkdirAll(filepath.Join(m.unified, p), 0o755), "create session %s", p)
	cg, err := cgroup2.Load(p, cgroup2.WithMountpoint(m.unified))
	require.NoError(t, err, "load session %s", p)
	init := startWorker(t, "idle", 0, nil)
	require.NoError(t, cg.AddProc(uint64(init.pid())), "put init in %s", p)
	init.release(t)
	require.True(t, init.ready(), "session init runs")
	return &testSession{path: p, init: init}
}

// A hybrid host's unified hierarchy has the core of v2 (cgroup.kill,
// cgroup.freeze, cpu.stat, clone3 into a cgroup) without its controllers:
// enough to run the v2 code here, but memory figures and PrepareSession,
// which need controllers, are left to a v2 host.
func TestV2OnTheUnifiedHierarchyOfAHybridHost(t *testing.T) {
	requireRoot(t)
	if cgroups.Mode() != cgroups.Hybrid {
		t.Skip("needs a hybrid host; a v2 host runs the v2 code in the other tests")
	}
	m, err := newManager(testParent(t), ModeV2, hybridMountpoint)
	require.NoError(t, err, "a v2 manager on the unified hierarchy")
	cleanupParent(t, m)
	s := newUnifiedSession(t, m, "u1", "s1")
	clock := newUnifiedSession(t, m, "u1", "clock")

	e, err := m.NewExec(s.path, "spin")
	require.NoError(t, err, "create exec")
	require.NotNil(t, e.Dir(), "a v2 exec is open for CLONE_INTO_CGROUP")
	spinner := startWorker(t, "spin", 0, cloneInto(e))
	pids, err := m.Pids(e.Path())
	require.NoError(t, err, "list the exec")
	require.Equal(t, []int{spinner.pid()}, pids, "clone3 started the worker in the exec's cgroup")
	spinner.release(t)
	require.True(t, spinner.ready(), "the spinner runs")

	ce, err := m.NewExec(clock.path, "spin")
	require.NoError(t, err, "create clock exec")
	ticker := startWorker(t, "spin", 0, cloneInto(ce))
	ticker.release(t)
	require.True(t, ticker.ready(), "the clock runs")

	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := e.Stats()
		return st.CPU >= 50*time.Millisecond && st.CPUUser > 0, err
	}, "the spinner's CPU time is its exec's")

	require.NoError(t, m.Freeze(s.path), "freeze")
	t.Cleanup(func() { _ = m.Thaw(s.path) })
	frozen, err := m.Frozen(s.path)
	require.NoError(t, err, "freezer state")
	require.True(t, frozen, "frozen")
	stopped := execStats(t, e).CPU
	start := execStats(t, ce).CPU
	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := ce.Stats()
		return st.CPU >= start+200*time.Millisecond, err
	}, "the clock spins on")
	// A task may be reported frozen a few µs before it is off the CPU.
	assert.Less(t, execStats(t, e).CPU-stopped, time.Millisecond, "the frozen session used no CPU meanwhile")

	// cgroup.kill ends a frozen cgroup's processes too.
	require.NoError(t, e.Kill(), "kill the exec")
	eventually(t, 10*time.Second, func() (bool, error) {
		left, err := m.Pids(e.Path())
		return len(left) == 0, err
	}, "the killed spinner leaves its cgroup")
	assert.False(t, alive(spinner.pid()), "the spinner is dead")
	require.NoError(t, e.Remove(), "remove the exec")
	assert.Empty(t, existingDirs(m, e.Path()), "exec removed")

	require.NoError(t, m.Thaw(s.path), "thaw")
	frozen, err = m.Frozen(s.path)
	require.NoError(t, err, "freezer state")
	require.False(t, frozen, "thawed")
	require.NoError(t, m.Remove(clock.path), "remove a session with a busy exec")
	assert.False(t, alive(ticker.pid()), "its processes are gone")
	_, err = m.SessionStats(clock.path)
	assert.ErrorIs(t, err, os.ErrNotExist, "a removed session has no stats")
	require.NoError(t, ce.Remove(), "removing an exec whose session is gone is not an error")
}
