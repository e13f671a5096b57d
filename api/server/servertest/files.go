// Package servertest provides in-memory parts of a server.Backend for the
// tests of the server, the Go client and sandboxctl: files (Files),
// background processes (Processes) and a scripted streaming exec (Stream).
package servertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
)

var _ server.FileBackend = (*Files)(nil)

// Files keeps the files of a fixed set of sessions, and users' outputs, in
// memory. Every file and directory has the same modification time. It is
// safe for concurrent use.
type Files struct {
	// Err, when set before serving, is what every method but MaxFileBytes
	// fails with.
	Err error

	maxBytes int64
	modTime  time.Time
	mu       sync.Mutex
	sessions map[string]bool
	nodes    map[key]node
	outputs  map[output][]byte
}

// key names a file or directory; the root directory (path "") is implicit.
type key struct{ id, root, path string }

type node struct {
	dir  bool
	data []byte
}

type output struct{ user, name string }

// New returns Files for the sessions ids, which refuses files over maxBytes.
func New(maxBytes int64, ids ...string) *Files {
	f := &Files{
		maxBytes: maxBytes,
		modTime:  time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		sessions: map[string]bool{},
		nodes:    map[key]node{},
		outputs:  map[output][]byte{},
	}
	for _, id := range ids {
		f.sessions[id] = true
	}
	return f
}

// AddOutput stores data as the user's output file name.
func (f *Files) AddOutput(user, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outputs[output{user, name}] = data
}

// ModTime is the modification time every entry reports.
func (f *Files) ModTime() time.Time { return f.modTime }

// MaxFileBytes implements server.FileBackend.
func (f *Files) MaxFileBytes() int64 { return f.maxBytes }

// ListFiles implements server.FileBackend.
func (f *Files) ListFiles(_ context.Context, id, root, p string, recursive bool) (api.FileList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.lookup(id, root, p)
	if err != nil {
		return api.FileList{}, err
	}
	if !n.dir {
		return api.FileList{}, fmt.Errorf("%q is not a directory: %w", k.path, api.ErrInvalidArgument)
	}
	list := api.FileList{Root: root, Path: k.path}
	for _, c := range f.under(k) {
		if recursive || parent(c.path) == k.path {
			list.Entries = append(list.Entries, f.info(c.path, f.nodes[c]))
		}
	}
	slices.SortFunc(list.Entries, func(a, b api.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return list, nil
}

// StatFile implements server.FileBackend.
func (f *Files) StatFile(_ context.Context, id, root, p string) (api.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.lookup(id, root, p)
	if err != nil {
		return api.FileInfo{}, err
	}
	return f.info(k.path, n), nil
}

// OpenFile implements server.FileBackend.
func (f *Files) OpenFile(_ context.Context, id, root, p string) (server.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.regular(id, root, p)
	if err != nil {
		return nil, err
	}
	if int64(len(n.data)) > f.maxBytes {
		return nil, fmt.Errorf("%q is over %d bytes: %w", k.path, f.maxBytes, api.ErrTooLarge)
	}
	return file{Reader: bytes.NewReader(n.data), info: f.info(k.path, n)}, nil
}

// ReadText implements server.FileBackend.
func (f *Files) ReadText(_ context.Context, id, root, p string, line, limit int) (api.TextFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.regular(id, root, p)
	if err != nil {
		return api.TextFile{}, err
	}
	if !utf8.Valid(n.data) || bytes.IndexByte(n.data, 0) >= 0 {
		return api.TextFile{}, fmt.Errorf("%q is not text: %w", k.path, api.ErrUnsupported)
	}
	var lines []string
	if len(n.data) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(n.data), "\n"), "\n")
	}
	text := api.TextFile{Path: k.path, TotalLines: len(lines)}
	for i := line - 1; i < len(lines) && (limit == 0 || i < line-1+limit); i++ {
		text.Lines = append(text.Lines, api.TextLine{Number: i + 1, Text: lines[i]})
	}
	return text, nil
}

