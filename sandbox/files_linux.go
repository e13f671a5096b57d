package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// The files API acts on the host side of a session's trees, through
// mounts.Root, so no path it is given can resolve outside them. Each call
// opens its own root descriptor: there is no lock around file I/O.

// fileTarget is one path resolved to its tree, for one call: close it
// when the call is over.
type fileTarget struct {
	root *mounts.Root
	name Root
	rel  string
	// s is the session, held for the call; done releases it.
	s    *session
	done func()
}

func (t fileTarget) close() {
	_ = t.root.Close()
	t.done()
}

// resolvePath maps a path as the API takes it — relative to the root, or
// absolute as the sandbox sees it — to a tree and a clean relative path.
// A workspace path under "shared/" is the user's shared files, as it is
// inside the sandbox.
func resolvePath(root Root, p string) (Root, string, error) {
	switch root {
	case RootWorkspace, RootShared:
	default:
		return "", "", fmt.Errorf("%w: root %q: want %q or %q", ErrInvalid, root, RootWorkspace, RootShared)
	}
	if strings.HasPrefix(p, "/") {
		prefix := mounts.WorkspaceDir
		if root == RootShared {
			prefix = mounts.SharedDir
		}
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			return "", "", fmt.Errorf("%w: path %q: an absolute path must be under %s", ErrInvalid, p, prefix)
		}
		p = strings.TrimPrefix(rest, "/")
	}
	rel, err := mounts.Clean(p)
	if err != nil {
		return "", "", fileError(err)
	}
	if root == RootWorkspace {
		if rel == "shared" {
			return RootShared, ".", nil
		}
		if rest, ok := strings.CutPrefix(rel, "shared/"); ok {
			return RootShared, rest, nil
		}
	}
	return root, rel, nil
}

// openTarget resolves p in session id's root and opens that tree.
func (m *Manager) openTarget(id string, root Root, p string) (fileTarget, error) {
	name, rel, err := resolvePath(root, p)
	if err != nil {
		return fileTarget{}, err
	}
	s, done, err := m.acquire(id)
	if err != nil {
		return fileTarget{}, err
	}
	dir := s.trees.Files
	if name == RootShared {
		dir = s.shared
	}
	r, err := mounts.OpenRoot(dir, s.owner)
	if err != nil {
		done()
		return fileTarget{}, fmt.Errorf("session %q: %w", id, err)
	}
	return fileTarget{root: r, name: name, rel: rel, s: s, done: done}, nil
}

// fileError maps what resolution and the file system said to the API's
// sentinels, keeping the detail in the message.
func fileError(err error) error {
	var sentinel error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mounts.ErrEscape), errors.Is(err, mounts.ErrNotRegular), errors.Is(err, mounts.ErrLinked),
		errors.Is(err, mounts.ErrSymlink), errors.Is(err, mounts.ErrNotDir),
		errors.Is(err, unix.ELOOP), errors.Is(err, fs.ErrPermission):
		sentinel = ErrForbidden
	case errors.Is(err, fs.ErrNotExist):
		sentinel = ErrNotFound
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EBUSY):
		// Before fs.ErrExist, which ENOTEMPTY also matches.
		sentinel = ErrConflict
	case errors.Is(err, fs.ErrExist):
		sentinel = ErrExists
	case errors.Is(err, errTooLarge):
		sentinel = ErrTooLarge
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		sentinel = ErrQuota
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENAMETOOLONG),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.EXDEV), errors.Is(err, mounts.ErrInvalidName):
		sentinel = ErrInvalid
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

var errTooLarge = errors.New("larger than the file size cap")

func fileInfo(i mounts.Info) FileInfo {
	t := TypeOther
	switch {
	case i.Mode.IsRegular():
		t = TypeFile
	case i.Mode.IsDir():
		t = TypeDir
	case i.Mode&os.ModeSymlink != 0:
		t = TypeSymlink
	}
	rel := i.Path
	if rel == "." {
		rel = ""
	}
	return FileInfo{
		Name:       i.Name,
		Path:       rel,
		Type:       t,
		Size:       i.Size,
		Mode:       i.Mode,
		ModTime:    i.ModTime.UTC(),
		LinkTarget: i.Target,
	}
}

// ListFiles lists a directory of a session's tree.
func (m *Manager) ListFiles(_ context.Context, id string, root Root, p string, recursive bool) (FileList, error) {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return FileList{}, err
	}
	defer t.close()
	infos, truncated, err := t.root.List(t.rel, recursive, m.cfg.MaxListEntries)
	if err != nil {
		return FileList{}, fileError(err)
	}
	list := FileList{Root: t.name, Path: strings.TrimPrefix(t.rel, "."), Entries: make([]FileInfo, 0, len(infos)), Truncated: truncated}
	for _, i := range infos {
		list.Entries = append(list.Entries, fileInfo(i))
	}
	return list, nil
}

