package mounts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const (
	// maxDepth bounds how many directories a walk holds open at once.
	maxDepth = 128
	// maxAttempts bounds how often one entry is looked at again because
	// it changed between two system calls.
	maxAttempts = 8
	// maxPasses bounds how often a directory is read again because it
	// was not empty after its entries were removed: entries added
	// meanwhile, or subtrees moved up from below maxDepth.
	maxPasses = 1 << 14
	// parkPrefix names the subtrees RemoveAll moves up to its top.
	parkPrefix = ".sandboxd-rm-"
)

// RemoveAll removes the entry name and, if it is a directory, everything
// beneath it. It follows no symlink: every directory is opened without
// following and emptied through its descriptor, and an entry that turns
// into something else meanwhile is looked at again and removed as what it
// is. At most maxDepth directories are held open: a subtree deeper than
// that is moved up into the top directory being removed, and removed from
// there. A missing entry is not an error.
func (d *Dir) RemoveAll(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return d.removeEntry(name, nil, 0)
}

// removeEntry removes name from d. top is the directory whose removal
// this is part of, nil while name is that directory.
func (d *Dir) removeEntry(name string, top *Dir, depth int) error {
	p := d.join(name)
	for range maxAttempts {
		err := unix.Unlinkat(d.fd(), name, 0)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EISDIR) {
			return &os.PathError{Op: "remove", Path: p, Err: err}
		}
		if top != nil && depth >= maxDepth {
			return d.park(name, top)
		}
		d.between(name)
		sub, err := d.OpenDir(name)
		var typeErr *TypeError
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil
		case errors.As(err, &typeErr):
			continue // no longer a directory: unlink it as what it is
		case err != nil:
			return err
		}
		subTop := top
		if subTop == nil {
			subTop = sub
		}
		err = sub.removeContents(subTop, depth+1)
		sub.Close()
		if err != nil {
			return err
		}
		err = unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ENOTEMPTY):
			continue // swapped or refilled meanwhile: look again
		default:
			return &os.PathError{Op: "remove", Path: p, Err: err}
		}
	}
	return fmt.Errorf("remove %s: it kept changing under %d attempts", p, maxAttempts)
}

// removeContents empties d, reading it again until it stays empty.
func (d *Dir) removeContents(top *Dir, depth int) error {
	for range maxPasses {
		names, err := d.names()
		if errors.Is(err, unix.ENOENT) {
			return nil // removed meanwhile (another remover): nothing to empty
		}
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		var errs []error
		for _, name := range names {
			if err := d.removeEntry(name, top, depth); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return fmt.Errorf("remove %s: still not empty after %d passes", d.path, maxPasses)
}

// park moves the directory name of d into top under a fresh name, where
// top's next pass removes it while holding fewer directories open.
func (d *Dir) park(name string, top *Dir) error {
	for range maxAttempts {
		var suffix [8]byte
		_, _ = rand.Read(suffix[:])
		err := d.Move(name, top, parkPrefix+hex.EncodeToString(suffix[:]))
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return fmt.Errorf("remove %s: no free name to move it up to %s", d.join(name), top.path)
}

// ChownTree gives the directory itself and every entry beneath it that
// from owns to to, uid and gid each on its own: what another user or root
// owns keeps its owner. It follows no symlink (a symlink is chowned
// itself), chowns a directory through the descriptor it then descends
// with, and leaves an entry that changes type meanwhile as it is. It goes
// on past a failure and returns them all.
func (d *Dir) ChownTree(from, to Owner) error {
	chown := func(st *unix.Stat_t) (int, int, bool) {
		uid, gid := -1, -1
		if int(st.Uid) == from.UID {
			uid = to.UID
		}
		if int(st.Gid) == from.GID {
			gid = to.GID
		}
		return uid, gid, uid != -1 || gid != -1
	}
	dirFn := func(dir *Dir, st *unix.Stat_t) error {
		if uid, gid, ok := chown(st); ok {
			if err := unix.Fchown(dir.fd(), uid, gid); err != nil {
				return &os.PathError{Op: "chown", Path: dir.path, Err: err}
			}
		}
		return nil
	}
	fileFn := func(dir *Dir, name string, st *unix.Stat_t) error {
		if uid, gid, ok := chown(st); ok {
			err := unix.Fchownat(dir.fd(), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return &os.PathError{Op: "chown", Path: dir.join(name), Err: err}
			}
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd(), &st); err != nil {
		return &os.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return errors.Join(dirFn(d, &st), d.walk(0, dirFn, fileFn))
}

// Usage is what a tree holds.
type Usage struct {
	// Bytes is the sum of the apparent sizes of its regular files.
	Bytes int64
	// Files counts its entries other than directories.
	Files int64
}

// Usage sums what lies beneath the directory, following no symlink.
func (d *Dir) Usage() (Usage, error) {
	var u Usage
	err := d.walk(0, func(*Dir, *unix.Stat_t) error { return nil }, func(_ *Dir, _ string, st *unix.Stat_t) error {
		u.Files++
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			u.Bytes += st.Size
		}
		return nil
	})
	return u, err
}

// walk calls dirFn for each directory beneath d, with the directory open,
// before walking it, and fileFn for every other entry, depth first. It
// never follows a symlink; an entry removed or turned into another type
// meanwhile is skipped. It goes on past a failure and returns them all.
func (d *Dir) walk(depth int, dirFn func(*Dir, *unix.Stat_t) error, fileFn func(*Dir, string, *unix.Stat_t) error) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		st, err := d.lstat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			errs = append(errs, fileFn(d, name, &st))
			continue
		}
		if depth+1 >= maxDepth {
			errs = append(errs, fmt.Errorf("%s: %w (over %d)", d.join(name), ErrTooDeep, maxDepth))
			continue
		}
		d.between(name)
		sub, err := d.OpenDir(name)
		var typeErr *TypeError
		if errors.Is(err, os.ErrNotExist) || errors.As(err, &typeErr) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Fstat(sub.fd(), &st); err != nil {
			errs = append(errs, &os.PathError{Op: "stat", Path: sub.path, Err: err})
		} else {
			errs = append(errs, dirFn(sub, &st), sub.walk(depth+1, dirFn, fileFn))
		}
		sub.Close()
	}
	return errors.Join(errs...)
}
