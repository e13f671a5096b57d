package mounts

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// testOwner is who tests give what they create to: another uid and gid
// when root, so that a change of owner shows; the test's own otherwise.
func testOwner() Owner {
	if os.Geteuid() == 0 {
		return Owner{UID: 12345, GID: 12346}
	}
	return Owner{UID: os.Getuid(), GID: os.Getgid()}
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

const secretText = "host secret\n"

// victim is a host directory outside every tree, with one secret file in
// it: what a planted symlink or hard link points at.
type victim struct {
	dir, file string
	st        unix.Stat_t
}

func newVictim(t *testing.T) victim {
	t.Helper()
	v := victim{dir: t.TempDir()}
	v.file = filepath.Join(v.dir, "secret")
	require.NoError(t, os.WriteFile(v.file, []byte(secretText), 0o600), "write the victim")
	require.NoError(t, unix.Lstat(v.dir, &v.st), "stat the victim")
	return v
}

// assertIntact checks that the victim holds only its secret, unchanged,
// and that neither it nor its directory changed owner or mode.
func (v victim) assertIntact(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(v.dir)
	require.NoError(t, err, "list the victim")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"secret"}, names, "nothing was added to or removed from the victim")
	data, err := os.ReadFile(v.file)
	require.NoError(t, err, "read the victim")
	assert.Equal(t, secretText, string(data), "the victim's content is unchanged")
	var st, fst unix.Stat_t
	require.NoError(t, unix.Lstat(v.dir, &st), "stat the victim")
	assert.Equal(t, [3]uint32{v.st.Uid, v.st.Gid, v.st.Mode}, [3]uint32{st.Uid, st.Gid, st.Mode}, "the victim directory's owner and mode")
	require.NoError(t, unix.Lstat(v.file, &fst), "stat the victim file")
	assert.Equal(t, [2]uint32{v.st.Uid, v.st.Gid}, [2]uint32{fst.Uid, fst.Gid}, "the victim file's owner")
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	require.NoError(t, unix.Mkfifo(p, 0o666), "mkfifo %s", p)
}

func mknodNull(t *testing.T, p string) {
	t.Helper()
	needRoot(t, "mknod of a device node")
	require.NoError(t, unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), "mknod %s", p)
}

func openTestDir(t *testing.T, p string) *Dir {
	t.Helper()
	d, err := OpenDir(p)
	require.NoError(t, err, "open %s", p)
	t.Cleanup(func() { d.Close() })
	return d
}

func lstatType(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err, "lstat %s", p)
	return fi.Mode().Type()
}

// within fails the test if op has not returned in a while: a FIFO opened
// for reading would block it for ever.
func within[T any](t *testing.T, op func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := op()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("the operation hangs")
	}
	panic("unreachable")
}

// plant is one hostile thing put at an entry's place.
type plant struct {
	name  string
	make  func(t *testing.T, p string, v victim)
	found fs.FileMode
}

func hostilePlants() []plant {
	return []plant{
		{"symlink to a host directory", func(t *testing.T, p string, v victim) { require.NoError(t, os.Symlink(v.dir, p)) }, fs.ModeSymlink},
		{"symlink to /", func(t *testing.T, p string, _ victim) { require.NoError(t, os.Symlink("/", p)) }, fs.ModeSymlink},
		{"relative symlink climbing out", func(t *testing.T, p string, v victim) {
			require.NoError(t, os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(v.dir, "/"), p))
		}, fs.ModeSymlink},
		{"dangling symlink", func(t *testing.T, p string, _ victim) { require.NoError(t, os.Symlink("/nonexistent-sandboxd", p)) }, fs.ModeSymlink},
		{"regular file", func(t *testing.T, p string, _ victim) { require.NoError(t, os.WriteFile(p, []byte("x"), 0o644)) }, 0},
		{"FIFO", func(t *testing.T, p string, _ victim) { mkfifo(t, p) }, fs.ModeNamedPipe},
	}
}

