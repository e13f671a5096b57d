package cgroup

import (
	"fmt"
	"os"
	"path"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newExec creates an exec cgroup that is removed (and checked gone) at the
// end of the test.
func newExec(t testing.TB, m *Manager, s *testSession, name string) *Exec {
	t.Helper()
	e, err := m.NewExec(s.path, name)
	require.NoError(t, err, "create exec %s in %s", name, s.path)
	t.Cleanup(func() {
		require.NoError(t, e.Remove(), "remove exec %s", e.Path())
		for _, dir := range m.Dirs(e.Path()) {
			require.NoDirExists(t, dir, "exec cgroup removed")
		}
	})
	return e
}

// cloneInto is the SysProcAttr that starts a process in e's cgroup where
// the kernel can (v2); nil elsewhere.
func cloneInto(e *Exec) *syscall.SysProcAttr {
	if e.Dir() == nil {
		return nil
	}
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(e.Dir().Fd())}
}

func execStats(t testing.TB, e *Exec) ExecStats {
	t.Helper()
	st, err := e.Stats()
	require.NoError(t, err, "stats of %s", e.Path())
	return st
}

// existingDirs lists the directories of cgPath that exist.
func existingDirs(m *Manager, cgPath string) []string {
	var out []string
	for _, dir := range m.Dirs(cgPath) {
		if _, err := os.Stat(dir); err == nil {
			out = append(out, dir)
		}
	}
	return out
}

func TestExecAccountsItsOwnCPUAndMemory(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	burnExec := newExec(t, m, s, "burn")
	hogExec := newExec(t, m, s, "hog")
	idleExec := newExec(t, m, s, "idle")

	const burnMS, hogMiB = 300, 64
	burner := runIn(t, s, burnExec, "burn", burnMS)
	hog := runIn(t, s, hogExec, "hog", hogMiB)
	idle := runIn(t, s, idleExec, "idle", 0)
	for _, w := range []*workerProc{burner, hog, idle} {
		require.True(t, w.ready(), "worker %d did its work", w.pid())
	}
	// Figures stay readable once the command has exited, which is when
	// the daemon reads them.
	burner.finish(t)
	hog.finish(t)

	burn := execStats(t, burnExec)
	if m.Mode() == ModeV2 {
		// The worker burnt burnMS in all, a few of them before it was placed.
		assert.GreaterOrEqual(t, burn.CPU, (burnMS-50)*time.Millisecond, "the burner's CPU time is its exec's")
		assert.Greater(t, burn.CPUUser, 100*time.Millisecond, "a busy loop is user time")
		assert.InDelta(t, float64(burn.CPU), float64(burn.CPUUser+burn.CPUSystem), float64(50*time.Millisecond), "user and system add up to the total")
	} else {
		assert.Zero(t, burn.CPU+burn.CPUUser+burn.CPUSystem, "a v1 exec does not account CPU (the supervisor reports it)")
	}

	mem := execStats(t, hogExec)
	assert.GreaterOrEqual(t, mem.MemoryPeakBytes, uint64(hogMiB*mib), "the hog's peak is its exec's")
	assert.Less(t, burn.MemoryPeakBytes, uint64(hogMiB*mib/2), "the burner's peak is its own")

	quiet := execStats(t, idleExec)
	assert.Less(t, quiet.CPU, 50*time.Millisecond, "the idle exec used next to no CPU")
	assert.Less(t, quiet.MemoryPeakBytes, uint64(16*mib), "nor memory")
	for _, st := range []ExecStats{burn, mem, quiet} {
		assert.Zero(t, st.OOMKills, "nothing was OOM-killed")
	}
	idle.finish(t)
}

func TestNewExecRefusesANameInUseOrAMissingSession(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	newExec(t, m, s, "e1")
	_, err := m.NewExec(s.path, "e1")
	require.ErrorIs(t, err, os.ErrExist, "a stale exec cgroup's counts are never reused")
	gone := m.SessionPath("u1", "gone")
	_, err = m.NewExec(gone, "e1")
	require.ErrorIs(t, err, os.ErrNotExist, "no exec in a session that does not exist")
	assert.Empty(t, existingDirs(m, gone), "a failed exec creates nothing")
}

