package servertest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Files live in trees: a session's workspace and a user's shared files,
// which every session of the user sees, as in the daemon. A user's outputs
// (shared_files/outputs/ in the daemon) are kept apart, so that listing
// the shared files does not show them. Directories are 0755, files 0644.

// tree is one root of the files API as stored: owner is the session of a
// workspace and the user of shared files.
type tree struct {
	root  sandbox.Root
	owner string
}

func workspaceTree(id string) tree { return tree{sandbox.RootWorkspace, id} }

// key names a file or directory; path "" is the tree's root, which is
// always there.
type key struct {
	tree tree
	path string
}

func compareKeys(x, y key) int {
	return cmp.Or(strings.Compare(string(x.tree.root), string(y.tree.root)),
		strings.Compare(x.tree.owner, y.tree.owner), strings.Compare(x.path, y.path))
}

type node struct {
	dir  bool
	data []byte
}

type output struct{ user, name string }

// AddOutput stores data as the user's output file name.
func (b *Backend) AddOutput(user, name string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outputs[output{user, name}] = data
}

// MaxFileBytes implements server.FileBackend.
func (b *Backend) MaxFileBytes() int64 { return MaxFileBytes }

// ListFiles implements server.FileBackend.
func (b *Backend) ListFiles(_ context.Context, id string, root sandbox.Root, p string, recursive bool) (sandbox.FileList, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ListFiles"); err != nil {
		return sandbox.FileList{}, err
	}
	k, n, err := b.lookup(id, root, p)
	if err != nil {
		return sandbox.FileList{}, err
	}
	if !n.dir {
		return sandbox.FileList{}, fmt.Errorf("%w: %q is not a directory", sandbox.ErrInvalid, k.path)
	}
	list := sandbox.FileList{Root: k.tree.root, Path: k.path, Entries: []sandbox.FileInfo{}}
	for _, c := range b.under(k) {
		if recursive || parent(c.path) == k.path {
			list.Entries = append(list.Entries, b.info(c, b.files[c]))
		}
	}
	return list, nil
}

// StatFile implements server.FileBackend.
func (b *Backend) StatFile(_ context.Context, id string, root sandbox.Root, p string) (sandbox.FileInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("StatFile"); err != nil {
		return sandbox.FileInfo{}, err
	}
	k, n, err := b.lookup(id, root, p)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	return b.info(k, n), nil
}

// OpenFile implements server.FileBackend: the file opened is a snapshot
// of its content. Like the daemon's, it opens a file of any size; what
// the server sends of it is the server's to cap.
func (b *Backend) OpenFile(_ context.Context, id string, root sandbox.Root, p string) (sandbox.File, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("OpenFile"); err != nil {
		return sandbox.File{}, err
	}
	k, n, err := b.regular(id, root, p)
	if err != nil {
		return sandbox.File{}, err
	}
	return sandbox.File{ReadSeekCloser: snapshot{bytes.NewReader(n.data)}, Info: b.info(k, n)}, nil
}

// ReadText implements server.FileBackend.
func (b *Backend) ReadText(_ context.Context, id string, root sandbox.Root, p string, line, limit int) (sandbox.TextFile, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ReadText"); err != nil {
		return sandbox.TextFile{}, err
	}
	if line < 1 || limit < 0 {
		return sandbox.TextFile{}, fmt.Errorf("%w: line must be at least 1 and limit not negative", sandbox.ErrInvalid)
	}
	k, text, err := b.text(id, root, p)
	if err != nil {
		return sandbox.TextFile{}, err
	}
	var lines []string
	if text != "" {
		lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	}
	out := sandbox.TextFile{Path: k.path, Lines: []sandbox.TextLine{}, TotalLines: len(lines)}
	for i := line - 1; i < len(lines) && (limit == 0 || i < line-1+limit); i++ {
		out.Lines = append(out.Lines, sandbox.TextLine{Number: i + 1, Text: strings.TrimSuffix(lines[i], "\r")})
	}
	return out, nil
}

