package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/events"
	"github.com/sandboxd/sandboxd/sandbox/shim"
)

// recover reconciles the state tree, libcontainer's state and the cgroup
// tree after a restart or a crash. A session whose sandbox still runs is
// adopted as it is (its workspace, installs and /tmp intact; commands that
// were running when the daemon died are killed, since nobody waits for
// their output any more). A session whose sandbox is gone gets a new one
// over the same files. A create that never finished is removed; a delete
// or an expiry that never finished is finished. Each session's disk is
// reserved again (its user's disk was attached before), and reservations
// no session claims are released. A frozen sandbox is adopted too (and
// thawed; the janitor freezes it again if it is still idle). Each session
// is handled on its own: one that cannot be restored is kept as broken,
// with the reason, and the daemon serves the rest. Every step can be
// redone, so a daemon killed during recovery recovers on its next start.
func (m *Manager) recover(ctx context.Context) error {
	metas, err := m.scanSessions()
	if err != nil {
		return err
	}
	ids, err := containerIDs(m.layout.Containers())
	if err != nil {
		return err
	}
	adopted := map[string]*libcontainer.Container{}
	for _, id := range ids {
		meta, ok := metas[id]
		// A sandbox whose agent speaks another protocol (an older
		// daemon's) is restarted over the same files, like a dead one;
		// so is one whose mounts are the trees from before disk quotas,
		// which are moved.
		if c, err := libcontainer.Load(m.layout.Containers(), id); err == nil && ok && meta.Deleting == nil && meta.Expired == nil && meta.Agent == shim.ProtocolVersion && !laidOutBeforeQuotas(m.layout.Session(meta.UserID, id).Dir) {
			// A frozen sandbox is Paused to libcontainer.
			if st, _ := c.Status(); st == libcontainer.Running || st == libcontainer.Paused {
				adopted[id] = c
				continue
			}
		}
		// Unloadable (a start that was cut short), stopped, or nobody's.
		if err := m.removeContainer(id); err != nil {
			m.log.Error("remove container state", "container", id, "err", err)
		}
	}
	m.removeStraySockets()
	m.removeOldSystemDirs(adopted)
	for id, meta := range metas {
		s := newSession(meta, m.layout.Session(meta.UserID, meta.ID))
		s.phase = phaseLive
		m.mu.Lock()
		m.sessions[id] = s
		m.mu.Unlock()
		if err := m.restore(ctx, s, adopted[id]); err != nil {
			m.log.Error("session could not be restored; kept as broken", "session", id, "user", meta.UserID, "err", err)
			m.mu.Lock()
			s.phase, s.reason = phaseBroken, err.Error()
			m.mu.Unlock()
			m.publish(s, events.Event{Type: events.SessionBroken, Reason: err.Error()})
		}
	}
	m.releaseOrphans(ctx)
	if err := m.removeStrayCgroups(); err != nil {
		m.log.Error("remove stray cgroups", "err", err)
	}
	return ctx.Err()
}

