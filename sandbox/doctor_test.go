package sandbox

import (
	"os"
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
