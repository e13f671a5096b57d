package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileSession is a session whose workspace holds the traps a sandbox
// (or a careless host) can plant, and a file outside every root that no
// operation may read or change.
type hostileSession struct {
	Session
	files  string // the workspace on the host
	secret string // a host file outside the roots
}

const secretText = "host secret\n"

func newHostileSession(t *testing.T) hostileSession {
	s := startSession(t, "hostile", nil)
	trees := env.treesOf(t, s)
	h := hostileSession{Session: s, files: trees.Files}
	// The secret lives outside the roots on the session's own file system
	// (its disk image, or its quota project), the only place a hard link
	// to it can come from.
	h.secret = filepath.Join(trees.Root, "secret")
	require.NoError(t, os.WriteFile(h.secret, []byte(secretText), 0o600), "write the host secret")

	// Planted from inside, as a hostile command would.
	res := run(t, s.ID, `cd /workspace && echo ok > a.txt && mkdir -p dir sw &&
		echo inner > dir/inner.txt && echo f > sw/f &&
		ln -s /etc/shadow shadowlink && ln -s / rootlink && ln -s /etc mid &&
		ln -s c2 c1 && ln -s ../../../../../../../../etc c2 && ln -s dir/inner.txt inlink &&
		mkfifo fifo`, 10)
	require.Equal(t, 0, res.ExitCode, "plant traps: %s", res.Stderr)
	// Planted from the host: what a sandbox cannot make itself.
	require.NoError(t, os.Link(h.secret, filepath.Join(h.files, "hard")), "hard link to a host file")
	require.NoError(t, syscall.Mknod(filepath.Join(h.files, "null"), syscall.S_IFCHR|0o666, 1<<8|3), "device node")
	return h
}

func (h hostileSession) assertSecretIntact(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(h.secret)
	require.NoError(t, err, "read the host secret")
	assert.Equal(t, secretText, string(data), "the host file is unchanged")
}

func TestFilesHostilePaths(t *testing.T) {
	h := newHostileSession(t)
	ctx := context.Background()
	read := func(p string) error {
		f, err := env.m.OpenFile(ctx, h.ID, RootWorkspace, p)
		if err == nil {
			data, _ := io.ReadAll(f)
			f.Close()
			return fmt.Errorf("read %d bytes: %q", len(data), data)
		}
		return err
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"parent", func() error { return read("../x") }, ErrForbidden},
		{"parent after a component", func() error { return read("a/../../x") }, ErrForbidden},
		{"absolute host path", func() error { return read("/etc/passwd") }, ErrInvalid},
		{"NUL byte", func() error { return read("a\x00b") }, ErrInvalid},
		{"over-long name", func() error { return read(strings.Repeat("n", 300)) }, ErrInvalid},
		{"symlink to /etc/shadow", func() error { return read("shadowlink") }, ErrForbidden},
		{"symlink to /", func() error { return read("rootlink/etc/passwd") }, ErrForbidden},
		{"symlink chain leaving the root", func() error { return read("c1/passwd") }, ErrForbidden},
		{"symlink in a middle component", func() error { return read("mid/passwd") }, ErrForbidden},
		{"hard link to a host file", func() error { return read("hard") }, ErrForbidden},
		{"FIFO", func() error { return read("fifo") }, ErrForbidden},
		{"device node", func() error { return read("null") }, ErrForbidden},
		{"text of a symlink leaving the root", func() error {
			_, err := env.m.ReadText(ctx, h.ID, RootWorkspace, "shadowlink", 1, 0)
			return err
		}, ErrForbidden},
		{"list through a symlink to /", func() error {
			_, err := env.m.ListFiles(ctx, h.ID, RootWorkspace, "rootlink", false)
			return err
		}, ErrForbidden},
		{"write under a symlink to /etc", func() error {
			_, err := env.m.WriteFile(ctx, h.ID, RootWorkspace, "mid/sandboxd-escape", strings.NewReader("x"), false)
			return err
		}, ErrForbidden},
		{"write with mkdirs through a symlink to /", func() error {
			_, err := env.m.WriteFile(ctx, h.ID, RootWorkspace, "rootlink/tmp/sandboxd-escape", strings.NewReader("x"), true)
			return err
		}, ErrForbidden},
		{"mkdir under a symlink", func() error {
			_, err := env.m.Mkdir(ctx, h.ID, RootWorkspace, "mid/sandboxd-escape", false)
			return err
		}, ErrForbidden},
		{"move out through a symlink", func() error {
			_, err := env.m.MoveFile(ctx, h.ID, RootWorkspace, "a.txt", "mid/sandboxd-escape", false)
			return err
		}, ErrForbidden},
		{"edit through a symlink", func() error {
			_, err := env.m.EditFile(ctx, h.ID, RootWorkspace, EditRequest{Path: "shadowlink", Old: "root", New: "x"})
			return err
		}, ErrForbidden},
		{"edit a hard link", func() error {
			_, err := env.m.EditFile(ctx, h.ID, RootWorkspace, EditRequest{Path: "hard", Old: "host", New: "x"})
			return err
		}, ErrForbidden},
		{"remove the root", func() error { return env.m.RemoveFile(ctx, h.ID, RootWorkspace, "", true) }, ErrConflict},
		{"download with a path", func() error {
			_, err := env.m.OpenOutput(ctx, h.UserID, "../sessions/x")
			return err
		}, ErrInvalid},
		{"unknown root", func() error {
			_, err := env.m.ListFiles(ctx, h.ID, "host", "", false)
			return err
		}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tt.op() }()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, tt.want, "refused with the right error")
			case <-time.After(5 * time.Second):
				t.Fatal("the operation hangs")
			}
		})
	}
	_, err := os.Stat("/etc/sandboxd-escape")
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was written to /etc")
	_, err = os.Stat("/tmp/sandboxd-escape")
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was written to /tmp")
	h.assertSecretIntact(t)
}