// restore brings one recovered session back: finishes its delete or its
// expiry, adopts its running sandbox, or starts a new one.
func (m *Manager) restore(ctx context.Context, s *session, running *libcontainer.Container) error {
	meta := s.meta
	if err := m.fault("recover:" + meta.ID); err != nil {
		return err
	}
	m.mu.Lock()
	uid, ok := m.userUIDs[meta.UserID]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("user %q has no uid of their own (see the log)", meta.UserID)
	}
	s.owner = mounts.Owner{UID: uid, GID: uid}
	if err := m.layout.WriteIdentity(s.owner, m.envOwner.GID); err != nil {
		return err
	}
	d, err := m.disk(meta.UserID)
	if err != nil {
		return fmt.Errorf("the user's disk is not attached (see the log): %w", err)
	}
	s.shared = d.dirs.SharedFiles
	l, err := m.userLimits(meta.UserID)
	if err != nil {
		// Limits matter only for a reservation made anew.
		if l, err = m.cfg.defaultUserLimits().resolve(); err != nil {
			return err
		}
	}
	// A delete or an expiry replayed after the release has nothing left
	// to reserve or keep; a session from before disk quotas has trees to
	// move onto its user's disk first.
	legacy := laidOutBeforeQuotas(s.dir.Dir)
	if legacy || (meta.Deleting == nil && meta.Expired == nil) || m.reserved(meta.UserID, meta.ID) {
		if err := m.reserveTrees(ctx, s, l); err != nil {
			return err
		}
	}
	if legacy {
		if err := m.migrateSession(s); err != nil {
			return err
		}
	}
	switch {
	case meta.Deleting != nil:
		if _, err := m.teardown(ctx, s, meta.Deleting.KeepFiles); err != nil {
			return fmt.Errorf("finish an interrupted delete: %w", err)
		}
		m.mu.Lock()
		delete(m.sessions, meta.ID)
		m.mu.Unlock()
		m.removeUserCgroup(meta.UserID)
		m.log.Info("finished an interrupted delete", "session", meta.ID, "user", meta.UserID)
		m.publish(s, events.Event{Type: events.SessionDeleted, Reason: "finished a delete the daemon before did not"})
	case meta.Expired != nil:
		if err := m.finishExpiry(ctx, s); err != nil {
			return fmt.Errorf("finish an interrupted expiry: %w", err)
		}
	case running != nil:
		if err := m.attach(s, running); err != nil {
			return err
		}
		// A frozen sandbox's processes could not die: thaw it first.
		cg := m.cg.SessionPath(meta.UserID, meta.ID)
		if frozen, err := m.cg.Frozen(cg); err != nil || frozen {
			if err := errors.Join(err, m.cg.Thaw(cg)); err != nil {
				return fmt.Errorf("thaw the adopted sandbox: %w", err)
			}
		}
		// The commands of the daemon before ended when it hung up on
		// their supervisors; their cgroups, and anything left in them,
		// are nobody's now.
		if err := m.cg.RemoveExecs(cg); err != nil {
			return fmt.Errorf("remove the previous daemon's commands: %w", err)
		}
		m.log.Info("session adopted", "session", meta.ID, "user", meta.UserID)
		m.publish(s, events.Event{Type: events.SessionAdopted})
	default:
		if err := m.startSandbox(s); err != nil {
			return fmt.Errorf("start a new sandbox: %w", err)
		}
		if err := writeMeta(s.dir, s.meta); err != nil {
			return err
		}
		m.log.Info("session restarted in a new sandbox", "session", meta.ID, "user", meta.UserID)
		m.publish(s, events.Event{Type: events.SessionRestarted})
	}
	return nil
}

// removeStraySockets removes the agent sockets that belong to no
// container: a daemon that died while a ready sandbox's socket took its
// session's name leaves one.
func (m *Manager) removeStraySockets() {
	entries, err := os.ReadDir(m.layout.Agents())
	if err != nil {
		m.log.Error("list agent sockets", "err", err)
		return
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".sock")
		if !ok {
			continue
		}
		if _, err := os.Lstat(filepath.Join(m.layout.Containers(), id)); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(filepath.Join(m.layout.Agents(), e.Name())); err != nil {
				m.log.Error("remove a stray agent socket", "socket", e.Name(), "err", err)
			}
		}
	}
}

// scanSessions reads every session's metadata; a session directory without
// one is a create that did not finish and is removed.
func (m *Manager) scanSessions() (map[string]sessionMeta, error) {
	metas := map[string]sessionMeta{}
	dirs, err := filepath.Glob(filepath.Join(m.layout.Workspaces(), "user_*", "sessions", "*"))
	if err != nil {
		return nil, err
	}
	for _, dir := range dirs {
		userID := strings.TrimPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "user_")
		sessionID := filepath.Base(dir)
		if validateID("user", userID) != nil || validateID("session", sessionID) != nil {
			continue
		}
		meta, err := readMeta(mounts.Session{Dir: dir})
		if errors.Is(err, os.ErrNotExist) {
			m.log.Info("removing a session whose create did not finish", "session", sessionID, "user", userID)
			if err := m.removeSessionDir(userID, sessionID); err != nil {
				m.log.Error("remove an unfinished session", "dir", dir, "err", err)
			}
			continue
		}
		if err != nil || meta.ID != sessionID || meta.UserID != userID {
			m.log.Error("session metadata unreadable; left on disk", "dir", dir, "err", err)
			continue
		}
		if _, dup := metas[meta.ID]; dup {
			m.log.Error("session id used by two users; second left on disk", "dir", dir)
			continue
		}
		metas[meta.ID] = meta
	}
	return metas, nil
}

// removeStrayCgroups removes session cgroups under the parent that belong
// to no session, and then every user cgroup with no session: one a create
// cut short made before its session's, or one still busy when the
// previous daemon removed its last session.
func (m *Manager) removeStrayCgroups() error {
	m.mu.Lock()
	live := map[string]bool{}
	for _, s := range m.sessions {
		live[m.cg.SessionPath(s.meta.UserID, s.meta.ID)] = true
	}
	m.mu.Unlock()
	paths, err := m.cg.Leftovers()
	if err != nil {
		return err
	}
	for _, p := range paths {
		if live[p] {
			continue
		}
		m.log.Info("removing stray cgroup", "cgroup", p)
		if err := m.cg.Remove(p); err != nil {
			return err
		}
	}
	users, err := m.cg.Users()
	if err != nil {
		return err
	}
	for _, u := range users {
		m.awaitUserCgroupRemoved(u)
	}
	return nil
}
