package mounts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// opaqueXattr marks an overlayfs upper directory that hides the lower
// layers' directory of the same name.
const opaqueXattr = "trusted.overlay.opaque"

// Skipped is an entry a copy left out, and why.
type Skipped struct {
	Name   string
	Reason string
}

// CopyTree copies what lies beneath d into dst, merging it into what dst
// holds: directories, regular files, symlinks (as symlinks: never
// followed) and overlayfs whiteouts (0:0 character devices), each with its
// owner and permission bits, and a directory's overlayfs opaque mark. An
// entry of dst in the way of one copied is replaced, so a copy cut short
// can be run again. FIFOs, sockets, devices and files with several hard
// links are skipped and listed, as are the top-level entries named in
// except.
// Like every walk here it holds at most maxDepth directories open, acts
// only through descriptors it opened, and takes an entry that changes
// meanwhile as what it has become. It stops at the first failure (a full
// disk, say).
func (d *Dir) CopyTree(dst *Dir, except ...string) ([]Skipped, error) {
	var skipped []Skipped
	err := d.copyInto(dst, 0, &skipped, except)
	return skipped, err
}

func (d *Dir) copyInto(dst *Dir, depth int, skipped *[]Skipped, except []string) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, name := range names {
		if slices.Contains(except, name) {
			continue
		}
		st, err := d.lstat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		o, perm := Owner{UID: int(st.Uid), GID: int(st.Gid)}, os.FileMode(st.Mode&0o777)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if depth+1 >= maxDepth {
				return fmt.Errorf("%s: %w (over %d)", d.join(name), ErrTooDeep, maxDepth)
			}
			err = d.copyDir(name, dst, o, perm, depth, skipped)
		case unix.S_IFREG:
			err = d.copyFile(name, dst, o, perm, skipped)
		case unix.S_IFLNK:
			err = d.copySymlink(name, dst, o)
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				*skipped = append(*skipped, Skipped{Name: d.join(name), Reason: "a device"})
				continue
			}
			err = dst.replace(name, func(tmp string) error {
				if err := unix.Mknodat(dst.fd(), tmp, unix.S_IFCHR, 0); err != nil {
					return err
				}
				return unix.Fchownat(dst.fd(), tmp, o.UID, o.GID, unix.AT_SYMLINK_NOFOLLOW)
			})
		default:
			*skipped = append(*skipped, Skipped{Name: d.join(name), Reason: typeName(fileMode(st.Mode).Type())})
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyDir copies the directory name into dst, into the directory already
// there if there is one.
func (d *Dir) copyDir(name string, dst *Dir, o Owner, perm os.FileMode, depth int, skipped *[]Skipped) error {
	src, err := d.OpenDir(name)
	var typeErr *TypeError
	if errors.As(err, &typeErr) {
		return nil // no longer a directory: left out, like a removed one
	}
	if err != nil {
		return err
	}
	defer src.Close()
	to, err := dst.OpenDir(name)
	if errors.As(err, &typeErr) {
		if err = dst.RemoveAll(name); err == nil {
			err = os.ErrNotExist
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		to, err = dst.Mkdir(name, perm, o)
	} else if err == nil {
		err = chownChmod(to.f, o, perm)
	}
	if err != nil {
		if to != nil {
			to.Close()
		}
		return err
	}
	defer to.Close()
	buf := make([]byte, 8)
	if n, err := unix.Fgetxattr(src.fd(), opaqueXattr, buf); err == nil {
		if err := unix.Fsetxattr(to.fd(), opaqueXattr, buf[:n], 0); err != nil {
			return &os.PathError{Op: "setxattr", Path: to.path, Err: err}
		}
	}
	return src.copyInto(to, depth+1, skipped, nil)
}

// copyFile copies the regular file name into dst. One with several hard
// links is skipped, as OpenFile refuses it: another name may be a host
// file.
func (d *Dir) copyFile(name string, dst *Dir, o Owner, perm os.FileMode, skipped *[]Skipped) error {
	src, err := d.OpenFile(name)
	var typeErr *TypeError
	switch {
	case errors.As(err, &typeErr):
		return nil // no longer a regular file: left out
	case errors.Is(err, ErrLinked):
		*skipped = append(*skipped, Skipped{Name: d.join(name), Reason: ErrLinked.Error()})
		return nil
	case err != nil:
		return err
	}
	defer src.Close()
	return dst.replace(name, func(tmp string) error {
		f, err := dst.create(tmp, perm, o)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, src); err != nil {
			f.Close()
			return fmt.Errorf("copy %s: %w", d.join(name), err)
		}
		return f.Close()
	})
}

// copySymlink makes in dst a symlink with the same target as name's.
func (d *Dir) copySymlink(name string, dst *Dir, o Owner) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(d.fd(), name, buf)
	if errors.Is(err, unix.EINVAL) {
		return nil // no longer a symlink: left out
	}
	if err != nil {
		return &os.PathError{Op: "readlink", Path: d.join(name), Err: err}
	}
	target := string(buf[:n])
	return dst.replace(name, func(tmp string) error {
		if err := unix.Symlinkat(target, dst.fd(), tmp); err != nil {
			return err
		}
		return unix.Fchownat(dst.fd(), tmp, o.UID, o.GID, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// replace makes an entry under a temporary name with build and renames
// it over name: a file or symlink there is replaced, a directory removed
// first.
func (d *Dir) replace(name string, build func(tmp string) error) error {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := tmpPrefix + hex.EncodeToString(suffix[:])
	if err := build(tmp); err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		if errors.As(err, new(*os.PathError)) {
			return err
		}
		return &os.PathError{Op: "create", Path: d.join(name), Err: err}
	}
	err := unix.Renameat(d.fd(), tmp, d.fd(), name)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		if err = d.RemoveAll(name); err == nil {
			err = unix.Renameat(d.fd(), tmp, d.fd(), name)
		}
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd(), tmp, 0)
		return &os.LinkError{Op: "rename", Old: d.join(tmp), New: d.join(name), Err: err}
	}
	return nil
}
