package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/sandboxd/sandboxd/cgroup"
)

// SessionStats reads what a session uses (its cgroup's figures) and has
// done (the daemon's counts). A broken session, or one whose sandbox is
// gone, has its state and counts without figures. Reading is not the
// session's activity.
func (m *Manager) SessionStats(_ context.Context, id string) (SessionStats, error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	if !ok || s.phase == phaseCreating || s.phase == phaseDeleting {
		m.mu.Unlock()
		return SessionStats{}, fmt.Errorf("%w: session %q", ErrNotFound, id)
	}
	p, reason := s.phase, s.reason
	if p == phaseLive {
		// A delete waits for the read, which is quick, rather than
		// removing the cgroup under it.
		s.calls.Add(1)
		defer s.calls.Done()
	}
	m.mu.Unlock()

	desc := s.describe(p, reason)
	st := SessionStats{
		ID:           desc.ID,
		UserID:       desc.UserID,
		State:        desc.State,
		Limits:       desc.Limits,
		Execs:        s.usage.execs.Load(),
		Processes:    s.procs.live(),
		LastActivity: s.activity().UTC(),
	}
	if u, err := m.userUsage(s.meta.UserID); err == nil {
		if d, ok := u.Sessions[s.meta.ID]; ok && u.Enforced {
			st.Disk = &d
		}
	}
	if p != phaseLive {
		return st, nil
	}
	cg, err := m.cg.SessionStats(m.cg.SessionPath(s.meta.UserID, s.meta.ID))
	if errors.Is(err, fs.ErrNotExist) && st.State != StateRunning {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("session %q: %w", id, err)
	}
	st.CPU, st.CPUThrottled = cg.CPU, cg.CPUThrottled
	st.MemoryBytes, st.MemoryPeakBytes = cg.MemoryBytes, cg.MemoryPeakBytes
	st.Pids, st.PidsLimit = cg.Pids, cg.PidsLimit
	st.OOMKills = cg.OOMKills
	if m.cg.Mode() != cgroup.ModeV2 {
		// v1 counts a kill only in the victim's cgroup: the session's
		// own misses those in its commands' cgroups.
		st.OOMKills += s.usage.commandOOMKills.Load()
	}
	return st, nil
}

// live counts the processes still running.
func (p *processes) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, b := range p.procs {
		select {
		case <-b.finished:
		default:
			n++
		}
	}
	return n
}