// WriteFile implements server.FileBackend. Like the daemon, it passes an
// error reading body on as it is, and stores nothing of a body over the
// cap. The lock is not held while the body is read.
func (b *Backend) WriteFile(_ context.Context, id string, root sandbox.Root, p string, body io.Reader, mkdirs bool) (sandbox.WriteResult, error) {
	b.mu.Lock()
	err := b.call("WriteFile")
	var k key
	if err == nil {
		k, err = b.resolve(id, root, p)
	}
	b.mu.Unlock()
	if err != nil {
		return sandbox.WriteResult{}, err
	}
	if k.path == "" {
		return sandbox.WriteResult{}, fmt.Errorf("%w: cannot write the root", sandbox.ErrInvalid)
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxFileBytes+1))
	if err != nil {
		return sandbox.WriteResult{}, fmt.Errorf("write %s: %w", k.path, err)
	}
	if len(data) > MaxFileBytes {
		return sandbox.WriteResult{}, fmt.Errorf("%w: %s: the upload is over the cap of %d bytes", sandbox.ErrTooLarge, k.path, MaxFileBytes)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	// The session may have gone while the body came.
	if k, err = b.resolve(id, root, p); err != nil {
		return sandbox.WriteResult{}, err
	}
	if err := b.makeParent(k, mkdirs); err != nil {
		return sandbox.WriteResult{}, err
	}
	if n, ok := b.node(k); ok && n.dir {
		return sandbox.WriteResult{}, fmt.Errorf("%w: %q is a directory", sandbox.ErrInvalid, k.path)
	}
	b.files[k] = node{data: data}
	return sandbox.WriteResult{Path: k.path, Size: int64(len(data)), SHA256: sum(data)}, nil
}

// EditFile implements server.FileBackend, keeping CRLF line endings as
// the daemon does.
func (b *Backend) EditFile(_ context.Context, id string, root sandbox.Root, req sandbox.EditRequest) (sandbox.EditResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("EditFile"); err != nil {
		return sandbox.EditResult{}, err
	}
	if req.Old == "" {
		return sandbox.EditResult{}, fmt.Errorf("%w: old must not be empty", sandbox.ErrInvalid)
	}
	if req.Count < 0 {
		return sandbox.EditResult{}, fmt.Errorf("%w: count must not be negative", sandbox.ErrInvalid)
	}
	k, text, err := b.text(id, root, req.Path)
	if err != nil {
		return sandbox.EditResult{}, err
	}
	old, repl := req.Old, req.New
	if strings.Contains(text, "\r\n") && !strings.Contains(old, "\r\n") {
		old = strings.ReplaceAll(old, "\n", "\r\n")
		repl = strings.ReplaceAll(strings.ReplaceAll(repl, "\r\n", "\n"), "\n", "\r\n")
	}
	want := max(req.Count, 1)
	if n := strings.Count(text, old); n != want {
		return sandbox.EditResult{}, fmt.Errorf("%w: %s: old text occurs %d times, expected %d", sandbox.ErrConflict, k.path, n, want)
	}
	data := []byte(strings.Replace(text, old, repl, want))
	b.files[k] = node{data: data}
	return sandbox.EditResult{Path: k.path, Replacements: want, Size: int64(len(data)), SHA256: sum(data)}, nil
}

// RemoveFile implements server.FileBackend.
func (b *Backend) RemoveFile(_ context.Context, id string, root sandbox.Root, p string, recursive bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("RemoveFile"); err != nil {
		return err
	}
	k, err := b.resolve(id, root, p)
	if err != nil {
		return err
	}
	if k.path == "" {
		return fmt.Errorf("%w: cannot remove the root", sandbox.ErrConflict)
	}
	if _, err := b.existing(k); err != nil {
		return err
	}
	children := b.under(k)
	if len(children) > 0 && !recursive {
		return fmt.Errorf("%w: remove %s: directory not empty", sandbox.ErrConflict, k.path)
	}
	for _, c := range append(children, k) {
		delete(b.files, c)
	}
	return nil
}

// Mkdir implements server.FileBackend.
func (b *Backend) Mkdir(_ context.Context, id string, root sandbox.Root, p string, parents bool) (sandbox.FileInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("Mkdir"); err != nil {
		return sandbox.FileInfo{}, err
	}
	k, err := b.resolve(id, root, p)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	switch n, exists := b.node(k); {
	case exists && !parents:
		return sandbox.FileInfo{}, fmt.Errorf("%w: %q", sandbox.ErrExists, k.path)
	case exists && !n.dir:
		return sandbox.FileInfo{}, fmt.Errorf("%w: %q is not a directory", sandbox.ErrInvalid, k.path)
	case exists:
		return b.info(k, n), nil
	}
	if err := b.makeParent(k, parents); err != nil {
		return sandbox.FileInfo{}, err
	}
	b.files[k] = node{dir: true}
	return b.info(k, b.files[k]), nil
}

