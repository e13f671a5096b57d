package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/mounts/quota"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// phase is where a session is in the daemon's hands; Manager.mu guards it.
type phase int

const (
	// phaseCreating: its id is taken, its sandbox is being built.
	phaseCreating phase = iota
	// phaseLive: it serves calls.
	phaseLive
	// phaseBroken: it could not be restored or torn down; reason says
	// why. It serves no call but GET and DELETE.
	phaseBroken
	// phaseDeleting: a delete is tearing it down.
	phaseDeleting
	// phaseExpiring: past its maximum duration, its sandbox is being
	// stopped and its documents kept (lifetime_linux.go).
	phaseExpiring
	// phaseExpired: stopped for good, its documents kept and its disk
	// given back; reason says when. It serves GET and DELETE only.
	phaseExpired
)

// session is one session in the daemon's hands.
type session struct {
	meta sessionMeta
	// dir is the daemon's directory of the session (its session.json).
	dir mounts.Session
	// trees are the session's quota-limited trees (files, logs, venv
	// layer), shared its user's shared_files, and disk the user's limits
	// they were reserved under; all set before the session goes live.
	trees  quota.SessionDirs
	shared string
	disk   UserLimits

	// phase and reason are guarded by Manager.mu.
	phase  phase
	reason string

	// owner is the user's own uid and gid: the commands' and the files'.
	owner mounts.Owner

	// box, init and exec are set before the session goes live and not
	// changed after.
	box *libcontainer.Container
	// init is a pidfd of the sandbox's PID 1: readable once it exited.
	init *os.File
	exec Executor

	procs processes
	// usage is what the daemon counts of the session (stats.go).
	usage usage
	// tails counts commands whose cgroup is being removed after their
	// end (agentExecutor).
	tails sync.WaitGroup

	// calls counts the calls in flight; a delete waits for them.
	calls sync.WaitGroup
	// closing is closed when a delete begins, which ends calls in flight.
	closing   chan struct{}
	closeOnce sync.Once

	// What the janitor goes by (lifetime_linux.go): busy counts the calls
	// in flight, lastActive is when the last one began or ended (Unix
	// nanoseconds), persisted lazily to session.json (persisted).
	busy       atomic.Int32
	lastActive atomic.Int64
	persisted  time.Time
	// life serialises the sandbox's freeze and thaw, which frozen
	// reports.
	life   sync.Mutex
	frozen atomic.Bool
	// expiring is closed when an expiry the janitor began is over;
	// Manager.mu guards the field.
	expiring chan struct{}
}

func newSession(meta sessionMeta, dir mounts.Session) *session {
	s := &session{meta: meta, dir: dir, closing: make(chan struct{})}
	// Idle since it was last active before a restart, or since created:
	// what session.json says already.
	since := meta.CreatedAt
	if meta.LastActive.After(since) {
		since = meta.LastActive
	}
	s.lastActive.Store(since.UnixNano())
	s.persisted = since
	return s
}

// close ends the session's calls in flight.
func (s *session) close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// release drops the daemon's handles on the sandbox; it keeps running.
func (s *session) release() {
	if s.init != nil {
		_ = s.init.Close()
	}
}

// running reports whether the sandbox's PID 1 is alive. It asks the
// kernel through the pidfd, never libcontainer, whose lock a slow command
// start may hold.
func (s *session) running() bool {
	if s.init == nil {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(s.init.Fd()), Events: unix.POLLIN}}
	for {
		// The Go runtime's preemption signal can interrupt even a poll
		// that does not wait.
		n, err := unix.Poll(fds, 0)
		if !errors.Is(err, unix.EINTR) {
			return err == nil && n == 0
		}
	}
}

