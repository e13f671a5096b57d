package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeletedSessionDirGoesThroughTheTrash: a delete moves the session's
// directory out at once and removes it in the background, following none
// of the symlinks the sandbox planted.
func TestDeletedSessionDirGoesThroughTheTrash(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "trash", nil)
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("host file"), 0o600), "a host file")
	res := e.run(t, s.ID, "head -c 2M /dev/zero > /workspace/big && mkdir -p /workspace/a/b && ln -s "+filepath.Dir(victim)+" /workspace/a/b/host && ln -s / /workspace/root", 10)
	require.Equal(t, 0, res.ExitCode, "fill the workspace: %s", res.Stderr)
	// Symlinks the sandbox cannot make point to the host's paths: plant
	// them from outside, as a hostile tree would look to the daemon.
	files := e.filesOf(t, s)
	require.NoError(t, os.Symlink(victim, filepath.Join(files, "a", "victim")), "plant a symlink to a host file")

	_, err := e.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "delete")
	e.assertGone(t, s)
	e.m.cleanup.Wait()
	entries, err := os.ReadDir(filepath.Join(e.m.layout.User(s.UserID).Dir, trashDir))
	require.NoError(t, err, "the user's trash")
	assert.Empty(t, entries, "the trash is emptied")
	data, err := os.ReadFile(victim)
	require.NoError(t, err, "the host file is still there")
	assert.Equal(t, "host file", string(data), "and untouched")
}

// TestTrashLeftByADeadDaemonIsEmptiedOnStart: a daemon that died while
// removing a deleted session's directory leaves it in the trash; the next
// one removes it, following no symlink in it.
func TestTrashLeftByADeadDaemonIsEmptiedOnStart(t *testing.T) {
	e := isolated(t, nil)
	e.session(t, "dead-trash", nil)
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("host file"), 0o600), "a host file")
	left := filepath.Join(e.m.layout.User("dead-trash").Dir, trashDir, "gone.1234", "files", "sub")
	require.NoError(t, os.MkdirAll(left, 0o755), "a half-removed session directory")
	require.NoError(t, os.Symlink(victim, filepath.Join(left, "link")), "with a symlink to a host file")
	require.NoError(t, os.Symlink(filepath.Dir(victim), filepath.Join(left, "dirlink")), "and one to a host directory")

	e.restart(t)
	e.m.cleanup.Wait()
	entries, err := os.ReadDir(filepath.Join(e.m.layout.User("dead-trash").Dir, trashDir))
	require.NoError(t, err, "the user's trash")
	assert.Empty(t, entries, "the new daemon emptied the trash")
	_, err = os.Stat(victim)
	assert.NoError(t, err, "the host file is still there")
}
