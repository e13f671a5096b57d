package mounts

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// hostileTree fills dir with what a sandbox can leave behind: links
// leading out to the victim at every depth, a FIFO, a hard link, and
// ordinary files and directories.
func hostileTree(t *testing.T, dir string, v victim) {
	t.Helper()
	climb := strings.Repeat("../", 30) + strings.TrimPrefix(v.dir, "/")
	for _, d := range []string{"a/b/c", "d"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755), "mkdir %s", d)
	}
	for p, target := range map[string]string{
		"to-victim":        v.dir,
		"a/to-victim-file": v.file,
		"a/b/climbing":     climb,
		"a/b/c/to-victim":  v.dir + "/",
		"d/dangling":       "/nonexistent-sandboxd",
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, p)), "symlink %s", p)
	}
	for _, p := range []string{"f", "a/f", "a/b/c/f"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte("data"), 0o644), "write %s", p)
	}
	mkfifo(t, filepath.Join(dir, "a/b/fifo"))
	require.NoError(t, os.Link(v.file, filepath.Join(dir, "d/hard")), "hard link")
}

func TestRemoveAllFollowsNothing(t *testing.T) {
	v := newVictim(t)
	tests := []struct {
		name string
		make func(t *testing.T, p string)
	}{
		{"tree with links out", func(t *testing.T, p string) { hostileTree(t, p, v) }},
		{"symlink to a host directory", func(t *testing.T, p string) { require.NoError(t, os.Symlink(v.dir, p)) }},
		{"hard link to a host file", func(t *testing.T, p string) { require.NoError(t, os.Link(v.file, p)) }},
		{"FIFO", func(t *testing.T, p string) { mkfifo(t, p) }},
		{"missing", func(*testing.T, string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			d := openTestDir(t, top)
			tt.make(t, filepath.Join(top, "x"))
			_, err := within(t, func() (struct{}, error) { return struct{}{}, d.RemoveAll("x") })
			require.NoError(t, err, "remove")
			_, err = os.Lstat(filepath.Join(top, "x"))
			assert.ErrorIs(t, err, fs.ErrNotExist, "gone")
			v.assertIntact(t)
		})
	}
}

func TestRemoveAllSurvivesSwapsMidWalk(t *testing.T) {
	v := newVictim(t)
	tests := []struct {
		name string
		// swap replaces the directory at p, which is being removed.
		swap func(t *testing.T, p, top string)
	}{
		{"subdirectory swapped for a symlink to a host directory", func(t *testing.T, p, top string) {
			require.NoError(t, os.Rename(p, filepath.Join(top, "x", "moved")), "move the directory")
			require.NoError(t, os.Symlink(v.dir, p), "plant")
		}},
		{"subdirectory swapped for a relative symlink climbing out", func(t *testing.T, p, top string) {
			require.NoError(t, os.Rename(p, filepath.Join(top, "x", "moved")), "move the directory")
			require.NoError(t, os.Symlink(strings.Repeat("../", 30)+strings.TrimPrefix(v.dir, "/"), p), "plant")
		}},
		{"subdirectory swapped for a hard link to a host file", func(t *testing.T, p, top string) {
			require.NoError(t, os.RemoveAll(p), "remove the directory")
			require.NoError(t, os.Link(v.file, p), "plant")
		}},
		{"subdirectory swapped for a FIFO", func(t *testing.T, p, top string) {
			require.NoError(t, os.RemoveAll(p), "remove the directory")
			mkfifo(t, p)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			hostileTree(t, filepath.Join(top, "x"), v)
			d := openTestDir(t, top)
			swapped := false
			// Just before "a/b" is opened, having been seen a directory.
			d.hook = func(name string) {
				if name == "b" && !swapped {
					swapped = true
					tt.swap(t, filepath.Join(top, "x", "a", "b"), top)
				}
			}
			_, err := within(t, func() (struct{}, error) { return struct{}{}, d.RemoveAll("x") })
			require.NoError(t, err, "remove")
			require.True(t, swapped, "the swap happened")
			_, err = os.Lstat(filepath.Join(top, "x"))
			assert.ErrorIs(t, err, fs.ErrNotExist, "all gone, the moved directory too")
			v.assertIntact(t)
		})
	}

	t.Run("the top swapped for a symlink", func(t *testing.T) {
		top := t.TempDir()
		hostileTree(t, filepath.Join(top, "x"), v)
		d := openTestDir(t, top)
		d.hook = func(name string) {
			if name == "x" {
				require.NoError(t, os.Rename(filepath.Join(top, "x"), filepath.Join(top, "elsewhere")), "move away")
				require.NoError(t, os.Symlink(v.dir, filepath.Join(top, "x")), "plant")
			}
		}
		require.NoError(t, d.RemoveAll("x"), "remove")
		_, err := os.Lstat(filepath.Join(top, "x"))
		assert.ErrorIs(t, err, fs.ErrNotExist, "the symlink is gone")
		v.assertIntact(t)
	})
}

// deepTree makes depth nested directories "d" under dir, through
// descriptors (the path would be too long for one call), with a file at
// the bottom.
func deepTree(t *testing.T, dir string, depth int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err, "open")
	for i := range depth {
		require.NoError(t, unix.Mkdirat(fd, "d", 0o755), "mkdir at depth %d", i)
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		require.NoError(t, err, "open at depth %d", i)
		unix.Close(fd)
		fd = next
	}
	ffd, err := unix.Openat(fd, "bottom", unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	require.NoError(t, err, "create the bottom file")
	unix.Close(ffd)
	unix.Close(fd)
}