// MoveFile implements server.FileBackend with rename(2)'s rules: a
// directory replaces only an empty one, and never goes below itself.
func (b *Backend) MoveFile(_ context.Context, id string, root sandbox.Root, from, to string, overwrite bool) (sandbox.FileInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("MoveFile"); err != nil {
		return sandbox.FileInfo{}, err
	}
	src, err := b.resolve(id, root, from)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	dst, err := b.resolve(id, root, to)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	if src.tree != dst.tree {
		return sandbox.FileInfo{}, fmt.Errorf("%w: cannot move between the workspace and the shared files", sandbox.ErrInvalid)
	}
	if src.path == "" || dst.path == "" {
		return sandbox.FileInfo{}, fmt.Errorf("%w: cannot move the root", sandbox.ErrConflict)
	}
	n, err := b.existing(src)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	if err := b.makeParent(dst, false); err != nil {
		return sandbox.FileInfo{}, err
	}
	if n.dir && dst.path != src.path && within(src.path, dst.path) {
		return sandbox.FileInfo{}, fmt.Errorf("%w: cannot move %q below itself", sandbox.ErrInvalid, src.path)
	}
	if old, exists := b.node(dst); exists {
		switch {
		case !overwrite:
			return sandbox.FileInfo{}, fmt.Errorf("%w: %q", sandbox.ErrExists, dst.path)
		case dst == src:
			return b.info(dst, n), nil
		case n.dir && !old.dir:
			return sandbox.FileInfo{}, fmt.Errorf("%w: %q is not a directory", sandbox.ErrInvalid, dst.path)
		case !n.dir && old.dir:
			return sandbox.FileInfo{}, fmt.Errorf("%w: %q is a directory", sandbox.ErrInvalid, dst.path)
		case len(b.under(dst)) > 0:
			return sandbox.FileInfo{}, fmt.Errorf("%w: %q: directory not empty", sandbox.ErrConflict, dst.path)
		}
	}
	for _, c := range append(b.under(src), src) {
		moved := key{dst.tree, dst.path + strings.TrimPrefix(c.path, src.path)}
		b.files[moved] = b.files[c]
		delete(b.files, c)
	}
	return b.info(dst, n), nil
}

// OpenOutput implements server.FileBackend.
func (b *Backend) OpenOutput(_ context.Context, userID, name string) (sandbox.File, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("OpenOutput"); err != nil {
		return sandbox.File{}, err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return sandbox.File{}, fmt.Errorf("%w: output name %q must be a single file name", sandbox.ErrInvalid, name)
	}
	data, ok := b.outputs[output{userID, name}]
	if !ok {
		return sandbox.File{}, fmt.Errorf("%w: output %q of user %q", sandbox.ErrNotFound, name, userID)
	}
	info := sandbox.FileInfo{Name: name, Path: name, Type: sandbox.TypeFile, Size: int64(len(data)), Mode: 0o644, ModTime: b.Epoch()}
	return sandbox.File{ReadSeekCloser: snapshot{bytes.NewReader(data)}, Info: info}, nil
}

// resolvePath maps a path as the daemon takes it (relative to the root,
// or absolute as the sandbox sees it) to a root and a clean relative
// path, "" for the root itself. A workspace path under "shared/" is the
// shared files, as it is inside the sandbox.
func resolvePath(root sandbox.Root, p string) (sandbox.Root, string, error) {
	switch root {
	case sandbox.RootWorkspace:
		root = sandbox.RootWorkspace
	case sandbox.RootShared:
	default:
		return "", "", fmt.Errorf("%w: root %q: want %q or %q", sandbox.ErrInvalid, root, sandbox.RootWorkspace, sandbox.RootShared)
	}
	if strings.HasPrefix(p, "/") {
		prefix := workspace
		if root == sandbox.RootShared {
			prefix = workspace + "/shared"
		}
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			return "", "", fmt.Errorf("%w: path %q: an absolute path must be under %s", sandbox.ErrInvalid, p, prefix)
		}
		p = strings.TrimPrefix(rest, "/")
	}
	if strings.ContainsRune(p, 0) {
		return "", "", fmt.Errorf("%w: path contains a NUL byte", sandbox.ErrInvalid)
	}
	rel := path.Clean("./" + p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", "", fmt.Errorf("%w: path %q leaves the %s root", sandbox.ErrForbidden, p, root)
	}
	if rel == "." {
		rel = ""
	}
	if root == sandbox.RootWorkspace {
		if rel == "shared" {
			return sandbox.RootShared, "", nil
		}
		if rest, ok := strings.CutPrefix(rel, "shared/"); ok {
			return sandbox.RootShared, rest, nil
		}
	}
	return root, rel, nil
}

