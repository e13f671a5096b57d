package cgroup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sessionStats(t *testing.T, m *Manager, session string) SessionStats {
	t.Helper()
	st, err := m.SessionStats(session)
	require.NoError(t, err, "stats of %s", session)
	return st
}

func TestSessionStatsReactToWork(t *testing.T) {
	m := newTestManager(t)
	const pidsLimit, hogMiB = 64, 32
	// A fifth of a CPU, so that the quota throttles the spinner.
	s := newSession(t, m, "u1", "s1", sessionLimits{cpuQuota: 20_000, pids: pidsLimit, memoryBytes: 256 * mib})
	session := s.path
	before := sessionStats(t, m, session)
	assert.Equal(t, uint64(pidsLimit), before.PidsLimit, "the pids limit libcontainer set")
	assert.GreaterOrEqual(t, before.Pids, uint64(1), "the sandbox's PID 1 counts")

	hog := runIn(t, s, newExec(t, m, s, "hog"), "hog", hogMiB)
	require.True(t, hog.ready(), "the hog holds its memory")
	st := sessionStats(t, m, session)
	assert.GreaterOrEqual(t, st.MemoryBytes, uint64(hogMiB*mib), "the hog's memory is the session's")
	assert.GreaterOrEqual(t, st.MemoryPeakBytes, st.MemoryBytes, "the peak is at least what is used")
	assert.Greater(t, st.Pids, before.Pids, "the hog's tasks count")
	hog.finish(t)

	spinner := runIn(t, s, newExec(t, m, s, "spin"), "spin", 0)
	require.True(t, spinner.ready(), "the spinner runs")
	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := m.SessionStats(session)
		return st.CPU >= before.CPU+100*time.Millisecond && st.CPUThrottled > 0, err
	}, "the spinner's CPU time counts, and the quota throttles it")
	assert.GreaterOrEqual(t, sessionStats(t, m, session).MemoryPeakBytes, uint64(hogMiB*mib), "the peak outlives the hog")
}

func TestFreezeStopsASessionAndThawResumesIt(t *testing.T) {
	m := newTestManager(t)
	fs := newSession(t, m, "u1", "frozen", sessionLimits{})
	// A second session keeps spinning: its CPU time shows that the frozen
	// one had the time to run and did not.
	cs := newSession(t, m, "u1", "clock", sessionLimits{})
	for _, s := range []*testSession{fs, cs} {
		require.True(t, runIn(t, s, newExec(t, m, s, "spin"), "spin", 0).ready(), "spinner in %s", s.path)
	}
	frozen, clock := fs.path, cs.path
	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := m.SessionStats(frozen)
		return st.CPU > 20*time.Millisecond, err
	}, "the session runs before the freeze")

	// A failed test must not leave frozen workers for its cleanup to wait on.
	t.Cleanup(func() { _ = m.Thaw(frozen) })
	for range 2 {
		require.NoError(t, m.Freeze(frozen), "freeze (twice: it is idempotent)")
	}
	isFrozen, err := m.Frozen(frozen)
	require.NoError(t, err, "freezer state")
	require.True(t, isFrozen, "frozen")
	still, err := m.Frozen(clock)
	require.NoError(t, err, "freezer state")
	require.False(t, still, "the other session is not")

	stopped := sessionStats(t, m, frozen).CPU
	start := sessionStats(t, m, clock).CPU
	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := m.SessionStats(clock)
		return st.CPU >= start+200*time.Millisecond, err
	}, "the other session spins on")
	// A task may be reported frozen a few µs before it is off the CPU.
	assert.Less(t, sessionStats(t, m, frozen).CPU-stopped, time.Millisecond, "the frozen session used no CPU meanwhile")
	assert.True(t, alive(fs.init.pid()), "a frozen process is not dead")
	require.Error(t, m.RemoveExecs(frozen), "a frozen session's execs cannot be removed")

	for range 2 {
		require.NoError(t, m.Thaw(frozen), "thaw (twice: it is idempotent)")
	}
	isFrozen, err = m.Frozen(frozen)
	require.NoError(t, err, "freezer state")
	require.False(t, isFrozen, "thawed")
	eventually(t, 30*time.Second, func() (bool, error) {
		st, err := m.SessionStats(frozen)
		return st.CPU >= stopped+50*time.Millisecond, err
	}, "the thawed session runs again")
}

func TestAnExecInAFrozenSessionIsRemovedOnceThawed(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	e, err := m.NewExec(s.path, "spin")
	require.NoError(t, err, "create exec")
	spinner := runIn(t, s, e, "spin", 0)
	require.True(t, spinner.ready(), "the spinner runs")
	t.Cleanup(func() { _ = m.Thaw(s.path) })
	require.NoError(t, m.Freeze(s.path), "freeze")

	start := time.Now()
	err = e.Remove()
	if m.Mode() == ModeV2 {
		require.NoError(t, err, "cgroup.kill ends frozen processes")
	} else {
		require.Error(t, err, "a v1-frozen process cannot die")
		assert.Less(t, time.Since(start), emptyWait, "and Remove says so without waiting for it")
		require.NoError(t, m.Thaw(s.path), "thaw")
		require.NoError(t, e.Remove(), "the killed spinner dies once thawed")
	}
	assert.Empty(t, existingDirs(m, e.Path()), "exec removed")
	assert.False(t, alive(spinner.pid()), "the spinner is gone")
	assert.True(t, alive(s.init.pid()), "the sandbox's PID 1 lives")
}

// TestFreezeV1GivesUpAndThaws: a freezer that never reports FROZEN (here
// a freezer.state that discards what is written, as a cgroup with a task
// that cannot be frozen keeps reading FREEZING) is given up on at the
// timeout, not waited for.
func TestFreezeV1GivesUpAndThaws(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, "freezer.state")), "a state that never changes")
	start := time.Now()
	err := freezeV1(dir, 50*time.Millisecond)
	assert.ErrorContains(t, err, "not frozen after 50ms", "given up on")
	assert.Less(t, time.Since(start), 5*time.Second, "at the timeout, not for ever")
}