func TestOpenDirRefusesWhatIsNotADirectory(t *testing.T) {
	v := newVictim(t)
	top := t.TempDir()
	d := openTestDir(t, top)
	require.NoError(t, os.Mkdir(filepath.Join(top, "real"), 0o755), "mkdir")
	sub, err := d.OpenDir("real")
	require.NoError(t, err, "a real directory opens")
	sub.Close()

	for _, pl := range hostilePlants() {
		t.Run(pl.name, func(t *testing.T) {
			name := entryName(pl.name)
			pl.make(t, filepath.Join(top, name), v)
			_, err := within(t, func() (*Dir, error) { return d.OpenDir(name) })
			assert.ErrorIs(t, err, ErrNotDir, "refused as not a directory")
			var typeErr *TypeError
			require.ErrorAs(t, err, &typeErr, "a *TypeError")
			assert.Equal(t, pl.found, typeErr.Found, "it says what it found")
			assert.Equal(t, pl.found == fs.ModeSymlink, errors.Is(err, ErrSymlink), "ErrSymlink matches a symlink only")

			_, err = within(t, func() (*Dir, error) { return OpenDir(filepath.Join(top, name)) })
			assert.ErrorIs(t, err, ErrNotDir, "OpenDir refuses it as a last component too")
		})
	}
	_, err = d.OpenDir("missing")
	assert.ErrorIs(t, err, fs.ErrNotExist, "a missing entry")
	for _, name := range []string{"", ".", "..", "real/..", "a\x00b"} {
		_, err := d.OpenDir(name)
		assert.ErrorIs(t, err, ErrInvalidName, "%q is not a single name", name)
	}
	v.assertIntact(t)
}

func TestDirOpenFileRefusesWhatIsNotARegularSingleLinkFile(t *testing.T) {
	v := newVictim(t)
	top := t.TempDir()
	d := openTestDir(t, top)
	require.NoError(t, os.WriteFile(filepath.Join(top, "ok"), []byte("ok"), 0o644), "write")
	f, err := d.OpenFile("ok")
	require.NoError(t, err, "a regular file opens")
	data, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "ok", string(data), "its content")

	tests := []struct {
		name string
		make func(t *testing.T, p string)
		want error
	}{
		{"symlink to a host file", func(t *testing.T, p string) { require.NoError(t, os.Symlink(v.file, p)) }, ErrSymlink},
		{"symlink to /etc/shadow", func(t *testing.T, p string) { require.NoError(t, os.Symlink("/etc/shadow", p)) }, ErrSymlink},
		{"dangling symlink", func(t *testing.T, p string) { require.NoError(t, os.Symlink("/nonexistent-sandboxd", p)) }, ErrSymlink},
		{"FIFO", func(t *testing.T, p string) { mkfifo(t, p) }, ErrNotRegular},
		{"hard link to a host file", func(t *testing.T, p string) { require.NoError(t, os.Link(v.file, p)) }, ErrLinked},
		{"directory", func(t *testing.T, p string) { require.NoError(t, os.Mkdir(p, 0o755)) }, ErrNotRegular},
		{"device", func(t *testing.T, p string) { mknodNull(t, p) }, ErrNotRegular},
		{"socket", func(t *testing.T, p string) {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			require.NoError(t, err, "socket")
			defer unix.Close(fd)
			require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: p}), "bind")
		}, ErrNotRegular},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := entryName(tt.name)
			tt.make(t, filepath.Join(top, name))
			f, err := within(t, func() (*os.File, error) { return d.OpenFile(name) })
			if f != nil {
				f.Close()
			}
			assert.ErrorIs(t, err, tt.want, "refused")
		})
	}
	v.assertIntact(t)
}

func TestDirOpenFileReadsWhatItCheckedWhenSwappedAfter(t *testing.T) {
	v := newVictim(t)
	top := t.TempDir()
	d := openTestDir(t, top)
	p := filepath.Join(top, "report.pdf")
	require.NoError(t, os.WriteFile(p, []byte("mine"), 0o644), "write")
	d.hook = func(string) {
		require.NoError(t, os.Remove(p), "remove the checked file")
		require.NoError(t, os.Symlink(v.file, p), "plant a symlink in its place")
	}
	f, err := d.OpenFile("report.pdf")
	require.NoError(t, err, "open")
	data, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "mine", string(data), "the checked inode is read, not the symlink swapped in")
	v.assertIntact(t)
}

