package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/mounts"
)

// The files API acts on the host side of a session's trees, through
// mounts.Root, so no path it is given can resolve outside them. Each call
// opens its own root descriptor: there is no lock around file I/O.

// fileTarget is one path resolved to its tree.
type fileTarget struct {
	root *mounts.Root
	// name is api.RootWorkspace or api.RootShared.
	name string
	rel  string
}

// resolvePath maps a path as the API takes it — relative to the root, or
// absolute as the sandbox sees it — to a tree and a clean relative path.
// A workspace path under "shared/" is the user's shared files, as it is
// inside the sandbox.
func resolvePath(root, p string) (string, string, error) {
	switch root {
	case "", api.RootWorkspace:
		root = api.RootWorkspace
	case api.RootShared:
	default:
		return "", "", fmt.Errorf("%w: root %q: want %q or %q", api.ErrInvalidArgument, root, api.RootWorkspace, api.RootShared)
	}
	if strings.HasPrefix(p, "/") {
		prefix := mounts.WorkspaceDir
		if root == api.RootShared {
			prefix = mounts.SharedDir
		}
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			return "", "", fmt.Errorf("%w: path %q: an absolute path must be under %s", api.ErrInvalidArgument, p, prefix)
		}
		p = strings.TrimPrefix(rest, "/")
	}
	rel, err := mounts.Clean(p)
	if err != nil {
		return "", "", fileError(err)
	}
	if root == api.RootWorkspace {
		if rel == "shared" {
			return api.RootShared, ".", nil
		}
		if rest, ok := strings.CutPrefix(rel, "shared/"); ok {
			return api.RootShared, rest, nil
		}
	}
	return root, rel, nil
}

// openTarget resolves p in session id's root and opens that tree.
func (m *Manager) openTarget(id, root, p string) (fileTarget, *session, error) {
	if m.filesErr != nil {
		return fileTarget{}, nil, fmt.Errorf("%w: the file API is off: %w", api.ErrUnavailable, m.filesErr)
	}
	s, err := m.lookup(id)
	if err != nil {
		return fileTarget{}, nil, err
	}
	name, rel, err := resolvePath(root, p)
	if err != nil {
		return fileTarget{}, nil, err
	}
	dir := s.dir.Files()
	if name == api.RootShared {
		dir = m.layout.User(s.meta.UserID).SharedFiles()
	}
	r, err := mounts.OpenRoot(dir, m.owner)
	if err != nil {
		return fileTarget{}, nil, fmt.Errorf("session %q: %w", id, err)
	}
	return fileTarget{root: r, name: name, rel: rel}, s, nil
}

// fileError maps what resolution and the file system said to the API's
// sentinels, keeping the detail in the message.
func fileError(err error) error {
	var sentinel error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mounts.ErrNoOpenat2):
		sentinel = api.ErrUnavailable
	case errors.Is(err, mounts.ErrEscape), errors.Is(err, mounts.ErrNotRegular), errors.Is(err, mounts.ErrLinked),
		errors.Is(err, unix.ELOOP), errors.Is(err, fs.ErrPermission):
		sentinel = api.ErrPermission
	case errors.Is(err, fs.ErrNotExist):
		sentinel = api.ErrNotFound
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EBUSY):
		// Before fs.ErrExist, which ENOTEMPTY also matches.
		sentinel = api.ErrConflict
	case errors.Is(err, fs.ErrExist):
		sentinel = api.ErrAlreadyExists
	case errors.Is(err, errTooLarge):
		sentinel = api.ErrTooLarge
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENAMETOOLONG),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.EXDEV):
		sentinel = api.ErrInvalidArgument
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

var errTooLarge = errors.New("larger than the file size cap")

func apiInfo(i mounts.Info) api.FileInfo {
	t := api.TypeOther
	switch {
	case i.Mode.IsRegular():
		t = api.TypeFile
	case i.Mode.IsDir():
		t = api.TypeDir
	case i.Mode&os.ModeSymlink != 0:
		t = api.TypeSymlink
	}
	rel := i.Path
	if rel == "." {
		rel = ""
	}
	return api.FileInfo{
		Name:       i.Name,
		Path:       rel,
		Type:       t,
		Size:       i.Size,
		Mode:       fmt.Sprintf("%04o", i.Mode.Perm()),
		ModTime:    i.ModTime.UTC(),
		LinkTarget: i.Target,
	}
}