// The kernel charges an OOM kill to the victim's memory cgroup, so the
// kill that the session's limit caused is on exactly the hog's exec.
func TestOOMKillIsCountedOnTheVictimsExecOnly(t *testing.T) {
	m := newTestManager(t)
	const limitMiB = 64
	s := newSession(t, m, "u1", "s1", sessionLimits{memoryBytes: limitMiB * mib})
	hogExec := newExec(t, m, s, "hog")
	idleExec := newExec(t, m, s, "idle")

	idle := runIn(t, s, idleExec, "hog", 8) // a bystander with some memory of its own
	require.True(t, idle.ready(), "the bystander is up")
	// The OOM killer picks the process with the most memory, counting what
	// the Go runtime had before the worker was placed: the hog is made its
	// pick, so that what is tested is only where the kill is counted.
	hog := startWorker(t, "hog", 4*limitMiB, cloneInto(hogExec))
	require.NoError(t, os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", hog.pid()), []byte("1000"), 0), "make the hog the OOM killer's pick")
	if hogExec.Dir() == nil {
		require.NoError(t, s.cg.Apply(hog.pid()), "hog joins the session")
		require.NoError(t, hogExec.AddProc(hog.pid()), "place the hog")
	}
	hog.release(t)
	require.False(t, hog.ready(), "the hog dies before it has its memory")
	err := hog.cmd.Wait()
	require.Error(t, err, "the hog was killed")
	status := hog.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.Equal(t, syscall.SIGKILL, status.Signal(), "by the OOM killer's SIGKILL")

	assert.Equal(t, uint64(1), execStats(t, hogExec).OOMKills, "the kill is counted on the hog's exec")
	assert.Zero(t, execStats(t, idleExec).OOMKills, "and not on the bystander's")
	assert.True(t, alive(idle.pid()), "the bystander lives")
	assert.True(t, alive(s.init.pid()), "so does the sandbox's PID 1")

	st, err := m.SessionStats(s.path)
	require.NoError(t, err, "session stats")
	if m.Mode() == ModeV2 {
		assert.Equal(t, uint64(1), st.OOMKills, "v2 counts a child's kill in its ancestors too")
	} else {
		assert.Zero(t, st.OOMKills, "v1 counts a kill only where the victim was")
	}
	idle.finish(t)
}

func TestKillEndsTheExecsWholeTreeAndNothingElse(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	treeExec, err := m.NewExec(s.path, "tree")
	require.NoError(t, err, "create exec")
	otherExec := newExec(t, m, s, "other")

	tree := runIn(t, s, treeExec, "tree", 3)
	require.True(t, tree.ready(), "the tree is up")
	other := runIn(t, s, otherExec, "idle", 0)
	require.True(t, other.ready(), "a sibling exec is up")
	pids, err := m.Pids(treeExec.Path())
	require.NoError(t, err, "list the tree")
	require.Len(t, pids, 4, "the worker and its three children")

	require.NoError(t, treeExec.Kill(), "kill the tree")
	eventually(t, 10*time.Second, func() (bool, error) {
		left, err := m.Pids(treeExec.Path())
		return len(left) == 0, err
	}, "the killed tree leaves its cgroup")
	for _, pid := range pids {
		assert.False(t, alive(pid), "process %d of the tree is gone", pid)
	}
	assert.True(t, alive(other.pid()), "the sibling exec lives")
	assert.True(t, alive(s.init.pid()), "so does the sandbox's PID 1")

	require.NoError(t, treeExec.Remove(), "remove the killed exec")
	assert.Empty(t, existingDirs(m, treeExec.Path()), "removed from every hierarchy")
	other.finish(t)
}

func TestRemoveKillsWhatIsLeftInAnExec(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	e, err := m.NewExec(s.path, "left")
	require.NoError(t, err, "create exec")
	w := runIn(t, s, e, "tree", 2)
	require.True(t, w.ready(), "the tree is up")
	pids, err := m.Pids(e.Path())
	require.NoError(t, err, "list the tree")
	require.Len(t, pids, 3, "the worker and its two children")

	require.NoError(t, e.Remove(), "remove an exec with processes in it")
	assert.Empty(t, existingDirs(m, e.Path()), "removed from every hierarchy")
	for _, pid := range pids {
		assert.False(t, alive(pid), "process %d is gone", pid)
	}
	assert.True(t, alive(s.init.pid()), "the sandbox's PID 1 lives")
}

func TestRemoveExecsKeepsTheSandbox(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	sessionDirs := existingDirs(m, s.path)
	var pids []int
	for _, name := range []string{"a", "b"} {
		e, err := m.NewExec(s.path, name)
		require.NoError(t, err, "create exec %s", name)
		w := runIn(t, s, e, "idle", 0)
		require.True(t, w.ready(), "worker in %s is up", name)
		pids = append(pids, w.pid())
	}
	require.NoError(t, m.RemoveExecs(s.path), "remove a previous daemon's execs")
	for _, name := range []string{"a", "b"} {
		assert.Empty(t, existingDirs(m, path.Join(s.path, name)), "exec %s removed", name)
	}
	for _, pid := range pids {
		assert.False(t, alive(pid), "exec process %d is gone", pid)
	}
	assert.True(t, alive(s.init.pid()), "the sandbox's PID 1 lives")
	assert.Equal(t, sessionDirs, existingDirs(m, s.path), "the session stays")
}
