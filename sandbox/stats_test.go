package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stats reads a session of the shared Manager's statistics.
func stats(t *testing.T, id string) SessionStats {
	t.Helper()
	st, err := env.m.SessionStats(context.Background(), id)
	require.NoError(t, err, "stats of %s", id)
	return st
}

// waitEnded waits until background process pid of session id ended and
// returns its state.
func waitEnded(t *testing.T, id, pid string) Process {
	t.Helper()
	_, out := waitOutput(t, id, pid, func(_ []string, out ProcessOutput) bool { return out.State != ProcessRunning })
	return out.Process
}

func TestSessionStatsReactToRealWork(t *testing.T) {
	// A fifth of a CPU: two busy loops run into it even while other jobs
	// keep the machine busy.
	s := startSession(t, "stats", &Limits{CPUs: 0.2, MemoryMB: 256, Pids: 50})
	ctx := context.Background()

	fresh := stats(t, s.ID)
	assert.Equal(t, StateRunning, fresh.State, "state")
	assert.Equal(t, s.UserID, fresh.UserID, "user")
	assert.Equal(t, uint64(50), fresh.PidsLimit, "the pids limit")
	assert.Equal(t, int64(256), fresh.Limits.MemoryMB, "the limits")
	assert.GreaterOrEqual(t, fresh.Pids, uint64(1), "the sandbox's PID 1 counts")
	assert.Zero(t, fresh.Execs, "no command yet")
	assert.Zero(t, fresh.OOMKills, "no OOM kill yet")
	if env.m.quota.Mode() != "none" {
		require.NotNil(t, fresh.Disk, "disk use is measured")
		assert.Positive(t, fresh.Disk.LimitBytes, "against the session's reservation")
		assert.Positive(t, fresh.Disk.LimitFiles, "and its file limit")
	}
	assert.Equal(t, fresh.LastActivity, stats(t, s.ID).LastActivity, "reading stats is not activity")

	// Two busy loops under the limit: time used and time held back.
	burn := run(t, s.ID, `while :; do :; done & while :; do :; done`, 2)
	require.True(t, burn.TimedOut, "the loops ran until the timeout")
	burnt := stats(t, s.ID)
	assert.Greater(t, burnt.CPU-fresh.CPU, 100*time.Millisecond, "a CPU burner raises the CPU time")
	assert.Greater(t, burnt.CPUThrottled, fresh.CPUThrottled, "and the throttled time, past the limit")
	assert.Equal(t, uint64(1), burnt.Execs, "one command")
	assert.True(t, burnt.LastActivity.After(fresh.LastActivity), "a command is activity")

	alloc := run(t, s.ID, `python3 -c 'b = bytearray(96 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096])'`, 60)
	require.Equal(t, 0, alloc.ExitCode, "alloc: %s", alloc.Stderr)
	assert.Greater(t, stats(t, s.ID).MemoryPeakBytes, uint64(96<<20), "an allocation raises the peak")

	// A background process holding memory: current memory, pids, the
	// count of processes.
	hold, err := env.m.StartProcess(ctx, s.ID, Command{Shell: `python3 -c '
b = bytearray(64 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096])
print("held", flush=True)
import time; time.sleep(1000)'`})
	require.NoError(t, err, "start the holder")
	waitOutput(t, s.ID, hold.ID, func(all []string, _ ProcessOutput) bool { return len(all) > 0 })
	holding := stats(t, s.ID)
	assert.GreaterOrEqual(t, holding.MemoryBytes, uint64(64<<20), "memory held now")
	assert.GreaterOrEqual(t, holding.Pids, uint64(3), "its processes count, beside PID 1")
	assert.Equal(t, 1, holding.Processes, "one background process runs")
	assert.Equal(t, uint64(3), holding.Execs, "two commands and a background process")
	_, err = env.m.KillProcess(ctx, s.ID, hold.ID, time.Second)
	require.NoError(t, err, "kill the holder")
	// The kernel uncounts a process once it is reaped, a moment after it
	// left cgroup.procs.
	assert.Eventually(t, func() bool { return stats(t, s.ID).Pids == 1 }, 5*time.Second, 10*time.Millisecond, "only PID 1 is counted once the holder's tree is gone")
	released := stats(t, s.ID)
	assert.Zero(t, released.Processes, "no background process runs")
	assert.Less(t, released.MemoryBytes, holding.MemoryBytes, "its memory is freed")

	hog := run(t, s.ID, `python3 -c 'b = bytearray(512 * 1024 * 1024)'`, 30)
	require.True(t, hog.OOMKilled, "the hog is OOM-killed: %+v", hog.ExecResult)
	assert.GreaterOrEqual(t, stats(t, s.ID).OOMKills, uint64(1), "the session counts the kill")

	_, err = env.m.SessionStats(ctx, "no-such-session")
	assert.ErrorIs(t, err, ErrNotFound, "an unknown session")
}

func TestBackgroundProcessesReportUsage(t *testing.T) {
	s := startSession(t, "bgusage", &Limits{CPUs: 2, MemoryMB: 128})
	ctx := context.Background()
	start := func(command string) string {
		t.Helper()
		p, err := env.m.StartProcess(ctx, s.ID, Command{Shell: command})
		require.NoError(t, err, "start %q", command)
		return p.ID
	}
	calm := start("sleep 3; echo fine")
	hog := start(`python3 -c 'b = bytearray(512 * 1024 * 1024)'`)
	hogged := waitEnded(t, s.ID, hog)
	calmed := waitEnded(t, s.ID, calm)
	assert.True(t, hogged.OOMKilled, "the hog is reported OOM-killed: %+v", hogged)
	assert.False(t, calmed.OOMKilled, "the process beside it is not")
	require.NotNil(t, calmed.ExitCode, "the calm one ended")
	assert.Equal(t, 0, *calmed.ExitCode, "by itself")

	// After the hog: the OOM killer would pick among whatever is big.
	burner := start(`python3 -c 'x = 0
for i in range(4 * 10**6): x += i'`)
	alloc := start(`python3 -c 'b = bytearray(48 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096])'`)
	burnt := waitEnded(t, s.ID, burner)
	allocated := waitEnded(t, s.ID, alloc)
	require.Equal(t, 0, *burnt.ExitCode, "the burner succeeded")
	require.Equal(t, 0, *allocated.ExitCode, "the allocation succeeded")
	assert.Greater(t, burnt.CPU, 100*time.Millisecond, "a CPU burner's time is counted")
	assert.Less(t, calmed.CPU, burnt.CPU/4, "sleep uses far less")
	assert.Greater(t, allocated.PeakMemory, uint64(48<<20), "an allocation raises the peak")
	assert.Less(t, calmed.PeakMemory, uint64(32<<20), "sleep's peak is small")
}