// describe is the session as callers see it; Manager.mu must be held for
// the phase, which is why the caller passes phase and reason.
func (s *session) describe(p phase, reason string) Session {
	switch {
	case p == phaseBroken:
		return s.meta.describe(StateBroken, reason)
	case p == phaseExpiring || p == phaseExpired:
		return s.meta.describe(StateExpired, reason)
	case s.running() && s.frozen.Load():
		return s.meta.describe(StateFrozen, "idle: frozen until its next call")
	case s.running():
		return s.meta.describe(StateRunning, "")
	default:
		return s.meta.describe(StateStopped, "its sandbox is not running; a daemon restart gives it a new one")
	}
}

// bind derives the context of a call in the session: it ends when ctx
// does or when the session is deleted.
func (s *session) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.closing:
			cancel(fmt.Errorf("session %q is being deleted", s.meta.ID))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// acquire returns a live session for one call, thawed if it was frozen;
// the caller calls done when the call is over. Creating, deleting and
// unknown sessions are not found; a broken one is unavailable and an
// expired one expired, with the reason. The call is the session's
// activity: its idle time starts over when the call ends.
func (m *Manager) acquire(id string) (*session, func(), error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	switch {
	case !ok || s.phase == phaseCreating || s.phase == phaseDeleting:
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: session %q", ErrNotFound, id)
	case s.phase == phaseBroken:
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: session %q is broken: %s", ErrUnavailable, id, s.reason)
	case s.phase == phaseExpiring || s.phase == phaseExpired:
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: session %q: %s", ErrExpired, id, s.reason)
	}
	s.calls.Add(1)
	s.busy.Add(1)
	m.mu.Unlock()
	s.touch()
	done := func() {
		s.touch()
		s.busy.Add(-1)
		s.calls.Done()
	}
	if err := m.thaw(s); err != nil {
		done()
		return nil, nil, fmt.Errorf("%w: session %q: %w", ErrUnavailable, id, err)
	}
	return s, done, nil
}

// CreateSession builds a session's directories and starts its sandbox.
// A failure at any step leaves nothing behind, so the same id can be
// created again at once.
func (m *Manager) CreateSession(ctx context.Context, req CreateRequest) (Session, error) {
	if err := validateID("user_id", req.UserID); err != nil {
		return Session{}, err
	}
	if req.SessionID == "" {
		req.SessionID = newID(8)
	}
	if err := validateID("session_id", req.SessionID); err != nil {
		return Session{}, err
	}
	limits, err := resolveLimits(req.Limits, m.cfg.DefaultLimits, m.cfg.MaxLimits)
	if err != nil {
		return Session{}, err
	}
	ul, err := m.userLimits(req.UserID)
	if err != nil {
		return Session{}, err
	}
	meta := sessionMeta{ID: req.SessionID, UserID: req.UserID, CreatedAt: time.Now().UTC(), Limits: storedLimits(limits)}
	s := newSession(meta, m.layout.Session(req.UserID, req.SessionID))
	if err := m.reserve(s, ul.MaxSessions); err != nil {
		return Session{}, m.refused(s, events.QuotaSessions, err)
	}
	// A client that goes away does not stop a create half-way: what was
	// built is either finished or undone.
	ctx = context.WithoutCancel(ctx)
	if err := m.build(ctx, s, ul); err != nil {
		m.abandon(ctx, s)
		return Session{}, m.refused(s, events.QuotaWorkspace, err)
	}
	s.touch()
	m.mu.Lock()
	s.phase = phaseLive
	m.mu.Unlock()
	m.log.InfoContext(ctx, "session created", "session", s.meta.ID, "user", s.meta.UserID)
	m.publish(s, events.Event{Type: events.SessionCreated})
	m.noteCurrent(s.meta.UserID)
	return s.describe(phaseLive, ""), nil
}

