package sandbox

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

func TestMemoryHogIsOOMKilledAndSessionSurvives(t *testing.T) {
	s := newSession(t, "oom", &api.Limits{MemoryMB: 128})

	res := run(t, s.ID, `python3 -c 'b = bytearray(512 * 1024 * 1024); print("survived")'`, 30)
	assert.True(t, res.OOMKilled, "oom_killed reported: %+v", res)
	assert.NotEqual(t, 0, res.ExitCode, "the hog did not succeed")
	assert.NotContains(t, res.Stdout, "survived", "the allocation was refused")

	after := run(t, s.ID, "echo alive", 10)
	assert.Equal(t, "alive\n", after.Stdout, "the session still runs commands")
	assert.False(t, after.OOMKilled, "a later command is not reported as OOM-killed")
}

func TestForkBombIsStoppedByThePidsLimit(t *testing.T) {
	s := newSession(t, "forkbomb", &api.Limits{Pids: 50})

	start := time.Now()
	res := run(t, s.ID, `bomb() { bomb | bomb & }; bomb; sleep 5`, 3)
	assert.True(t, res.TimedOut, "the bomb ran until its timeout: %+v", res)
	assert.Less(t, time.Since(start), 15*time.Second, "the tree was killed promptly")

	assert.Len(t, sessionPids(t, s), 1, "only the sandbox's PID 1 is left")
	after := run(t, s.ID, "echo alive", 10)
	assert.Equal(t, "alive\n", after.Stdout, "the session still runs commands")

	// The host is unharmed: it can still start processes.
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err, "the host can fork")
	_, _ = p.Wait()
}

func TestCPULimitHoldsTwoBusyLoopsToHalfACPU(t *testing.T) {
	s := newSession(t, "cpu", &api.Limits{CPUs: 0.5})
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
	t.Logf("two busy loops used %.3f CPU over %s", used, wall)
	assert.GreaterOrEqual(t, used, 0.4, "at least 0.4 CPU")
	assert.LessOrEqual(t, used, 0.6, "at most 0.6 CPU")
}

func TestTmpIsSizeLimited(t *testing.T) {
	s := newSession(t, "tmp", &api.Limits{TmpMB: 8})

	res := run(t, s.ID, `head -c 16M /dev/zero > /tmp/big`, 30)
	assert.NotEqual(t, 0, res.ExitCode, "writing past /tmp's size fails")
	assert.Contains(t, res.Stderr, "No space left on device", "the kernel refused the write")

	ok := run(t, s.ID, `rm -f /tmp/big && head -c 4M /dev/zero > /tmp/small && echo ok`, 30)
	assert.Equal(t, "ok\n", ok.Stdout, "a write within the size succeeds")
}

func TestLimitsAreCappedAndValidated(t *testing.T) {
	requireRoot(t)
	max := env.cfg.MaxLimits
	tests := []struct {
		name    string
		limits  *api.Limits
		want    api.Limits
		invalid bool
	}{
		{"defaults", nil, env.cfg.DefaultLimits, false},
		{"override", &api.Limits{MemoryMB: 256, Pids: 100}, api.Limits{CPUs: 0.5, MemoryMB: 256, Pids: 100, TmpMB: 100}, false},
		{"capped", &api.Limits{CPUs: 64, MemoryMB: 1 << 20, Pids: 1 << 20, TmpMB: 1 << 20}, max, false},
		{"negative", &api.Limits{Pids: -1}, api.Limits{}, true},
		{"too small", &api.Limits{MemoryMB: 1}, api.Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.m.resolveLimits(tt.limits)
			if tt.invalid {
				assert.ErrorIs(t, err, api.ErrInvalidArgument, "refused")
				return
			}
			require.NoError(t, err, "accepted")
			assert.Equal(t, tt.want, got, fmt.Sprintf("limits for %+v", tt.limits))
		})
	}
}
