package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/shim"
)

// bindWait bounds the binder's run.
const bindWait = 10 * time.Second

// startNewSandbox starts a new session's sandbox: a ready one bound to it
// when there is one, else one of its own (startSandbox). A restarted
// session gets one of its own.
func (m *Manager) startNewSandbox(s *session) error {
	b := m.ready.take()
	if b == nil {
		return m.startSandbox(s)
	}
	if err := m.fault("create:bind"); err != nil {
		m.discardReady(b)
		return err
	}
	err := m.bindReady(s, b)
	if err == nil {
		return nil
	}
	m.log.Warn("a ready sandbox could not be bound; the session starts its own", "session", s.meta.ID, "err", err)
	return m.startSandbox(s)
}

// bindReady makes the ready sandbox b the session's: its cgroup with its
// limits (made as libcontainer makes a container's), its mounts and
// hostname, then the session's name for its container state and agent
// socket. On failure it destroys b and undoes what it did.
func (m *Manager) bindReady(s *session, b *readyBox) (err error) {
	defer func() {
		if err != nil {
			m.discardReady(b)
			err = errors.Join(err, m.removeContainer(s.meta.ID), m.cg.Remove(m.cg.SessionPath(s.meta.UserID, s.meta.ID)))
		}
	}()
	s.meta.Agent = shim.ProtocolVersion
	st, err := b.c.State()
	if err != nil {
		return fmt.Errorf("ready sandbox %s: %w", b.id, err)
	}
	pid := st.InitProcessPid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("ready sandbox %s: pidfd of its PID 1: %w", b.id, err)
	}
	defer unix.Close(pidfd)
	mntns, utsns, err := namespaces(pid, pidfd)
	if err != nil {
		return fmt.Errorf("ready sandbox %s: %w", b.id, err)
	}
	defer mntns.Close()
	defer utsns.Close()
	// Started at readyNice; the session's commands, which PID 1 forks,
	// run at the daemon's.
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, 0); err != nil {
		return fmt.Errorf("ready sandbox %s: priority: %w", b.id, err)
	}

	// The move into the session's cgroup waits, on v1, for an RCU grace
	// period (the kernel's lock for moves between cgroups): it runs while
	// the mounts are made and attached, which need none of it.
	spec := m.boxSpec(s)
	moved := make(chan error, 1)
	var cgPaths map[string]string
	go func() {
		var err error
		cgPaths, err = m.moveIntoSession(spec, pid)
		moved <- err
	}()
	err = m.mountSession(s, mntns, utsns)
	if err = errors.Join(err, <-moved); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	// The session's names for what the ready sandbox's were.
	if err := m.removeContainer(s.meta.ID); err != nil {
		return err
	}
	if err := os.Rename(m.agentSocket(b.id), m.agentSocket(s.meta.ID)); err != nil {
		return fmt.Errorf("session %q: agent socket: %w", s.meta.ID, err)
	}
	stateRoot := m.layout.Containers()
	if err := os.Rename(filepath.Join(stateRoot, b.id), filepath.Join(stateRoot, s.meta.ID)); err != nil {
		return fmt.Errorf("session %q: container state: %w", s.meta.ID, err)
	}
	if err := rebindState(filepath.Join(stateRoot, s.meta.ID), spec, cgPaths); err != nil {
		return fmt.Errorf("session %q: container state: %w", s.meta.ID, err)
	}
	c, err := libcontainer.Load(stateRoot, s.meta.ID)
	if err != nil {
		return fmt.Errorf("session %q: container state: %w", s.meta.ID, err)
	}
	if err := m.attach(s, c); err != nil {
		return err
	}
	// Empty now; a daemon that dies first removes it on its start.
	ready := m.cg.SessionPath(readyUser, b.id)
	m.cleanup.Go(func() {
		if err := m.cg.Remove(ready); err != nil {
			m.log.Warn("remove a ready sandbox's cgroup", "cgroup", ready, "err", err)
		}
	})
	return nil
}

// moveIntoSession makes the session's cgroup with its limits and moves
// pid, the sandbox's PID 1, into it, as libcontainer does for a container
// it starts (the same cgroup manager and configuration). It returns the
// cgroup's directories, as libcontainer records them.
func (m *Manager) moveIntoSession(spec boxSpec, pid int) (map[string]string, error) {
	cg := containerConfig(spec).Cgroups
	cgm, err := manager.New(cg)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if err := cgm.Apply(pid); err != nil {
		return nil, fmt.Errorf("move PID 1 into its cgroup: %w", err)
	}
	if err := cgm.Set(cg.Resources); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	return cgm.GetPaths(), nil
}