// build makes a reserved session's directories, disk and sandbox: the
// user's disk attached (with the budget of their limits l), the session's
// share of it reserved, which answers ErrQuota when it does not fit (the
// mechanism's figures: no tree is walked). session.json is written last:
// it is the commit point, so a daemon that dies before it leaves a
// directory without one, which recovery removes, and a reservation no
// session claims, which recovery releases.
func (m *Manager) build(ctx context.Context, s *session, l UserLimits) error {
	owner, err := m.userOwner(s.meta.UserID)
	if err != nil {
		return err
	}
	s.owner = owner
	d, err := m.attachUser(ctx, s.meta.UserID, owner, l.MaxWorkspaceMB)
	if err != nil {
		return err
	}
	s.shared = d.dirs.SharedFiles
	if err := m.layout.WriteIdentity(owner, m.envOwner.GID); err != nil {
		return err
	}
	if err := m.fault("create:dir"); err != nil {
		return err
	}
	if _, err := m.layout.CreateSession(s.meta.UserID, s.meta.ID); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: session %q", ErrExists, s.meta.ID)
		}
		return err
	}
	if err := m.reserveTrees(ctx, s, l); err != nil {
		return err
	}
	if err := m.fault("create:sandbox"); err != nil {
		return err
	}
	if err := m.startNewSandbox(s); err != nil {
		return err
	}
	if err := m.fault("create:commit"); err != nil {
		return err
	}
	return writeMeta(s.dir, s.meta)
}

// abandon undoes a create that failed at any step and frees its id.
func (m *Manager) abandon(ctx context.Context, s *session) {
	if err := m.destroySandbox(s); err != nil {
		m.log.Warn("abandon a failed create", "session", s.meta.ID, "err", err)
	}
	if err := m.releaseTrees(ctx, s); err != nil {
		m.log.Warn("abandon a failed create", "session", s.meta.ID, "err", err)
	}
	if err := m.removeSessionDir(s.meta.UserID, s.meta.ID); err != nil {
		m.log.Warn("abandon a failed create", "session", s.meta.ID, "err", err)
	}
	m.mu.Lock()
	delete(m.sessions, s.meta.ID)
	m.mu.Unlock()
	m.removeUserCgroup(s.meta.UserID)
}

// reserve claims the session's id, refusing a duplicate or a user at the
// end of their session quota, and gives it the newest base environment.
func (m *Manager) reserve(s *session, maxSessions int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.meta.ID]; ok {
		return fmt.Errorf("%w: session %q", ErrExists, s.meta.ID)
	}
	// Taken under the lock that lists the versions in use, so that no
	// collection can remove the version between here and the sandbox.
	if m.current.ID == "" {
		return fmt.Errorf("%w: the base environment is not built yet (sandboxd env build)", ErrUnavailable)
	}
	s.meta.Env = m.current.ID
	if maxSessions > 0 {
		n := 0
		for _, o := range m.sessions {
			if o.meta.UserID == s.meta.UserID && o.phase != phaseExpired {
				n++
			}
		}
		if n >= maxSessions {
			return fmt.Errorf("%w: user %q has %d of %d sessions", ErrQuota, s.meta.UserID, n, maxSessions)
		}
	}
	m.sessions[s.meta.ID] = s
	return nil
}

// GetSession describes one session.
func (m *Manager) GetSession(_ context.Context, id string) (Session, error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	if !ok || s.phase == phaseCreating || s.phase == phaseDeleting {
		m.mu.Unlock()
		return Session{}, fmt.Errorf("%w: session %q", ErrNotFound, id)
	}
	p, reason := s.phase, s.reason
	m.mu.Unlock()
	return s.describe(p, reason), nil
}

