package sandbox

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryHogIsOOMKilledAndSessionSurvives(t *testing.T) {
	s := startSession(t, "oom", &Limits{MemoryMB: 128})

	res := run(t, s.ID, `python3 -c 'b = bytearray(512 * 1024 * 1024); print("survived")'`, 30)
	assert.True(t, res.OOMKilled, "oom_killed reported: %+v", res)
	assert.NotEqual(t, 0, res.ExitCode, "the hog did not succeed")
	assert.NotContains(t, res.Stdout, "survived", "the allocation was refused")

	after := run(t, s.ID, "echo alive", 10)
	assert.Equal(t, "alive\n", after.Stdout, "the session still runs commands")
	assert.False(t, after.OOMKilled, "a later command is not reported as OOM-killed")
}

func TestForkBombIsStoppedByThePidsLimit(t *testing.T) {
	s := startSession(t, "forkbomb", &Limits{Pids: 50})

	start := time.Now()
	res := run(t, s.ID, `bomb() { bomb | bomb & }; bomb; sleep 5`, 3)
	assert.True(t, res.TimedOut || res.ExitCode != 0, "the bomb ran into the limit or its timeout: %d %q", res.ExitCode, res.Stderr)
	assert.Less(t, time.Since(start), 15*time.Second, "the tree was killed promptly")

	onlyInitLeft(t, s, "only the sandbox's PID 1 is left")
	after := run(t, s.ID, "echo alive", 10)
	assert.Equal(t, "alive\n", after.Stdout, "the session still runs commands")

	// The host is unharmed: it can still start processes.
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err, "the host can fork")
	_, _ = p.Wait()
}

// TestCPULimitHoldsTwoBusyLoopsToTheirQuota: two busy loops under a 0.2
// CPU quota use at most that, and it is the quota that holds them (their
// cgroup was throttled). Both hold however busy the machine is — a lower
// bound on what the loops got would not — as long as the machine still
// gives two loops more than a fifth of a CPU, which a load of 8 on two
// cores does.
func TestCPULimitHoldsTwoBusyLoopsToTheirQuota(t *testing.T) {
	s := startSession(t, "cpu", &Limits{CPUs: 0.2})
	cg := env.m.cg.SessionPath(s.UserID, s.ID)

	before, err := env.m.cg.SessionStats(cg)
	require.NoError(t, err, "read cpu usage")
	start := time.Now()
	res := run(t, s.ID, `while :; do :; done & while :; do :; done`, 4)
	wall := time.Since(start)
	after, err := env.m.cg.SessionStats(cg)
	require.NoError(t, err, "read cpu usage")
	require.True(t, res.TimedOut, "the loops ran until the timeout")

	used := float64(after.CPU-before.CPU) / float64(wall)
	t.Logf("two busy loops used %.3f CPU over %s, throttled %s", used, wall, after.CPUThrottled-before.CPUThrottled)
	assert.LessOrEqual(t, used, 0.25, "at most a fifth of a CPU (and a little for the start)")
	assert.Positive(t, after.CPUThrottled-before.CPUThrottled, "the quota held them back")
}

func TestTmpIsSizeLimited(t *testing.T) {
	s := startSession(t, "tmp", &Limits{TmpMB: 8})

	res := run(t, s.ID, `head -c 16M /dev/zero > /tmp/big`, 30)
	assert.NotEqual(t, 0, res.ExitCode, "writing past /tmp's size fails")
	assert.Contains(t, res.Stderr, "No space left on device", "the kernel refused the write")

	ok := run(t, s.ID, `rm -f /tmp/big && head -c 4M /dev/zero > /tmp/small && echo ok`, 30)
	assert.Equal(t, "ok\n", ok.Stdout, "a write within the size succeeds")
}

func TestLimitsAreCappedAndValidated(t *testing.T) {
	cfg := testConfig("", "")
	max := cfg.MaxLimits
	tests := []struct {
		name    string
		limits  *Limits
		want    Limits
		invalid bool
	}{
		{"defaults", nil, cfg.DefaultLimits, false},
		{"override", &Limits{MemoryMB: 256, Pids: 100}, Limits{CPUs: 0.5, MemoryMB: 256, Pids: 100, TmpMB: 100}, false},
		{"capped", &Limits{CPUs: 64, MemoryMB: 1 << 20, Pids: 1 << 20, TmpMB: 1 << 20}, max, false},
		{"negative", &Limits{Pids: -1}, Limits{}, true},
		{"too small", &Limits{MemoryMB: 1}, Limits{}, true},
		{"NaN cpus", &Limits{CPUs: math.NaN()}, Limits{}, true},
		{"infinite cpus", &Limits{CPUs: math.Inf(1)}, Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveLimits(tt.limits, cfg.DefaultLimits, cfg.MaxLimits)
			if tt.invalid {
				assert.ErrorIs(t, err, ErrInvalid, "refused")
				return
			}
			require.NoError(t, err, "accepted")
			assert.Equal(t, tt.want, got, fmt.Sprintf("limits for %+v", tt.limits))
		})
	}
}

func TestOOMIsAttributedToTheCommandThatWasKilled(t *testing.T) {
	s := startSession(t, "oomexec", &Limits{MemoryMB: 128})
	bystander := make(chan ran, 1)
	go func() {
		bystander <- run(t, s.ID, "sleep 3; echo fine", 30)
	}()
	hog := run(t, s.ID, `python3 -c 'b = bytearray(512 * 1024 * 1024)'`, 30)
	calm := <-bystander
	assert.True(t, hog.OOMKilled, "the hog is reported OOM-killed: %+v", hog.ExecResult)
	assert.False(t, calm.OOMKilled, "the command beside it is not")
	assert.Equal(t, "fine\n", calm.Stdout, "and it finished")
}

func TestExecReportsCPUAndPeakMemory(t *testing.T) {
	s := startSession(t, "usage", &Limits{CPUs: 2})
	idle := run(t, s.ID, "true", 30)
	burn := run(t, s.ID, `python3 -c 'x = 0
for i in range(4 * 10**6): x += i'`, 60)
	alloc := run(t, s.ID, `python3 -c 'b = bytearray(96 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096])'`, 60)
	require.Equal(t, 0, burn.ExitCode, "burn: %s", burn.Stderr)
	require.Equal(t, 0, alloc.ExitCode, "alloc: %s", alloc.Stderr)
	assert.Greater(t, burn.CPU, 100*time.Millisecond, "a CPU burner's time is counted")
	assert.Less(t, idle.CPU, burn.CPU/4, "true uses far less")
	assert.Greater(t, alloc.PeakMemory, uint64(96<<20), "an allocation raises the peak")
	assert.Less(t, idle.PeakMemory, uint64(32<<20), "true's peak is small")
}
