package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// Exec is the cgroup of one command beneath its session. It accounts the
// command's peak memory and OOM kills apart from the session's other
// commands (and its CPU time on v2), and kills the command's whole tree.
// It is safe for concurrent use (a timeout may Kill while another call
// reads Stats).
//
// It is on every command's path, so it touches the few files it needs
// itself (mkdir, cgroup.procs, the counters, rmdir) rather than through
// containerd's cgroup1 and cgroup2, which create with MkdirAll, stat every
// file of every hierarchy and parse the whole memory.stat: measured on a
// hybrid host, that was most of the daemon's CPU per exec. containerd still
// kills and deletes an exec whose processes did not all exit.
type Exec struct {
	group
	// memory and freezer are the exec's directories in those v1
	// hierarchies ("" on v2).
	memory, freezer string
	// dir is the cgroup's directory on v2, open for CLONE_INTO_CGROUP;
	// join are the v1 hierarchies' cgroup.procs files, open for a process
	// to write itself into. Remove closes them.
	dir       *os.File
	join      []*os.File
	closeOnce sync.Once
}

// ExecStats is what a command's cgroup used.
type ExecStats struct {
	// CPU is the CPU time its processes used: CPUUser in user mode plus
	// CPUSystem in the kernel. On v2 only: a v1 exec is not in cpuacct
	// (zeros).
	CPU, CPUUser, CPUSystem time.Duration
	// MemoryPeakBytes is the most memory it used at once (0 on a v2
	// kernel before 5.19, which has no memory.peak).
	MemoryPeakBytes uint64
	// OOMKills counts its processes the kernel's OOM killer killed,
	// whether the session's limit ran out or another: the kernel counts a
	// kill in the victim's cgroup, so a sibling exec's count stays 0.
	OOMKills uint64
}