// ListSessions lists the sessions, of one user when userID is set, oldest
// first. The lock is held only to copy the table.
func (m *Manager) ListSessions(_ context.Context, userID string) ([]Session, error) {
	if userID != "" {
		if err := validateID("user_id", userID); err != nil {
			return nil, err
		}
	}
	type entry struct {
		s      *session
		p      phase
		reason string
	}
	var entries []entry
	m.mu.Lock()
	for _, s := range m.sessions {
		if s.phase != phaseCreating && s.phase != phaseDeleting && (userID == "" || s.meta.UserID == userID) {
			entries = append(entries, entry{s, s.phase, s.reason})
		}
	}
	m.mu.Unlock()
	out := make([]Session, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.s.describe(e.p, e.reason))
	}
	slices.SortFunc(out, func(a, b Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteSession stops the session's sandbox (its calls in flight end
// first), keeps its files of the listed kinds when asked, and removes
// everything else of it, its disk reservation given back. A delete that
// fails half-way leaves the session broken, with the reason; deleting it
// again finishes the job. An expired session's documents were kept when
// it expired: the result says which.
func (m *Manager) DeleteSession(ctx context.Context, id string, keepFiles bool) (DeleteResult, error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	// One being expired is deleted once it has (the expiry is short).
	for ok && s.phase == phaseExpiring {
		done := s.expiring
		m.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return DeleteResult{}, fmt.Errorf("session %q: wait for its expiry: %w", id, ctx.Err())
		}
		m.mu.Lock()
		s, ok = m.sessions[id]
	}
	if !ok || s.phase == phaseCreating || s.phase == phaseDeleting {
		m.mu.Unlock()
		return DeleteResult{}, fmt.Errorf("%w: session %q", ErrNotFound, id)
	}
	s.phase = phaseDeleting
	m.mu.Unlock()
	s.close()
	s.calls.Wait()
	// After this, the janitor leaves the session alone (it acts only on
	// live ones, under life), and its processes can die.
	if err := m.thawForStop(s); err != nil {
		m.log.Warn("thaw a session being deleted", "session", id, "err", err)
	}

	ctx = context.WithoutCancel(ctx)
	res, err := m.teardown(ctx, s, keepFiles)
	if err != nil {
		m.mu.Lock()
		s.phase, s.reason = phaseBroken, "delete failed: "+err.Error()
		m.mu.Unlock()
		m.publish(s, events.Event{Type: events.SessionBroken, Reason: "delete failed: " + err.Error()})
		return DeleteResult{}, err
	}
	m.mu.Lock()
	delete(m.sessions, id)
	m.mu.Unlock()
	m.removeUserCgroup(s.meta.UserID)
	// The last session of an old base environment takes it along.
	m.collectEnvs()
	m.log.InfoContext(ctx, "session deleted", "session", id, "user", s.meta.UserID, "kept_files", len(res.Kept))
	m.publish(s, events.Event{Type: events.SessionDeleted})
	m.noteCurrent(s.meta.UserID)
	return res, nil
}

// teardown records the intent to delete, destroys the sandbox, keeps files,
// gives the session's disk back and removes the session directory; each
// step can be redone, so a daemon that dies half-way finishes it on its
// next start.
func (m *Manager) teardown(ctx context.Context, s *session, keepFiles bool) (DeleteResult, error) {
	res := DeleteResult{ID: s.meta.ID, Kept: []string{}}
	if e := s.meta.Expired; e != nil {
		res.Kept = append(res.Kept, e.Kept...)
		res.NotKept = append(res.NotKept, e.NotKept...)
	}
	meta := s.meta
	meta.Deleting = &deleteIntent{KeepFiles: keepFiles}
	if err := writeMeta(s.dir, meta); err != nil {
		return res, err
	}
	if err := m.fault("delete:sandbox"); err != nil {
		return res, err
	}
	if err := m.destroySandbox(s); err != nil {
		return res, err
	}
	// Destroying the sandbox ended its background processes; their logs
	// are closed once they are collected.
	s.procs.wait()
	if keepFiles {
		if err := m.fault("delete:keep"); err != nil {
			return res, err
		}
		m.keepFiles(s, &res)
	}
	if err := m.fault("delete:remove"); err != nil {
		return res, err
	}
	if err := m.releaseTrees(ctx, s); err != nil {
		return res, err
	}
	if err := m.discardSessionDir(s.meta.UserID, s.meta.ID); err != nil {
		return res, err
	}
	return res, nil
}

// keepFiles copies the session's files of the kept kinds into the user's
// shared_files/outputs/, charged to shared_files' limit. Both trees are
// the sandbox's to write, so every step is descriptor-relative and follows
// nothing (mounts.KeepOutputs). A file that cannot be kept (shared_files
// full among the reasons) is reported, never a reason to fail the delete:
// what a sandbox did to its own trees must not keep it alive.
func (m *Manager) keepFiles(s *session, res *DeleteResult) {
	notKept := func(reason string) {
		res.NotKept = append(res.NotKept, NotKept{Name: "*", Reason: reason})
	}
	if s.trees.Files == "" {
		return // a replayed delete or expiry that already released them
	}
	files, err := mounts.OpenDir(s.trees.Files)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		notKept(fmt.Sprintf("the workspace cannot be read: %v", err))
		return
	}
	defer files.Close()
	shared, err := mounts.OpenDir(s.shared)
	if err != nil {
		notKept(fmt.Sprintf("the shared files cannot be opened: %v", err))
		return
	}
	defer shared.Close()
	var out mounts.KeptOutputs
	err = m.charged(func() error {
		var err error
		out, err = mounts.KeepOutputs(files, shared, m.cfg.KeepExtensions, s.owner)
		return err
	})
	res.Kept = append(res.Kept, out.Kept...)
	for _, n := range out.NotKept {
		res.NotKept = append(res.NotKept, NotKept{Name: n.Name, Reason: n.Err.Error()})
	}
	if err != nil {
		notKept(err.Error())
	}
	if out.Repaired != "" {
		m.log.Warn("shared_files/outputs was not a directory; moved aside", "session", s.meta.ID, "user", s.meta.UserID, "repair", out.Repaired)
	}
	if len(res.NotKept) > 0 {
		m.log.Warn("files not kept", "session", s.meta.ID, "user", s.meta.UserID, "not_kept", res.NotKept)
	}
}