// ListFiles lists a directory of a session's tree.
func (m *Manager) ListFiles(_ context.Context, id, root, p string, recursive bool) (api.FileList, error) {
	t, _, err := m.openTarget(id, root, p)
	if err != nil {
		return api.FileList{}, err
	}
	defer t.root.Close()
	infos, truncated, err := t.root.List(t.rel, recursive, m.cfg.MaxListEntries)
	if err != nil {
		return api.FileList{}, fileError(err)
	}
	list := api.FileList{Root: t.name, Path: strings.TrimPrefix(t.rel, "."), Entries: make([]api.FileInfo, 0, len(infos)), Truncated: truncated}
	for _, i := range infos {
		list.Entries = append(list.Entries, apiInfo(i))
	}
	return list, nil
}

// StatFile describes one entry, not following a final symlink.
func (m *Manager) StatFile(_ context.Context, id, root, p string) (api.FileInfo, error) {
	t, _, err := m.openTarget(id, root, p)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer t.root.Close()
	info, err := t.root.Stat(t.rel)
	if err != nil {
		return api.FileInfo{}, fileError(err)
	}
	return apiInfo(info), nil
}

// openFile is an open regular file of a session.
type openFile struct {
	*os.File
	info api.FileInfo
}

func (f openFile) Info() api.FileInfo { return f.info }

// OpenFile opens a regular file for reading.
func (m *Manager) OpenFile(_ context.Context, id, root, p string) (server.File, error) {
	t, _, err := m.openTarget(id, root, p)
	if err != nil {
		return nil, err
	}
	defer t.root.Close()
	f, info, err := t.root.OpenFile(t.rel)
	if err != nil {
		return nil, fileError(err)
	}
	return openFile{File: f, info: apiInfo(info)}, nil
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
		return "", 0, fmt.Errorf("%w: %s is %d bytes, over the cap of %d", api.ErrTooLarge, t.rel, info.Size, m.cfg.MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, m.cfg.MaxFileBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", t.rel, err)
	}
	if int64(len(data)) > m.cfg.MaxFileBytes {
		return "", 0, fmt.Errorf("%w: %s grew over the cap of %d bytes", api.ErrTooLarge, t.rel, m.cfg.MaxFileBytes)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return "", 0, fmt.Errorf("%w: %s is binary or not valid UTF-8 text", api.ErrUnsupported, t.rel)
	}
	return string(data), info.Mode, nil
}

