package mounts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors of the no-follow layer; callers map them to their own. Syscall
// errors (fs.ErrNotExist, fs.ErrExist, …) pass through in *os.PathError.
var (
	// ErrNotDir: something other than a real directory where one is
	// needed. It comes in a *TypeError that says what was found.
	ErrNotDir = errors.New("not a directory")
	// ErrNotRegular: a FIFO, socket, device, symlink or directory where a
	// regular file is needed. Opening one could block, act on a device or
	// lead elsewhere.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink is also matched by a *TypeError that found a symlink:
	// the no-follow layer never follows one.
	ErrSymlink = errors.New("a symlink, which is not followed")
	// ErrLinked: a regular file with more than one hard link. One of the
	// names may be outside the tree, so it is neither served nor moved.
	ErrLinked = errors.New("file has several hard links")
	// ErrInvalidName: not a single file name (empty, ".", "..", or with
	// a "/" or NUL byte).
	ErrInvalidName = errors.New("not a single file name")
	// ErrTooDeep: a tree nested deeper than a walk holds directories open.
	ErrTooDeep = errors.New("directories nested too deep")
)

// TypeError reports an entry that is not of the type an operation needs.
// The entry was neither followed nor opened for reading.
type TypeError struct {
	Path string
	// Found is the entry's type: fs.ModeSymlink, fs.ModeNamedPipe, …, 0
	// for a regular file.
	Found fs.FileMode
	// Want is ErrNotDir or ErrNotRegular.
	Want error
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("%s: %v: it is %s", e.Path, e.Want, typeName(e.Found))
}

// Unwrap lets errors.Is match Want, and ErrSymlink for a symlink.
func (e *TypeError) Unwrap() []error {
	if e.Found&fs.ModeSymlink != 0 {
		return []error{e.Want, ErrSymlink}
	}
	return []error{e.Want}
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsRegular():
		return "a regular file"
	}
	return "of an unknown type"
}

// Dir is a directory the daemon opened itself in a tree a sandbox can
// write: a session's files, a user's shared_files, a venv layer. Each
// operation names one entry of it — a single name, never a path — and
// follows no symlink, neither the entry's nor, since there is no path, one
// on the way. What an operation checks, it checks on a descriptor it holds,
// and it acts through that descriptor or on the entry itself (unlinkat,
// renameat2, fchownat with AT_SYMLINK_NOFOLLOW), so an entry swapped
// between two system calls is refused or acted on as what it has become,
// never followed. A Dir is not safe for concurrent use.
type Dir struct {
	f *os.File
	// path names the directory in errors.
	path string
	// hook, set only by tests, runs between an operation's look at an
	// entry and its act on it, so a test can swap the entry right then.
	hook func(name string)
}

// OpenDir opens the directory dir, a path the daemon trusts up to its
// last component, which must be a real directory: a symlink there is a
// *TypeError, not followed.
func OpenDir(dir string) (*Dir, error) {
	return openDirAt(unix.AT_FDCWD, dir, dir, nil)
}

func openDirAt(dirfd int, name, display string, hook func(string)) (*Dir, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, notDirError(dirfd, name, display, err)
		}
		return nil, &os.PathError{Op: "open", Path: display, Err: err}
	}
	return &Dir{f: os.NewFile(uintptr(fd), display), path: display, hook: hook}, nil
}

// notDirError says what stands at name when opening it as a directory
// failed with orig; if it is a directory after all (swapped back), orig.
func notDirError(dirfd int, name, display string, orig error) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return &os.PathError{Op: "open", Path: display, Err: orig}
	}
	return &TypeError{Path: display, Found: fileMode(st.Mode).Type(), Want: ErrNotDir}
}

// Close releases the directory's descriptor.
func (d *Dir) Close() error { return d.f.Close() }

func (d *Dir) fd() int { return int(d.f.Fd()) }

func (d *Dir) join(name string) string { return path.Join(d.path, name) }

func (d *Dir) between(name string) {
	if d.hook != nil {
		d.hook(name)
	}
}

// checkName refuses anything but one path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	return nil
}

func (d *Dir) lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, nil
}

// names reads all the directory's entries, from its start.
func (d *Dir) names() ([]string, error) {
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return nil, &os.PathError{Op: "readdir", Path: d.path, Err: err}
	}
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return nil, &os.PathError{Op: "readdir", Path: d.path, Err: err}
	}
	return names, nil
}

