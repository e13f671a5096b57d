package mounts

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestCopyTreeCopiesWhatAnOverlayLayerHoldsAndFollowsNothing: a tree a
// sandbox wrote is copied as it is — files, directories, symlinks as
// symlinks, whiteouts, the opaque mark, owners and modes — into a tree
// whose own entries in the way are replaced, never written through; what
// is not a file, directory, symlink or whiteout is left out and listed.
func TestCopyTreeCopiesWhatAnOverlayLayerHoldsAndFollowsNothing(t *testing.T) {
	needRoot(t, "chowns to other uids, makes whiteouts and trusted xattrs")
	o := Owner{UID: 23456, GID: 23457}
	v := newVictim(t)
	src, dst := t.TempDir(), t.TempDir()
	hostileTree(t, src, v)
	require.NoError(t, os.WriteFile(filepath.Join(src, "mode"), []byte("x"), 0o640), "a file with a mode")
	require.NoError(t, os.Chown(filepath.Join(src, "mode"), o.UID, o.GID), "and an owner")
	require.NoError(t, os.Lchown(filepath.Join(src, "to-victim"), o.UID, o.GID), "a symlink with an owner")
	require.NoError(t, unix.Mknod(filepath.Join(src, "whiteout"), unix.S_IFCHR, 0), "a whiteout")
	require.NoError(t, os.Mkdir(filepath.Join(src, "opaque"), 0o750), "an opaque directory")
	require.NoError(t, unix.Setxattr(filepath.Join(src, "opaque"), opaqueXattr, []byte("y"), 0), "mark it opaque")
	// In the way in dst: a file where a directory goes, a directory where
	// a file goes, and a symlink to the victim's directory where a
	// directory goes.
	require.NoError(t, os.WriteFile(filepath.Join(dst, "a"), []byte("old"), 0o644), "a file in the way")
	require.NoError(t, os.MkdirAll(filepath.Join(dst, "f", "deep"), 0o755), "a directory in the way")
	require.NoError(t, os.Symlink(v.dir, filepath.Join(dst, "d")), "a symlink in the way")
	require.NoError(t, os.WriteFile(filepath.Join(dst, "kept"), []byte("k"), 0o644), "a file of dst's own")
	require.NoError(t, os.WriteFile(filepath.Join(src, "except"), []byte("e"), 0o644), "a file left out by name")

	from, to := openTestDir(t, src), openTestDir(t, dst)
	for run := range 2 {
		skipped, err := from.CopyTree(to, "except")
		require.NoError(t, err, "copy, run %d", run)
		var names []string
		for _, s := range skipped {
			names = append(names, s.Name)
		}
		sort.Strings(names)
		assert.Equal(t, []string{filepath.Join(src, "a/b/fifo"), filepath.Join(src, "d/hard")}, names, "left out, run %d", run)
	}

	for _, p := range []string{"f", "a/f", "a/b/c/f"} {
		data, err := os.ReadFile(filepath.Join(dst, p))
		require.NoError(t, err, "read %s", p)
		assert.Equal(t, "data", string(data), "%s copied", p)
	}
	for p, want := range map[string]string{"to-victim": v.dir, "a/to-victim-file": v.file, "d/dangling": "/nonexistent-sandboxd"} {
		got, err := os.Readlink(filepath.Join(dst, p))
		require.NoError(t, err, "%s is a symlink", p)
		assert.Equal(t, want, got, "%s points where it did", p)
	}
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(dst, "mode"), &st), "stat mode")
	assert.Equal(t, []uint32{0o640, uint32(o.UID), uint32(o.GID)}, []uint32{st.Mode & 0o7777, st.Uid, st.Gid}, "mode and owner kept")
	require.NoError(t, unix.Lstat(filepath.Join(dst, "to-victim"), &st), "stat the symlink")
	assert.Equal(t, []uint32{uint32(o.UID), uint32(o.GID)}, []uint32{st.Uid, st.Gid}, "a symlink's owner kept")
	require.NoError(t, unix.Lstat(filepath.Join(dst, "whiteout"), &st), "stat the whiteout")
	assert.Equal(t, []uint64{unix.S_IFCHR, 0}, []uint64{uint64(st.Mode & unix.S_IFMT), st.Rdev}, "a whiteout stays one")
	buf := make([]byte, 8)
	n, err := unix.Getxattr(filepath.Join(dst, "opaque"), opaqueXattr, buf)
	require.NoError(t, err, "the opaque mark")
	assert.Equal(t, "y", string(buf[:n]), "the opaque mark kept")
	for _, p := range []string{"a", "d"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		require.NoError(t, err, "stat %s", p)
		assert.True(t, fi.IsDir(), "%s became the directory it is in src", p)
	}
	assert.NoDirExists(t, filepath.Join(dst, "f", "deep"), "the directory in the way of f went")
	assert.FileExists(t, filepath.Join(dst, "kept"), "dst's own entries stay")
	assert.NoFileExists(t, filepath.Join(dst, "a/b/fifo"), "no FIFO")
	assert.NoFileExists(t, filepath.Join(dst, "d/hard"), "no hard-linked file")
	assert.NoFileExists(t, filepath.Join(dst, "except"), "nothing left out by name")
	entries, err := os.ReadDir(dst)
	require.NoError(t, err, "list dst")
	for _, e := range entries {
		assert.NotContains(t, e.Name(), tmpPrefix, "no temporary file left")
	}
	v.assertIntact(t)
}

// TestCopyTreeStopsAtAFullDisk: a copy into a tree that cannot hold it
// fails with the file system's error, leaving the source as it was.
func TestCopyTreeStopsAtAFullDisk(t *testing.T) {
	needRoot(t, "mounts a small tmpfs")
	src, dst := t.TempDir(), t.TempDir()
	require.NoError(t, unix.Mount("tmpfs", dst, "tmpfs", 0, "size=64k"), "a 64 KiB disk")
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
	big := make([]byte, 256<<10)
	require.NoError(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644), "more than it holds")

	_, err := openTestDir(t, src).CopyTree(openTestDir(t, dst))
	require.ErrorIs(t, err, unix.ENOSPC, "the disk is full")
	fi, err := os.Stat(filepath.Join(src, "big"))
	require.NoError(t, err, "the source is there")
	assert.Equal(t, int64(len(big)), fi.Size(), "and whole")
}