// StatFile describes one entry, not following a final symlink.
func (m *Manager) StatFile(_ context.Context, id string, root Root, p string) (FileInfo, error) {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return FileInfo{}, err
	}
	defer t.close()
	info, err := t.root.Stat(t.rel)
	if err != nil {
		return FileInfo{}, fileError(err)
	}
	return fileInfo(info), nil
}

// OpenFile opens a regular file for reading.
func (m *Manager) OpenFile(_ context.Context, id string, root Root, p string) (File, error) {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return File{}, err
	}
	defer t.close()
	f, info, err := t.root.OpenFile(t.rel)
	if err != nil {
		return File{}, fileError(err)
	}
	return File{ReadSeekCloser: f, Info: fileInfo(info)}, nil
}

// MaxFileBytes is the size cap of uploads and of whole-file reads.
func (m *Manager) MaxFileBytes() int64 { return m.cfg.MaxFileBytes }

// readText reads a whole regular file that must be UTF-8 text within the
// size cap.
func (m *Manager) readText(t fileTarget) (string, os.FileMode, error) {
	f, info, err := t.root.OpenFile(t.rel)
	if err != nil {
		return "", 0, fileError(err)
	}
	defer f.Close()
	if info.Size > m.cfg.MaxFileBytes {
		return "", 0, fmt.Errorf("%w: %s is %d bytes, over the cap of %d", ErrTooLarge, t.rel, info.Size, m.cfg.MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, m.cfg.MaxFileBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", t.rel, err)
	}
	if int64(len(data)) > m.cfg.MaxFileBytes {
		return "", 0, fmt.Errorf("%w: %s grew over the cap of %d bytes", ErrTooLarge, t.rel, m.cfg.MaxFileBytes)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return "", 0, fmt.Errorf("%w: %s is binary or not valid UTF-8 text", ErrNotText, t.rel)
	}
	return string(data), info.Mode, nil
}

// ReadText returns lines [line, line+limit) of a text file, numbered from
// 1, without their line endings, and the file's line count. limit 0 means
// to the end.
func (m *Manager) ReadText(_ context.Context, id string, root Root, p string, line, limit int) (TextFile, error) {
	if line < 1 || limit < 0 {
		return TextFile{}, fmt.Errorf("%w: line must be at least 1 and limit not negative", ErrInvalid)
	}
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return TextFile{}, err
	}
	defer t.close()
	text, _, err := m.readText(t)
	if err != nil {
		return TextFile{}, err
	}
	lines := splitLines(text)
	out := TextFile{Path: t.rel, Lines: []TextLine{}, TotalLines: len(lines)}
	for i := line - 1; i < len(lines) && (limit == 0 || i < line-1+limit); i++ {
		out.Lines = append(out.Lines, TextLine{Number: i + 1, Text: lines[i]})
	}
	return out, nil
}

// splitLines splits text at "\n", dropping a "\r" before it; a final line
// ending does not start another line.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// capReader fails once more than n bytes have been read, so an oversized
// upload is refused before its temporary file is renamed into place.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		return n, errTooLarge
	}
	return n, err
}

// WriteFile stores body at p atomically, within the size cap and the
// disk limits: a write the session's disk (or, in shared_files, the
// user's) cannot hold fails with ErrQuota naming the limit, and leaves
// nothing behind.
func (m *Manager) WriteFile(_ context.Context, id string, root Root, p string, body io.Reader, mkdirs bool) (WriteResult, error) {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return WriteResult{}, err
	}
	defer t.close()
	var res mounts.WriteResult
	err = m.charged(func() error {
		var err error
		res, err = t.root.WriteFile(t.rel, &capReader{r: body, n: m.cfg.MaxFileBytes}, mkdirs)
		return err
	})
	if errors.Is(err, errTooLarge) {
		return WriteResult{}, fmt.Errorf("%w: %s: the upload is over the cap of %d bytes", ErrTooLarge, t.rel, m.cfg.MaxFileBytes)
	}
	if err != nil {
		return WriteResult{}, m.fileError(t, err)
	}
	return WriteResult{Path: t.rel, Size: res.Size, SHA256: res.SHA256}, nil
}

