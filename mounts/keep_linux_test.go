package mounts

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// userTree is a user's shared_files and one session's files, laid out as
// the daemon lays them out, in a temporary directory.
type userTree struct {
	files, shared, outputs string
}

func newUserTree(t *testing.T) userTree {
	t.Helper()
	root := t.TempDir()
	u := userTree{
		files:  filepath.Join(root, "sessions", "s1", "files"),
		shared: filepath.Join(root, "shared_files"),
	}
	u.outputs = filepath.Join(u.shared, "outputs")
	for _, d := range []string{u.files, u.outputs, filepath.Join(u.shared, "data")} {
		require.NoError(t, os.MkdirAll(d, 0o755), "mkdir %s", d)
	}
	return u
}

func (u userTree) write(t *testing.T, p, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644), "write %s", p)
}

func (u userTree) keep(t *testing.T, exts ...string) KeptOutputs {
	t.Helper()
	res, err := KeepOutputs(openTestDir(t, u.files), openTestDir(t, u.shared), exts, testOwner())
	require.NoError(t, err, "keep outputs: no error for anything the sandbox did")
	return res
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err, "list %s", dir)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestKeepOutputsRepairsWhatStandsAtOutputs(t *testing.T) {
	v := newVictim(t)
	other := newUserTree(t)
	other.write(t, filepath.Join(other.outputs, "theirs.pdf"), "theirs")
	// Named for this process, so that a kept file that did land in / by
	// mistake is found and removed.
	kept := fmt.Sprintf("sandboxd-keep-test-%d.pdf", os.Getpid())
	t.Cleanup(func() {
		_, err := os.Lstat("/" + kept)
		assert.ErrorIs(t, err, fs.ErrNotExist, "nothing was moved into /")
		os.Remove("/" + kept)
	})

	plants := append(hostilePlants(), plant{"symlink to another user's outputs", func(t *testing.T, p string, _ victim) {
		require.NoError(t, os.Symlink(other.outputs, p))
	}, fs.ModeSymlink})
	for _, pl := range plants {
		t.Run(pl.name, func(t *testing.T) {
			u := newUserTree(t)
			require.NoError(t, os.Remove(u.outputs), "remove outputs")
			pl.make(t, u.outputs, v)
			u.write(t, filepath.Join(u.files, kept), "pdf")
			u.write(t, filepath.Join(u.files, "notes.txt"), "txt")

			res, err := within(t, func() (KeptOutputs, error) {
				return KeepOutputs(openTestDir(t, u.files), openTestDir(t, u.shared), []string{".pdf"}, testOwner())
			})
			require.NoError(t, err, "keep outputs: no error for anything the sandbox did")
			assert.Equal(t, []string{kept}, res.Kept, "the file is kept")
			assert.Empty(t, res.NotKept, "nothing is left behind")
			assert.Contains(t, res.Repaired, "outputs was "+typeName(pl.found), "the repair says what was found")
			assert.Contains(t, res.Repaired, "outputs.invalid-1", "and where it went")
			assert.Equal(t, pl.found, lstatType(t, u.outputs+".invalid-1"), "the bad entry itself was moved aside")
			assertOwnedDir(t, u.outputs, testOwner())
			assert.Equal(t, []string{kept}, listDir(t, u.outputs), "the file is in the new outputs/")
			assert.ElementsMatch(t, []string{kept, "notes.txt"}, listDir(t, u.files), "the originals stay with the session")
			v.assertIntact(t)
			assert.Equal(t, []string{"theirs.pdf"}, listDir(t, other.outputs), "another user's outputs are untouched")
		})
	}

	t.Run("missing", func(t *testing.T) {
		u := newUserTree(t)
		require.NoError(t, os.Remove(u.outputs), "remove outputs")
		u.write(t, filepath.Join(u.files, "a.pdf"), "pdf")
		res := u.keep(t, ".pdf")
		assert.Equal(t, []string{"a.pdf"}, res.Kept, "kept")
		assert.Empty(t, res.Repaired, "nothing to repair")
		assertOwnedDir(t, u.outputs, testOwner())
	})
	t.Run("nothing to keep leaves outputs alone", func(t *testing.T) {
		u := newUserTree(t)
		require.NoError(t, os.Remove(u.outputs), "remove outputs")
		require.NoError(t, os.Symlink(v.dir, u.outputs), "plant")
		res := u.keep(t, ".pdf")
		assert.Equal(t, KeptOutputs{}, res, "nothing done")
		assert.Equal(t, fs.ModeSymlink, lstatType(t, u.outputs), "untouched")
	})
}