// OpenDir opens the entry name, which must be a real directory; a
// symlink, file, FIFO or dangling link there is a *TypeError.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return openDirAt(d.fd(), name, d.join(name), d.hook)
}

// OpenFile opens the entry name for reading. It must be a regular file
// with one link: anything else is refused before it is opened for reading
// (a FIFO could block, a device act), and a hard link could be a host file.
func (d *Dir) OpenFile(name string) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	p := d.join(name)
	// O_PATH opens the entry itself, whatever it is, without side effects.
	fd, err := unix.Openat(d.fd(), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if err := checkRegular(p, fileMode(st.Mode), uint64(st.Nlink)); err != nil {
		return nil, err
	}
	d.between(name)
	// Reopening the O_PATH descriptor reaches the very inode just
	// checked, whatever now stands at name.
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return f, nil
}

func checkRegular(p string, mode fs.FileMode, nlink uint64) error {
	if !mode.IsRegular() {
		return &TypeError{Path: p, Found: mode.Type(), Want: ErrNotRegular}
	}
	if nlink > 1 {
		return fmt.Errorf("%s: %w (%d)", p, ErrLinked, nlink)
	}
	return nil
}

// tmpPrefix names the temporary files of atomic writes.
const tmpPrefix = ".sandboxd-tmp-"

// WriteFile replaces the entry name with a new regular file holding src,
// owned by o with mode perm: it writes a temporary file and renames it
// into place, so a reader sees the old entry or the new file, and a
// symlink, FIFO or hard link at name is replaced, never written through.
// A directory at name is not replaced. It returns the bytes written.
func (d *Dir) WriteFile(name string, src io.Reader, perm fs.FileMode, o Owner) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := tmpPrefix + hex.EncodeToString(suffix[:])
	f, err := d.create(tmp, perm, o)
	if err != nil {
		return 0, err
	}
	size, err := io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		d.between(name)
		if rerr := unix.Renameat(d.fd(), tmp, d.fd(), name); rerr != nil {
			err = &os.LinkError{Op: "rename", Old: d.join(tmp), New: d.join(name), Err: rerr}
		}
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		return 0, err
	}
	return size, nil
}

// CreateFile creates the entry name for writing, owned by o with mode
// perm; an existing entry of any kind is an fs.ErrExist error, so nothing
// planted there is written through.
func (d *Dir) CreateFile(name string, perm fs.FileMode, o Owner) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return d.create(name, perm, o)
}

func (d *Dir) create(name string, perm fs.FileMode, o Owner) (*os.File, error) {
	p := d.join(name)
	fd, err := unix.Openat(d.fd(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	if err := chownChmod(f, o, perm); err != nil {
		f.Close()
		_ = unix.Unlinkat(d.fd(), name, 0)
		return nil, err
	}
	return f, nil
}

// chownChmod gives f its owner, then its mode: a chown clears set-id
// bits, and the process umask must not shape the mode.
func chownChmod(f *os.File, o Owner, perm fs.FileMode) error {
	if err := f.Chown(o.UID, o.GID); err != nil {
		return err
	}
	return f.Chmod(perm.Perm())
}

// Mkdir creates the directory name owned by o with mode perm and returns
// it open. It is made private first and given away through its own
// descriptor, so what is chowned is a directory, never a symlink's target.
func (d *Dir) Mkdir(name string, perm fs.FileMode, o Owner) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(d.fd(), name, 0o700); err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: d.join(name), Err: err}
	}
	d.between(name)
	sub, err := d.OpenDir(name)
	if err != nil {
		return nil, err
	}
	if err := chownChmod(sub.f, o, perm); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// Move renames the entry name to toName in to, without replacing
// anything there (RENAME_NOREPLACE): a taken name is an fs.ErrExist
// error. The entry itself moves, whatever it is.
func (d *Dir) Move(name string, to *Dir, toName string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := checkName(toName); err != nil {
		return err
	}
	if err := unix.Renameat2(d.fd(), name, to.fd(), toName, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: d.join(name), New: to.join(toName), Err: err}
	}
	return nil
}

// Remove removes the entry name: a file, a symlink (not its target), or
// an empty directory.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := unix.Unlinkat(d.fd(), name, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return mode
}
