package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
)

// A session's lifetime, by its user's limits (UserLimits):
//
//   - idle (no API call for IdleFreezeAfter): its sandbox is frozen with
//     the cgroup freezer (memory kept, no CPU), and thawed by its next
//     call before the call runs;
//   - idle for IdleDeleteAfter: it is deleted, its documents kept (as a
//     delete with keep_files keeps them);
//   - MaxSessionDuration after its creation: it expires. Its sandbox is
//     stopped, its documents kept and its disk given back; it stays listed
//     as expired, with the reason, until it is deleted, and every other
//     call answers ErrExpired.
//
// One goroutine, the janitor, owned by the Manager (started by NewManager,
// ended by Close), runs these timers every Config.JanitorInterval, and
// also applies a changed budget of the users' quota.json and keeps its
// "current" usage true. No timer is held in memory only: each derives from
// what session.json keeps (created_at, last_active, expired), so frozen
// sessions, timers and expiries come through a restart or a kill -9 of the
// daemon. last_active is written lazily (at most once per
// activityPersistEvery while the session is used, and when it is frozen),
// so after a crash a session's idle time may count from up to that much
// earlier than its real last call.
//
// Locks: the janitor acts on a live session only while holding its life
// lock, and after checking under Manager.mu that it is still live; a
// delete or an expiry marks the session first and then takes life once,
// so that after it the janitor leaves the session alone. life is held
// across the freeze or thaw itself and nothing else: those are what a call
// to that session waits for anyway.

// activityPersistEvery bounds how often a busy session's last activity is
// written to session.json.
const activityPersistEvery = time.Minute

