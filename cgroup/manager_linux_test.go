package cgroup

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestModeAndControllers(t *testing.T) {
	m, err := New("/sandboxd")
	require.NoError(t, err, "new manager (no cgroup is touched)")
	assert.Contains(t, []Mode{ModeV1, ModeHybrid, ModeV2}, m.Mode(), "a known mode")
	controllers, err := m.Controllers()
	require.NoError(t, err, "this host has what sessions need")
	assert.Equal(t, []string{"cpu", "memory", "pids"}, controllers, "the session controllers")
	assert.NotEmpty(t, m.Dirs("/sandboxd"), "the parent has a directory in some hierarchy")
}

func TestRemoveKillsWhatIsLeftAndRemovesEverywhere(t *testing.T) {
	m := newTestManager(t)
	gs := newSession(t, m, "u1", "gone", sessionLimits{memoryBytes: 128 * mib})
	ks := newSession(t, m, "u1", "kept", sessionLimits{})
	gone, kept := gs.path, ks.path
	e, err := m.NewExec(gone, "tree")
	require.NoError(t, err, "create exec")
	tree := runIn(t, gs, e, "tree", 2)
	require.True(t, tree.ready(), "the tree is up")
	pids, err := m.Pids(gone)
	require.NoError(t, err, "list the session")
	require.Len(t, pids, 4, "PID 1, the worker and its two children")

	leftovers, err := m.Leftovers()
	require.NoError(t, err, "leftovers")
	assert.ElementsMatch(t, []string{gone, kept}, leftovers, "both sessions are found")

	require.NoError(t, m.Remove(gone), "remove a session with processes in it")
	assert.Empty(t, existingDirs(m, gone), "removed from every hierarchy")
	for _, pid := range pids {
		assert.False(t, alive(pid), "process %d is gone", pid)
	}
	assert.False(t, alive(gs.init.pid()), "with the sandbox's PID 1")
	assert.True(t, alive(ks.init.pid()), "the other session lives")
	require.NoError(t, m.Remove(gone), "removing a removed session is not an error")
	_, err = m.SessionStats(gone)
	assert.ErrorIs(t, err, os.ErrNotExist, "a removed session has no stats")
	assert.Error(t, m.Freeze(gone), "nor can it be frozen")

	require.ErrorIs(t, m.RemoveUser("u1"), ErrBusy, "a user with a session left is busy")
	assert.NotEmpty(t, existingDirs(m, m.UserPath("u1")), "the busy user group stays")
	users, err := m.Users()
	require.NoError(t, err, "list users")
	assert.Equal(t, []string{"u1"}, users, "the user is listed")
	require.NoError(t, m.Remove(kept), "remove the last session")
	// The kernel may count the removed child for an RCU grace period.
	require.Eventually(t, func() bool {
		err = m.RemoveUser("u1")
		return !errors.Is(err, ErrBusy)
	}, 5*time.Second, time.Millisecond, "the user group stops being busy")
	require.NoError(t, err, "remove the empty user group")
	assert.Empty(t, existingDirs(m, m.UserPath("u1")), "the user group is gone everywhere")
	require.NoError(t, m.RemoveUser("u1"), "removing it again is not an error")
}

func TestRemoveEndsAFrozenSession(t *testing.T) {
	m := newTestManager(t)
	s := newSession(t, m, "u1", "s1", sessionLimits{})
	session := s.path
	spinner, err := m.NewExec(session, "spin")
	require.NoError(t, err, "create exec")
	require.True(t, runIn(t, s, spinner, "spin", 0).ready(), "spinner")
	t.Cleanup(func() { _ = m.Thaw(session) })
	require.NoError(t, m.Freeze(session), "freeze")
	require.NoError(t, m.Remove(session), "remove the frozen session")
	assert.Empty(t, existingDirs(m, session), "removed from every hierarchy")
	assert.False(t, alive(s.init.pid()), "its processes are gone")
}
