package mounts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of path resolution under a Root; callers map them, and the
// syscall errors passed through (fs.ErrNotExist, unix.EEXIST, …), to their
// own.
var (
	// ErrEscape: the path, or a symlink on it, leads outside the root.
	ErrEscape = errors.New("path leads outside its root")
	// ErrNotRegular: a FIFO, socket, device or directory where a regular
	// file is needed. Opening one could block or have side effects.
	ErrNotRegular = errors.New("not a regular file")
	// ErrLinked: a regular file with more than one hard link. One of the
	// names may be outside the root, so its content is not served.
	ErrLinked = errors.New("file has several hard links")
	// ErrNoOpenat2: the kernel lacks openat2(2) (Linux 5.6), without
	// which no path can be resolved safely.
	ErrNoOpenat2 = errors.New("the kernel lacks openat2(2), needed to resolve paths safely")
)

// resolveBeneath confines every lookup to the directory it starts from:
// "..", absolute symlinks and /proc magic links cannot leave it, whatever
// a sandbox plants while we resolve.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// tmpPrefix names the temporary files of atomic writes.
const tmpPrefix = ".sandboxd-tmp-"

// CheckOpenat2 reports whether the kernel has openat2(2).
func CheckOpenat2() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveBeneath})
	if errors.Is(err, unix.ENOSYS) {
		return ErrNoOpenat2
	}
	if err != nil {
		return fmt.Errorf("openat2 probe: %w", err)
	}
	return unix.Close(fd)
}

// Root is an open directory under which paths are resolved with openat2
// relative to its file descriptor; operations act on the descriptors that
// resolution returns, never on a path string again. Files and directories
// it creates belong to its owner.
type Root struct {
	dir   *os.File
	owner Owner
}

// OpenRoot opens dir as a Root.
func OpenRoot(dir string, o Owner) (*Root, error) {
	fd, err := openat2(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	return &Root{dir: os.NewFile(uintptr(fd), dir), owner: o}, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return r.dir.Close() }

func openat2(dirfd int, p string, flags uint64, resolve uint64) (int, error) {
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: 0, Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, p, how)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue // EAGAIN: a rename raced the lookup; retry it
		case errors.Is(err, unix.EXDEV):
			return -1, fmt.Errorf("%s: %w", p, ErrEscape)
		case errors.Is(err, unix.ENOSYS):
			return -1, ErrNoOpenat2
		case err != nil:
			return -1, &os.PathError{Op: "openat2", Path: p, Err: err}
		}
		return fd, nil
	}
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

// parent opens the directory holding rel and returns it with rel's last
// component. rel must be cleaned and not ".".
func (r *Root) parent(rel string) (*os.File, string, error) {
	if rel == "." {
		return nil, "", fmt.Errorf("the root itself: %w", unix.EINVAL)
	}
	dir, name := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	fd, err := openat2(int(r.dir.Fd()), dir, unix.O_PATH|unix.O_DIRECTORY, resolveBeneath)
	if err != nil {
		return nil, "", err
	}
	return os.NewFile(uintptr(fd), dir), name, nil
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

func infoAt(dirfd int, name, rel string) (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, &os.PathError{Op: "stat", Path: rel, Err: err}
	}
	info := Info{
		Name:    name,
		Path:    rel,
		Mode:    fileMode(st.Mode),
		Size:    st.Size,
		ModTime: time.Unix(st.Mtim.Unix()),
	}
	if info.Mode&os.ModeSymlink != 0 {
		buf := make([]byte, unix.PathMax)
		if n, err := unix.Readlinkat(dirfd, name, buf); err == nil {
			info.Target = string(buf[:n])
		}
	}
	return info, nil
}

func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	}
	return mode
}