func TestFilesHostileTargetsAreContained(t *testing.T) {
	h := newHostileSession(t)
	ctx := context.Background()
	shadow, err := os.ReadFile("/etc/shadow")
	require.NoError(t, err, "read /etc/shadow")

	// Writing over a symlink, a hard link or a FIFO replaces the name in
	// the workspace; the host files behind them are untouched.
	for _, name := range []string{"shadowlink", "hard", "fifo"} {
		res, err := env.m.WriteFile(ctx, h.ID, RootWorkspace, name, strings.NewReader("replaced"), false)
		require.NoError(t, err, "write over %s", name)
		assert.Equal(t, int64(8), res.Size, "size written to %s", name)
		info, err := env.m.StatFile(ctx, h.ID, RootWorkspace, name)
		require.NoError(t, err, "stat %s", name)
		assert.Equal(t, TypeFile, info.Type, "%s is now a regular file", name)
	}
	after, err := os.ReadFile("/etc/shadow")
	require.NoError(t, err, "read /etc/shadow")
	assert.Equal(t, shadow, after, "/etc/shadow is unchanged")
	h.assertSecretIntact(t)

	// Removing symlinks removes the links, never what they point to.
	require.NoError(t, env.m.RemoveFile(ctx, h.ID, RootWorkspace, "rootlink", true), "remove the link to /")
	require.NoError(t, env.m.RemoveFile(ctx, h.ID, RootWorkspace, "mid", true), "remove the link to /etc")
	assert.FileExists(t, "/etc/passwd", "/etc is intact")

	// A symlink that stays inside is followed; listings report links.
	f, err := env.m.OpenFile(ctx, h.ID, RootWorkspace, "inlink")
	require.NoError(t, err, "a symlink inside the root is followed")
	data, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "inner\n", string(data), "content through an inner symlink")
	list, err := env.m.ListFiles(ctx, h.ID, RootWorkspace, "", false)
	require.NoError(t, err, "list the workspace")
	for _, e := range list.Entries {
		if e.Name == "c1" {
			assert.Equal(t, TypeSymlink, e.Type, "a symlink is reported as one")
			assert.Equal(t, "c2", e.LinkTarget, "with its target")
		}
	}
}

func TestFilesDirectorySwappedForSymlink(t *testing.T) {
	h := newHostileSession(t)
	ctx := context.Background()
	_, err := env.m.StatFile(ctx, h.ID, RootWorkspace, "sw/f")
	require.NoError(t, err, "the directory is there at first")

	res := run(t, h.ID, "cd /workspace && rm -r sw && ln -s / sw", 10)
	require.Equal(t, 0, res.ExitCode, "swap the directory for a symlink: %s", res.Stderr)

	_, err = env.m.OpenFile(ctx, h.ID, RootWorkspace, "sw/etc/passwd")
	assert.ErrorIs(t, err, ErrForbidden, "the next call does not follow the swap")
	_, err = env.m.WriteFile(ctx, h.ID, RootWorkspace, "sw/f", strings.NewReader("x"), false)
	assert.ErrorIs(t, err, ErrForbidden, "nor does a write")
}