func assertOwnedDir(t *testing.T, p string, o Owner) {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err, "lstat %s", p)
	require.True(t, fi.IsDir(), "%s is a real directory, not %v", p, fi.Mode().Type())
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, [2]int{o.UID, o.GID}, [2]int{int(st.Uid), int(st.Gid)}, "%s's owner", p)
	assert.Equal(t, fs.FileMode(0o750), fi.Mode().Perm(), "%s's mode", p)
}

func TestKeepOutputsLeavesWhatIsNotARegularSingleLinkFile(t *testing.T) {
	v := newVictim(t)
	u := newUserTree(t)
	u.write(t, filepath.Join(u.files, "ok.pdf"), "new")
	u.write(t, filepath.Join(u.outputs, "ok.pdf"), "old")
	u.write(t, filepath.Join(u.outputs, "ok-1.pdf"), "old too")
	u.write(t, filepath.Join(u.files, "notes.txt"), "not listed")
	tests := []struct {
		name string
		make func(t *testing.T, p string)
		want error
	}{
		{"link.pdf", func(t *testing.T, p string) { require.NoError(t, os.Symlink(v.file, p)) }, ErrSymlink},
		{"dirlink.pdf", func(t *testing.T, p string) { require.NoError(t, os.Symlink(v.dir, p)) }, ErrSymlink},
		{"dangling.pdf", func(t *testing.T, p string) { require.NoError(t, os.Symlink("/nonexistent-sandboxd", p)) }, ErrSymlink},
		{"fifo.pdf", func(t *testing.T, p string) { mkfifo(t, p) }, ErrNotRegular},
		{"hard.pdf", func(t *testing.T, p string) { require.NoError(t, os.Link(v.file, p)) }, ErrLinked},
		{"dir.pdf", func(t *testing.T, p string) { require.NoError(t, os.Mkdir(p, 0o755)) }, ErrNotRegular},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name string
			make func(t *testing.T, p string)
			want error
		}{"dev.pdf", func(t *testing.T, p string) { mknodNull(t, p) }, ErrNotRegular})
	}
	types := map[string]fs.FileMode{}
	for _, tt := range tests {
		tt.make(t, filepath.Join(u.files, tt.name))
		types[tt.name] = lstatType(t, filepath.Join(u.files, tt.name))
	}

	res := u.keep(t, ".PDF")
	assert.Equal(t, []string{"ok-2.pdf"}, res.Kept, "the regular file is kept, under a free name")
	assert.Empty(t, res.Repaired, "outputs/ was fine")
	notKept := map[string]error{}
	for _, n := range res.NotKept {
		notKept[n.Name] = n.Err
	}
	for _, tt := range tests {
		assert.ErrorIs(t, notKept[tt.name], tt.want, "%s is not kept, and why", tt.name)
		assert.Equal(t, types[tt.name], lstatType(t, filepath.Join(u.files, tt.name)), "%s stays where it was", tt.name)
	}
	assert.Len(t, res.NotKept, len(tests), "only files of a listed kind are reported")
	assert.Equal(t, []string{"ok-1.pdf", "ok-2.pdf", "ok.pdf"}, listDir(t, u.outputs), "nothing else reached outputs/")
	for name, want := range map[string]string{"ok.pdf": "old", "ok-1.pdf": "old too", "ok-2.pdf": "new"} {
		data, err := os.ReadFile(filepath.Join(u.outputs, name))
		require.NoError(t, err, "read %s", name)
		assert.Equal(t, want, string(data), "%s: nothing was replaced", name)
	}
	v.assertIntact(t)
}

