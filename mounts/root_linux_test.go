package mounts

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// hostileRoot is a workspace holding what a sandbox plants, opened as a
// Root, with a victim beside it.
func hostileRoot(t *testing.T) (*Root, string, victim) {
	t.Helper()
	v := newVictim(t)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "dir"), 0o755), "mkdir")
	for p, content := range map[string]string{"a.txt": "a", "dir/inner.txt": "inner"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644), "write %s", p)
	}
	for p, target := range map[string]string{
		"shadowlink": "/etc/shadow",
		"tovictim":   v.dir,
		"victimfile": v.file,
		"mid":        "/etc",
		"c1":         "c2",
		"c2":         strings.Repeat("../", 20) + strings.TrimPrefix(v.dir, "/"),
		"inlink":     "dir/inner.txt",
		"fifolink":   "fifo",
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, p)), "symlink %s", p)
	}
	mkfifo(t, filepath.Join(dir, "fifo"))
	require.NoError(t, os.Link(v.file, filepath.Join(dir, "hard")), "hard link")
	r, err := OpenRoot(dir, testOwner())
	require.NoError(t, err, "open root")
	t.Cleanup(func() { r.Close() })
	return r, dir, v
}

func TestRootRefusesWhatLeadsOut(t *testing.T) {
	r, _, v := hostileRoot(t)
	read := func(p string) error {
		f, _, err := r.OpenFile(p)
		if f != nil {
			f.Close()
		}
		return err
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"read a symlink to /etc/shadow", func() error { return read("shadowlink") }, ErrEscape},
		{"read through a symlink to a host directory", func() error { return read("tovictim/secret") }, ErrEscape},
		{"read a symlink to a host file", func() error { return read("victimfile") }, ErrEscape},
		{"read through a chain climbing out", func() error { return read("c1/secret") }, ErrEscape},
		{"read a hard link to a host file", func() error { return read("hard") }, ErrLinked},
		{"read a FIFO", func() error { return read("fifo") }, ErrNotRegular},
		{"read a symlink to a FIFO", func() error { return read("fifolink") }, ErrNotRegular},
		{"read a directory", func() error { return read("dir") }, ErrNotRegular},
		{"stat through a symlink", func() error { _, err := r.Stat("mid/passwd"); return err }, ErrEscape},
		{"list through a symlink", func() error { _, _, err := r.List("tovictim", true, 100); return err }, ErrEscape},
		{"write under a symlink", func() error { _, err := r.WriteFile("tovictim/new", strings.NewReader("x"), false); return err }, ErrEscape},
		{"write with mkdirs under a symlink", func() error {
			_, err := r.WriteFile("tovictim/a/b", strings.NewReader("x"), true)
			return err
		}, ErrEscape},
		{"mkdir under a symlink", func() error { return r.Mkdir("tovictim/new") }, ErrEscape},
		{"mkdir -p under a chain", func() error { _, err := r.MkdirAll("c1/a/b"); return err }, ErrEscape},
		{"move out through a symlink", func() error { return r.Move("a.txt", "tovictim/a.txt", false) }, ErrEscape},
		{"move in through a symlink", func() error { return r.Move("tovictim/secret", "stolen", false) }, ErrEscape},
		{"remove through a symlink", func() error { return r.Remove("tovictim/secret", false) }, ErrEscape},
		{"remove a tree through a symlink", func() error { return r.Remove("tovictim/secret", true) }, ErrEscape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := within(t, func() (struct{}, error) { return struct{}{}, tt.op() })
			assert.ErrorIs(t, err, tt.want, "refused")
		})
	}
	if os.Geteuid() == 0 {
		t.Run("read a device", func(t *testing.T) {
			mknodNull(t, filepath.Join(r.root.Name(), "null"))
			assert.ErrorIs(t, read("null"), ErrNotRegular, "refused")
		})
	}
	v.assertIntact(t)
}