func TestDirWriteFileNeverWritesThroughWhatIsThere(t *testing.T) {
	v := newVictim(t)
	o := testOwner()
	tests := []struct {
		name string
		make func(t *testing.T, p string)
	}{
		{"nothing", func(*testing.T, string) {}},
		{"regular file", func(t *testing.T, p string) { require.NoError(t, os.WriteFile(p, []byte("old"), 0o600)) }},
		{"symlink to a host file", func(t *testing.T, p string) { require.NoError(t, os.Symlink(v.file, p)) }},
		{"dangling symlink into a host directory", func(t *testing.T, p string) {
			require.NoError(t, os.Symlink(filepath.Join(v.dir, "new"), p))
		}},
		{"FIFO", func(t *testing.T, p string) { mkfifo(t, p) }},
		{"hard link to a host file", func(t *testing.T, p string) { require.NoError(t, os.Link(v.file, p)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			d := openTestDir(t, top)
			p := filepath.Join(top, "f")
			tt.make(t, p)
			n, err := within(t, func() (int64, error) { return d.WriteFile("f", strings.NewReader("new"), 0o640, o) })
			require.NoError(t, err, "write")
			assert.Equal(t, int64(3), n, "bytes written")
			assertOwnedFile(t, p, o, 0o640, "new")
			names, err := d.names()
			require.NoError(t, err, "list")
			assert.Equal(t, []string{"f"}, names, "no temporary file is left")
			v.assertIntact(t)
		})
	}
	t.Run("symlink swapped in before the rename", func(t *testing.T) {
		top := t.TempDir()
		d := openTestDir(t, top)
		p := filepath.Join(top, "f")
		d.hook = func(string) { require.NoError(t, os.Symlink(v.file, p), "plant") }
		_, err := d.WriteFile("f", strings.NewReader("new"), 0o644, o)
		require.NoError(t, err, "write")
		assertOwnedFile(t, p, o, 0o644, "new")
		v.assertIntact(t)
	})
	t.Run("directory", func(t *testing.T) {
		top := t.TempDir()
		d := openTestDir(t, top)
		require.NoError(t, os.Mkdir(filepath.Join(top, "f"), 0o755), "mkdir")
		_, err := d.WriteFile("f", strings.NewReader("new"), 0o644, o)
		assert.Error(t, err, "a directory is not replaced")
		assert.True(t, lstatType(t, filepath.Join(top, "f")).IsDir(), "it is still a directory")
	})
}

func assertOwnedFile(t *testing.T, p string, o Owner, perm fs.FileMode, content string) {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err, "lstat %s", p)
	require.True(t, fi.Mode().IsRegular(), "%s is a regular file, not %v", p, fi.Mode().Type())
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, uint64(1), uint64(st.Nlink), "%s has one link", p)
	assert.Equal(t, [2]int{o.UID, o.GID}, [2]int{int(st.Uid), int(st.Gid)}, "%s's owner", p)
	assert.Equal(t, perm, fi.Mode().Perm(), "%s's mode, whatever the umask", p)
	data, err := os.ReadFile(p)
	require.NoError(t, err, "read %s", p)
	assert.Equal(t, content, string(data), "%s's content", p)
}

