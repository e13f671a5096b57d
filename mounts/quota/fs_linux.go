package quota

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// noFollow confines a lookup to one directory and refuses every symlink
// on the way: whatever was planted in the tree, the daemon acts on what it
// made or on nothing.
const noFollow = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openDir opens a directory the caller named (a path of the daemon's own
// state tree), refusing a symlink as its last component.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openAt opens name (one component, or a relative path of components)
// beneath dir without following any symlink.
func openAt(dir *os.File, name string, flags int) (*os.File, error) {
	// No O_NOFOLLOW: with O_PATH it would open a trailing symlink itself;
	// RESOLVE_NO_SYMLINKS refuses it instead.
	how := &unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Resolve: noFollow}
	for {
		fd, err := unix.Openat2(int(dir.Fd()), name, how)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
			return nil, fmt.Errorf("%s/%s: %w (%w)", dir.Name(), name, ErrForeign, err)
		case errors.Is(err, unix.ENOTDIR) && flags&unix.O_DIRECTORY != 0:
			return nil, fmt.Errorf("%s/%s: %w (%w)", dir.Name(), name, ErrForeign, err)
		case err != nil:
			return nil, &os.PathError{Op: "openat2", Path: dir.Name() + "/" + name, Err: err}
		}
		return os.NewFile(uintptr(fd), dir.Name()+"/"+name), nil
	}
}

// owner is who a directory must belong to.
type owner struct{ uid, gid int }

var rootOwner = owner{0, 0}

// ensureDir makes name in dir if missing and returns it opened (O_RDONLY,
// so that ioctls work). An existing entry must be a directory of the
// expected owner on dir's filesystem: anything else is ErrForeign.
func ensureDir(dir *os.File, name string, mode uint32, o owner) (*os.File, error) {
	made := true
	if err := unix.Mkdirat(int(dir.Fd()), name, mode); errors.Is(err, unix.EEXIST) {
		made = false
	} else if err != nil {
		return nil, &os.PathError{Op: "mkdirat", Path: dir.Name() + "/" + name, Err: err}
	}
	f, err := openAt(dir, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	if made {
		// Set owner and mode on the descriptor: the umask must not decide
		// them, and the directory is the one just opened.
		if err := f.Chown(o.uid, o.gid); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Chmod(os.FileMode(mode)); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if err := checkOwned(f, o); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOwned verifies that f belongs to o.
func checkOwned(f *os.File, o owner) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if int(st.Uid) != o.uid || int(st.Gid) != o.gid {
		return fmt.Errorf("%s: %w: owned by %d:%d, not %d:%d", f.Name(), ErrForeign, st.Uid, st.Gid, o.uid, o.gid)
	}
	return nil
}

func fstat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return st, nil
}

func fstatfs(f *os.File) (unix.Statfs_t, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return st, &os.PathError{Op: "fstatfs", Path: f.Name(), Err: err}
	}
	return st, nil
}

// openRegular opens an existing regular file of root's with one link
// beneath dir.
func openRegular(dir *os.File, name string, flags int) (*os.File, error) {
	f, err := openAt(dir, name, flags)
	if err != nil {
		return nil, err
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Uid != 0 {
		f.Close()
		return nil, fmt.Errorf("%s: %w: not a regular file of root's with one link", f.Name(), ErrForeign)
	}
	return f, nil
}

// removeAt removes name in dir if present; a missing entry is not an
// error.
func removeAt(dir *os.File, name string, flags int) error {
	err := unix.Unlinkat(int(dir.Fd()), name, flags)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &os.PathError{Op: "unlinkat", Path: dir.Name() + "/" + name, Err: err}
}

// sessionNames lists the directory rel beneath root and names the
// sessions it holds: entries that are valid session ids once suffix is
// cut off (entries without it are not sessions').
func sessionNames(root *os.File, rel, suffix string) ([]string, error) {
	dir, err := openAt(root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir.Name(), err)
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n, suffix); ok && checkName("session", id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// removeTemps removes the leftovers of creations a crash interrupted.
func removeTemps(dir *os.File) error {
	d, err := openAt(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir.Name(), err)
	}
	for _, n := range names {
		if len(n) > len(tmpPrefix) && strings.HasPrefix(n, tmpPrefix) {
			if err := removeAt(dir, n, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameFS reports whether a and b are on the same filesystem, i.e. whether
// nothing is mounted on b when b is a directory of a.
func sameFS(a, b *os.File) (bool, error) {
	sa, err := fstat(a)
	if err != nil {
		return false, err
	}
	sb, err := fstat(b)
	if err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev, nil
}

// syncDir makes a directory's entries durable.
func syncDir(dir *os.File) error {
	d, err := openAt(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
