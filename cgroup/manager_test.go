package cgroup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNewRefusesRelativeParents(t *testing.T) {
	for _, parent := range []string{"", "sandboxd", "/", "/a/../b", "/a/"} {
		_, err := New(parent)
		assert.Error(t, err, "parent %q is refused", parent)
	}
}

func TestPaths(t *testing.T) {
	m := &Manager{parent: "/sandboxd"}
	assert.Equal(t, "/sandboxd/user_u1", m.UserPath("u1"), "user path")
	assert.Equal(t, "/sandboxd/user_u1/s1", m.SessionPath("u1", "s1"), "session path")
	assert.Error(t, m.Remove("/elsewhere/x"), "a cgroup outside the parent is never removed")
}