// WriteFile implements server.FileBackend. Like the daemon, it turns the
// server's body limit into ErrTooLarge.
func (f *Files) WriteFile(_ context.Context, id, root, p string, body io.Reader, mkdirs bool) (api.WriteResult, error) {
	data, err := io.ReadAll(io.LimitReader(body, f.maxBytes+1))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return api.WriteResult{}, fmt.Errorf("write %q: %w: %w", p, err, api.ErrTooLarge)
	}
	if err != nil {
		return api.WriteResult{}, fmt.Errorf("write %q: read body: %w", p, err)
	}
	if int64(len(data)) > f.maxBytes {
		return api.WriteResult{}, fmt.Errorf("write %q: over %d bytes: %w", p, f.maxBytes, api.ErrTooLarge)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.resolve(id, root, p)
	if err != nil {
		return api.WriteResult{}, err
	}
	if n, ok := f.node(k); ok && n.dir {
		return api.WriteResult{}, fmt.Errorf("%q is a directory: %w", k.path, api.ErrConflict)
	}
	if err := f.makeParent(k, mkdirs); err != nil {
		return api.WriteResult{}, err
	}
	f.nodes[k] = node{data: data}
	sum := sha256.Sum256(data)
	return api.WriteResult{Path: k.path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// EditFile implements server.FileBackend.
func (f *Files) EditFile(_ context.Context, id, root string, req api.EditRequest) (api.EditResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.regular(id, root, req.Path)
	if err != nil {
		return api.EditResult{}, err
	}
	if req.Old == "" {
		return api.EditResult{}, fmt.Errorf("edit %q: old is empty: %w", k.path, api.ErrInvalidArgument)
	}
	want := max(req.Count, 1)
	if got := strings.Count(string(n.data), req.Old); got != want {
		return api.EditResult{}, fmt.Errorf("edit %q: old occurs %d times, want %d: %w", k.path, got, want, api.ErrConflict)
	}
	data := []byte(strings.ReplaceAll(string(n.data), req.Old, req.New))
	f.nodes[k] = node{data: data}
	sum := sha256.Sum256(data)
	return api.EditResult{Path: k.path, Replacements: want, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// RemoveFile implements server.FileBackend.
func (f *Files) RemoveFile(_ context.Context, id, root, p string, recursive bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, n, err := f.lookup(id, root, p)
	if err != nil {
		return err
	}
	if k.path == "" {
		return fmt.Errorf("the %s root cannot be removed: %w", root, api.ErrPermission)
	}
	children := f.under(k)
	if n.dir && len(children) > 0 && !recursive {
		return fmt.Errorf("directory %q is not empty: %w", k.path, api.ErrConflict)
	}
	for _, c := range append(children, k) {
		delete(f.nodes, c)
	}
	return nil
}

// Mkdir implements server.FileBackend.
func (f *Files) Mkdir(_ context.Context, id, root string, req api.MkdirRequest) (api.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.resolve(id, root, req.Path)
	if err != nil {
		return api.FileInfo{}, err
	}
	if n, ok := f.node(k); ok {
		if n.dir && req.Parents {
			return f.info(k.path, n), nil
		}
		return api.FileInfo{}, fmt.Errorf("%q: %w", k.path, api.ErrAlreadyExists)
	}
	if err := f.makeParent(k, req.Parents); err != nil {
		return api.FileInfo{}, err
	}
	f.nodes[k] = node{dir: true}
	return f.info(k.path, f.nodes[k]), nil
}

// MoveFile implements server.FileBackend.
func (f *Files) MoveFile(_ context.Context, id, root string, req api.MoveRequest) (api.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from, n, err := f.lookup(id, root, req.From)
	if err != nil {
		return api.FileInfo{}, err
	}
	to, err := f.resolve(id, root, req.To)
	if err != nil {
		return api.FileInfo{}, err
	}
	if from.path == "" || to.path == "" || within(from.path, to.path) {
		return api.FileInfo{}, fmt.Errorf("move %q to %q: %w", from.path, to.path, api.ErrPermission)
	}
	if _, exists := f.node(to); exists && !req.Overwrite {
		return api.FileInfo{}, fmt.Errorf("%q: %w", to.path, api.ErrAlreadyExists)
	}
	if err := f.makeParent(to, false); err != nil {
		return api.FileInfo{}, err
	}
	for _, c := range append(f.under(from), from) {
		moved := c
		moved.path = to.path + strings.TrimPrefix(c.path, from.path)
		f.nodes[moved] = f.nodes[c]
		delete(f.nodes, c)
	}
	return f.info(to.path, n), nil
}

// OpenOutput implements server.FileBackend.
func (f *Files) OpenOutput(_ context.Context, userID, name string) (server.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	data, ok := f.outputs[output{userID, name}]
	if !ok {
		return nil, fmt.Errorf("output %q of user %q: %w", name, userID, api.ErrNotFound)
	}
	return file{Reader: bytes.NewReader(data), info: api.FileInfo{
		Name: name, Path: name, Type: api.TypeFile, Size: int64(len(data)), Mode: "0644", ModTime: f.modTime,
	}}, nil
}

// resolve checks the session and turns p into its key, as the daemon
// does: relative to the root, or absolute as the sandbox sees it.
func (f *Files) resolve(id, root, p string) (key, error) {
	if f.Err != nil {
		return key{}, f.Err
	}
	if !f.sessions[id] {
		return key{}, fmt.Errorf("session %q: %w", id, api.ErrNotFound)
	}
	var mount string
	switch root {
	case api.RootWorkspace:
		mount = "/workspace"
	case api.RootShared:
		mount = "/workspace/shared"
	default:
		return key{}, fmt.Errorf("root %q: %w", root, api.ErrInvalidArgument)
	}
	rel := p
	if strings.HasPrefix(p, "/") {
		rest, ok := strings.CutPrefix(path.Clean(p), mount)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			return key{}, fmt.Errorf("%q is outside %s: %w", p, mount, api.ErrPermission)
		}
		rel = strings.TrimPrefix(rest, "/")
	}
	rel = path.Clean(rel)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return key{}, fmt.Errorf("%q leaves the %s root: %w", p, root, api.ErrPermission)
	}
	if rel == "." {
		rel = ""
	}
	return key{id, root, rel}, nil
}

func (f *Files) node(k key) (node, bool) {
	if k.path == "" {
		return node{dir: true}, true
	}
	n, ok := f.nodes[k]
	return n, ok
}

func (f *Files) lookup(id, root, p string) (key, node, error) {
	k, err := f.resolve(id, root, p)
	if err != nil {
		return key{}, node{}, err
	}
	n, ok := f.node(k)
	if !ok {
		return key{}, node{}, fmt.Errorf("%q in %s: %w", k.path, root, api.ErrNotFound)
	}
	return k, n, nil
}

func (f *Files) regular(id, root, p string) (key, node, error) {
	k, n, err := f.lookup(id, root, p)
	if err == nil && n.dir {
		err = fmt.Errorf("%q is a directory: %w", k.path, api.ErrInvalidArgument)
	}
	return k, n, err
}

// makeParent checks that k's parent is a directory, creating it and its
// missing parents when create is set.
func (f *Files) makeParent(k key, create bool) error {
	dir := k
	dir.path = parent(k.path)
	n, ok := f.node(dir)
	switch {
	case ok && n.dir:
		return nil
	case ok:
		return fmt.Errorf("%q is not a directory: %w", dir.path, api.ErrConflict)
	case !create:
		return fmt.Errorf("directory %q in %s: %w", dir.path, k.root, api.ErrNotFound)
	}
	if err := f.makeParent(dir, true); err != nil {
		return err
	}
	f.nodes[dir] = node{dir: true}
	return nil
}

// under returns the keys below directory k.
func (f *Files) under(k key) []key {
	var keys []key
	for c := range f.nodes {
		if c.id == k.id && c.root == k.root && c.path != k.path && within(k.path, c.path) {
			keys = append(keys, c)
		}
	}
	return keys
}

func (f *Files) info(p string, n node) api.FileInfo {
	info := api.FileInfo{Name: path.Base(p), Path: p, Type: api.TypeFile, Size: int64(len(n.data)), Mode: "0644", ModTime: f.modTime}
	if p == "" {
		info.Name = ""
	}
	if n.dir {
		info.Type, info.Size, info.Mode = api.TypeDir, 0, "0755"
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

// file is an open file of Files: a snapshot of its content.
type file struct {
	*bytes.Reader
	info api.FileInfo
}

func (file) Close() error { return nil }

func (f file) Info() api.FileInfo { return f.info }
