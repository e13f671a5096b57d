package mounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// Paths inside every sandbox.
const (
	WorkspaceDir = "/workspace"
	SharedDir    = "/workspace/shared"
	VenvDir      = "/opt/venv"
	// WheelsDir is where the package cache's presented directory (the
	// wheels the allow-list allows) is bound read-only.
	WheelsDir = "/opt/wheels"
	// HelperPath is where the skeleton root has a copy of the daemon's
	// own binary, to serve as the sandbox's PID 1 and as the per-command
	// supervisor.
	HelperPath = "/.sandboxd/sandboxd"
)

// hostDirs are bound read-only from the host; hostLinks are the top-level
// entries that merged-/usr systems make symlinks (bound as directories where
// a host still has them as real directories).
var (
	hostDirs  = []string{"/usr", "/etc"}
	hostLinks = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
)

// PrepareRootfs (re)creates the skeleton root filesystem that every sandbox
// mounts read-only: empty mount points and the host's /bin and /lib*
// links. It is cheap and idempotent, so it runs on every start.
func (l Layout) PrepareRootfs() error {
	root := l.Rootfs()
	dirs := []string{"usr", "etc", "proc", "dev", "sys", "tmp", "workspace", "opt/venv", "opt/wheels", ".sandboxd"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	for _, link := range hostLinks {
		if err := mirrorHostEntry(root, link); err != nil {
			return fmt.Errorf("rootfs %s: %w", link, err)
		}
	}
	return nil
}

// WriteIdentity writes the /etc/passwd and /etc/group a sandbox whose
// commands run as o sees (Identity(o.UID)): they name o "sandbox", and the
// group env, which may write the shared environment's directories, with o
// in it. They are the daemon's files, bound read-only.
func (l Layout) WriteIdentity(o Owner, env int) error {
	dir := l.Identity(o.UID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("identity of uid %d: %w", o.UID, err)
	}
	passwd := "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
		"sandbox:x:" + strconv.Itoa(o.UID) + ":" + strconv.Itoa(o.GID) + ":sandbox:/workspace:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group := "root:x:0:\nsandbox:x:" + strconv.Itoa(o.GID) + ":\nnogroup:x:65534:\n"
	if env != o.GID {
		group += "sandboxd-env:x:" + strconv.Itoa(env) + ":sandbox\n"
	}
	for name, data := range map[string]string{"passwd": passwd, "group": group} {
		if err := writeAtomic(filepath.Join(dir, name), []byte(data)); err != nil {
			return fmt.Errorf("identity of uid %d: %w", o.UID, err)
		}
	}
	return nil
}

// writeAtomic replaces path, in a directory only the daemon writes, with
// data through a temporary file renamed over it.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mirrorHostEntry makes rootfs/<name> what /<name> is on the host: the same
// symlink, a directory to bind over, or nothing.
func mirrorHostEntry(root, name string) error {
	dst := filepath.Join(root, name)
	fi, err := os.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(name)
		if err != nil {
			return err
		}
		if cur, err := os.Readlink(dst); err == nil && cur == target {
			return nil
		}
		_ = os.Remove(dst)
		return os.Symlink(target, dst)
	}
	return os.MkdirAll(dst, 0o755)
}

// Spec is what one sandbox's mount table is composed from.
type Spec struct {
	// Files is the session's files (/workspace), SharedFiles its user's
	// (/workspace/shared), VenvUpper and VenvWork its layer of /opt/venv:
	// the trees the quota mechanism gives the session and its user.
	Files, SharedFiles  string
	VenvUpper, VenvWork string
	// BaseEnv is the overlay's read-only lower layer: the version of the
	// base environment the session started on.
	BaseEnv  string
	TmpBytes int64
	// Identity is the directory of the passwd and group files the
	// sandbox sees (Layout.Identity).
	Identity string
}

const (
	roBind    = unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV
	rwBind    = unix.MS_BIND | unix.MS_REC | unix.MS_NOSUID | unix.MS_NODEV
	noExecDev = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
)

// ReadyMounts are the mounts of a sandbox started before it is a
// session's, which nothing of a user or session decides: kernel
// filesystems, the host's /usr and /etc read-only, the presented wheels.
// The daemon binary is in the skeleton root (MountSystem).
func ReadyMounts(wheels string) []*configs.Mount {
	ms := []*configs.Mount{
		{Source: "proc", Destination: "/proc", Device: "proc", Flags: noExecDev},
		{Source: "tmpfs", Destination: "/dev", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		{Source: "devpts", Destination: "/dev/pts", Device: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620"},
		{Source: "shm", Destination: "/dev/shm", Device: "tmpfs", Flags: noExecDev, Data: "mode=1777,size=65536k"},
		{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: noExecDev},
		{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: noExecDev | unix.MS_RDONLY},
	}
	for _, d := range hostDirs {
		ms = append(ms, &configs.Mount{Source: d, Destination: d, Device: "bind", Flags: roBind})
	}
	for _, d := range hostLinks {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			ms = append(ms, &configs.Mount{Source: d, Destination: d, Device: "bind", Flags: roBind})
		}
	}
	// The daemon updates the presented wheels in place, so sessions see a
	// changed allow-list at once.
	return append(ms, &configs.Mount{Source: wheels, Destination: WheelsDir, Device: "bind", Flags: roBind | unix.MS_NOEXEC})
}

// SessionMounts are a session sandbox's own mounts, in mount order: its
// user's passwd and group, its /tmp, its workspace, the user's shared
// files and its layer of the venv. They are bind mounts, a tmpfs and an
// overlay, so that a ready sandbox can be given them afterwards.
func SessionMounts(s Spec) []*configs.Mount {
	return append(identityAndTmp(s.Identity, s.TmpBytes),
		&configs.Mount{Source: s.Files, Destination: WorkspaceDir, Device: "bind", Flags: rwBind},
		&configs.Mount{Source: s.SharedFiles, Destination: SharedDir, Device: "bind", Flags: rwBind},
		&configs.Mount{Source: "overlay", Destination: VenvDir, Device: "overlay", Flags: unix.MS_NOSUID | unix.MS_NODEV,
			Data: "lowerdir=" + s.BaseEnv + ",upperdir=" + s.VenvUpper + ",workdir=" + s.VenvWork},
	)
}

// BuildMounts is the mount table of the sandbox that builds a version of
// the base environment: the directory being built is mounted read-write
// where sessions will see the finished venv, so the paths baked into it
// are right, and the presented wheels where sessions see them.
func BuildMounts(identity, venv, wheels string, tmpBytes int64) []*configs.Mount {
	return append(append(ReadyMounts(wheels), identityAndTmp(identity, tmpBytes)...),
		&configs.Mount{Source: venv, Destination: VenvDir, Device: "bind", Flags: rwBind})
}

// identityAndTmp are the sandbox's passwd and group, and a size-limited
// /tmp.
func identityAndTmp(identity string, tmpBytes int64) []*configs.Mount {
	return []*configs.Mount{
		{Source: filepath.Join(identity, "passwd"), Destination: "/etc/passwd", Device: "bind", Flags: roBind},
		{Source: filepath.Join(identity, "group"), Destination: "/etc/group", Device: "bind", Flags: roBind},
		{Source: "tmpfs", Destination: "/tmp", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV,
			Data: "mode=1777,size=" + strconv.FormatInt(tmpBytes, 10)},
	}
}

// MaskedPaths and ReadonlyPaths hide or freeze what OCI runtimes do by default.
var (
	MaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)
