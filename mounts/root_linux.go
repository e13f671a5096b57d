package mounts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrEscape: the path, or a symlink on it, leads outside its root.
var ErrEscape = errors.New("path leads outside its root")

// Root serves the files API: paths a caller names beneath one of a
// session's trees (its files, its user's shared_files). Resolution is
// os.Root's: one component at a time from the root's descriptor, symlinks
// followed only while they stay beneath it, so nothing a sandbox plants
// leads outside. Where the API acts on an entry (write, mkdir, remove,
// move) it does so through the no-follow Dir of the entry's parent.
// Files and directories it creates belong to its owner.
type Root struct {
	root  *os.Root
	owner Owner
	// escape is the error os.Root returns for a path leading outside it,
	// which package os does not export.
	escape error
}

// OpenRoot opens dir as a Root. dir's last component must be a real
// directory: a symlink there is a *TypeError, not followed.
func OpenRoot(dir string, o Owner) (*Root, error) {
	var before unix.Stat_t
	if err := unix.Lstat(dir, &before); err != nil {
		return nil, &os.PathError{Op: "open root", Path: dir, Err: err}
	}
	if before.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &TypeError{Path: dir, Found: fileMode(before.Mode).Type(), Want: ErrNotDir}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	// os.OpenRoot follows a symlink; one swapped in since the lstat
	// leads to another directory, which this refuses.
	after, err := root.Stat(".")
	if err != nil || !sameInode(&before, after) {
		root.Close()
		return nil, fmt.Errorf("open root %s: it changed while opened: %w", dir, ErrNotDir)
	}
	// Resolving ".." fails at once, before any system call, with the
	// error os.Root gives every escape.
	var escape *os.PathError
	if _, err := root.Lstat(".."); !errors.As(err, &escape) {
		root.Close()
		return nil, fmt.Errorf("open root %s: os.Root let \"..\" through: %v", dir, err)
	}
	return &Root{root: root, owner: o, escape: escape.Err}, nil
}

func sameInode(st *unix.Stat_t, fi fs.FileInfo) bool {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(sys.Dev) == uint64(st.Dev) && uint64(sys.Ino) == uint64(st.Ino)
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return r.root.Close() }

// err marks os.Root's escapes with ErrEscape.
func (r *Root) err(err error) error {
	if err != nil && errors.Is(err, r.escape) {
		return fmt.Errorf("%w: %w", ErrEscape, err)
	}
	return err
}

// Clean checks a path relative to a root and returns it cleaned, "." for
// the root itself. It refuses what can never name something beneath:
// absolute paths, a leading "..", NUL bytes.
func Clean(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path contains a NUL byte: %w", unix.EINVAL)
	}
	if path.IsAbs(p) {
		return "", fmt.Errorf("path %q: %w", p, ErrEscape)
	}
	c := path.Clean("./" + p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q: %w", p, ErrEscape)
	}
	return c, nil
}

// openParent opens the directory holding rel, following symlinks beneath
// the root, as a no-follow Dir, and returns it with rel's last component.
// rel must be cleaned.
func (r *Root) openParent(rel string) (*Dir, string, error) {
	if rel == "." {
		return nil, "", fmt.Errorf("the root itself: %w", unix.EINVAL)
	}
	dir := path.Dir(rel)
	f, err := r.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, "", r.err(err)
	}
	return &Dir{f: f, path: dir}, path.Base(rel), nil
}

// Info is what Stat and List report of an entry; symlinks are not followed.
type Info struct {
	Name    string
	Path    string
	Mode    os.FileMode
	Size    int64
	ModTime time.Time
	Target  string
}

func infoOf(rel string, fi fs.FileInfo) Info {
	return Info{Name: path.Base(rel), Path: rel, Mode: fi.Mode(), Size: fi.Size(), ModTime: fi.ModTime()}
}

// Stat describes rel without following a final symlink.
func (r *Root) Stat(rel string) (Info, error) {
	fi, err := r.root.Lstat(rel)
	if err != nil {
		return Info{}, r.err(err)
	}
	info := infoOf(rel, fi)
	if fi.Mode()&fs.ModeSymlink != 0 {
		info.Target, _ = r.root.Readlink(rel)
	}
	return info, nil
}

// List reads the directory rel, and below it when recursive, without
// following symlinks, in name order; it stops after max entries and says
// so.
func (r *Root) List(rel string, recursive bool, max int) ([]Info, bool, error) {
	var out []Info
	truncated, err := r.list(rel, recursive, max, &out)
	return out, truncated, err
}

func (r *Root) list(rel string, recursive bool, max int, out *[]Info) (bool, error) {
	// O_DIRECTORY: a FIFO swapped in for a directory is refused, not
	// opened (which would block).
	f, err := r.root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, r.err(err)
	}
	// Opened through a Root, the directory stats its entries relative to
	// its descriptor.
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return false, r.err(err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		if len(*out) >= max {
			return true, nil
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed since it was read
		}
		p := path.Join(rel, e.Name())
		info := infoOf(p, fi)
		if fi.Mode()&fs.ModeSymlink != 0 {
			info.Target, _ = r.root.Readlink(p)
		}
		*out = append(*out, info)
		if !recursive || !fi.IsDir() {
			continue
		}
		truncated, err := r.list(p, recursive, max, out)
		if truncated {
			return true, nil
		}
		if err != nil {
			continue // replaced by something else since it was read
		}
	}
	return false, nil
}

