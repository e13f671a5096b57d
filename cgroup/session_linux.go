package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	occgroups "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs2"
)

// PrepareSession makes room for exec cgroups beneath the session at
// cgPath; the caller runs it right after the sandbox starts, and again on
// adopting a running one (it is idempotent). On v2 it moves the sandbox's
// PID 1 (initPID, a host pid) into <session>/init and hands cpu, memory and
// pids down from the session to its children: a cgroup with processes in
// it cannot do that ("no internal processes"). v1 has no such rule, and
// hybrid's unified hierarchy no controller, so there it does nothing.
func (m *Manager) PrepareSession(cgPath string, initPID int) error {
	if err := checkSession(m.parent, cgPath); err != nil {
		return err
	}
	if m.mode != ModeV2 {
		return nil
	}
	if initPID <= 0 {
		return fmt.Errorf("session %s: init pid %d", cgPath, initPID)
	}
	// containerd creates with MkdirAll, which would make a missing session.
	if _, err := os.Lstat(filepath.Join(m.unified, cgPath)); err != nil {
		return fmt.Errorf("session %s: %w", cgPath, err)
	}
	session, err := m.unifiedGroup(cgPath)
	if err != nil {
		return err
	}
	init, err := session.NewChild(InitLeaf, nil)
	if err != nil {
		return fmt.Errorf("session %s: create %s: %w", cgPath, InitLeaf, err)
	}
	if err := init.AddProc(uint64(initPID)); err != nil {
		return fmt.Errorf("session %s: move pid %d into %s: %w", cgPath, initPID, InitLeaf, err)
	}
	// This writes the session's cgroup.subtree_control and its
	// ancestors', where libcontainer enabled the same already.
	if err := init.ToggleControllers(sessionControllers(), cgroup2.Enable); err != nil {
		return fmt.Errorf("session %s: %w", cgPath, err)
	}
	return nil
}

// SessionStats is what a session has used.
type SessionStats struct {
	// CPU is the CPU time (user and system) its processes used.
	CPU time.Duration
	// CPUThrottled is how long its CPU quota held it back.
	CPUThrottled time.Duration
	// MemoryBytes is the memory it uses now.
	MemoryBytes uint64
	// MemoryPeakBytes is the most it ever used (0 on a v2 kernel before
	// 5.19, which has no memory.peak).
	MemoryPeakBytes uint64
	// Pids counts its processes (and threads), PidsLimit caps them (0: no
	// limit).
	Pids, PidsLimit uint64
	// OOMKills counts processes the kernel's OOM killer killed in it. On
	// v1 and hybrid hosts the kernel counts a kill only in the victim's own
	// cgroup: a kill in one of the session's execs is the exec's alone.
	OOMKills uint64
}

// SessionStats reads the statistics of the session at cgPath.
func (m *Manager) SessionStats(cgPath string) (SessionStats, error) {
	if err := checkSession(m.parent, cgPath); err != nil {
		return SessionStats{}, err
	}
	if m.v1 == nil {
		// containerd reads a missing cgroup's figures as zeros.
		if _, err := os.Lstat(filepath.Join(m.unified, cgPath)); err != nil {
			return SessionStats{}, fmt.Errorf("session %s: %w", cgPath, err)
		}
		cg, err := m.unifiedGroup(cgPath)
		if err != nil {
			return SessionStats{}, err
		}
		st, err := cg.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatPids)
		if err != nil {
			return SessionStats{}, fmt.Errorf("stat session %s: %w", cgPath, err)
		}
		out := SessionStats{
			CPU:             time.Duration(st.CPU.UsageUsec) * time.Microsecond,
			CPUThrottled:    time.Duration(st.CPU.ThrottledUsec) * time.Microsecond,
			MemoryBytes:     st.Memory.Usage,
			MemoryPeakBytes: st.Memory.MaxUsage,
			Pids:            st.Pids.Current,
			PidsLimit:       st.Pids.Limit,
		}
		if out.PidsLimit == math.MaxUint64 { // "max"
			out.PidsLimit = 0
		}
		if st.MemoryEvents != nil {
			out.OOMKills = st.MemoryEvents.OomKill
		}
		return out, nil
	}
	cg, ok, err := load(cgPath, m.v1.stats)
	if err != nil {
		return SessionStats{}, err
	}
	if !ok {
		return SessionStats{}, fmt.Errorf("session %s: %w", cgPath, os.ErrNotExist)
	}
	st, err := cg.Stat()
	if err != nil {
		return SessionStats{}, fmt.Errorf("stat session %s: %w", cgPath, err)
	}
	if st.Memory == nil || st.MemoryOomControl == nil || st.Pids == nil {
		return SessionStats{}, fmt.Errorf("stat session %s: no memory or pids figures", cgPath)
	}
	return SessionStats{
		CPU:             time.Duration(st.CPU.Usage.Total),
		CPUThrottled:    time.Duration(st.CPU.Throttling.ThrottledTime),
		MemoryBytes:     st.Memory.Usage.Usage,
		MemoryPeakBytes: st.Memory.Usage.Max,
		Pids:            st.Pids.Current,
		PidsLimit:       st.Pids.Limit, // cgroup1 reads "max" as 0
		OOMKills:        st.MemoryOomControl.OomKill,
	}, nil
}