// Stat describes rel without following a final symlink.
func (r *Root) Stat(rel string) (Info, error) {
	if rel == "." {
		var st unix.Stat_t
		if err := unix.Fstat(int(r.dir.Fd()), &st); err != nil {
			return Info{}, &os.PathError{Op: "stat", Path: rel, Err: err}
		}
		return Info{Name: ".", Path: ".", Mode: fileMode(st.Mode), Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, nil
	}
	dir, name, err := r.parent(rel)
	if err != nil {
		return Info{}, err
	}
	defer dir.Close()
	return infoAt(int(dir.Fd()), name, rel)
}

// List reads the directory rel, and below it when recursive, without
// following symlinks; it stops after max entries and says so.
func (r *Root) List(rel string, recursive bool, max int) ([]Info, bool, error) {
	fd, err := openat2(int(r.dir.Fd()), rel, unix.O_RDONLY|unix.O_DIRECTORY, resolveBeneath)
	if err != nil {
		return nil, false, err
	}
	dir := os.NewFile(uintptr(fd), rel)
	defer dir.Close()
	var out []Info
	truncated, err := listDir(dir, rel, recursive, max, &out)
	return out, truncated, err
}

func listDir(dir *os.File, rel string, recursive bool, max int, out *[]Info) (bool, error) {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return false, &os.PathError{Op: "readdir", Path: rel, Err: err}
	}
	for _, name := range names {
		if len(*out) >= max {
			return true, nil
		}
		p := path.Join(rel, name)
		info, err := infoAt(int(dir.Fd()), name, p)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since readdir
		}
		if err != nil {
			return false, err
		}
		*out = append(*out, info)
		if !recursive || !info.Mode.IsDir() {
			continue
		}
		fd, err := openat2(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, resolveBeneath|unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			continue // replaced by something else since the stat
		}
		sub := os.NewFile(uintptr(fd), p)
		truncated, err := listDir(sub, p, recursive, max, out)
		sub.Close()
		if err != nil || truncated {
			return truncated, err
		}
	}
	return false, nil
}

// OpenFile opens the regular file rel for reading. A symlink on the way is
// followed only while it stays beneath the root. FIFOs, devices and
// sockets are refused before they are opened for reading (which could
// block or act on a device), and so are files with several hard links.
func (r *Root) OpenFile(rel string) (*os.File, Info, error) {
	pathFd, err := openat2(int(r.dir.Fd()), rel, unix.O_PATH, resolveBeneath)
	if err != nil {
		return nil, Info{}, err
	}
	defer unix.Close(pathFd)
	var st unix.Stat_t
	if err := unix.Fstat(pathFd, &st); err != nil {
		return nil, Info{}, &os.PathError{Op: "stat", Path: rel, Err: err}
	}
	if err := checkRegular(rel, &st); err != nil {
		return nil, Info{}, err
	}
	// Reopening the O_PATH descriptor reaches the very inode just checked.
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(pathFd), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", rel, err)
	}
	return f, Info{
		Name: path.Base(rel), Path: rel, Mode: fileMode(st.Mode), Size: st.Size,
		ModTime: time.Unix(st.Mtim.Unix()),
	}, nil
}

func checkRegular(rel string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: %w", rel, ErrNotRegular)
	}
	if st.Nlink > 1 {
		return fmt.Errorf("%s: %w", rel, ErrLinked)
	}
	return nil
}

// WriteResult is what an atomic write produced.
type WriteResult struct {
	Size   int64
	SHA256 string
	// Created is set when rel did not exist before.
	Created bool
}

// WriteFile replaces rel with the content of src atomically: it writes a
// temporary file in the same directory and renames it over rel, so a
// reader sees the old file or the new one, and a symlink, FIFO or hard
// link at rel is replaced rather than written through. An existing file's
// mode is kept; a new one gets 0644. With mkdirs, missing parents are made.
func (r *Root) WriteFile(rel string, src io.Reader, mkdirs bool) (WriteResult, error) {
	if rel == "." {
		return WriteResult{}, fmt.Errorf("cannot write the root: %w", unix.EISDIR)
	}
	if mkdirs {
		if _, err := r.MkdirAll(path.Dir(rel)); err != nil {
			return WriteResult{}, err
		}
	}
	dir, name, err := r.parent(rel)
	if err != nil {
		return WriteResult{}, err
	}
	defer dir.Close()
	mode := uint32(0o644)
	created := true
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		created = false
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return WriteResult{}, &os.PathError{Op: "write", Path: rel, Err: unix.EISDIR}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			mode = st.Mode & 0o7777 &^ (unix.S_ISUID | unix.S_ISGID)
		}
	}
	h := sha256.New()
	size, err := r.replace(dir, name, mode, io.TeeReader(src, h))
	if err != nil {
		return WriteResult{}, fmt.Errorf("write %s: %w", rel, err)
	}
	return WriteResult{Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Created: created}, nil
}

