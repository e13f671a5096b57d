package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestDetachedBindsArePrivate: a bind the daemon makes for a sandbox from
// a tree on a shared mount (the state file system under systemd, in
// project mode) must not be a peer of it, or what the binder mounts on it
// inside the sandbox (the shared files on the workspace) propagates back
// into the daemon's mount namespace and makes the session's directories
// busy for its delete.
func TestDetachedBindsArePrivate(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "shared-src"), filepath.Join(dir, "attached")
	require.NoError(t, os.Mkdir(src, 0o755), "mkdir source")
	require.NoError(t, os.Mkdir(dst, 0o755), "mkdir target")
	require.NoError(t, unix.Mount("test", src, "tmpfs", 0, "size=1m"), "mount a tmpfs")
	t.Cleanup(func() { _ = unix.Unmount(src, unix.MNT_DETACH) })
	require.NoError(t, unix.Mount("", src, "", unix.MS_SHARED, ""), "make it shared")
	require.NoError(t, os.Mkdir(filepath.Join(src, "files"), 0o755), "mkdir files")

	fd, err := detachBind(filepath.Join(src, "files"), 0, true)
	require.NoError(t, err, "detach a bind of files")
	defer unix.Close(fd)
	require.NoError(t, unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH), "attach it")
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })

	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err, "read mountinfo")
	var found bool
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[4] == dst {
			found = true
			assert.Equal(t, "-", f[6], "the attached bind has no peer group or master: %s", line)
		}
	}
	assert.True(t, found, "the bind is attached at %s", dst)
}