// resolve turns a path of session id's root into its key. As in the
// daemon, the path is checked before the session. The caller holds b.mu.
func (b *Backend) resolve(id string, root sandbox.Root, p string) (key, error) {
	root, rel, err := resolvePath(root, p)
	if err != nil {
		return key{}, err
	}
	s, err := b.live(id)
	if err != nil {
		return key{}, err
	}
	t := workspaceTree(id)
	if root == sandbox.RootShared {
		t = tree{sandbox.RootShared, s.UserID}
	}
	return key{t, rel}, nil
}

func (b *Backend) node(k key) (node, bool) {
	if k.path == "" {
		return node{dir: true}, true
	}
	n, ok := b.files[k]
	return n, ok
}

func (b *Backend) existing(k key) (node, error) {
	n, ok := b.node(k)
	if !ok {
		return node{}, fmt.Errorf("%w: %q in %s", sandbox.ErrNotFound, k.path, k.tree.root)
	}
	return n, nil
}

func (b *Backend) lookup(id string, root sandbox.Root, p string) (key, node, error) {
	k, err := b.resolve(id, root, p)
	if err != nil {
		return key{}, node{}, err
	}
	n, err := b.existing(k)
	return k, n, err
}

// regular looks up a regular file; the daemon opens nothing else.
func (b *Backend) regular(id string, root sandbox.Root, p string) (key, node, error) {
	k, n, err := b.lookup(id, root, p)
	if err == nil && n.dir {
		err = fmt.Errorf("%w: %q is not a regular file", sandbox.ErrForbidden, k.path)
	}
	return k, n, err
}

// text reads a regular file that must be UTF-8 text within the cap.
func (b *Backend) text(id string, root sandbox.Root, p string) (key, string, error) {
	k, n, err := b.regular(id, root, p)
	if err != nil {
		return key{}, "", err
	}
	if len(n.data) > MaxFileBytes {
		return key{}, "", fmt.Errorf("%w: %s is %d bytes, over the cap of %d", sandbox.ErrTooLarge, k.path, len(n.data), MaxFileBytes)
	}
	if !utf8.Valid(n.data) || bytes.IndexByte(n.data, 0) >= 0 {
		return key{}, "", fmt.Errorf("%w: %s is binary or not valid UTF-8 text", sandbox.ErrNotText, k.path)
	}
	return k, string(n.data), nil
}

// makeParent checks that k's parent is a directory, creating it and its
// missing parents when create is set.
func (b *Backend) makeParent(k key, create bool) error {
	dir := key{k.tree, parent(k.path)}
	n, ok := b.node(dir)
	switch {
	case ok && n.dir:
		return nil
	case ok:
		return fmt.Errorf("%w: %q is not a directory", sandbox.ErrInvalid, dir.path)
	case !create:
		return fmt.Errorf("%w: directory %q in %s", sandbox.ErrNotFound, dir.path, k.tree.root)
	}
	if err := b.makeParent(dir, true); err != nil {
		return err
	}
	b.files[dir] = node{dir: true}
	return nil
}

// under returns the keys below directory k, sorted.
func (b *Backend) under(k key) []key {
	var keys []key
	for c := range b.files {
		if c.tree == k.tree && c.path != k.path && within(k.path, c.path) {
			keys = append(keys, c)
		}
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func (b *Backend) info(k key, n node) sandbox.FileInfo {
	info := sandbox.FileInfo{Path: k.path, Type: sandbox.TypeFile, Size: int64(len(n.data)), Mode: 0o644, ModTime: b.Epoch()}
	if k.path != "" {
		info.Name = path.Base(k.path)
	}
	if n.dir {
		info.Type, info.Size, info.Mode = sandbox.TypeDir, 0, os.ModeDir|0o755
	}
	return info
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

func parent(p string) string {
	if dir := path.Dir(p); dir != "." {
		return dir
	}
	return ""
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// snapshot is an open file of the fake: a copy of its content when it was
// opened.
type snapshot struct{ *bytes.Reader }

func (snapshot) Close() error { return nil }