func TestKeepOutputsMovesIntoTheDirectoryItChecked(t *testing.T) {
	v := newVictim(t)
	u := newUserTree(t)
	for _, name := range []string{"a.pdf", "b.pdf"} {
		u.write(t, filepath.Join(u.files, name), name)
	}
	files := openTestDir(t, u.files)
	swapped := false
	// Once outputs/ is open, a live session of the same user swaps the
	// name for a symlink to a host directory.
	files.hook = func(string) {
		if !swapped {
			swapped = true
			require.NoError(t, os.Rename(u.outputs, u.outputs+"-real"), "move outputs away")
			require.NoError(t, os.Symlink(v.dir, u.outputs), "plant")
		}
	}
	res, err := KeepOutputs(files, openTestDir(t, u.shared), []string{".pdf"}, testOwner())
	require.NoError(t, err, "keep")
	require.True(t, swapped, "the swap happened")
	assert.Equal(t, []string{"a.pdf", "b.pdf"}, res.Kept, "both kept")
	assert.Equal(t, []string{"a.pdf", "b.pdf"}, listDir(t, u.outputs+"-real"), "into the directory that was checked")
	v.assertIntact(t)
}

func TestOpenOutputServesOnlyRegularSingleLinkFiles(t *testing.T) {
	v := newVictim(t)
	other := newUserTree(t)
	other.write(t, filepath.Join(other.outputs, "secret"), "theirs")
	tests := []struct {
		name  string
		setup func(t *testing.T, u userTree)
		file  string
		want  error
	}{
		{"a kept file", func(*testing.T, userTree) {}, "report.pdf", nil},
		{"outputs a symlink to /etc", func(t *testing.T, u userTree) { replace(t, u.outputs, "/etc") }, "shadow", ErrSymlink},
		{"outputs a symlink to a host directory", func(t *testing.T, u userTree) { replace(t, u.outputs, v.dir) }, "secret", ErrSymlink},
		{"outputs a symlink to another user's", func(t *testing.T, u userTree) { replace(t, u.outputs, other.outputs) }, "secret", ErrSymlink},
		{"outputs a relative symlink inside", func(t *testing.T, u userTree) { replace(t, u.outputs, "data") }, "report.pdf", ErrSymlink},
		{"outputs a dangling symlink", func(t *testing.T, u userTree) { replace(t, u.outputs, "/nonexistent-sandboxd") }, "report.pdf", ErrSymlink},
		{"outputs a file", func(t *testing.T, u userTree) {
			require.NoError(t, os.RemoveAll(u.outputs))
			u.write(t, u.outputs, "x")
		}, "report.pdf", ErrNotDir},
		{"outputs a FIFO", func(t *testing.T, u userTree) {
			require.NoError(t, os.RemoveAll(u.outputs))
			mkfifo(t, u.outputs)
		}, "report.pdf", ErrNotDir},
		{"outputs missing", func(t *testing.T, u userTree) { require.NoError(t, os.RemoveAll(u.outputs)) }, "report.pdf", fs.ErrNotExist},
		{"file missing", func(*testing.T, userTree) {}, "other.pdf", fs.ErrNotExist},
		{"file a symlink to /etc/shadow", func(t *testing.T, u userTree) { replace(t, filepath.Join(u.outputs, "report.pdf"), "/etc/shadow") }, "report.pdf", ErrSymlink},
		{"file a symlink to a host file", func(t *testing.T, u userTree) { replace(t, filepath.Join(u.outputs, "report.pdf"), v.file) }, "report.pdf", ErrSymlink},
		{"file a FIFO", func(t *testing.T, u userTree) {
			require.NoError(t, os.Remove(filepath.Join(u.outputs, "report.pdf")))
			mkfifo(t, filepath.Join(u.outputs, "report.pdf"))
		}, "report.pdf", ErrNotRegular},
		{"file a hard link to a host file", func(t *testing.T, u userTree) {
			require.NoError(t, os.Remove(filepath.Join(u.outputs, "report.pdf")))
			require.NoError(t, os.Link(v.file, filepath.Join(u.outputs, "report.pdf")))
		}, "report.pdf", ErrLinked},
		{"file a device", func(t *testing.T, u userTree) {
			require.NoError(t, os.Remove(filepath.Join(u.outputs, "report.pdf")))
			mknodNull(t, filepath.Join(u.outputs, "report.pdf"))
		}, "report.pdf", ErrNotRegular},
		{"file a directory", func(t *testing.T, u userTree) {
			require.NoError(t, os.Mkdir(filepath.Join(u.outputs, "sub"), 0o755))
		}, "sub", ErrNotRegular},
		{"a path", func(*testing.T, userTree) {}, "../data/report.pdf", ErrInvalidName},
		{"dot dot", func(*testing.T, userTree) {}, "..", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUserTree(t)
			u.write(t, filepath.Join(u.outputs, "report.pdf"), "report")
			u.write(t, filepath.Join(u.shared, "data", "report.pdf"), "data")
			tt.setup(t, u)
			f, err := within(t, func() (*os.File, error) {
				f, _, err := OpenOutput(u.shared, tt.file)
				return f, err
			})
			if tt.want != nil {
				if f != nil {
					f.Close()
				}
				assert.ErrorIs(t, err, tt.want, "refused")
				return
			}
			require.NoError(t, err, "served")
			data, _ := io.ReadAll(f)
			f.Close()
			assert.Equal(t, "report", string(data), "its content")
		})
	}
	_, _, err := OpenOutput(filepath.Join(t.TempDir(), "no-such-user"), "report.pdf")
	assert.ErrorIs(t, err, fs.ErrNotExist, "a user without shared files has no outputs")
	v.assertIntact(t)
}