// rebindState makes the container state libcontainer keeps in dir say
// what the bound sandbox is now: the session's id, hostname and cgroup
// (its path, limits and directories), so that libcontainer's view of it
// (its status, frozen or not; its destruction) is the session's, as if it
// had started it for the session.
func rebindState(dir string, spec boxSpec, cgPaths map[string]string) error {
	path := filepath.Join(dir, "state.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var st libcontainer.State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	st.ID = spec.id
	st.Config.Hostname = spec.hostname
	st.Config.Cgroups = containerConfig(spec).Cgroups
	st.CgroupPaths = cgPaths
	if data, err = json.Marshal(st); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mountSessionIn makes the session's own mounts in c, a sandbox just
// started for it with the mounts every sandbox has.
func (m *Manager) mountSessionIn(s *session, c *libcontainer.Container) error {
	st, err := c.State()
	if err != nil {
		return fmt.Errorf("session %q: container state: %w", s.meta.ID, err)
	}
	pidfd, err := unix.PidfdOpen(st.InitProcessPid, 0)
	if err != nil {
		return fmt.Errorf("session %q: pidfd of its PID 1: %w", s.meta.ID, err)
	}
	defer unix.Close(pidfd)
	mntns, utsns, err := namespaces(st.InitProcessPid, pidfd)
	if err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	defer mntns.Close()
	defer utsns.Close()
	if err := m.mountSession(s, mntns, utsns); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	return nil
}

// mountSession makes the session's own mounts (mounts.SessionMounts) in
// the daemon, where their sources are opened and, for the overlay, named
// by descriptor, and has the binder attach them, with the session's
// hostname, in the sandbox whose namespaces mntns and utsns are. A
// sandbox's mount table so names no path of the state directory.
func (m *Manager) mountSession(s *session, mntns, utsns *os.File) error {
	trees, err := detachMounts(mounts.SessionMounts(m.mountSpec(s)))
	defer func() {
		for _, t := range trees {
			_ = t.Tree.Close()
		}
	}()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), bindWait)
	defer cancel()
	return shim.Bind(ctx, m.cfg.Helper, mntns, utsns, s.meta.ID, trees)
}

// namespaces opens the mount and UTS namespaces of pid, the process of
// pidfd.
func namespaces(pid, pidfd int) (mnt, uts *os.File, err error) {
	if mnt, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err != nil {
		return nil, nil, err
	}
	if uts, err = os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid)); err != nil {
		_ = mnt.Close()
		return nil, nil, err
	}
	// Alive after the opens: then the pid was still its.
	if n, perr := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0); perr != nil || n != 0 {
		_ = mnt.Close()
		_ = uts.Close()
		return nil, nil, errors.Join(perr, errors.New("PID 1 exited"))
	}
	return mnt, uts, nil
}

// detachMounts makes a detached mount of each of ms, to attach with the
// binder: bind mounts with open_tree(2), others with fsopen(2) and
// fsmount(2), each with its flags as mount attributes. The sources are the
// daemon's paths; none is followed if it is a symlink.
func detachMounts(ms []*configs.Mount) ([]shim.Mount, error) {
	var out []shim.Mount
	for _, m := range ms {
		attr, rec, err := mountAttrs(m.Flags)
		if err != nil {
			return out, fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		var fd int
		if m.Device == "bind" {
			fd, err = detachBind(m.Source, attr, rec)
		} else {
			fd, err = detachNew(m.Device, m.Data, attr)
		}
		if err != nil {
			return out, fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		out = append(out, shim.Mount{Target: m.Destination, Tree: os.NewFile(uintptr(fd), m.Destination)})
	}
	return out, nil
}

// mountAttrs turns mount(2) flags into mount_setattr(2) attributes, and
// whether a bind is recursive. Flags it does not know are an error, not
// dropped.
func mountAttrs(flags int) (attr uint64, rec bool, err error) {
	for _, f := range []struct {
		flag int
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME}, {unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME},
	} {
		if flags&f.flag != 0 {
			attr |= f.attr
			flags &^= f.flag
		}
	}
	rec = flags&unix.MS_REC != 0
	if flags &^= unix.MS_BIND | unix.MS_REC; flags != 0 {
		return 0, false, fmt.Errorf("mount flags %#x have no mount attribute", flags)
	}
	return attr, rec, nil
}

func detachBind(source string, attr uint64, rec bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_SYMLINK_NOFOLLOW)
	setFlags := uint(unix.AT_EMPTY_PATH)
	if rec {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, flags)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", source, err)
	}
	// A clone of a shared mount joins its peer group: what the binder then
	// mounts on it inside the sandbox (the shared files on the workspace)
	// would propagate back to the daemon's mount of the source, and make
	// the source's directories busy. The sandbox's copy is private.
	if err := unix.MountSetattr(fd, "", setFlags, &unix.MountAttr{Attr_set: attr, Propagation: unix.MS_PRIVATE}); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("mount_setattr %s: %w", source, err)
	}
	return fd, nil
}

func detachNew(fstype, data string, attr uint64) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fs)
	if data != "" {
		for _, opt := range strings.Split(data, ",") {
			k, v, ok := strings.Cut(opt, "=")
			if ok && fstype == "overlay" && isLayerOption(k) {
				var fds []int
				fds, err = setLayers(fs, k, v)
				defer closeAll(fds)
			} else if ok {
				err = unix.FsconfigSetString(fs, k, v)
			} else {
				err = unix.FsconfigSetFlag(fs, k)
			}
			if err != nil {
				return -1, fmt.Errorf("%s option %s: %w", fstype, opt, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create %s: %w", fstype, err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, int(attr))
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", fstype, err)
	}
	return fd, nil
}

// isLayerOption says whether the overlay option k names directories.
func isLayerOption(k string) bool {
	return k == "lowerdir" || k == "upperdir" || k == "workdir"
}

// setLayers gives the overlay being configured at fs its directories as
// /proc/self/fd/N, which is what its options show in a sandbox's
// /proc/self/mountinfo instead of the state directory's paths. Each is
// opened as the daemon names it, its last component not followed; the
// descriptors, which a kernel may resolve only when the overlay is
// created, are the caller's to close after that.
func setLayers(fs int, key, dirs string) ([]int, error) {
	var fds []int
	var names []string
	for _, dir := range strings.Split(dirs, ":") {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fds, fmt.Errorf("%s %s: %w", key, dir, err)
		}
		fds = append(fds, fd)
		names = append(names, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	return fds, unix.FsconfigSetString(fs, key, strings.Join(names, ":"))
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
