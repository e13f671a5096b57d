package cgroup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParentMustBeAbsoluteAndClean(t *testing.T) {
	for _, parent := range []string{"", "sandboxd", "/", "/a/../b", "/a/", "//a"} {
		assert.Error(t, checkParent(parent), "parent %q is refused", parent)
		_, err := New(parent)
		assert.Error(t, err, "New refuses parent %q", parent)
	}
	assert.NoError(t, checkParent("/sandboxd"), "an absolute parent is fine")
	assert.NoError(t, checkParent("/system.slice/sandboxd.service"), "a delegated unit's cgroup is fine")
}

func TestPaths(t *testing.T) {
	m := &Manager{parent: "/sandboxd"}
	assert.Equal(t, "/sandboxd/user_u1", m.UserPath("u1"), "user path")
	assert.Equal(t, "/sandboxd/user_u1/s1", m.SessionPath("u1", "s1"), "session path")
}

func TestOnlyCgroupsBelowTheParentAreTouched(t *testing.T) {
	m := &Manager{parent: "/sandboxd"}
	for _, p := range []string{"/elsewhere/x", "/sandboxd", "/sandboxd/", "/sandboxdx/user_a/s", "/sandboxd/../x", "/sandboxd/user_a/../../x", "sandboxd/user_a/s", "/sandboxd/user_a"} {
		assert.Error(t, m.Remove(p), "%q is never removed", p)
	}
	for _, user := range []string{"", "a/../../etc", "a/b", "a\x00"} {
		assert.Error(t, m.RemoveUser(user), "user %q is refused", user)
	}
}

func TestSessionPathsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/sandboxd/user_u1/s1", true},
		{"/sandboxd/user_u1", false},
		{"/sandboxd/user_/s1", false},
		{"/sandboxd/u1/s1", false},
		{"/sandboxd/user_u1/s1/exec", false},
		{"/sandboxd/user_u1/s1/", false},
		{"/other/user_u1/s1", false},
		{"/sandboxd/user_u1/../user_u2/s1", false},
	} {
		err := checkSession("/sandboxd", tc.path)
		if tc.ok {
			assert.NoError(t, err, "%q is a session", tc.path)
		} else {
			assert.Error(t, err, "%q is not a session", tc.path)
		}
	}
	m := &Manager{parent: "/sandboxd"}
	_, err := m.NewExec("/sandboxd/user_u1", "e1")
	assert.Error(t, err, "an exec needs a session")
	assert.Error(t, m.PrepareSession("/sandboxd/user_u1/s1/x", 1), "only a session is prepared")
	_, err = m.SessionStats("/elsewhere/user_u1/s1")
	assert.Error(t, err, "no stats outside the parent")
	assert.Error(t, m.Freeze("/sandboxd"), "the parent is not frozen")
	assert.Error(t, m.Thaw("/"), "the root is not thawed")
	assert.Error(t, m.RemoveExecs("/sandboxd/user_u1"), "execs live in a session")
}

func TestExecNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"e1", true},
		{"exec-42_b", true},
		{"E", true},
		{"", false},
		{InitLeaf, false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"cgroup.procs", false},
		{"memory.max", false},
		{"x y", false},
		{"é", false},
		{string(make([]byte, maxExecName+1)), false},
	} {
		err := checkExecName(tc.name)
		if tc.ok {
			assert.NoError(t, err, "%q is a good exec name", tc.name)
		} else {
			assert.Error(t, err, "%q is refused", tc.name)
		}
	}
	long := make([]byte, maxExecName)
	for i := range long {
		long[i] = 'a'
	}
	assert.NoError(t, checkExecName(string(long)), "a name of the maximum length is fine")
}