// replace puts a symlink to target at p, whatever was there.
func replace(t *testing.T, p, target string) {
	t.Helper()
	require.NoError(t, os.RemoveAll(p), "remove %s", p)
	require.NoError(t, os.Symlink(target, p), "symlink %s", p)
}

func TestKeepOutputsReportsAnOutputsThatKeepsChanging(t *testing.T) {
	v := newVictim(t)
	u := newUserTree(t)
	require.NoError(t, os.Remove(u.outputs), "remove outputs")
	for _, name := range []string{"a.pdf", "b.pdf"} {
		u.write(t, filepath.Join(u.files, name), name)
	}
	shared := openTestDir(t, u.shared)
	// A live session of the user swaps every new outputs/ for a symlink
	// before it can be opened.
	swaps := 0
	shared.hook = func(name string) {
		swaps++
		p := filepath.Join(u.shared, name)
		require.NoError(t, os.Remove(p), "remove the new outputs/")
		require.NoError(t, os.Symlink(v.dir, p), "plant")
	}
	res, err := KeepOutputs(openTestDir(t, u.files), shared, []string{".pdf"}, testOwner())
	require.NoError(t, err, "the sandbox's doing is no error of the caller's")
	assert.Equal(t, maxAttempts, swaps, "it tried as often as it may")
	assert.Empty(t, res.Kept, "nothing kept")
	require.Len(t, res.NotKept, 2, "both files reported")
	for _, n := range res.NotKept {
		assert.ErrorIs(t, n.Err, errNoOutputs, "%s: why", n.Name)
	}
	assert.Contains(t, res.Repaired, "outputs was a symlink", "the repairs are reported")
	assert.Equal(t, []string{"a.pdf", "b.pdf"}, listDir(t, u.files), "the files stay where they were")
	v.assertIntact(t)
}