// removeSessionDir removes a session's directory without following
// anything the sandbox planted in it.
func (m *Manager) removeSessionDir(userID, id string) error {
	sessions, err := mounts.OpenDir(m.layout.User(userID).Sessions())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("session %q: %w", id, err)
	}
	defer sessions.Close()
	if err := sessions.RemoveAll(id); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("session %q: remove directory: %w", id, err)
	}
	return nil
}

// userCgroupWait bounds how long a user's cgroup that is busy after its
// last session's went is tried again; the kernel lets the child go after
// an RCU grace period. What is still there after it, the next start
// removes.
const userCgroupWait = 2 * time.Second

// removeUserCgroup removes the user's cgroup once the user has no session
// left. If the kernel still counts the last session's cgroup, it tries
// again in the background (Close waits for it) instead of making the
// delete wait.
func (m *Manager) removeUserCgroup(userID string) {
	if m.tryRemoveUserCgroup(userID) {
		m.cleanup.Go(func() { m.awaitUserCgroupRemoved(userID) })
	}
}

// awaitUserCgroupRemoved removes the user's cgroup once the user has no
// session left, waiting up to userCgroupWait while the kernel says it is
// busy.
func (m *Manager) awaitUserCgroupRemoved(userID string) {
	pause := time.Millisecond
	for deadline := time.Now().Add(userCgroupWait); m.tryRemoveUserCgroup(userID); {
		if time.Now().After(deadline) {
			m.log.Warn("user cgroup still busy; the next start removes it", "user", userID)
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// tryRemoveUserCgroup removes the user's cgroup if the user has no
// session, and says whether it should be tried again. The check and the
// removal happen under the lock so that a create for the same user, which
// reserves under it, cannot lose its parent cgroup in between; removing
// an empty cgroup is a few rmdirs.
func (m *Manager) tryRemoveUserCgroup(userID string) (again bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sessions {
		if s.meta.UserID == userID && s.phase != phaseExpired {
			return false
		}
	}
	err := m.cg.RemoveUser(userID)
	if errors.Is(err, cgroup.ErrBusy) {
		return true
	}
	if err != nil {
		m.log.Warn("remove user cgroup", "user", userID, "err", err)
	}
	return false
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
