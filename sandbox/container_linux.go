package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"golang.org/x/sys/unix"

	// Device rules are set on every sandbox's cgroup.
	_ "github.com/opencontainers/cgroups/devices"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
	"github.com/sandboxd/sandboxd/sandbox/shim"
)

// agentCaps are the capabilities of a sandbox's PID 1 and of the command
// supervisors it forks.
var agentCaps = []string{"CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

const (
	cpuPeriod = 100_000 // µs
	mib       = 1 << 20
	// destroyWait bounds how long a killed container may take to die.
	destroyWait = 10 * time.Second
)

// boxSpec is everything one container is built from.
type boxSpec struct {
	id         string
	hostname   string
	rootfs     string
	cgroupPath string
	limits     Limits
	mounts     []*configs.Mount
	// swap is false where the kernel has no swap accounting, so memory
	// alone is limited.
	swap bool
}

// boxSpec is the container of a session: the mounts every sandbox has,
// as a ready one has them; its own the daemon makes and attaches
// (mountSession).
func (m *Manager) boxSpec(s *session) boxSpec {
	return boxSpec{
		id:         s.meta.ID,
		hostname:   s.meta.ID,
		rootfs:     m.layout.Rootfs(),
		cgroupPath: m.cg.SessionPath(s.meta.UserID, s.meta.ID),
		limits:     s.meta.Limits.limits(),
		swap:       m.swap,
		mounts:     mounts.ReadyMounts(m.cache.PresentedDir()),
	}
}

// mountSpec is what the session's mount table is made of: the trees the
// quota mechanism gives the session and its user, its base environment's
// version, its user's identity.
func (m *Manager) mountSpec(s *session) mounts.Spec {
	return mounts.Spec{
		Files:       s.trees.Files,
		SharedFiles: s.shared,
		VenvUpper:   s.trees.VenvUpper,
		VenvWork:    s.trees.VenvWork,
		BaseEnv:     m.envDir(s.meta.Env),
		TmpBytes:    s.meta.Limits.limits().TmpMB * mib,
		Identity:    m.layout.Identity(s.owner.UID),
	}
}

// containerConfig turns a boxSpec into libcontainer's configuration: new
// mount, pid, ipc, uts, net and cgroup namespaces, a read-only root, no
// capabilities and no new privileges.
func containerConfig(s boxSpec) *configs.Config {
	var rules []*devconfig.Rule
	for _, d := range specconv.AllowedDevices {
		rules = append(rules, &d.Rule)
	}
	mem := s.limits.MemoryMB * mib
	pids := s.limits.Pids
	res := &cgroups.Resources{
		CpuQuota:  int64(s.limits.CPUs * cpuPeriod),
		CpuPeriod: cpuPeriod,
		Memory:    mem,
		PidsLimit: &pids,
		Devices:   rules,
	}
	if s.swap {
		res.MemorySwap = mem // v1 semantics: memory+swap; zero swap
	}
	return &configs.Config{
		Rootfs:     s.rootfs,
		Readonlyfs: true,
		Hostname:   s.hostname,
		Namespaces: configs.Namespaces{
			{Type: configs.NEWNS}, {Type: configs.NEWUTS}, {Type: configs.NEWIPC},
			{Type: configs.NEWPID}, {Type: configs.NEWNET}, {Type: configs.NEWCGROUP},
		},
		Networks: []*configs.Network{{Type: "loopback"}},
		// PID 1, the agent, forks each command's supervisor, which needs
		// these to drop to the sandbox user and to kill the command's
		// tree; the command itself, another uid, gets none.
		Capabilities:    &configs.Capabilities{Bounding: agentCaps, Effective: agentCaps, Permitted: agentCaps},
		NoNewPrivileges: true,
		Cgroups:         &cgroups.Cgroup{Path: s.cgroupPath, Resources: res},
		Devices:         specconv.AllowedDevices,
		Mounts:          s.mounts,
		MaskPaths:       mounts.MaskedPaths,
		ReadonlyPaths:   mounts.ReadonlyPaths,
		Rlimits: []configs.Rlimit{
			{Type: unix.RLIMIT_NOFILE, Hard: 4096, Soft: 1024},
			{Type: unix.RLIMIT_CORE, Hard: 0, Soft: 0},
		},
	}
}

// startContainer creates the container and starts its PID 1, the shim's
// agent, listening at the session's agent socket with the seccomp filter
// it installs on itself and so on everything in the sandbox. The container
// outlives the daemon (nothing ties it to the daemon's lifetime), so a
// restarted daemon can adopt it. State a crashed daemon left under the
// same id is removed first.
func (m *Manager) startContainer(s boxSpec) (*libcontainer.Container, error) {
	stateRoot := m.layout.Containers()
	if err := m.removeContainer(s.id); err != nil {
		return nil, err
	}
	ln, err := shim.Listen(m.agentSocket(s.id))
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	sec, err := shim.SeccompFile()
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	defer sec.Close()
	c, err := libcontainer.Create(stateRoot, s.id, containerConfig(s))
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	step := "sandbox:created"
	if strings.HasPrefix(s.id, readyPrefix) {
		step = "ready:created"
	}
	if err := m.fault(step); err != nil {
		_ = c.Destroy()
		return nil, err
	}
	init := &libcontainer.Process{
		Args:       []string{mounts.HelperPath, shim.InitMode},
		Env:        []string{},
		Init:       true,
		ExtraFiles: shim.AgentFiles(ln, sec),
	}
	if err := c.Run(init); err != nil {
		_ = c.Destroy()
		_ = m.removeContainer(s.id)
		return nil, fmt.Errorf("start container: %w", err)
	}
	// The agent is this daemon's child until the daemon exits; collect
	// it when it is killed so it does not linger as a zombie.
	go func() { _, _ = init.Wait() }()
	return c, nil
}

// agentSocket is where the agent of sandbox id listens, as a path short
// enough for a socket address whatever the state directory: through the
// daemon's descriptor of the agents directory.
func (m *Manager) agentSocket(id string) string {
	return fmt.Sprintf("/proc/self/fd/%d/%s.sock", m.agents.Fd(), id)
}

// removeContainer destroys the container with id if libcontainer has state
// for it, and removes its state directory whatever is in it (a daemon
// killed inside libcontainer.Create or Run leaves a directory that Load
// cannot read and Create refuses to overwrite), and its agent's socket.
func (m *Manager) removeContainer(id string) error {
	stateRoot := m.layout.Containers()
	if err := os.Remove(m.agentSocket(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove agent socket of %s: %w", id, err)
	}
	dir := filepath.Join(stateRoot, id)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if c, err := libcontainer.Load(stateRoot, id); err == nil {
		if err := m.destroyContainer(c); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container state %s: %w", id, err)
	}
	return nil
}

// destroyContainer kills everything in the container (SIGKILL to its PID 1
// ends its whole pid namespace), waits for PID 1 to exit and removes the
// container's cgroup and state.
//
// The kernel tears a mount namespace down (a sandbox has some forty
// mounts) when its last process exits, inside that exit: measured, most of
// a delete. The daemon holds the sandbox's namespace across the kill
// instead, so that PID 1 exits at once, and lets go of it in the
// background, where the teardown happens.
func (m *Manager) destroyContainer(c *libcontainer.Container) error {
	// A pidfd of PID 1, opened before the kill, tells its exit without
	// polling libcontainer's status. It is PID 1's if the kill reached a
	// running container: libcontainer checks the pid's start time, and
	// the pid could not have been reused by a process started before it.
	pidfd := -1
	if st, err := c.State(); err == nil && st.InitProcessPid > 0 {
		if fd, err := unix.PidfdOpen(st.InitProcessPid, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
			if ns := holdMountNamespace(st.InitProcessPid, fd); ns != nil {
				defer m.cleanup.Go(func() { _ = ns.Close() })
			}
		}
	}
	err := c.Signal(unix.SIGKILL)
	switch {
	case errors.Is(err, libcontainer.ErrNotRunning):
	case err != nil:
		return fmt.Errorf("kill container %s: %w", c.ID(), err)
	case pidfd >= 0:
		if err := awaitExit(pidfd, destroyWait); err != nil {
			return fmt.Errorf("container %s: %w", c.ID(), err)
		}
	default:
		if err := awaitStopped(c, destroyWait); err != nil {
			return err
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", c.ID(), err)
	}
	return nil
}

// holdMountNamespace opens the mount namespace of pid, the process of
// pidfd, or returns nil.
func holdMountNamespace(pid, pidfd int) *os.File {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// Alive after the open: then the pid was still its.
	if n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0); err != nil || n != 0 {
		_ = unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "mntns")
}

// awaitExit waits until the process of pidfd has exited, up to timeout.
func awaitExit(pidfd int, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for left := timeout; left > 0; left = time.Until(deadline) {
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for PID 1 to exit: %w", err)
		}
	}
	return fmt.Errorf("PID 1 still there %s after SIGKILL", timeout)
}

// awaitStopped polls libcontainer until the container is stopped, where
// there is no pidfd (a kernel before 5.3).
func awaitStopped(c *libcontainer.Container, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Status()
		if err != nil {
			return fmt.Errorf("container %s status: %w", c.ID(), err)
		}
		if st == libcontainer.Stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s still %s %s after SIGKILL", c.ID(), st, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startSandbox starts the session's container and attaches to it.
func (m *Manager) startSandbox(s *session) error {
	if s.meta.Env != "" && !envs.ValidID(s.meta.Env) {
		return fmt.Errorf("session %q: no base environment version recorded (%q); delete it and create a new one", s.meta.ID, s.meta.Env)
	}
	if fi, err := os.Stat(m.envDir(s.meta.Env)); err != nil || !fi.IsDir() {
		return fmt.Errorf("session %q: its base environment %s is gone; delete it and create a new one", s.meta.ID, s.meta.Env)
	}
	s.meta.Agent = shim.ProtocolVersion
	c, err := m.startContainer(m.boxSpec(s))
	if err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	err = m.mountSessionIn(s, c)
	if err == nil {
		err = m.attach(s, c)
	}
	if err != nil {
		_ = m.destroyContainer(c)
		return err
	}
	return nil
}

// attach takes hold of a running container as the session's sandbox.
func (m *Manager) attach(s *session, c *libcontainer.Container) error {
	st, err := c.State()
	if err != nil {
		return fmt.Errorf("session %q: container state: %w", s.meta.ID, err)
	}
	cgPath := m.cg.SessionPath(s.meta.UserID, s.meta.ID)
	if err := m.cg.PrepareSession(cgPath, st.InitProcessPid); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	fd, err := unix.PidfdOpen(st.InitProcessPid, 0)
	if err != nil {
		return fmt.Errorf("session %q: pidfd of its PID 1: %w", s.meta.ID, err)
	}
	s.box = c
	s.init = os.NewFile(uintptr(fd), "pidfd")
	s.exec = &agentExecutor{socket: m.agentSocket(s.meta.ID), owner: s.owner, group: m.envOwner.GID, cg: m.cg, session: cgPath, tails: &s.tails}
	return nil
}

// destroySandbox ends the session's sandbox, whatever state it is in, and
// removes its container state and cgroup.
func (m *Manager) destroySandbox(s *session) error {
	s.release()
	// The container the daemon holds needs no loading from its state.
	if s.box != nil {
		if err := m.destroyContainer(s.box); err != nil {
			return fmt.Errorf("session %q: %w", s.meta.ID, err)
		}
	}
	// Nothing runs in the sandbox any more: its commands' removals of
	// their cgroups end at once.
	s.tails.Wait()
	// Whatever is left: the agent's socket, and state the daemon held no
	// container for.
	if err := m.removeContainer(s.meta.ID); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	// libcontainer removed the session cgroup; this catches one whose
	// container state was already gone.
	if err := m.cg.Remove(m.cg.SessionPath(s.meta.UserID, s.meta.ID)); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	return nil
}

// containerIDs lists the entries of libcontainer's state root, loadable or
// not.
func containerIDs(stateRoot string) ([]string, error) {
	entries, err := os.ReadDir(stateRoot)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}
