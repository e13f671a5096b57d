package mounts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// systemSlack is the room the system file system has beyond the helper:
// the skeleton's directories and every user's passwd and group files.
const systemSlack = 16 << 20

// MountSystem mounts a new tmpfs of the daemon's own at System() and
// fills it with the skeleton root, a copy of helper at HelperPath in it,
// and, as users come, their passwd and group files (WriteIdentity).
//
// What a sandbox binds from it shows, in its /proc/self/mountinfo, as a
// path inside this tmpfs (/rootfs, /identity/<uid>/passwd), not as a path
// of the host's file system, which would name the state directory and the
// daemon binary. A tmpfs a previous daemon left there (it was killed) is
// detached first; the sandboxes it started keep theirs.
func (l Layout) MountSystem(helper string) error {
	dir := l.System()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("system: %w", err)
	}
	if err := l.UnmountSystem(); err != nil {
		return err
	}
	src, err := os.Open(helper)
	if err != nil {
		return fmt.Errorf("system: helper: %w", err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("system: helper: %w", err)
	}
	size := strconv.FormatInt(fi.Size()+systemSlack, 10)
	if err := unix.Mount("sandboxd-system", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size="+size); err != nil {
		return fmt.Errorf("system: mount tmpfs at %s: %w", dir, err)
	}
	// Nothing the daemon does to it reaches another mount namespace.
	err = unix.Mount("", dir, "", unix.MS_PRIVATE, "")
	if err == nil {
		err = l.PrepareRootfs()
	}
	if err == nil {
		err = copyHelper(src, filepath.Join(l.Rootfs(), HelperPath))
	}
	if err != nil {
		return errors.Join(fmt.Errorf("system: %w", err), l.UnmountSystem())
	}
	return nil
}

// copyHelper copies the daemon's binary to dst, read-only and executable.
func copyHelper(src *os.File, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o555)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		_ = f.Close()
		return fmt.Errorf("copy helper: %w", err)
	}
	return f.Close()
}

// UnmountSystem detaches the system tmpfs, if one is mounted; a sandbox
// keeps the copy in its own mount namespace.
func (l Layout) UnmountSystem() error {
	mounted, err := isMountPoint(l.System())
	if err != nil || !mounted {
		return err
	}
	if err := unix.Unmount(l.System(), unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("system: unmount %s: %w", l.System(), err)
	}
	return nil
}

// isMountPoint says whether dir is the root of a mount of another file
// system than its parent's.
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Dir(dir), err)
	}
	return st.Dev != parent.Dev, nil
}