// ReadText returns lines [line, line+limit) of a text file, numbered from
// 1, without their line endings, and the file's line count. limit 0 means
// to the end.
func (m *Manager) ReadText(_ context.Context, id, root, p string, line, limit int) (api.TextFile, error) {
	if line < 1 || limit < 0 {
		return api.TextFile{}, fmt.Errorf("%w: line must be at least 1 and limit not negative", api.ErrInvalidArgument)
	}
	t, _, err := m.openTarget(id, root, p)
	if err != nil {
		return api.TextFile{}, err
	}
	defer t.root.Close()
	text, _, err := m.readText(t)
	if err != nil {
		return api.TextFile{}, err
	}
	lines := splitLines(text)
	out := api.TextFile{Path: t.rel, Lines: []api.TextLine{}, TotalLines: len(lines)}
	for i := line - 1; i < len(lines) && (limit == 0 || i < line-1+limit); i++ {
		out.Lines = append(out.Lines, api.TextLine{Number: i + 1, Text: lines[i]})
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

// WriteFile stores body at p atomically, within the size cap and, for a
// new file in the workspace, the session's file quota.
func (m *Manager) WriteFile(_ context.Context, id, root, p string, body io.Reader, mkdirs bool) (api.WriteResult, error) {
	t, s, err := m.openTarget(id, root, p)
	if err != nil {
		return api.WriteResult{}, err
	}
	defer t.root.Close()
	if err := m.checkFileQuota(t, s); err != nil {
		return api.WriteResult{}, err
	}
	res, err := t.root.WriteFile(t.rel, &capReader{r: body, n: m.cfg.MaxFileBytes}, mkdirs)
	if errors.Is(err, errTooLarge) {
		return api.WriteResult{}, fmt.Errorf("%w: %s: the upload is over the cap of %d bytes", api.ErrTooLarge, t.rel, m.cfg.MaxFileBytes)
	}
	if err != nil {
		return api.WriteResult{}, fileError(err)
	}
	return api.WriteResult{Path: t.rel, Size: res.Size, SHA256: res.SHA256}, nil
}

// checkFileQuota refuses a new file in a workspace already holding the
// session's maximum number of files.
func (m *Manager) checkFileQuota(t fileTarget, s *session) error {
	max := m.userQuota(s.meta.UserID).MaxFilesPerSession
	if max <= 0 || t.name != api.RootWorkspace {
		return nil
	}
	if _, err := t.root.Stat(t.rel); err == nil {
		return nil // replacing a file adds none
	}
	infos, _, err := t.root.List(".", true, max+m.cfg.MaxListEntries)
	if err != nil {
		return fileError(err)
	}
	n := 0
	for _, i := range infos {
		if !i.Mode.IsDir() {
			n++
		}
	}
	if n >= max {
		return fmt.Errorf("%w: session %q holds %d files, its maximum", api.ErrQuotaExceeded, s.meta.ID, n)
	}
	return nil
}

// EditFile replaces req.Old by req.New in a text file: Old must occur
// exactly once, or exactly req.Count times. In a file with CRLF line
// endings, "\n" in Old and New stands for "\r\n", so the edit keeps them.
func (m *Manager) EditFile(_ context.Context, id, root string, req api.EditRequest) (api.EditResult, error) {
	if req.Old == "" {
		return api.EditResult{}, fmt.Errorf("%w: old must not be empty", api.ErrInvalidArgument)
	}
	if req.Count < 0 {
		return api.EditResult{}, fmt.Errorf("%w: count must not be negative", api.ErrInvalidArgument)
	}
	t, _, err := m.openTarget(id, root, req.Path)
	if err != nil {
		return api.EditResult{}, err
	}
	defer t.root.Close()
	text, _, err := m.readText(t)
	if err != nil {
		return api.EditResult{}, err
	}
	old, repl := req.Old, req.New
	if strings.Contains(text, "\r\n") && !strings.Contains(old, "\r\n") {
		old = strings.ReplaceAll(old, "\n", "\r\n")
		repl = strings.ReplaceAll(strings.ReplaceAll(repl, "\r\n", "\n"), "\n", "\r\n")
	}
	want := max(req.Count, 1)
	if n := strings.Count(text, old); n != want {
		return api.EditResult{}, fmt.Errorf("%w: %s: old text occurs %d times, expected %d", api.ErrConflict, t.rel, n, want)
	}
	res, err := t.root.WriteFile(t.rel, strings.NewReader(strings.Replace(text, old, repl, want)), false)
	if err != nil {
		return api.EditResult{}, fileError(err)
	}
	return api.EditResult{Path: t.rel, Replacements: want, Size: res.Size, SHA256: res.SHA256}, nil
}

// RemoveFile removes a file, a symlink, an empty directory, or with
// recursive a tree.
func (m *Manager) RemoveFile(_ context.Context, id, root, p string, recursive bool) error {
	t, _, err := m.openTarget(id, root, p)
	if err != nil {
		return err
	}
	defer t.root.Close()
	return fileError(t.root.Remove(t.rel, recursive))
}

// Mkdir creates a directory, with its parents when asked.
func (m *Manager) Mkdir(_ context.Context, id, root string, req api.MkdirRequest) (api.FileInfo, error) {
	t, _, err := m.openTarget(id, root, req.Path)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer t.root.Close()
	if req.Parents {
		_, err = t.root.MkdirAll(t.rel)
	} else {
		err = t.root.Mkdir(t.rel)
	}
	if err != nil {
		return api.FileInfo{}, fileError(err)
	}
	info, err := t.root.Stat(t.rel)
	return apiInfo(info), fileError(err)
}

// MoveFile renames within one tree.
func (m *Manager) MoveFile(_ context.Context, id, root string, req api.MoveRequest) (api.FileInfo, error) {
	t, _, err := m.openTarget(id, root, req.From)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer t.root.Close()
	toRoot, toRel, err := resolvePath(root, req.To)
	if err != nil {
		return api.FileInfo{}, err
	}
	if toRoot != t.name {
		return api.FileInfo{}, fmt.Errorf("%w: cannot move between the workspace and the shared files", api.ErrInvalidArgument)
	}
	if err := t.root.Move(t.rel, toRel, req.Overwrite); err != nil {
		return api.FileInfo{}, fileError(err)
	}
	info, err := t.root.Stat(toRel)
	return apiInfo(info), fileError(err)
}

// OpenOutput opens a file of the user's shared_files/outputs/ for the
// design's download route.
func (m *Manager) OpenOutput(_ context.Context, userID, name string) (server.File, error) {
	if m.filesErr != nil {
		return nil, fmt.Errorf("%w: the file API is off: %w", api.ErrUnavailable, m.filesErr)
	}
	if err := mounts.ValidateID("user_id", userID); err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("%w: output name %q must be a single file name", api.ErrInvalidArgument, name)
	}
	r, err := mounts.OpenRoot(m.layout.User(userID).Outputs(), m.owner)
	if err != nil {
		return nil, fileError(fmt.Errorf("user %q: %w", userID, err))
	}
	defer r.Close()
	f, info, err := r.OpenFile(path.Clean(name))
	if err != nil {
		return nil, fileError(err)
	}
	return openFile{File: f, info: apiInfo(info)}, nil
}