// NewExec creates the cgroup <session>/<name> for one command, in the
// hierarchies that account it: the unified one on v2; memory and (to kill
// through) the freezer on v1 and hybrid hosts. name is one path
// element of letters, digits, '-' and '_', and must not be in use: a
// stale cgroup's counts would be reported as the command's. The session
// must exist.
//
// A process enters it in one of three ways: on v2, started in it by
// clone3(CLONE_INTO_CGROUP) on Dir; on v1 and hybrid hosts, by writing "0"
// to each of JoinFiles itself (a command's supervisor does, before it
// forks the command); or moved by AddProc. Remove ends it.
func (m *Manager) NewExec(session, name string) (*Exec, error) {
	if err := checkSession(m.parent, session); err != nil {
		return nil, err
	}
	if err := checkExecName(name); err != nil {
		return nil, err
	}
	p := path.Join(session, name)
	e := &Exec{group: group{path: p}}
	var dirs []string
	if m.v1 != nil {
		e.subsystems = m.v1.exec
		for _, s := range m.v1.exec {
			dir := subsystemDir(s, p)
			switch s.Name() {
			case cgroup1.Memory:
				e.memory = dir
			case cgroup1.Freezer:
				e.freezer = dir
			}
			dirs = append(dirs, dir)
		}
	} else {
		e.v2dir = filepath.Join(m.unified, p)
		dirs = append(dirs, e.v2dir)
	}
	// mkdir, unlike containerd's MkdirAll, neither makes a missing
	// session (ENOENT) nor reuses an exec cgroup that is there (EEXIST).
	for i, dir := range dirs {
		if err := unix.Mkdir(dir, 0o755); err != nil {
			for _, made := range dirs[:i] {
				_ = unix.Rmdir(made)
			}
			if errors.Is(err, unix.ENOENT) {
				return nil, fmt.Errorf("exec cgroup %s: session: %w", p, os.ErrNotExist)
			}
			return nil, fmt.Errorf("create exec cgroup %s: %w", p, err)
		}
	}
	var err error
	if m.v1 == nil {
		if e.v2, err = m.unifiedGroup(p); err == nil {
			e.dir, err = openFile(e.v2dir, unix.O_RDONLY|unix.O_DIRECTORY)
		}
	} else {
		for _, dir := range dirs {
			var f *os.File
			if f, err = openFile(filepath.Join(dir, "cgroup.procs"), unix.O_WRONLY); err != nil {
				break
			}
			e.join = append(e.join, f)
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open exec cgroup %s: %w", p, err), e.Remove())
	}
	return e, nil
}

func openFile(name string, flags int) (*os.File, error) {
	fd, err := unix.Open(name, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Path is the exec's absolute cgroup path.
func (e *Exec) Path() string { return e.path }

// Dir is the exec's cgroup directory on v2, for clone3's
// CLONE_INTO_CGROUP (SysProcAttr.UseCgroupFD); nil on v1 and hybrid hosts,
// where there is no cgroup fd to clone into a v1 hierarchy (see
// JoinFiles). Remove closes it.
func (e *Exec) Dir() *os.File { return e.dir }

// JoinFiles are, on v1 and hybrid hosts, the exec's cgroup.procs file in
// each of its hierarchies, open for writing: a process that writes "0" to
// each is in the exec, and its children forked afterwards with it. The
// kernel checks the credentials of the opener (root) when one is written,
// so whoever holds them can move any process in: hand them only to the
// command's supervisor, which closes them before the command runs. nil on
// v2. Remove closes them.
func (e *Exec) JoinFiles() []*os.File { return e.join }

// AddProc moves the process pid (a host pid) into the exec's cgroup in
// every hierarchy it has. Its children, forked afterwards, follow it.
func (e *Exec) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("exec cgroup %s: pid %d", e.path, pid)
	}
	var err error
	if e.dir != nil {
		err = os.WriteFile(filepath.Join(e.v2dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
	}
	for _, f := range e.join {
		if err == nil {
			_, err = f.WriteString(strconv.Itoa(pid))
		}
	}
	if err != nil {
		return fmt.Errorf("exec cgroup %s: add %d: %w", e.path, pid, err)
	}
	return nil
}

// Stats reads what the exec's processes have used so far.
func (e *Exec) Stats() (ExecStats, error) {
	var (
		st  ExecStats
		err error
	)
	if e.memory == "" {
		err = e.statsV2(&st)
	} else {
		err = e.statsV1(&st)
	}
	if err != nil {
		return ExecStats{}, fmt.Errorf("stat exec cgroup %s: %w", e.path, err)
	}
	return st, nil
}

// statsV2 reads cpu.stat, memory.peak and memory.events.
func (e *Exec) statsV2(st *ExecStats) error {
	cpu, err := readKeyed(filepath.Join(e.v2dir, "cpu.stat"))
	if err != nil {
		return err
	}
	st.CPU = time.Duration(cpu["usage_usec"]) * time.Microsecond
	st.CPUUser = time.Duration(cpu["user_usec"]) * time.Microsecond
	st.CPUSystem = time.Duration(cpu["system_usec"]) * time.Microsecond
	// Without the memory controller (the unified hierarchy of a hybrid
	// host) or memory.peak (before 5.19), memory reads as zeros.
	if st.MemoryPeakBytes, err = readUint(filepath.Join(e.v2dir, "memory.peak")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	events, err := readKeyed(filepath.Join(e.v2dir, "memory.events"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	st.OOMKills = events["oom_kill"]
	return nil
}

// statsV1 reads memory.max_usage_in_bytes and memory.oom_control.
func (e *Exec) statsV1(st *ExecStats) error {
	var err error
	if st.MemoryPeakBytes, err = readUint(filepath.Join(e.memory, "memory.max_usage_in_bytes")); err != nil {
		return err
	}
	oom, err := readKeyed(filepath.Join(e.memory, "memory.oom_control"))
	st.OOMKills = oom["oom_kill"]
	return err
}

// readUint reads a file holding one unsigned number.
func readUint(name string) (uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// readKeyed reads a file of "key value" lines; values that are not
// unsigned numbers are left out.
func readKeyed(name string) (map[string]uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// Kill sends SIGKILL to every process in the exec's tree: atomically
// through cgroup.kill on v2, else by freezing the tree, killing each
// process and thawing it. The processes may take a moment to exit; Remove
// waits for them. On v1 and hybrid hosts the processes of an exec in a
// frozen session die only once the session is thawed.
func (e *Exec) Kill() error {
	g := e.group
	if err := g.reopen(); err != nil {
		return err
	}
	if err := g.kill(); err != nil {
		return fmt.Errorf("kill exec cgroup %s: %w", e.path, err)
	}
	return nil
}

// Remove kills whatever is left in the exec's cgroup, waits for it to
// leave (up to 5 s) and removes the cgroup from every hierarchy. Read
// Stats before: they go with it. On v1 and hybrid hosts it fails at once
// in a frozen session, where nothing can die, unless the exec is empty.
func (e *Exec) Remove() error {
	err := e.remove()
	e.closeOnce.Do(func() {
		for _, f := range append(e.join, e.dir) {
			if f != nil {
				err = errors.Join(err, f.Close())
			}
		}
	})
	return err
}

// RemoveExecs removes every exec cgroup beneath the session at cgPath,
// killing what is left in them, and keeps the init leaf: after a restart
// the execs of the daemon before are nobody's. The session must be
// thawed first: its frozen processes could not die.
func (m *Manager) RemoveExecs(cgPath string) error {
	if err := checkSession(m.parent, cgPath); err != nil {
		return err
	}
	if frozen, err := m.Frozen(cgPath); err != nil || frozen {
		return errors.Join(err, fmt.Errorf("session %s is frozen: thaw it before removing its execs", cgPath))
	}
	var errs []error
	seen := map[string]bool{}
	for _, dir := range m.Dirs(cgPath) {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list session %s: %w", cgPath, err)
		}
		for _, d := range entries {
			if !d.IsDir() || d.Name() == InitLeaf || seen[d.Name()] {
				continue
			}
			seen[d.Name()] = true
			errs = append(errs, m.remove(path.Join(cgPath, d.Name()), false))
		}
	}
	return errors.Join(errs...)
}