// Freeze stops every process of the session at cgPath (memory kept, no
// CPU) and returns once they are all frozen. Freezing a frozen session
// does nothing. A freeze that does not complete within 10 s (freezeTimeout)
// is undone and reported: on v1 a task that cannot be frozen now (one in
// the middle of an execve, waiting in the kernel for its frozen threads to
// die) would keep the cgroup FREEZING for as long as it stays so.
func (m *Manager) Freeze(cgPath string) error {
	if err := checkSession(m.parent, cgPath); err != nil {
		return err
	}
	if m.v1 == nil {
		cg, err := m.unifiedGroup(cgPath)
		if err != nil {
			return err
		}
		if err := cg.Freeze(); err != nil {
			return fmt.Errorf("freeze session %s: %w", cgPath, err)
		}
		// containerd only asks for the freeze; the kernel completes it
		// asynchronously.
		if _, err := m.v2FreezerState(cgPath); err != nil {
			return errors.Join(fmt.Errorf("freeze session %s: %w", cgPath, err), cg.Thaw())
		}
		return nil
	}
	if _, err := m.sessionFreezer(cgPath); err != nil {
		return err
	}
	// Not containerd's cgroup1 Freeze: it waits for FROZEN for ever.
	if err := freezeV1(subsystemDir(m.v1.freezer[0], cgPath), freezeTimeout); err != nil {
		return fmt.Errorf("freeze session %s: %w", cgPath, err)
	}
	return nil
}

// freezeTimeout bounds a freeze.
const freezeTimeout = 10 * time.Second

// freezeV1 asks the v1 freezer of the cgroup at dir for FROZEN until it
// is (each write makes the kernel try the tasks not frozen yet again), or
// thaws it after timeout.
func freezeV1(dir string, timeout time.Duration) error {
	state := filepath.Join(dir, "freezer.state")
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 10*time.Millisecond) {
		if err := os.WriteFile(state, []byte("FROZEN"), 0); err != nil {
			return err
		}
		b, err := os.ReadFile(state)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("not frozen after %s: a task cannot be frozen now; thawed", timeout),
				os.WriteFile(state, []byte("THAWED"), 0))
		}
		// The kernel's state to poll: the freezer gives no event for it.
		time.Sleep(wait)
	}
}

// Thaw resumes the session at cgPath. Thawing a running session does
// nothing.
func (m *Manager) Thaw(cgPath string) error {
	if err := checkSession(m.parent, cgPath); err != nil {
		return err
	}
	if m.v1 == nil {
		cg, err := m.unifiedGroup(cgPath)
		if err != nil {
			return err
		}
		if err := cg.Thaw(); err != nil {
			return fmt.Errorf("thaw session %s: %w", cgPath, err)
		}
		return nil
	}
	cg, err := m.sessionFreezer(cgPath)
	if err != nil {
		return err
	}
	if err := cg.Thaw(); err != nil {
		return fmt.Errorf("thaw session %s: %w", cgPath, err)
	}
	return nil
}

// Frozen reports whether the session at cgPath is frozen. A v1 freeze
// still in progress counts as not frozen; on v2 it is waited for (up to
// 10 s).
func (m *Manager) Frozen(cgPath string) (bool, error) {
	if err := checkSession(m.parent, cgPath); err != nil {
		return false, err
	}
	if m.v1 == nil {
		st, err := m.v2FreezerState(cgPath)
		return st == occgroups.Frozen, err
	}
	cg, err := m.sessionFreezer(cgPath)
	if err != nil {
		return false, err
	}
	switch st := cg.State(); st {
	case cgroup1.Frozen:
		return true, nil
	case cgroup1.Thawed, cgroup1.Freezing:
		return false, nil
	default:
		return false, fmt.Errorf("session %s: freezer state %q", cgPath, st)
	}
}

// v2FreezerState reads whether a v2 cgroup is frozen, waiting out a
// freeze in progress. containerd's cgroup2 neither reports the freezer's
// state nor waits for it (cgroup.events' "frozen"), so this is
// libcontainer's own reading, from opencontainers/cgroups.
func (m *Manager) v2FreezerState(cgPath string) (occgroups.FreezerState, error) {
	fm, err := fs2.NewManager(&occgroups.Cgroup{Resources: &occgroups.Resources{}}, filepath.Join(m.unified, cgPath))
	if err != nil {
		return occgroups.Undefined, fmt.Errorf("session %s: %w", cgPath, err)
	}
	st, err := fm.GetFreezerState()
	if err != nil {
		return occgroups.Undefined, fmt.Errorf("session %s: freezer state: %w", cgPath, err)
	}
	return st, nil
}

// sessionFreezer opens a session in the v1 freezer hierarchy.
func (m *Manager) sessionFreezer(cgPath string) (cgroup1.Cgroup, error) {
	cg, ok, err := load(cgPath, m.v1.freezer)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("session %s: %w", cgPath, os.ErrNotExist)
	}
	return cg, nil
}
