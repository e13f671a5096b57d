package sandbox

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