func TestRemoveAllDeeperThanItHoldsOpen(t *testing.T) {
	top := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(top, "x"), 0o755), "mkdir")
	deepTree(t, filepath.Join(top, "x"), 3*maxDepth+7)
	d := openTestDir(t, top)
	// Room for maxDepth directories open and a few more, not for the
	// whole depth: a removal holding every level open fails.
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err, "count open descriptors")
	var limit unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &limit), "getrlimit")
	lowered := limit
	lowered.Cur = uint64(len(fds) + maxDepth + 16)
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered), "lower the descriptor limit")
	err = d.RemoveAll("x")
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &limit), "restore the descriptor limit")
	require.NoError(t, err, "remove a tree deeper than maxDepth")
	names, err := d.names()
	require.NoError(t, err, "list")
	assert.Empty(t, names, "all gone, nothing parked left behind")
}

func TestWalksStopAtMaxDepth(t *testing.T) {
	top := t.TempDir()
	deepTree(t, top, maxDepth+3)
	d := openTestDir(t, top)
	u, err := d.Usage()
	assert.ErrorIs(t, err, ErrTooDeep, "usage says what it could not count")
	assert.Zero(t, u.Files, "the bottom file is beyond the bound")
	assert.ErrorIs(t, d.ChownTree(testOwner(), testOwner()), ErrTooDeep, "so does a chown")
}

func TestChownTreeFollowsNothingAndChownsOnlyWhatFromOwns(t *testing.T) {
	needRoot(t, "chown to other uids")
	from, to := Owner{UID: 23456, GID: 23457}, Owner{UID: 34567, GID: 34568}
	v := newVictim(t)
	top := t.TempDir()
	hostileTree(t, top, v)
	require.NoError(t, os.Mkdir(filepath.Join(top, "shared"), 0o755), "a root-owned mount point")
	// Everything, the victim too, is from's: a walk that followed a link
	// would chown the victim.
	var tree []string
	require.NoError(t, filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Name() != "shared" {
			tree = append(tree, p)
			return os.Lchown(p, from.UID, from.GID)
		}
		return nil
	}), "give the tree to from")
	for _, p := range []string{v.dir, v.file} {
		require.NoError(t, os.Chown(p, from.UID, from.GID), "give the victim to from")
	}
	require.NoError(t, unix.Lstat(v.dir, &v.st), "stat the victim again")

	d := openTestDir(t, top)
	// A directory swapped for a symlink to the victim just before it is
	// opened is skipped, not followed.
	elsewhere := t.TempDir()
	d.hook = func(name string) {
		if name == "d" {
			p := filepath.Join(top, "d")
			require.NoError(t, os.Rename(p, filepath.Join(elsewhere, "d")), "move away")
			require.NoError(t, os.Symlink(v.dir, p), "plant")
			require.NoError(t, os.Lchown(p, from.UID, from.GID), "from's symlink")
		}
	}
	require.NoError(t, d.ChownTree(from, to), "chown")

	owner := func(p string) Owner {
		var st unix.Stat_t
		require.NoError(t, unix.Lstat(p, &st), "lstat %s", p)
		return Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	for _, p := range tree {
		if p == filepath.Join(top, "d") || strings.HasPrefix(p, filepath.Join(top, "d")+"/") {
			continue // swapped away
		}
		assert.Equal(t, to, owner(p), "%s is to's", p)
	}
	assert.Equal(t, from, owner(filepath.Join(top, "d")), "the symlink swapped in is left as it is")
	assert.Equal(t, Owner{}, owner(filepath.Join(top, "shared")), "what root owns stays root's")
	v.assertIntact(t)
}

func TestUsageSumsRegularFilesWithoutFollowing(t *testing.T) {
	v := newVictim(t)
	top := t.TempDir()
	hostileTree(t, top, v)
	d := openTestDir(t, top)
	u, err := d.Usage()
	require.NoError(t, err, "usage")
	// f, a/f, a/b/c/f (4 bytes each) and the hard link (the secret); the
	// five symlinks and the FIFO count as files of no bytes.
	assert.Equal(t, Usage{Bytes: 3*4 + int64(len(secretText)), Files: 3 + 1 + 5 + 1}, u, "usage")
}

// TestRemoveAllOfADirectoryAnotherRemoverTook: two removers of one tree
// (the start-up's trash emptying and a replayed delete) may race; one that
// finds the directory it opened already removed has nothing left to do.
func TestRemoveAllOfADirectoryAnotherRemoverTook(t *testing.T) {
	top := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(top, "x"), 0o755), "mkdir")
	d := openTestDir(t, top)
	sub, err := d.OpenDir("x")
	require.NoError(t, err, "open x")
	defer sub.Close()
	require.NoError(t, os.Remove(filepath.Join(top, "x")), "the other remover takes it")
	assert.NoError(t, sub.removeContents(sub, 1), "emptying a removed directory is done")
	assert.NoError(t, d.RemoveAll("x"), "and removing it is no error")
}