func TestFilesRoundTrips(t *testing.T) {
	s := startSession(t, "roundtrip", nil)
	ctx := context.Background()

	// A 20 MiB binary upload and download.
	blob := make([]byte, 20<<20)
	_, err := rand.Read(blob)
	require.NoError(t, err, "random data")
	sum := sha256.Sum256(blob)
	res, err := env.m.WriteFile(ctx, s.ID, RootWorkspace, "/workspace/data/blob.bin", bytes.NewReader(blob), true)
	require.NoError(t, err, "upload")
	assert.Equal(t, int64(len(blob)), res.Size, "size")
	assert.Equal(t, hex.EncodeToString(sum[:]), res.SHA256, "sha256 of the upload")
	f, err := env.m.OpenFile(ctx, s.ID, RootWorkspace, "data/blob.bin")
	require.NoError(t, err, "open for download")
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	require.NoError(t, err, "download")
	assert.Equal(t, sum[:], h.Sum(nil), "sha256 of the download")

	// An upload over the cap is refused and leaves nothing (on a disk
	// that could hold it: the cap says no first).
	_, err = env.m.WriteFile(ctx, s.ID, RootWorkspace, "big.bin", io.LimitReader(zeroReader{}, env.cfg.MaxFileBytes+1), false)
	assert.ErrorIs(t, err, ErrTooLarge, "over the cap")
	list, err := env.m.ListFiles(ctx, s.ID, RootWorkspace, "", false)
	require.NoError(t, err, "list")
	for _, e := range list.Entries {
		assert.NotContains(t, e.Name, "big.bin", "no file from the refused upload")
		assert.NotContains(t, e.Name, ".sandboxd-tmp", "no temporary file left")
	}

	// Written through the API: the sandbox user's, with a process's mode.
	_, err = env.m.WriteFile(ctx, s.ID, RootWorkspace, "notes/hello.txt", strings.NewReader("hello\n"), true)
	require.NoError(t, err, "write text")
	inside := run(t, s.ID, "stat -c '%u %a %n' /workspace/notes /workspace/notes/hello.txt && cat /workspace/notes/hello.txt", 10)
	uid := env.uidOf(t, s.UserID)
	assert.Equal(t, fmt.Sprintf("%[1]d 755 /workspace/notes\n%[1]d 644 /workspace/notes/hello.txt\nhello\n", uid), inside.Stdout, "visible inside with the user's own uid")

	// Written inside: readable through the API, in both roots.
	require.Equal(t, 0, run(t, s.ID, "printf 'one\\ntwo\\nthree\\n' > /workspace/lines.txt && echo s > /workspace/shared/data/s.txt", 10).ExitCode, "write inside")
	text, err := env.m.ReadText(ctx, s.ID, RootWorkspace, "lines.txt", 2, 1)
	require.NoError(t, err, "read text")
	assert.Equal(t, []TextLine{{Number: 2, Text: "two"}}, text.Lines, "line 2 only")
	assert.Equal(t, 3, text.TotalLines, "total line count")
	shared, err := env.m.ReadText(ctx, s.ID, RootShared, "data/s.txt", 1, 0)
	require.NoError(t, err, "read the shared root")
	assert.Equal(t, "s", shared.Lines[0].Text, "shared file")
	viaWorkspace, err := env.m.StatFile(ctx, s.ID, RootWorkspace, "/workspace/shared/data/s.txt")
	require.NoError(t, err, "the shared files under /workspace/shared")
	assert.Equal(t, int64(2), viaWorkspace.Size, "same file through the workspace path")

	// Binary is refused as text.
	_, err = env.m.ReadText(ctx, s.ID, RootWorkspace, "data/blob.bin", 1, 0)
	assert.ErrorIs(t, err, ErrNotText, "binary content is not text")

	// mkdir, move, remove.
	_, err = env.m.Mkdir(ctx, s.ID, RootWorkspace, "a/b/c", true)
	require.NoError(t, err, "mkdir -p")
	_, err = env.m.Mkdir(ctx, s.ID, RootWorkspace, "a/b/c", false)
	assert.ErrorIs(t, err, ErrExists, "mkdir of an existing directory")
	_, err = env.m.MoveFile(ctx, s.ID, RootWorkspace, "lines.txt", "a/b/c/lines.txt", false)
	require.NoError(t, err, "move")
	_, err = env.m.MoveFile(ctx, s.ID, RootWorkspace, "notes/hello.txt", "a/b/c/lines.txt", false)
	assert.ErrorIs(t, err, ErrExists, "a move does not overwrite unless asked")
	_, err = env.m.MoveFile(ctx, s.ID, RootWorkspace, "a", "shared/a", false)
	assert.ErrorIs(t, err, ErrInvalid, "no move between the roots")
	assert.ErrorIs(t, env.m.RemoveFile(ctx, s.ID, RootWorkspace, "a", false), ErrConflict, "a non-empty directory needs recursive")
	require.NoError(t, env.m.RemoveFile(ctx, s.ID, RootWorkspace, "a", true), "remove a tree")
	_, err = env.m.StatFile(ctx, s.ID, RootWorkspace, "a")
	assert.ErrorIs(t, err, ErrNotFound, "the tree is gone")
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestFilesEdit(t *testing.T) {
	s := startSession(t, "edit", nil)
	ctx := context.Background()
	write := func(name, content string) {
		_, err := env.m.WriteFile(ctx, s.ID, RootWorkspace, name, strings.NewReader(content), false)
		require.NoError(t, err, "write %s", name)
	}
	readBack := func(name string) string {
		f, err := env.m.OpenFile(ctx, s.ID, RootWorkspace, name)
		require.NoError(t, err, "open %s", name)
		defer f.Close()
		data, err := io.ReadAll(f)
		require.NoError(t, err, "read %s", name)
		return string(data)
	}
	tests := []struct {
		name, content string
		req           EditRequest
		want          string
		err           error
	}{
		{"once", "a b c\n", EditRequest{Old: "b", New: "B"}, "a B c\n", nil},
		{"zero occurrences", "a b c\n", EditRequest{Old: "x", New: "y"}, "a b c\n", ErrConflict},
		{"ambiguous", "x x x\n", EditRequest{Old: "x", New: "y"}, "x x x\n", ErrConflict},
		{"count three", "x x x\n", EditRequest{Old: "x", New: "y", Count: 3}, "y y y\n", nil},
		{"count mismatch", "x x x\n", EditRequest{Old: "x", New: "y", Count: 2}, "x x x\n", ErrConflict},
		{"empty old", "x\n", EditRequest{Old: "", New: "y"}, "x\n", ErrInvalid},
		{"three lines in a CRLF file", "one\r\ntwo\r\nthree\r\nfour\r\n",
			EditRequest{Old: "one\ntwo\nthree", New: "1\n2\n3"}, "1\r\n2\r\n3\r\nfour\r\n", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("edit-%d.txt", i)
			write(name, tt.content)
			tt.req.Path = name
			res, err := env.m.EditFile(ctx, s.ID, RootWorkspace, tt.req)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err, "refused")
			} else {
				require.NoError(t, err, "edited")
				assert.Equal(t, max(tt.req.Count, 1), res.Replacements, "replacements")
			}
			assert.Equal(t, tt.want, readBack(name), "content after the edit")
		})
	}
	_, err := env.m.EditFile(ctx, s.ID, RootWorkspace, EditRequest{Path: "edit-1.txt", Old: "x", New: "y"})
	assert.Contains(t, fmt.Sprint(err), "occurs 0 times", "the conflict says how many occurrences")
}

