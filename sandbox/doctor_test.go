package sandbox

import (
	"context"
	"os"
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

func TestDoctorSaysWhatTheBaseEnvHas(t *testing.T) {
	requireRoot(t)
	checks := map[string]Check{}
	for _, c := range Doctor(env.cfg) {
		checks[c.Name] = c
	}
	env.m.mu.Lock()
	current := env.m.current
	env.m.mu.Unlock()
	base := checks["base env"]
	assert.True(t, base.Optional, "the packages never keep the daemon from starting")
	assert.Contains(t, base.Detail, current.ID, "names the env")
	for _, p := range current.Present {
		assert.Contains(t, base.Detail, p.Name+" "+p.Version, "says what it has")
	}
	if len(current.Missing) > 0 {
		assert.ErrorContains(t, base.Err, current.Missing[0].Requirement, "says what it lacks")
	} else {
		assert.NoError(t, base.Err)
	}
	assert.NoError(t, checks["allow-list"].Err, "the default allow-list reads")
	assert.Contains(t, checks["allow-list"].Detail, "pandas")
	assert.NoError(t, checks["host packages"].Err)
	assert.Contains(t, checks["host packages"].Detail, "the package cache must provide")

	bad := isolated(t, nil)
	require.NoError(t, os.WriteFile(bad.m.layout.AllowedPackages(), []byte("pandas\npandas>=2\n"), 0o644))
	for _, c := range Doctor(bad.cfg) {
		if c.Name == "allow-list" {
			assert.ErrorContains(t, c.Err, "line 2", "a bad allow-list names its line")
		}
	}
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
