package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Exec is the cgroup of one command beneath its session. It accounts the
// command's CPU time, peak memory and OOM kills apart from the session's
// other commands, and kills the command's whole tree. It is safe for
// concurrent use (a timeout may Kill while another call reads Stats).
type Exec struct {
	group
	// dir is the cgroup's directory on v2, open for CLONE_INTO_CGROUP
	// until Remove closes it.
	dir      *os.File
	closeDir sync.Once
}

// ExecStats is what a command's cgroup used.
type ExecStats struct {
	// CPU is the CPU time its processes used: CPUUser in user mode plus
	// CPUSystem in the kernel. On v1 the two parts come in clock ticks
	// (10 ms steps); CPU itself is exact.
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
// hierarchies that account it: the unified one on v2; cpuacct, memory and
// (to kill through) the freezer on v1 and hybrid hosts. name is one path
// element of letters, digits, '-' and '_', and must not be in use: a
// stale cgroup's counts would be reported as the command's.
//
// On v2 the result's Dir is open for clone3(CLONE_INTO_CGROUP), which
// starts the command's first process in it; elsewhere the caller places
// that process with AddProc before it runs anything. Remove ends it.
func (m *Manager) NewExec(session, name string) (*Exec, error) {
	if err := checkSession(m.parent, session); err != nil {
		return nil, err
	}
	if err := checkExecName(name); err != nil {
		return nil, err
	}
	p := path.Join(session, name)
	// containerd creates with MkdirAll, which would make a missing session
	// and reuse an exec cgroup that is there.
	probe := func(cgPath string) string {
		if m.v1 != nil {
			return subsystemDir(m.v1.exec[0], cgPath)
		}
		return filepath.Join(m.unified, cgPath)
	}
	if _, err := os.Lstat(probe(session)); err != nil {
		return nil, fmt.Errorf("exec cgroup %s: session: %w", p, err)
	}
	if _, err := os.Lstat(probe(p)); err == nil {
		return nil, fmt.Errorf("exec cgroup %s: %w", p, os.ErrExist)
	}
	e := &Exec{group: group{path: p}}
	if m.v1 != nil {
		e.subsystems = m.v1.exec
		cg, err := cgroup1.New(cgroup1.StaticPath(p), &specs.LinuxResources{}, only(m.v1.exec))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("create exec cgroup %s: %w", p, err), m.remove(p, false))
		}
		e.v1 = cg
	}
	if m.mode == ModeV2 {
		s, err := m.unifiedGroup(session)
		if err != nil {
			return nil, errors.Join(err, m.remove(p, false))
		}
		if e.v2, err = s.NewChild(name, nil); err != nil {
			return nil, errors.Join(fmt.Errorf("create exec cgroup %s: %w", p, err), m.remove(p, false))
		}
		e.v2dir = filepath.Join(m.unified, p)
		fd, err := unix.Open(e.v2dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open exec cgroup %s: %w", p, err), m.remove(p, false))
		}
		e.dir = os.NewFile(uintptr(fd), e.v2dir)
	}
	return e, nil
}

// Path is the exec's absolute cgroup path.
func (e *Exec) Path() string { return e.path }

// Dir is the exec's cgroup directory on v2, for clone3's
// CLONE_INTO_CGROUP (SysProcAttr.UseCgroupFD); nil on v1 and hybrid hosts,
// where AddProc places the process (there is no cgroup fd to clone into
// a v1 hierarchy). Remove closes it.
func (e *Exec) Dir() *os.File { return e.dir }

// AddProc moves the process pid (a host pid) into the exec's cgroup in
// every hierarchy it has. Its children, forked afterwards, follow it.
func (e *Exec) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("exec cgroup %s: pid %d", e.path, pid)
	}
	if e.v2 != nil {
		if err := e.v2.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("exec cgroup %s: add %d: %w", e.path, pid, err)
		}
	}
	if e.v1 != nil {
		if err := e.v1.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("exec cgroup %s: add %d: %w", e.path, pid, err)
		}
	}
	return nil
}

// Stats reads what the exec's processes have used so far.
func (e *Exec) Stats() (ExecStats, error) {
	if e.v1 == nil {
		st, err := e.v2.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents)
		if err != nil {
			return ExecStats{}, fmt.Errorf("stat exec cgroup %s: %w", e.path, err)
		}
		out := ExecStats{
			CPU:             time.Duration(st.CPU.UsageUsec) * time.Microsecond,
			CPUUser:         time.Duration(st.CPU.UserUsec) * time.Microsecond,
			CPUSystem:       time.Duration(st.CPU.SystemUsec) * time.Microsecond,
			MemoryPeakBytes: st.Memory.MaxUsage,
		}
		if st.MemoryEvents != nil {
			out.OOMKills = st.MemoryEvents.OomKill
		}
		return out, nil
	}
	st, err := e.v1.Stat()
	if err != nil {
		return ExecStats{}, fmt.Errorf("stat exec cgroup %s: %w", e.path, err)
	}
	if st.Memory == nil || st.MemoryOomControl == nil {
		return ExecStats{}, fmt.Errorf("stat exec cgroup %s: no memory figures", e.path)
	}
	return ExecStats{
		CPU:             time.Duration(st.CPU.Usage.Total),
		CPUUser:         time.Duration(st.CPU.Usage.User),
		CPUSystem:       time.Duration(st.CPU.Usage.Kernel),
		MemoryPeakBytes: st.Memory.Usage.Max,
		OOMKills:        st.MemoryOomControl.OomKill,
	}, nil
}

// Kill sends SIGKILL to every process in the exec's tree: atomically
// through cgroup.kill on v2, else by freezing the tree, killing each
// process and thawing it. The processes may take a moment to exit; Remove
// waits for them. On v1 and hybrid hosts the processes of an exec in a
// frozen session die only once the session is thawed.
func (e *Exec) Kill() error {
	if err := e.kill(); err != nil {
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
	if e.dir != nil {
		e.closeDir.Do(func() { err = errors.Join(err, e.dir.Close()) })
	}
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