func TestRootActsOnEntriesNotOnWhatTheyPointTo(t *testing.T) {
	r, dir, v := hostileRoot(t)
	o := testOwner()

	// A symlink inside the root is followed.
	f, info, err := r.OpenFile("inlink")
	require.NoError(t, err, "open a symlink that stays inside")
	data, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "inner", string(data), "its target's content")
	assert.Equal(t, "inlink", info.Name, "named as asked")

	// Writing over a symlink, a hard link or a FIFO replaces the name.
	for _, name := range []string{"victimfile", "hard", "fifo"} {
		res, err := within(t, func() (WriteResult, error) { return r.WriteFile(name, strings.NewReader("new"), false) })
		require.NoError(t, err, "write over %s", name)
		assert.False(t, res.Created, "%s existed", name)
		perm := fs.FileMode(0o644)
		if name == "hard" {
			perm = 0o600 // the victim's, which it shared
		}
		assertOwnedFile(t, filepath.Join(dir, name), o, perm, "new")
	}
	v.assertIntact(t)

	// Removing a tree of links removes the links.
	require.NoError(t, os.Symlink(v.dir, filepath.Join(dir, "dir", "tovictim")), "symlink")
	require.NoError(t, r.Remove("dir", true), "remove a tree")
	require.NoError(t, r.Remove("tovictim", true), "remove a symlink to a directory")
	_, err = r.Stat("dir")
	assert.ErrorIs(t, err, fs.ErrNotExist, "the tree is gone")
	v.assertIntact(t)

	created, err := r.MkdirAll("x/y")
	require.NoError(t, err, "mkdir -p")
	assert.True(t, created, "created")
	assertOwnedDirMode(t, filepath.Join(dir, "x", "y"), o, 0o755)
	created, err = r.MkdirAll("x/y")
	require.NoError(t, err, "mkdir -p again")
	assert.False(t, created, "nothing new")
	_, err = r.MkdirAll("a.txt")
	assert.ErrorIs(t, err, unix.ENOTDIR, "a file is not a directory")
	assert.ErrorIs(t, r.Remove("x", false), unix.ENOTEMPTY, "a non-empty directory needs recursive")
	assert.ErrorIs(t, r.Remove(".", true), unix.EBUSY, "the root stays")
}

func assertOwnedDirMode(t *testing.T, p string, o Owner, perm fs.FileMode) {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(p, &st), "lstat %s", p)
	assert.Equal(t, [2]int{o.UID, o.GID}, [2]int{int(st.Uid), int(st.Gid)}, "%s's owner", p)
	assert.Equal(t, fs.ModeDir|perm, fileMode(st.Mode), "%s's mode", p)
}

func TestRootListReportsLinksAndStopsAtMax(t *testing.T) {
	r, _, _ := hostileRoot(t)
	all, truncated, err := r.List(".", true, 100)
	require.NoError(t, err, "list")
	assert.False(t, truncated, "all of it")
	var paths []string
	targets := map[string]string{}
	for _, i := range all {
		paths = append(paths, i.Path)
		if i.Mode&fs.ModeSymlink != 0 {
			targets[i.Path] = i.Target
		}
	}
	assert.Equal(t, []string{"a.txt", "c1", "c2", "dir", "dir/inner.txt", "fifo", "fifolink", "hard", "inlink", "mid", "shadowlink", "tovictim", "victimfile"},
		paths, "in name order, links not followed")
	assert.Equal(t, "/etc", targets["mid"], "a link's target")
	some, truncated, err := r.List(".", true, 3)
	require.NoError(t, err, "list")
	assert.True(t, truncated, "truncated")
	assert.Len(t, some, 3, "max entries")
}

func TestOpenRootRefusesASymlink(t *testing.T) {
	v := newVictim(t)
	link := filepath.Join(t.TempDir(), "outputs")
	require.NoError(t, os.Symlink(v.dir, link), "symlink")
	_, err := OpenRoot(link, testOwner())
	assert.ErrorIs(t, err, ErrSymlink, "a root named by a symlink is refused")
	_, err = OpenRoot(filepath.Join(v.dir, "missing"), testOwner())
	assert.ErrorIs(t, err, fs.ErrNotExist, "a missing root")
}
