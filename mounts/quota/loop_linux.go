package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopBackend enforces the limits with loop-mounted ext4 images: the
// user's image holds U bytes for shared_files and the sessions' images,
// each of which is fully allocated when it is made, so a session's
// reservation is taken from the user's filesystem at once and for good,
// and every limit is the hard ENOSPC of a filesystem that is full.
type loopBackend struct {
	tools     tools
	directIO  bool
	templates templates
}

// ext4ResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): the online
// grow resize2fs itself calls on a mounted filesystem.
const ext4ResizeFS = 0x40086610

// userDisk is a user's directory and its mounted disk.
type userDisk struct {
	dir, root *os.File
	image     unix.Stat_t
}

func (d *userDisk) Close() {
	if d.root != nil {
		d.root.Close()
	}
	d.dir.Close()
}

// open returns the user's disk, mounted, verified to be the user's image.
func (b *loopBackend) open(u *user) (*userDisk, error) {
	dir, err := openUserDir(u.dir)
	if err != nil {
		return nil, err
	}
	d := &userDisk{dir: dir}
	img, err := openRegular(dir, userImage, unix.O_RDONLY)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.image, err = fstat(img)
	img.Close()
	if err != nil {
		d.Close()
		return nil, err
	}
	root, dev, err := mounted(dir, diskDir, d.image)
	if err == nil && dev == nil {
		root.Close()
		err = fmt.Errorf("%w: %s is not mounted", ErrNotAttached, u.dir+"/"+diskDir)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	dev.Close()
	d.root = root
	return d, nil
}

func openUserDir(path string) (*os.File, error) {
	dir, err := openDir(path)
	if err != nil {
		return nil, err
	}
	if err := checkOwned(dir, rootOwner); err != nil {
		dir.Close()
		return nil, err
	}
	return dir, nil
}

func (b *loopBackend) attachUser(ctx context.Context, u *user) error {
	dir, err := openUserDir(u.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := notOtherMode(dir, ModeLoop); err != nil {
		return err
	}
	if err := removeTemps(dir); err != nil {
		return err
	}
	mp, err := ensureDir(dir, diskDir, 0o711, rootOwner)
	if err != nil {
		return err
	}
	mp.Close()
	if u.limits == KeepBudget {
		img, err := openRegular(dir, userImage, unix.O_RDONLY)
		if errIsNotExist(err) {
			return fmt.Errorf("%w: no budget for a new disk", ErrInvalid)
		}
		if err != nil {
			return err
		}
		img.Close()
	}
	root, st, err := b.mountUserDisk(ctx, dir, u.limits.Bytes)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, d := range []struct {
		name string
		mode uint32
		o    owner
	}{{imagesDir, 0o700, rootOwner}, {sessionsDir, 0o711, rootOwner}, {sharedDir, 0o750, u.owner}} {
		f, err := ensureDir(root, d.name, d.mode, d.o)
		if err != nil {
			return err
		}
		f.Close()
	}
	images, err := openAt(root, imagesDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	err = removeTemps(images)
	images.Close()
	if err != nil || u.limits == KeepBudget {
		return err
	}
	return b.setBudget(ctx, &userDisk{dir: dir, root: root, image: st}, u.limits.Bytes)
}

// mountUserDisk mounts the user's image, made first if missing, and
// returns the mount's root and the image's identity. A new image whose
// filesystem holds less than the budget (the estimate of ext4's own
// metadata fell short) is made again, larger: unlike growing a mounted
// one, that needs no privilege.
func (b *loopBackend) mountUserDisk(ctx context.Context, dir *os.File, budget int64) (*os.File, unix.Stat_t, error) {
	size := userImageBytes(budget)
	for range 3 {
		fresh := false
		img, err := openRegular(dir, userImage, unix.O_RDWR)
		if errIsNotExist(err) {
			spec := imageSpec{blocks: size / blockSize, journalMiB: journalMiB(budget), growable: true}
			img, err = makeImage(dir, userImage, size, func(f *os.File) error { return b.tools.mkfs(ctx, f, spec) })
			fresh = true
		}
		if err != nil {
			return nil, unix.Stat_t{}, err
		}
		st, err := fstat(img)
		var root *os.File
		if err == nil {
			root, err = b.ensureMounted(ctx, dir, diskDir, img, st, fresh)
		}
		img.Close()
		if err != nil || !fresh {
			return root, st, err
		}
		fs, err := fstatfs(root)
		short := budget + dirAllowance - capacity(fs)
		if err == nil && short <= 0 {
			return root, st, nil
		}
		if err == nil {
			err = unmount(root)
		}
		root.Close()
		if err == nil {
			err = removeAt(dir, userImage, 0)
		}
		if err != nil {
			return nil, unix.Stat_t{}, err
		}
		size += 2*short + mib
	}
	return nil, unix.Stat_t{}, fmt.Errorf("the filesystem made in %s/%s holds less than %d bytes", dir.Name(), userImage, budget)
}

// makeImage creates name in dir: a temporary file, fully allocated,
// given a filesystem by fill, renamed into place only when whole and
// durable, so that a crash leaves either nothing or a usable image.
func makeImage(dir *os.File, name string, size int64, fill func(*os.File) error) (*os.File, error) {
	f, tmp, err := createTemp(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			_ = removeAt(dir, tmp, 0)
		}
	}()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return nil, fmt.Errorf("%w: allocating %d bytes in %s: %w", ErrNoRoom, size, dir.Name(), err)
		}
		return nil, fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	if err := fill(f); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := unix.Renameat2(int(dir.Fd()), tmp, int(dir.Fd()), name, unix.RENAME_NOREPLACE); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	ok = true
	return f, nil
}

// createTemp creates a root-only temporary file in dir, named so that
// removeTemps finds it if a crash leaves it behind.
func createTemp(dir *os.File) (*os.File, string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := tmpPrefix + hex.EncodeToString(rnd[:])
	f, err := openAt(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	if err != nil {
		return nil, "", err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		_ = removeAt(dir, name, 0)
		return nil, "", err
	}
	return f, name, nil
}

// ensureMounted makes sure image is mounted on name beneath dir and
// returns the mount's root. An image no loop device holds is checked
// first (e2fsck -p), unless it was just made.
func (b *loopBackend) ensureMounted(ctx context.Context, dir *os.File, name string, img *os.File, st unix.Stat_t, fresh bool) (*os.File, error) {
	mp, dev, err := mounted(dir, name, st)
	if err != nil {
		return nil, err
	}
	if dev != nil {
		dev.Close()
		return mp, nil
	}
	defer mp.Close()
	if err := checkOwned(mp, rootOwner); err != nil {
		return nil, err
	}
	// Mounting would hide what is there (files of another mode's layout,
	// say): refuse rather than lose sight of them.
	if names, err := mp.Readdirnames(1); len(names) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty (%s): move its content away first", ErrForeign, mp.Name(), names[0])
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("list %s: %w", mp.Name(), err)
	}
	if !fresh {
		// A loop device may still hold the image (a lazily unmounted
		// filesystem someone still uses): share it rather than run a
		// second filesystem over the same blocks.
		if dev, err = findLoop(st); err != nil {
			return nil, err
		}
	}
	if dev == nil {
		if !fresh {
			if err := b.tools.fsck(ctx, img); err != nil {
				return nil, err
			}
		}
		if dev, err = attachLoop(img, b.directIO); err != nil {
			return nil, err
		}
	}
	// Closing the device after the mount leaves the mount its only user:
	// with autoclear, the device comes free when it is unmounted, and if
	// the mount fails it comes free here.
	defer dev.Close()
	if err := mountLoop(dev, mp); err != nil {
		return nil, err
	}
	root, dev2, err := mounted(dir, name, st)
	if err != nil {
		return nil, err
	}
	if dev2 == nil {
		root.Close()
		return nil, fmt.Errorf("%s/%s: the mount did not appear", dir.Name(), name)
	}
	dev2.Close()
	return root, nil
}

// ballast returns the ballast file, made if missing, and its allocated
// bytes.
func ballast(root *os.File) (*os.File, int64, error) {
	f, err := openRegular(root, ballastFile, unix.O_RDWR)
	if errIsNotExist(err) {
		f, err = openAt(root, ballastFile, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
		if err == nil {
			err = f.Chmod(0o600)
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, 0, err
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size, nil
}

// setBudget makes the user's filesystem hold exactly budget bytes (and
// the directories' allowance) beyond its own metadata: a fallocated,
// root-only ballast file takes the rest.
// Growing shrinks the ballast, then grows the image online (fallocate,
// LOOP_SET_CAPACITY, EXT4_IOC_RESIZE_FS); shrinking grows the ballast, which
// fails, changing nothing, when the space is in use. The host keeps the
// image's size after a shrink.
func (b *loopBackend) setBudget(ctx context.Context, d *userDisk, budget int64) error {
	bal, size, err := ballast(d.root)
	if err != nil {
		return err
	}
	defer bal.Close()
	room := budget + dirAllowance
	for range 4 {
		st, err := fstatfs(d.root)
		if err != nil {
			return err
		}
		total := capacity(st)
		if total >= room {
			return setBallast(bal, size, total-room, int64(st.Blocks-st.Bfree)*st.Bsize-size, room)
		}
		// Grow by the shortfall plus what the new block groups' own
		// metadata takes, then look again.
		short := room - total
		if err := b.growImage(ctx, d, short+short/32+2*mib); err != nil {
			return err
		}
	}
	return fmt.Errorf("the filesystem of %s did not reach %d bytes", d.dir.Name(), room)
}

// capacity is what files can take of a filesystem: its data blocks less
// those ext4 keeps for its own metadata (s_resv_clusters, 2% up to
// 16 MiB), which statfs counts free but not available. No blocks are
// reserved for root (mke2fs -m 0): the daemon gets no more than a sandbox.
func capacity(st unix.Statfs_t) int64 {
	return int64(st.Blocks-st.Bfree+st.Bavail) * st.Bsize
}

// setBallast sizes the ballast to want bytes. used is what the user's
// files and images take, room what they may.
func setBallast(bal *os.File, have, want, used, room int64) error {
	switch {
	case want == have:
		return nil
	case want < have:
		if err := bal.Truncate(want); err != nil {
			return fmt.Errorf("shrink %s: %w", bal.Name(), err)
		}
		return nil
	case used > room:
		return fmt.Errorf("%w: %d bytes used, limit %d", ErrBelowUsage, used, room-dirAllowance)
	}
	err := unix.Fallocate(int(bal.Fd()), 0, 0, want)
	if err == nil {
		return nil
	}
	// A write raced the check: give back what was taken.
	_ = bal.Truncate(have)
	if errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: limit %d: %w", ErrBelowUsage, room-dirAllowance, err)
	}
	return fmt.Errorf("grow %s: %w", bal.Name(), err)
}

// growImage adds by bytes to the user's image while it is mounted.
func (b *loopBackend) growImage(ctx context.Context, d *userDisk, by int64) error {
	if !haveCap(unix.CAP_SYS_RESOURCE) {
		return fmt.Errorf("%w: ext4's online resize needs CAP_SYS_RESOURCE", ErrCannotGrow)
	}
	img, err := openRegular(d.dir, userImage, unix.O_RDWR)
	if err != nil {
		return err
	}
	defer img.Close()
	st, err := fstat(img)
	if err != nil {
		return err
	}
	if st.Dev != d.image.Dev || st.Ino != d.image.Ino {
		return fmt.Errorf("%w: %s changed", ErrForeign, img.Name())
	}
	size := (st.Size + by + blockSize - 1) / blockSize * blockSize
	if err := unix.Fallocate(int(img.Fd()), 0, 0, size); err != nil {
		return fmt.Errorf("grow %s to %d bytes: %w", img.Name(), size, err)
	}
	rst, err := fstat(d.root)
	if err != nil {
		return err
	}
	dev, err := openLoop(rst.Dev)
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := dev.setCapacity(); err != nil {
		return err
	}
	blocks := uint64(size / blockSize)
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.root.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return fmt.Errorf("online resize of %s to %d blocks: %w", d.root.Name(), blocks, errno)
	}
	return nil
}

// haveCap reports whether the process has capability c in effect.
func haveCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

func (b *loopBackend) setUserLimits(ctx context.Context, u *user, l UserLimits) error {
	d, err := b.open(u)
	if err != nil {
		return err
	}
	defer d.Close()
	return b.setBudget(ctx, d, l.Bytes)
}

func (b *loopBackend) reserveSession(ctx context.Context, u *user, sid string, l SessionLimits) (SessionDirs, error) {
	d, err := b.open(u)
	if err != nil {
		return SessionDirs{}, err
	}
	defer d.Close()
	images, err := openAt(d.root, imagesDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return SessionDirs{}, err
	}
	defer images.Close()
	sessions, err := openAt(d.root, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return SessionDirs{}, err
	}
	defer sessions.Close()

	// The mount point first: one that is not the daemon's stops the
	// reservation before anything is made.
	mp, err := ensureDir(sessions, sid, 0o755, rootOwner)
	if errors.Is(err, unix.ENOSPC) {
		// shared_files took all that was not reserved.
		return SessionDirs{}, fmt.Errorf("%w: %w", ErrNoRoom, err)
	}
	if err != nil {
		return SessionDirs{}, err
	}
	mp.Close()
	fresh := false
	img, err := openRegular(images, sid+imageSuffix, unix.O_RDWR)
	if errIsNotExist(err) {
		spec := sessionSpec(l)
		img, err = makeImage(images, sid+imageSuffix, spec.blocks*blockSize, func(f *os.File) error {
			tpl, err := b.templates.get(ctx, b.tools, images, spec)
			if err != nil {
				return err
			}
			return tpl.writeTo(f)
		})
		fresh = true
	}
	if err != nil {
		if fresh {
			_ = removeAt(sessions, sid, unix.AT_REMOVEDIR)
		}
		return SessionDirs{}, err
	}
	defer img.Close()
	st, err := fstat(img)
	var root *os.File
	if err == nil {
		root, err = b.ensureMounted(ctx, sessions, sid, img, st, fresh)
	}
	if err != nil {
		if fresh {
			_ = removeAt(sessions, sid, unix.AT_REMOVEDIR)
			_ = removeAt(images, sid+imageSuffix, 0)
		}
		return SessionDirs{}, err
	}
	defer root.Close()
	if err := makeSessionLayout(root, u.owner); err != nil {
		return SessionDirs{}, err
	}
	return sessionDirs(u.dir, sid), nil
}

// makeSessionLayout makes (or checks) the directories of a session's
// tree: what its sandbox writes belongs to the user's owner o, and so
// does the overlay's upper dir, whose owner the overlay's root takes.
func makeSessionLayout(root *os.File, o owner) error {
	for _, d := range []struct {
		name string
		mode uint32
		o    owner
	}{
		{sessionFiles, 0o750, o},
		{sessionLogs, 0o750, o},
		{sessionVenv, 0o700, rootOwner},
		{sessionVenv + "/" + venvUpper, 0o755, o},
		{sessionVenv + "/" + venvWork, 0o700, rootOwner},
	} {
		parent, name := root, d.name
		if i := strings.LastIndexByte(d.name, '/'); i >= 0 {
			p, err := openAt(root, d.name[:i], unix.O_PATH|unix.O_DIRECTORY)
			if err != nil {
				return err
			}
			defer p.Close()
			parent, name = p, d.name[i+1:]
		}
		f, err := ensureDir(parent, name, d.mode, d.o)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

func (b *loopBackend) releaseSession(ctx context.Context, u *user, sid string) error {
	d, err := b.open(u)
	if err != nil {
		return err
	}
	defer d.Close()
	images, err := openAt(d.root, imagesDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer images.Close()
	sessions, err := openAt(d.root, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer sessions.Close()
	if err := b.unmountSession(images, sessions, sid); err != nil {
		return err
	}
	if err := removeAt(sessions, sid, unix.AT_REMOVEDIR); err != nil {
		return err
	}
	return removeAt(images, sid+imageSuffix, 0)
}

// unmountSession unmounts the session's image if it is mounted.
func (b *loopBackend) unmountSession(images, sessions *os.File, sid string) error {
	img, err := openRegular(images, sid+imageSuffix, unix.O_RDONLY)
	if errIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := fstat(img)
	img.Close()
	if err != nil {
		return err
	}
	mp, dev, err := mounted(sessions, sid, st)
	if errIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer mp.Close()
	if dev == nil {
		return nil
	}
	dev.Close()
	return unmount(mp)
}

// sessions names the sessions with an image, and those with only a mount
// point: a reservation a crash cut short before its image was in place.
func (b *loopBackend) sessions(u *user) ([]string, error) {
	d, err := b.open(u)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ids, err := listSessions(d.root)
	if err != nil {
		return nil, err
	}
	points, err := sessionNames(d.root, sessionsDir, "")
	if err != nil {
		return nil, err
	}
	for _, n := range points {
		if !slices.Contains(ids, n) {
			ids = append(ids, n)
		}
	}
	return ids, nil
}

// listSessions names the sessions that have an image.
func listSessions(root *os.File) ([]string, error) {
	return sessionNames(root, imagesDir, imageSuffix)
}

func (b *loopBackend) usage(u *user) (UserUsage, error) {
	d, err := b.open(u)
	if err != nil {
		return UserUsage{}, err
	}
	defer d.Close()
	st, err := fstatfs(d.root)
	if err != nil {
		return UserUsage{}, err
	}
	bal, err := openRegular(d.root, ballastFile, unix.O_RDONLY)
	if err != nil {
		return UserUsage{}, err
	}
	bst, err := fstat(bal)
	bal.Close()
	if err != nil {
		return UserUsage{}, err
	}
	ids, err := listSessions(d.root)
	if err != nil {
		return UserUsage{}, err
	}
	images, err := openAt(d.root, imagesDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return UserUsage{}, err
	}
	defer images.Close()
	sessions, err := openAt(d.root, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return UserUsage{}, err
	}
	defer sessions.Close()

	uu := UserUsage{Enforced: true, Sessions: make(map[string]Usage, len(ids))}
	for _, id := range ids {
		su, reserved, err := sessionUsage(images, sessions, id)
		if errIsNotExist(err) {
			continue // released meanwhile
		}
		if err != nil {
			return UserUsage{}, fmt.Errorf("session %q: %w", id, err)
		}
		uu.Reserved += reserved
		uu.Sessions[id] = su
	}
	uu.LimitBytes = capacity(st) - bst.Size - dirAllowance
	uu.Bytes = int64(st.Blocks-st.Bfree)*st.Bsize - bst.Size
	// The filesystem's own inodes, the package's directories and ballast,
	// and two per session (its image and its mount point).
	own := int64(firstInode+4) + 2*int64(len(uu.Sessions))
	uu.Shared = Usage{
		Bytes:      uu.Bytes - uu.Reserved,
		LimitBytes: uu.LimitBytes - uu.Reserved,
		Files:      max(int64(st.Files-st.Ffree)-own, 0),
		LimitFiles: int64(st.Files) - own,
	}
	return uu, nil
}

// sessionUsage reads a session's usage from its filesystem, and what its
// image takes of the user's.
func sessionUsage(images, sessions *os.File, id string) (Usage, int64, error) {
	img, err := openRegular(images, id+imageSuffix, unix.O_RDONLY)
	if err != nil {
		return Usage{}, 0, err
	}
	ist, err := fstat(img)
	img.Close()
	if err != nil {
		return Usage{}, 0, err
	}
	reserved := ist.Size
	mp, dev, err := mounted(sessions, id, ist)
	if err != nil {
		return Usage{}, 0, err
	}
	defer mp.Close()
	if dev == nil {
		// Reserved but not mounted (a session not yet re-attached):
		// only its reservation is known.
		return Usage{}, reserved, nil
	}
	dev.Close()
	st, err := fstatfs(mp)
	if err != nil {
		return Usage{}, 0, err
	}
	own := int64(firstInode + sessionLayout)
	return Usage{
		Bytes:      int64(st.Blocks-st.Bfree) * st.Bsize,
		LimitBytes: capacity(st),
		Files:      max(int64(st.Files-st.Ffree)-own, 0),
		LimitFiles: int64(st.Files) - own,
	}, reserved, nil
}

func (b *loopBackend) detachUser(ctx context.Context, u *user) error {
	d, err := b.open(u)
	if errors.Is(err, ErrNotAttached) || errIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	// Each session's filesystem first, so that each is shut down whole;
	// the disk's lazy unmount then takes whatever could not be verified
	// (it detaches the mounts beneath it too).
	err = b.unmountSessions(d.root)
	return errors.Join(err, unmount(d.root))
}

func (b *loopBackend) unmountSessions(root *os.File) error {
	ids, err := listSessions(root)
	if err != nil {
		return err
	}
	images, err := openAt(root, imagesDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer images.Close()
	sessions, err := openAt(root, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer sessions.Close()
	var errs []error
	for _, id := range ids {
		if err := b.unmountSession(images, sessions, id); err != nil {
			errs = append(errs, fmt.Errorf("session %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
