package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Report is what Detect found: the mode this host gets and why.
type Report struct {
	Mode Mode
	// Dir is the directory probed (the state root).
	Dir string
	// FS names the filesystem of Dir ("ext4", "xfs", ...).
	FS string
	// DirectIO: loop devices read and write their images with direct I/O.
	DirectIO bool
	// Grow: loop mode can grow a user's disk online (ext4's resize needs
	// CAP_SYS_RESOURCE); without it a budget can still shrink, and grow
	// back up to the largest it was made or grown to.
	Grow bool
	// ProjectErr says why project quotas are out (nil in ModeProject);
	// LoopErr why loop images are (nil unless ModeNone).
	ProjectErr, LoopErr error
}

// String is the line sandboxd doctor prints for the quota check.
func (r Report) String() string {
	switch r.Mode {
	case ModeProject:
		return fmt.Sprintf("project quotas on %s at %s: per-session and shared limits enforced", r.FS, r.Dir)
	case ModeLoop:
		dio := "direct I/O"
		if !r.DirectIO {
			dio = "buffered I/O"
		}
		grow := ""
		if !r.Grow {
			grow = "; budgets cannot grow online without CAP_SYS_RESOURCE"
		}
		return fmt.Sprintf("loop-mounted ext4 images under %s (%s%s; no project quotas: %v): limits enforced", r.Dir, dio, grow, r.ProjectErr)
	default:
		return fmt.Sprintf("NOT ENFORCED: no project quotas (%v) and no loop-mounted images (%v)", r.ProjectErr, r.LoopErr)
	}
}

// Err is nil when limits are enforced: doctor shows a non-nil Err as a
// failed optional check (the daemon runs, limits are not enforced).
func (r Report) Err() error {
	if r.Mode == ModeNone {
		return fmt.Errorf("disk limits are not enforced: %s", r)
	}
	return nil
}

// Detect tries each mechanism on dir, the state root (whose filesystem
// holds the users' directories), best first: project quotas, then loop
// images; each probe makes and removes a small thing there.
func Detect(ctx context.Context, dir string) Report {
	r := Report{Dir: dir, FS: fsName(dir)}
	removeProbeLeftovers(dir)
	if r.ProjectErr = probeProject(ctx, dir); r.ProjectErr == nil {
		r.Mode = ModeProject
		return r
	}
	if r.DirectIO, r.LoopErr = probeLoop(ctx, dir); r.LoopErr == nil {
		r.Mode, r.Grow = ModeLoop, haveCap(unix.CAP_SYS_RESOURCE)
		return r
	}
	r.Mode = ModeNone
	return r
}

// New returns a Manager for cfg.Mode.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	m := &Manager{mode: cfg.Mode, users: make(map[string]*user)}
	switch cfg.Mode {
	case ModeLoop:
		t, err := findTools(ctx)
		if err != nil {
			return nil, fmt.Errorf("quota: %w", err)
		}
		m.backend = &loopBackend{tools: t, directIO: true}
	case ModeProject:
		p, err := newProjectBackend(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("quota: %w", err)
		}
		m.backend = p
	case ModeNone:
		m.backend = &noneBackend{}
	default:
		return nil, fmt.Errorf("quota: %w: mode %q", ErrInvalid, cfg.Mode)
	}
	return m, nil
}

func fsName(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	default:
		return fmt.Sprintf("0x%x", st.Type)
	}
}

const probePrefix = ".quota-probe-"

// probeDir makes a root-only scratch directory in dir.
func probeDir(dir string) (string, func(), error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	p := dir + "/" + probePrefix + hex.EncodeToString(rnd[:])
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", nil, err
	}
	return p, func() { _ = os.RemoveAll(p) }, nil
}

// removeProbeLeftovers removes what a probe interrupted by a crash left
// (a probe's mount, if any, stays, and so does its directory).
func removeProbeLeftovers(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), probePrefix) {
			_ = os.RemoveAll(dir + "/" + e.Name())
		}
	}
}

// probeLoop makes a small image in dir, binds a loop device to it and
// mounts it, as the loop mode does for every user. It reports whether the
// loop device does direct I/O on this filesystem.
func probeLoop(ctx context.Context, dir string) (bool, error) {
	t, err := findTools(ctx)
	if err != nil {
		return false, err
	}
	scratch, cleanup, err := probeDir(dir)
	if err != nil {
		return false, err
	}
	defer cleanup()
	d, err := openDir(scratch)
	if err != nil {
		return false, err
	}
	defer d.Close()
	spec := imageSpec{blocks: 4 * mib / blockSize, inodes: 64}
	img, err := makeImage(d, "probe.img", 4*mib, func(f *os.File) error { return t.mkfs(ctx, f, spec) })
	if err != nil {
		return false, err
	}
	defer img.Close()
	st, err := fstat(img)
	if err != nil {
		return false, err
	}
	mp, err := ensureDir(d, "mnt", 0o700, rootOwner)
	if err != nil {
		return false, err
	}
	mp.Close()
	b := &loopBackend{tools: t, directIO: true}
	root, err := b.ensureMounted(ctx, d, "mnt", img, st, true)
	if err != nil {
		return false, err
	}
	defer root.Close()
	rst, err := fstat(root)
	var dev *loopDev
	if err == nil {
		dev, err = openLoop(rst.Dev)
	}
	dio := err == nil && dev.dio
	if dev != nil {
		dev.Close()
	}
	return dio, errors.Join(err, unmount(root))
}