// touch records activity now.
func (s *session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// activity is when the session was last active.
func (s *session) activity() time.Time { return time.Unix(0, s.lastActive.Load()) }

// thaw thaws a frozen session's sandbox before a call runs in it.
func (m *Manager) thaw(s *session) error {
	s.life.Lock()
	defer s.life.Unlock()
	if !s.frozen.Load() {
		return nil
	}
	start := time.Now()
	if err := m.cg.Thaw(m.cg.SessionPath(s.meta.UserID, s.meta.ID)); err != nil {
		return err
	}
	s.frozen.Store(false)
	m.log.Info("session thawed", "session", s.meta.ID, "user", s.meta.UserID, "took", time.Since(start))
	return nil
}

// thawForStop is the barrier a delete or an expiry passes once the
// session is no longer live: the janitor is done with it, and its
// sandbox is thawed so that its processes can be killed.
func (m *Manager) thawForStop(s *session) error {
	s.life.Lock()
	defer s.life.Unlock()
	if !s.frozen.Load() {
		return nil
	}
	if err := m.cg.Thaw(m.cg.SessionPath(s.meta.UserID, s.meta.ID)); err != nil {
		return err
	}
	s.frozen.Store(false)
	return nil
}

// startJanitor starts the janitor; Close ends it.
func (m *Manager) startJanitor() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopJanitor, m.janitorDone = cancel, make(chan struct{})
	interval := m.cfg.JanitorInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	go func() {
		defer close(m.janitorDone)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			m.sweep(ctx, time.Now())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// sweep runs every timer that is due at now, then the users' pass.
func (m *Manager) sweep(ctx context.Context, now time.Time) {
	m.mu.Lock()
	var live []*session
	users := map[string]bool{}
	for _, s := range m.sessions {
		if s.phase == phaseLive {
			live = append(live, s)
		}
	}
	for id := range m.disks {
		users[id] = true
	}
	m.mu.Unlock()
	limits := map[string]UserLimits{}
	for _, s := range live {
		if ctx.Err() != nil {
			return
		}
		l, ok := limits[s.meta.UserID]
		if !ok {
			var err error
			if l, err = m.userLimits(s.meta.UserID); err != nil {
				l = s.disk // the limits the session was made under
			}
			limits[s.meta.UserID] = l
		}
		m.sessionTimers(ctx, s, l, now)
	}
	for id := range users {
		if ctx.Err() != nil {
			return
		}
		m.userPass(ctx, id)
	}
}

// sessionTimers runs the timers of one live session that are due at now.
func (m *Manager) sessionTimers(ctx context.Context, s *session, l UserLimits, now time.Time) {
	if d := l.MaxSessionDuration; d > 0 && now.Sub(s.meta.CreatedAt) >= d {
		reason := fmt.Sprintf("expired at %s: the user's max_session_duration_hours is %g (%s); its documents were kept in shared_files/outputs",
			s.meta.CreatedAt.Add(d).UTC().Format(time.RFC3339), d.Hours(), d)
		if err := m.expire(ctx, s, reason); err != nil {
			m.log.Error("expire a session", "session", s.meta.ID, "user", s.meta.UserID, "err", err)
		}
		return
	}
	if s.busy.Load() > 0 {
		return // a call in flight is activity
	}
	idle := now.Sub(s.activity())
	if d := l.IdleDeleteAfter; d > 0 && idle >= d {
		res, err := m.DeleteSession(ctx, s.meta.ID, true)
		if err != nil {
			m.log.Error("delete an idle session", "session", s.meta.ID, "user", s.meta.UserID, "err", err)
			return
		}
		m.log.Info("idle session deleted, its documents kept", "session", s.meta.ID, "user", s.meta.UserID,
			"idle", idle.Round(time.Second), "kept", res.Kept)
		return
	}
	freeze := l.IdleFreezeAfter > 0 && idle >= l.IdleFreezeAfter
	if err := m.lifeStep(s, func() error {
		if freeze && s.busy.Load() == 0 && !s.frozen.Load() && s.running() && now.Sub(s.activity()) >= l.IdleFreezeAfter {
			return m.freeze(s)
		}
		return m.persistActivity(s, false)
	}); err != nil {
		m.log.Warn("idle session", "session", s.meta.ID, "user", s.meta.UserID, "err", err)
	}
}

// lifeStep runs f holding the session's life lock, if the session is
// still live.
func (m *Manager) lifeStep(s *session, f func() error) error {
	s.life.Lock()
	defer s.life.Unlock()
	m.mu.Lock()
	live := s.phase == phaseLive
	m.mu.Unlock()
	if !live {
		return nil
	}
	return f()
}

// freeze freezes an idle session's sandbox; s.life is held. Its last
// activity is written first, so that a restarted daemon counts its idle
// time from the same point.
func (m *Manager) freeze(s *session) error {
	if err := m.persistActivity(s, true); err != nil {
		return err
	}
	if err := m.cg.Freeze(m.cg.SessionPath(s.meta.UserID, s.meta.ID)); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	s.frozen.Store(true)
	m.log.Info("idle session frozen", "session", s.meta.ID, "user", s.meta.UserID, "last_active", s.activity().UTC())
	return nil
}

// persistActivity writes the session's last activity to session.json if
// it moved on by activityPersistEvery since last written, or at all when
// exact; s.life is held and the session is live.
func (m *Manager) persistActivity(s *session, exact bool) error {
	at := s.activity().UTC()
	if !at.After(s.persisted) || (!exact && at.Sub(s.persisted) < activityPersistEvery) {
		return nil
	}
	meta := s.meta
	meta.LastActive = at
	if err := writeMeta(s.dir, meta); err != nil {
		return err
	}
	s.meta.LastActive, s.persisted = at, at
	return nil
}

// expire stops a live session past its maximum duration: its calls end,
// its sandbox is stopped, its documents kept and its disk given back; it
// stays, expired, until deleted. The intent is written first, so that a
// daemon that dies half-way finishes the expiry on its next start.
func (m *Manager) expire(ctx context.Context, s *session, reason string) error {
	m.mu.Lock()
	if s.phase != phaseLive {
		m.mu.Unlock()
		return nil
	}
	s.phase, s.reason = phaseExpiring, reason
	s.expiring = make(chan struct{})
	done := s.expiring
	m.mu.Unlock()
	defer close(done)
	s.close()
	s.calls.Wait()
	if err := m.thawForStop(s); err != nil {
		m.log.Warn("thaw an expiring session", "session", s.meta.ID, "err", err)
	}
	s.meta.Expired = &expiry{At: time.Now().UTC(), Reason: reason}
	if err := writeMeta(s.dir, s.meta); err != nil {
		m.expiryFailed(s, err)
		return err
	}
	if err := m.finishExpiry(ctx, s); err != nil {
		m.expiryFailed(s, err)
		return err
	}
	m.log.Info("session expired", "session", s.meta.ID, "user", s.meta.UserID, "kept", s.meta.Expired.Kept)
	return nil
}

// finishExpiry does (or redoes) what an expiry does after its intent was
// written: sandbox stopped, documents kept, disk given back, done.
func (m *Manager) finishExpiry(ctx context.Context, s *session) error {
	if !s.meta.Expired.Done {
		if err := m.fault("expire:sandbox"); err != nil {
			return err
		}
		if err := m.destroySandbox(s); err != nil {
			return err
		}
		s.procs.wait()
		if err := m.fault("expire:keep"); err != nil {
			return err
		}
		var res DeleteResult
		m.keepFiles(s, &res)
		if err := m.fault("expire:release"); err != nil {
			return err
		}
		if err := m.releaseTrees(ctx, s); err != nil {
			return err
		}
		e := *s.meta.Expired
		e.Kept, e.NotKept, e.Done = append(e.Kept, res.Kept...), append(e.NotKept, res.NotKept...), true
		meta := s.meta
		meta.Expired = &e
		if err := writeMeta(s.dir, meta); err != nil {
			return err
		}
		s.meta.Expired = &e
	}
	m.mu.Lock()
	s.phase, s.reason = phaseExpired, s.meta.Expired.Reason
	m.mu.Unlock()
	m.removeUserCgroup(s.meta.UserID)
	m.noteCurrent(s.meta.UserID)
	return nil
}

// expiryFailed keeps a session whose expiry failed as broken: a delete
// finishes it.
func (m *Manager) expiryFailed(s *session, err error) {
	m.mu.Lock()
	s.phase, s.reason = phaseBroken, "expiry failed: "+err.Error()
	m.mu.Unlock()
}

// userPass applies a changed budget in the user's quota.json and writes
// their current usage.
func (m *Manager) userPass(ctx context.Context, userID string) {
	if l, err := m.userLimits(userID); err == nil {
		m.mu.Lock()
		uid, ok := m.userUIDs[userID]
		m.mu.Unlock()
		if ok {
			if _, err := m.attachUser(ctx, userID, mounts.Owner{UID: uid, GID: uid}, l.MaxWorkspaceMB); err != nil {
				m.log.Warn("apply the user's disk budget", "user", userID, "err", err)
			}
		}
	}
	if err := m.writeCurrent(userID); err != nil {
		m.log.Debug("update the user's quota.json current usage", "user", userID, "err", err)
	}
}
