package quota

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// loopMajor is the block major of loop devices.
const loopMajor = 7

// loopDev is an open loop device bound to an image.
type loopDev struct {
	f    *os.File
	name string // /dev/loopN, as the mount table shows it
	rdev uint64
	dio  bool
}

func (l *loopDev) Close() error { return l.f.Close() }

// attachLoop binds a free loop device to image with LOOP_CONFIGURE, with
// autoclear (the device comes free when its last user, the mount, goes)
// and, when wanted and possible, direct I/O (no second copy of the data
// in the page cache). Another process may take the same free device
// between LOOP_CTL_GET_FREE and LOOP_CONFIGURE: EBUSY, try the next.
func attachLoop(image *os.File, directIO bool) (*loopDev, error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/loop-control", Err: err}
	}
	defer unix.Close(ctl)
	for range 32 {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		name := "/dev/loop" + strconv.Itoa(n)
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		dev := &loopDev{f: os.NewFile(uintptr(fd), name), name: name}
		err = configure(dev, image, directIO)
		if errors.Is(err, unix.EINVAL) && directIO {
			// The backing filesystem cannot do direct I/O here.
			err = configure(dev, image, false)
		}
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("LOOP_CONFIGURE %s: %w", name, err)
		}
		if err := dev.describe(); err != nil {
			dev.Close()
			return nil, err
		}
		return dev, nil
	}
	return nil, errors.New("no free loop device after 32 tries")
}

func configure(dev *loopDev, image *os.File, directIO bool) error {
	cfg := unix.LoopConfig{Fd: uint32(image.Fd()), Size: blockSize}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if directIO {
		cfg.Info.Flags |= unix.LO_FLAGS_DIRECT_IO
	}
	copy(cfg.Info.File_name[:unix.LO_NAME_SIZE-1], "sandboxd")
	return unix.IoctlLoopConfigure(int(dev.f.Fd()), &cfg)
}

// describe fills in what the device is and whether it does direct I/O
// (the kernel falls back to buffered I/O without saying so at configure).
func (l *loopDev) describe() error {
	st, err := fstat(l.f)
	if err != nil {
		return err
	}
	l.rdev = st.Rdev
	info, err := unix.IoctlLoopGetStatus64(int(l.f.Fd()))
	if err != nil {
		return fmt.Errorf("LOOP_GET_STATUS64 %s: %w", l.name, err)
	}
	l.dio = info.Flags&unix.LO_FLAGS_DIRECT_IO != 0
	return nil
}

// backs reports whether the loop device reads the file st describes.
func (l *loopDev) backs(st unix.Stat_t) (bool, error) {
	info, err := unix.IoctlLoopGetStatus64(int(l.f.Fd()))
	if errors.Is(err, unix.ENXIO) {
		return false, nil // unbound, or being torn down
	}
	if err != nil {
		return false, fmt.Errorf("LOOP_GET_STATUS64 %s: %w", l.name, err)
	}
	return info.Device == st.Dev && info.Inode == st.Ino, nil
}

// openLoop opens the loop device whose number is dev (a mounted
// filesystem's st_dev), or fails if dev is not a loop device.
func openLoop(dev uint64) (*loopDev, error) {
	if unix.Major(dev) != loopMajor {
		return nil, fmt.Errorf("%w: device %d:%d is not a loop device", ErrForeign, unix.Major(dev), unix.Minor(dev))
	}
	uevent, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return nil, fmt.Errorf("loop device %d:%d: %w", unix.Major(dev), unix.Minor(dev), err)
	}
	name := devName(uevent)
	if !strings.HasPrefix(name, "loop") || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: device %d:%d is %q", ErrForeign, unix.Major(dev), unix.Minor(dev), name)
	}
	path := "/dev/" + name
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	l := &loopDev{f: os.NewFile(uintptr(fd), path), name: path}
	if err := l.describe(); err != nil {
		l.Close()
		return nil, err
	}
	if l.rdev != dev {
		l.Close()
		return nil, fmt.Errorf("%w: %s is not device %d:%d", ErrForeign, path, unix.Major(dev), unix.Minor(dev))
	}
	return l, nil
}

func devName(uevent []byte) string {
	s := bufio.NewScanner(bytes.NewReader(uevent))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "DEVNAME="); ok {
			return v
		}
	}
	return ""
}

// findLoop returns a loop device already bound to the image st describes,
// or nil. Mounting that device again shares its live filesystem, where a
// second device would run a second filesystem over the same blocks.
func findLoop(st unix.Stat_t) (*loopDev, error) {
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		// Bound devices have a backing_file; the others are skipped
		// without opening them.
		if _, err := os.Stat("/sys/block/" + e.Name() + "/loop/backing_file"); err != nil {
			continue
		}
		path := "/dev/" + e.Name()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone meanwhile
		}
		l := &loopDev{f: os.NewFile(uintptr(fd), path), name: path}
		ok, err := l.backs(st)
		if err == nil && ok {
			err = l.describe()
		}
		if err != nil || !ok {
			l.Close()
			continue
		}
		return l, nil
	}
	return nil, nil
}

// setCapacity makes the device see its image's new size.
func (l *loopDev) setCapacity() error {
	if _, err := unix.IoctlRetInt(int(l.f.Fd()), unix.LOOP_SET_CAPACITY); err != nil {
		return fmt.Errorf("LOOP_SET_CAPACITY %s: %w", l.name, err)
	}
	return nil
}
