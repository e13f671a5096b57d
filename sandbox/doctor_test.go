package sandbox

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDoctor(t *testing.T) {
	requireRoot(t)
	assert.NoError(t, Healthy(Doctor(env.cfg)), "this host can sandbox")

	bad := env.cfg
	bad.Python = "/nonexistent/python3"
	bad.CgroupParent = "relative"
	err := Healthy(Doctor(bad))
	assert.ErrorContains(t, err, "python", "a missing python is reported")
	assert.ErrorContains(t, err, "cgroups", "a bad cgroup parent is reported")
}

func TestDoctorSaysHowDiskLimitsAreEnforced(t *testing.T) {
	requireRoot(t)
	checks := Doctor(env.cfg)
	i := slices.IndexFunc(checks, func(c Check) bool { return c.Name == "quota" })
	require.GreaterOrEqual(t, i, 0, "a quota check")
	c := checks[i]
	assert.True(t, c.Optional, "without disk limits the daemon still runs")
	mode := string(env.m.quota.Mode())
	assert.Contains(t, c.Detail, "laid out in "+mode+" mode", "the state directory's mode")
	if mode == "loop" {
		assert.Contains(t, c.Detail, "loop-mounted ext4 images", "what this host gets")
		assert.NoError(t, c.Err, "limits are enforced")
	}
	assert.Equal(t, mode, env.m.Info(context.Background()).QuotaMode, "GET /v1 says it too")
}