// OpenFile opens the regular file rel for reading; symlinks are followed
// while they stay beneath the root. FIFOs, devices and sockets are
// refused, and so are files with several hard links.
//
// os.Root cannot open without following a final symlink except with
// O_NOFOLLOW, so the entry is first stat'ed through the Root (which
// refuses what is not a regular file before any open) and the open uses
// O_NONBLOCK, so that a FIFO swapped in between does not block; what is
// served is what fstat of the opened descriptor says. A device swapped in
// between would be opened, then refused: a sandbox cannot make one.
func (r *Root) OpenFile(rel string) (*os.File, Info, error) {
	fi, err := r.root.Stat(rel)
	if err != nil {
		return nil, Info{}, r.err(err)
	}
	if err := checkRegularInfo(rel, fi); err != nil {
		return nil, Info{}, err
	}
	f, err := r.root.OpenFile(rel, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, Info{}, r.err(err)
	}
	fi, err = f.Stat()
	if err == nil {
		err = checkRegularInfo(rel, fi)
	}
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return f, infoOf(rel, fi), nil
}

func checkRegularInfo(rel string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat data: %w", rel, ErrNotRegular)
	}
	return checkRegular(rel, fi.Mode(), uint64(st.Nlink))
}

// WriteResult is what an atomic write produced.
type WriteResult struct {
	Size   int64
	SHA256 string
	// Created is set when rel did not exist before.
	Created bool
}

// WriteFile replaces rel with the content of src atomically (see
// Dir.WriteFile): a symlink, FIFO or hard link at rel is replaced rather
// than written through. An existing file's permissions are kept; a new
// one gets 0644. With mkdirs, missing parents are made.
func (r *Root) WriteFile(rel string, src io.Reader, mkdirs bool) (WriteResult, error) {
	if rel == "." {
		return WriteResult{}, fmt.Errorf("cannot write the root: %w", unix.EISDIR)
	}
	if mkdirs {
		if _, err := r.MkdirAll(path.Dir(rel)); err != nil {
			return WriteResult{}, err
		}
	}
	dir, name, err := r.openParent(rel)
	if err != nil {
		return WriteResult{}, err
	}
	defer dir.Close()
	perm := fs.FileMode(0o644)
	created := true
	if st, err := dir.lstat(name); err == nil {
		created = false
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return WriteResult{}, &os.PathError{Op: "write", Path: rel, Err: unix.EISDIR}
		case unix.S_IFREG:
			perm = fileMode(st.Mode).Perm()
		}
	}
	h := sha256.New()
	size, err := dir.WriteFile(name, io.TeeReader(src, h), perm, r.owner)
	if err != nil {
		return WriteResult{}, fmt.Errorf("write %s: %w", rel, err)
	}
	return WriteResult{Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Created: created}, nil
}

// Mkdir creates the directory rel (its parent must exist).
func (r *Root) Mkdir(rel string) error {
	dir, name, err := r.openParent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	sub, err := dir.Mkdir(name, 0o755, r.owner)
	if err != nil {
		return err
	}
	return sub.Close()
}

// MkdirAll creates rel and its missing parents, each made owned through
// its parent's descriptor. It reports whether anything was created.
// (os.Root.MkdirAll cannot give what it makes an owner.)
func (r *Root) MkdirAll(rel string) (bool, error) {
	if rel == "." {
		return false, nil
	}
	created := false
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		err := r.Mkdir(p)
		if err == nil {
			created = true
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return created, err
		}
		fi, err := r.root.Stat(p)
		if err != nil {
			return created, r.err(err)
		}
		if !fi.IsDir() {
			return created, &os.PathError{Op: "mkdir", Path: p, Err: unix.ENOTDIR}
		}
	}
	return created, nil
}

// Remove removes rel: a file, a symlink (not its target), an empty
// directory, or with recursive a whole tree (see Dir.RemoveAll, which
// unlike os.Root.RemoveAll holds a bounded number of directories open
// however deep the tree a sandbox built).
func (r *Root) Remove(rel string, recursive bool) error {
	if rel == "." {
		return fmt.Errorf("cannot remove the root: %w", unix.EBUSY)
	}
	if !recursive {
		return r.err(r.root.Remove(rel))
	}
	dir, name, err := r.openParent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	if _, err := dir.lstat(name); err != nil {
		return err
	}
	return dir.RemoveAll(name)
}

// Move renames from to to within the root; an existing destination is
// an error (EEXIST) unless overwrite is set. (os.Root.Rename always
// replaces a file.)
func (r *Root) Move(from, to string, overwrite bool) error {
	if from == "." || to == "." {
		return fmt.Errorf("cannot move the root: %w", unix.EBUSY)
	}
	fdir, fname, err := r.openParent(from)
	if err != nil {
		return err
	}
	defer fdir.Close()
	tdir, tname, err := r.openParent(to)
	if err != nil {
		return err
	}
	defer tdir.Close()
	flags := uint(unix.RENAME_NOREPLACE)
	if overwrite {
		flags = 0
	}
	if err := unix.Renameat2(fdir.fd(), fname, tdir.fd(), tname, flags); err != nil {
		return &os.LinkError{Op: "move", Old: from, New: to, Err: err}
	}
	return nil
}