// fileError is fileError for a call on t, a full disk named by its limit.
func (m *Manager) fileError(t fileTarget, err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		kind := events.QuotaFiles
		if t.name == RootShared {
			kind = events.QuotaWorkspace
		}
		return m.refused(t.s, kind, m.diskFull(t.s, t.name, err))
	}
	return fileError(err)
}

// EditFile replaces req.Old by req.New in a text file: Old must occur
// exactly once, or exactly req.Count times. In a file with CRLF line
// endings, "\n" in Old and New stands for "\r\n", so the edit keeps them.
func (m *Manager) EditFile(_ context.Context, id string, root Root, req EditRequest) (EditResult, error) {
	if req.Old == "" {
		return EditResult{}, fmt.Errorf("%w: old must not be empty", ErrInvalid)
	}
	if req.Count < 0 {
		return EditResult{}, fmt.Errorf("%w: count must not be negative", ErrInvalid)
	}
	t, err := m.openTarget(id, root, req.Path)
	if err != nil {
		return EditResult{}, err
	}
	defer t.close()
	text, _, err := m.readText(t)
	if err != nil {
		return EditResult{}, err
	}
	old, repl := req.Old, req.New
	if strings.Contains(text, "\r\n") && !strings.Contains(old, "\r\n") {
		old = strings.ReplaceAll(old, "\n", "\r\n")
		repl = strings.ReplaceAll(strings.ReplaceAll(repl, "\r\n", "\n"), "\n", "\r\n")
	}
	want := max(req.Count, 1)
	if n := strings.Count(text, old); n != want {
		return EditResult{}, fmt.Errorf("%w: %s: old text occurs %d times, expected %d", ErrConflict, t.rel, n, want)
	}
	var res mounts.WriteResult
	err = m.charged(func() error {
		var err error
		res, err = t.root.WriteFile(t.rel, strings.NewReader(strings.Replace(text, old, repl, want)), false)
		return err
	})
	if err != nil {
		return EditResult{}, m.fileError(t, err)
	}
	return EditResult{Path: t.rel, Replacements: want, Size: res.Size, SHA256: res.SHA256}, nil
}

// RemoveFile removes a file, a symlink, an empty directory, or with
// recursive a tree.
func (m *Manager) RemoveFile(_ context.Context, id string, root Root, p string, recursive bool) error {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return err
	}
	defer t.close()
	return fileError(t.root.Remove(t.rel, recursive))
}

// Mkdir creates a directory, with its parents when asked.
func (m *Manager) Mkdir(_ context.Context, id string, root Root, p string, parents bool) (FileInfo, error) {
	t, err := m.openTarget(id, root, p)
	if err != nil {
		return FileInfo{}, err
	}
	defer t.close()
	err = m.charged(func() error {
		if parents {
			_, err := t.root.MkdirAll(t.rel)
			return err
		}
		return t.root.Mkdir(t.rel)
	})
	if err != nil {
		return FileInfo{}, m.fileError(t, err)
	}
	info, err := t.root.Stat(t.rel)
	return fileInfo(info), fileError(err)
}

// MoveFile renames within one tree.
func (m *Manager) MoveFile(_ context.Context, id string, root Root, from, to string, overwrite bool) (FileInfo, error) {
	t, err := m.openTarget(id, root, from)
	if err != nil {
		return FileInfo{}, err
	}
	defer t.close()
	toRoot, toRel, err := resolvePath(root, to)
	if err != nil {
		return FileInfo{}, err
	}
	if toRoot != t.name {
		return FileInfo{}, fmt.Errorf("%w: cannot move between the workspace and the shared files", ErrInvalid)
	}
	if err := m.charged(func() error { return t.root.Move(t.rel, toRel, overwrite) }); err != nil {
		return FileInfo{}, m.fileError(t, err)
	}
	info, err := t.root.Stat(toRel)
	return fileInfo(info), fileError(err)
}

// OpenOutput opens a file of the user's shared_files/outputs/ for the
// design's download route.
func (m *Manager) OpenOutput(_ context.Context, userID, name string) (File, error) {
	if err := validateID("user_id", userID); err != nil {
		return File{}, err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return File{}, fmt.Errorf("%w: output name %q must be a single file name", ErrInvalid, name)
	}
	d, err := m.disk(userID)
	if err != nil {
		return File{}, err
	}
	f, info, err := mounts.OpenOutput(d.dirs.SharedFiles, name)
	if err != nil {
		return File{}, fileError(fmt.Errorf("user %q: output %q: %w", userID, name, err))
	}
	return File{ReadSeekCloser: f, Info: fileInfo(info)}, nil
}