// replace writes src into a new temporary file in dir and renames it to
// name, removing the temporary file on any failure.
func (r *Root) replace(dir *os.File, name string, mode uint32, src io.Reader) (int64, error) {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := tmpPrefix + hex.EncodeToString(suffix[:])
	fd, err := unix.Openat(int(dir.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return 0, err
	}
	f := os.NewFile(uintptr(fd), tmp)
	size, err := io.Copy(f, src)
	if err == nil {
		err = f.Chown(r.owner.UID, r.owner.GID)
	}
	if err == nil {
		// fchmod after fchown: a chown clears set-id bits, and the
		// process umask must not shape the mode.
		err = f.Chmod(os.FileMode(mode))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name)
	}
	if err != nil {
		_ = unix.Unlinkat(int(dir.Fd()), tmp, 0)
		return 0, err
	}
	return size, nil
}

// Mkdir creates the directory rel (its parent must exist).
func (r *Root) Mkdir(rel string) error {
	dir, name, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	return r.mkdirAt(dir, name, rel)
}

func (r *Root) mkdirAt(dir *os.File, name, rel string) error {
	if err := unix.Mkdirat(int(dir.Fd()), name, 0o755); err != nil {
		return &os.PathError{Op: "mkdir", Path: rel, Err: err}
	}
	if err := unix.Fchownat(int(dir.Fd()), name, r.owner.UID, r.owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: rel, Err: err}
	}
	return nil
}

// MkdirAll creates rel and its missing parents, one component at a time
// from the root, each lookup confined to it. It reports whether anything
// was created.
func (r *Root) MkdirAll(rel string) (bool, error) {
	if rel == "." {
		return false, nil
	}
	cur, err := r.dup()
	if err != nil {
		return false, err
	}
	created := false
	done := "."
	for _, name := range strings.Split(rel, "/") {
		done = path.Join(done, name)
		err := r.mkdirAt(cur, name, done)
		if err == nil {
			created = true
		} else if !errors.Is(err, unix.EEXIST) {
			cur.Close()
			return created, err
		}
		fd, err := openat2(int(cur.Fd()), name, unix.O_PATH|unix.O_DIRECTORY, resolveBeneath)
		cur.Close()
		if err != nil {
			return created, err
		}
		cur = os.NewFile(uintptr(fd), done)
	}
	cur.Close()
	return created, nil
}

func (r *Root) dup() (*os.File, error) {
	fd, err := unix.FcntlInt(r.dir.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "."), nil
}

// Remove removes rel: a file, a symlink (not its target), an empty
// directory, or with recursive a whole tree, walked by descriptors
// without following any symlink.
func (r *Root) Remove(rel string, recursive bool) error {
	if rel == "." {
		return fmt.Errorf("cannot remove the root: %w", unix.EBUSY)
	}
	dir, name, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "remove", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unlinkat(dir, name, 0, rel)
	}
	if recursive {
		return removeTree(dir, name, rel)
	}
	return unlinkat(dir, name, unix.AT_REMOVEDIR, rel)
}

func unlinkat(dir *os.File, name string, flags int, rel string) error {
	if err := unix.Unlinkat(int(dir.Fd()), name, flags); err != nil {
		return &os.PathError{Op: "remove", Path: rel, Err: err}
	}
	return nil
}

func removeTree(parent *os.File, name, rel string) error {
	fd, err := openat2(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, resolveBeneath|unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), rel)
	defer dir.Close()
	for {
		names, err := dir.Readdirnames(1024)
		for _, n := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue
			}
			p := path.Join(rel, n)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := removeTree(dir, n, p); err != nil {
					return err
				}
			} else if err := unlinkat(dir, n, 0, p); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
		if errors.Is(err, io.EOF) || len(names) == 0 {
			break
		}
		if err != nil {
			return &os.PathError{Op: "readdir", Path: rel, Err: err}
		}
	}
	return unlinkat(parent, name, unix.AT_REMOVEDIR, rel)
}

// Move renames from to to within the root; an existing destination is
// an error (EEXIST) unless overwrite is set.
func (r *Root) Move(from, to string, overwrite bool) error {
	if from == "." || to == "." {
		return fmt.Errorf("cannot move the root: %w", unix.EBUSY)
	}
	fdir, fname, err := r.parent(from)
	if err != nil {
		return err
	}
	defer fdir.Close()
	tdir, tname, err := r.parent(to)
	if err != nil {
		return err
	}
	defer tdir.Close()
	flags := uint(unix.RENAME_NOREPLACE)
	if overwrite {
		flags = 0
	}
	if err := unix.Renameat2(int(fdir.Fd()), fname, int(tdir.Fd()), tname, flags); err != nil {
		return &os.LinkError{Op: "move", Old: from, New: to, Err: err}
	}
	return nil
}