func TestKeepOutputsReportsNoRoomToMoveOutputsAside(t *testing.T) {
	v := newVictim(t)
	u := newUserTree(t)
	replace(t, u.outputs, v.dir)
	// Hard links of one file: much cheaper to make than 10000 symlinks.
	filler := filepath.Join(u.shared, "filler")
	u.write(t, filler, "")
	for i := 1; i <= maxNameTries; i++ {
		require.NoError(t, os.Link(filler, fmt.Sprintf("%s.invalid-%d", u.outputs, i)), "fill the names")
	}
	u.write(t, filepath.Join(u.files, "a.pdf"), "a")
	res := u.keep(t, ".pdf")
	require.Len(t, res.NotKept, 1, "the file is reported")
	assert.ErrorIs(t, res.NotKept[0].Err, errNoOutputs, "why")
	assert.Equal(t, fs.ModeSymlink, lstatType(t, u.outputs), "outputs is left, not followed")
	assert.Equal(t, []string{"a.pdf"}, listDir(t, u.files), "the file stays")
	v.assertIntact(t)
}

func TestKeepOutputsCopies(t *testing.T) {
	u := newUserTree(t)
	u.write(t, filepath.Join(u.files, "a.pdf"), "content of a")
	require.NoError(t, os.Chmod(filepath.Join(u.files, "a.pdf"), 0o4755), "setuid on the original")
	res := u.keep(t, ".pdf")
	assert.Equal(t, []string{"a.pdf"}, res.Kept, "kept")
	data, err := os.ReadFile(filepath.Join(u.outputs, "a.pdf"))
	require.NoError(t, err, "read the copy")
	assert.Equal(t, "content of a", string(data), "the copy's content")
	fi, err := os.Lstat(filepath.Join(u.outputs, "a.pdf"))
	require.NoError(t, err, "lstat the copy")
	st := fi.Sys().(*syscall.Stat_t)
	o := testOwner()
	assert.Equal(t, [2]int{o.UID, o.GID}, [2]int{int(st.Uid), int(st.Gid)}, "the copy belongs to the user")
	assert.Equal(t, fs.FileMode(0o755), fi.Mode()&(fs.ModePerm|fs.ModeSetuid), "the original's permissions, no set-id bit")
	assert.Equal(t, uint64(1), uint64(st.Nlink), "a file of its own, not a link")
	assert.Equal(t, []string{"a.pdf"}, listDir(t, u.files), "the original stays")
}

// TestKeepOutputsReportsAFullSharedFiles: shared_files on a filesystem
// with room for one file of two. The other is reported with ENOSPC, and
// nothing of it is left in outputs/.
func TestKeepOutputsReportsAFullSharedFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	u := newUserTree(t)
	require.NoError(t, syscall.Mount("tmpfs", u.shared, "tmpfs", 0, "size=256k,nr_inodes=64"), "mount a small shared_files")
	t.Cleanup(func() { assert.NoError(t, syscall.Unmount(u.shared, 0), "unmount") })
	require.NoError(t, os.Mkdir(u.outputs, 0o750), "outputs")
	big := make([]byte, 200<<10)
	require.NoError(t, os.WriteFile(filepath.Join(u.files, "a.pdf"), big, 0o644), "a")
	require.NoError(t, os.WriteFile(filepath.Join(u.files, "b.pdf"), big, 0o644), "b")
	res := u.keep(t, ".pdf")
	assert.Equal(t, []string{"a.pdf"}, res.Kept, "the first fits")
	require.Len(t, res.NotKept, 1, "the second is reported")
	assert.Equal(t, "b.pdf", res.NotKept[0].Name, "which")
	assert.ErrorIs(t, res.NotKept[0].Err, syscall.ENOSPC, "why")
	assert.Equal(t, []string{"a.pdf"}, listDir(t, u.outputs), "no partial copy is left")
	assert.Equal(t, []string{"a.pdf", "b.pdf"}, listDir(t, u.files), "the originals stay")
}
