package quota

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountAttrs: nothing on a user's disk is a device or gains privileges.
const mountAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV

// mountLoop mounts the ext4 filesystem of dev onto target, a directory
// the caller opened without following symlinks and verified: the new
// mount API attaches it to that very directory, never to a path that
// could have changed since.
func mountLoop(dev *loopDev, target *os.File) error {
	// The source is a path string (ext4 resolves it itself); /dev is the
	// kernel's, and the name must still be the device held open.
	var st unix.Stat_t
	if err := unix.Stat(dev.name, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dev.name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev.rdev {
		return fmt.Errorf("%w: %s is not the loop device just bound", ErrForeign, dev.name)
	}
	fsfd, err := unix.Fsopen("ext4", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen ext4: %w", err)
	}
	defer unix.Close(fsfd)
	for _, kv := range [][2]string{{"source", dev.name}, {"errors", "remount-ro"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("mount %s: %s=%s: %w%s", dev.name, kv[0], kv[1], err, fsMessages(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("mount %s: %w%s", dev.name, err, fsMessages(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, mountAttrs)
	if err != nil {
		return fmt.Errorf("fsmount %s: %w%s", dev.name, err, fsMessages(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s onto %s: %w", dev.name, target.Name(), err)
	}
	return nil
}

// fsMessages reads the filesystem context's error log ("e ..." lines),
// which says why a mount failed better than the errno.
func fsMessages(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// unmount detaches the mount whose root mp is: it names the mount through
// its own descriptor, so no path is looked up again. MNT_DETACH because
// the descriptor itself holds the mount; the filesystem goes when its
// last user does.
func unmount(mp *os.File) error {
	p := "/proc/self/fd/" + strconv.Itoa(int(mp.Fd()))
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", mp.Name(), err)
	}
	return nil
}

// mounted opens name beneath dir and says what is mounted there: nil
// when it is a plain directory of dir's filesystem, else the loop device
// of the filesystem mounted there, which must be backed by image (the
// file st describes); anything else is ErrForeign. The returned
// directory is the mount's root when something is mounted.
func mounted(dir *os.File, name string, image unix.Stat_t) (*os.File, *loopDev, error) {
	mp, err := openAt(dir, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, nil, err
	}
	same, err := sameFS(dir, mp)
	if err != nil || same {
		if err != nil {
			mp.Close()
			mp = nil
		}
		return mp, nil, err
	}
	st, err := fstat(mp)
	if err == nil {
		var dev *loopDev
		if dev, err = openLoop(st.Dev); err == nil {
			var ours bool
			if ours, err = dev.backs(image); err == nil && ours {
				return mp, dev, nil
			}
			dev.Close()
			if err == nil {
				err = fmt.Errorf("%w: %s holds another loop device's filesystem", ErrForeign, mp.Name())
			}
		}
	}
	mp.Close()
	return nil, nil, err
}

// errIsNotExist reports a missing entry, however wrapped.
func errIsNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT)
}