func TestFilesDownloadKeptOutput(t *testing.T) {
	s := startSession(t, "download", nil)
	ctx := context.Background()
	require.Equal(t, 0, run(t, s.ID, "echo report > /workspace/report.pdf && echo notes > /workspace/notes.txt", 10).ExitCode, "write outputs")
	_, err := env.m.DeleteSession(ctx, s.ID, true)
	require.NoError(t, err, "delete with keep_files")

	f, err := env.m.OpenOutput(ctx, s.UserID, "report.pdf")
	require.NoError(t, err, "a kept file is served")
	data, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "report\n", string(data), "its content")
	_, err = env.m.OpenOutput(ctx, s.UserID, "notes.txt")
	assert.ErrorIs(t, err, ErrNotFound, "a file that was not kept is not there")
	_, err = env.m.OpenOutput(ctx, "nobody-at-all", "report.pdf")
	assert.ErrorIs(t, err, ErrNotFound, "an unknown user has nothing")
}

// BenchmarkListFiles lists a 10,000-file directory through the files API.
func BenchmarkListFiles(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer env.m.DeleteSession(ctx, s.ID, false)
	dir := filepath.Join(env.treesOf(b, s).Files, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		list, err := env.m.ListFiles(ctx, s.ID, RootWorkspace, "many", false)
		if err != nil || len(list.Entries) != 10000 {
			b.Fatal(err, len(list.Entries))
		}
	}
}
