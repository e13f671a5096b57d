package cgroup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// No v2 host is at hand here, so PrepareSession's writes are checked on a
// tree shaped like the cgroup filesystem; that the kernel then lets the
// session hand controllers down is for make vmtest to show.
func TestPrepareSessionMovesInitAndHandsControllersDown(t *testing.T) {
	root := t.TempDir()
	m := &Manager{mode: ModeV2, parent: "/sandboxd", unified: root}
	session := m.SessionPath("u1", "s1")
	for _, dir := range []string{"/", "/sandboxd", "/sandboxd/user_u1", session} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755), "make %s", dir)
		require.NoError(t, os.WriteFile(filepath.Join(root, dir, "cgroup.subtree_control"), nil, 0o644), "subtree_control of %s", dir)
	}
	init := filepath.Join(root, session, InitLeaf)
	require.NoError(t, os.Mkdir(init, 0o755), "make init")
	require.NoError(t, os.WriteFile(filepath.Join(init, "cgroup.procs"), nil, 0o644), "init's cgroup.procs")

	require.NoError(t, m.PrepareSession(session, 4242), "prepare")
	procs, err := os.ReadFile(filepath.Join(init, "cgroup.procs"))
	require.NoError(t, err, "read init's cgroup.procs")
	assert.Equal(t, "4242", string(procs), "PID 1 is moved into the init leaf")
	control, err := os.ReadFile(filepath.Join(root, session, "cgroup.subtree_control"))
	require.NoError(t, err, "read the session's subtree_control")
	assert.Equal(t, "+cpu +memory +pids", string(control), "the session hands its controllers down")
	assert.NoFileExists(t, filepath.Join(init, "cgroup.subtree_control"), "the init leaf keeps none")

	assert.Error(t, m.PrepareSession(session, 0), "a pid is needed")
	missing := m.SessionPath("u1", "missing")
	assert.ErrorIs(t, m.PrepareSession(missing, 4242), os.ErrNotExist, "a session must exist")
	assert.NoDirExists(t, filepath.Join(root, missing), "and is not made")
	hybrid := &Manager{mode: ModeHybrid, parent: "/sandboxd", unified: root}
	other := hybrid.SessionPath("u1", "s2")
	require.NoError(t, hybrid.PrepareSession(other, 4242), "nothing to prepare on v1 and hybrid hosts")
	assert.NoDirExists(t, filepath.Join(root, other), "and nothing is made")
}