func TestDirCreateFileNeverOpensWhatIsThere(t *testing.T) {
	v := newVictim(t)
	o := testOwner()
	top := t.TempDir()
	d := openTestDir(t, top)
	for _, pl := range hostilePlants() {
		name := entryName(pl.name)
		pl.make(t, filepath.Join(top, name), v)
		f, err := within(t, func() (*os.File, error) { return d.CreateFile(name, 0o640, o) })
		if f != nil {
			f.Close()
		}
		assert.ErrorIs(t, err, fs.ErrExist, "%s: not created over", pl.name)
		assert.Equal(t, pl.found, lstatType(t, filepath.Join(top, name)), "%s: left as it was", pl.name)
	}
	f, err := d.CreateFile("process-1.log", 0o640, o)
	require.NoError(t, err, "create a new file")
	_, err = f.WriteString("log")
	require.NoError(t, err, "write")
	require.NoError(t, f.Close(), "close")
	assertOwnedFile(t, filepath.Join(top, "process-1.log"), o, 0o640, "log")
	v.assertIntact(t)
}

func TestDirMkdirOwnsOnlyWhatItMade(t *testing.T) {
	v := newVictim(t)
	o := testOwner()
	top := t.TempDir()
	d := openTestDir(t, top)
	sub, err := d.Mkdir("made", 0o750, o)
	require.NoError(t, err, "mkdir")
	sub.Close()
	fi, err := os.Lstat(filepath.Join(top, "made"))
	require.NoError(t, err, "lstat")
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, [2]int{o.UID, o.GID}, [2]int{int(st.Uid), int(st.Gid)}, "owned by the owner given")
	assert.Equal(t, fs.ModeDir|0o750, fi.Mode(), "with the mode given, whatever the umask")

	_, err = d.Mkdir("made", 0o750, o)
	assert.ErrorIs(t, err, fs.ErrExist, "an existing entry")

	// Swapped for a symlink to a host directory between the mkdir and
	// the chown: the host directory keeps its owner.
	d.hook = func(name string) {
		p := filepath.Join(top, name)
		require.NoError(t, os.Remove(p), "remove the new directory")
		require.NoError(t, os.Symlink(v.dir, p), "plant a symlink")
	}
	_, err = d.Mkdir("swapped", 0o750, o)
	assert.ErrorIs(t, err, ErrSymlink, "the swap is refused")
	v.assertIntact(t)
}

func TestDirMoveNeverReplaces(t *testing.T) {
	v := newVictim(t)
	from, to := t.TempDir(), t.TempDir()
	fd, td := openTestDir(t, from), openTestDir(t, to)
	require.NoError(t, os.WriteFile(filepath.Join(from, "a"), []byte("a"), 0o644), "write")
	require.NoError(t, os.WriteFile(filepath.Join(to, "a"), []byte("theirs"), 0o644), "write")
	assert.ErrorIs(t, fd.Move("a", td, "a"), fs.ErrExist, "a taken name")
	require.NoError(t, fd.Move("a", td, "b"), "a free name")
	data, err := os.ReadFile(filepath.Join(to, "a"))
	require.NoError(t, err, "read")
	assert.Equal(t, "theirs", string(data), "the taken name is untouched")

	require.NoError(t, os.Symlink(v.dir, filepath.Join(from, "link")), "symlink")
	require.NoError(t, fd.Move("link", td, "link"), "a symlink moves as itself")
	assert.Equal(t, fs.ModeSymlink, lstatType(t, filepath.Join(to, "link")), "still a symlink")
	assert.ErrorIs(t, fd.Move("a/../b", td, "c"), ErrInvalidName, "a path is not a name")
	v.assertIntact(t)
}

func TestDirRemoveRemovesLinksNotTargets(t *testing.T) {
	v := newVictim(t)
	top := t.TempDir()
	d := openTestDir(t, top)
	require.NoError(t, os.Symlink(v.dir, filepath.Join(top, "link")), "symlink")
	require.NoError(t, os.Link(v.file, filepath.Join(top, "hard")), "hard link")
	require.NoError(t, os.Mkdir(filepath.Join(top, "empty"), 0o755), "mkdir")
	for _, name := range []string{"link", "hard", "empty"} {
		require.NoError(t, d.Remove(name), "remove %s", name)
	}
	names, err := d.names()
	require.NoError(t, err, "list")
	assert.Empty(t, names, "all gone")
	v.assertIntact(t)
}

// entryName makes a test case's name a file name.
func entryName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '/' {
			return '-'
		}
		return r
	}, s)
}
