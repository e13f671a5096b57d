package mounts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestSystemIsATmpfsOfItsOwn: the skeleton root, the helper and the
// identity files are on a tmpfs the daemon mounts, so that a sandbox's
// binds from it name no host path; a second mount (a daemon that was
// killed left the first) replaces the first, and unmounting is idempotent.
func TestSystemIsATmpfsOfItsOwn(t *testing.T) {
	needRoot(t, "mounting a tmpfs")
	l := Layout{Root: t.TempDir()}
	helper := filepath.Join(t.TempDir(), "helper")
	require.NoError(t, os.WriteFile(helper, []byte("#!/bin/sh\necho helper\n"), 0o755), "write a helper")

	for i := range 2 {
		require.NoError(t, l.MountSystem(helper), "mount the system file system (%d)", i)
		t.Cleanup(func() { _ = l.UnmountSystem() })
		var fs unix.Statfs_t
		require.NoError(t, unix.Statfs(l.System(), &fs), "statfs")
		assert.Equal(t, int64(unix.TMPFS_MAGIC), int64(fs.Type), "a tmpfs")
		data, err := os.ReadFile(filepath.Join(l.Rootfs(), HelperPath))
		require.NoError(t, err, "the helper is in the skeleton root")
		assert.Equal(t, "#!/bin/sh\necho helper\n", string(data), "a copy of the helper")
		fi, err := os.Stat(filepath.Join(l.Rootfs(), HelperPath))
		require.NoError(t, err, "stat the helper")
		assert.Equal(t, os.FileMode(0o555), fi.Mode().Perm(), "read-only, executable")
		assert.DirExists(t, filepath.Join(l.Rootfs(), "workspace"), "with the skeleton's mount points")
		require.NoError(t, l.WriteIdentity(Owner{UID: 4242, GID: 4242}, 4242), "identity files")
		assert.FileExists(t, filepath.Join(l.Identity(4242), "passwd"), "in the system file system")
		assert.True(t, strings.HasPrefix(l.Identity(4242), l.System()+"/"), "identity lives there")
	}
	require.NoError(t, l.UnmountSystem(), "unmount")
	mounted, err := isMountPoint(l.System())
	require.NoError(t, err, "check the mount point")
	assert.False(t, mounted, "nothing is left mounted: the second mount replaced the first")
	require.NoError(t, l.UnmountSystem(), "unmounting again is no error")
}
