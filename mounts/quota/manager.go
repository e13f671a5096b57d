package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// backend is one mode's mechanism. The Manager serialises each user's
// calls; the backend acts on the user's tree.
type backend interface {
	attachUser(ctx context.Context, u *user) error
	reserveSession(ctx context.Context, u *user, sessionID string, l SessionLimits) (SessionDirs, error)
	releaseSession(ctx context.Context, u *user, sessionID string) error
	setUserLimits(ctx context.Context, u *user, l UserLimits) error
	usage(u *user) (UserUsage, error)
	sessions(u *user) ([]string, error)
	detachUser(ctx context.Context, u *user) error
}

// Config configures a Manager.
type Config struct {
	// Mode is what Detect found (or ModeNone to enforce nothing).
	Mode Mode
	// Dir is a root-only directory of the state filesystem the package
	// keeps its own records in (project mode: the last project id given
	// out). It must exist.
	Dir string
}

// Manager enforces users' and sessions' disk limits. Calls for one user
// are serialised (a slow one, such as making a session's filesystem,
// holds back only that user's other calls); Usage never waits.
type Manager struct {
	mode    Mode
	backend backend

	mu    sync.Mutex
	users map[string]*user
}

// user is one attached user.
type user struct {
	id, dir string
	// lock holds a token while a call changes the user's tree; a channel,
	// so that waiting for it honours the caller's context.
	lock chan struct{}
	// Guarded by lock.
	attached bool
	limits   UserLimits
	// owner owns the user's sandbox-writable directories.
	owner owner
}

// Mode is the mode the Manager enforces limits with.
func (m *Manager) Mode() Mode { return m.mode }

// AttachUser makes the user's disk ready under dir (the user's
// directory, root's, which must exist) with the budget l, and returns
// where the user's trees are. The directories the user's sandboxes write
// (shared_files, each session's files, logs and venv layer) belong to o. It is idempotent, and it is what recovery
// calls at start for every user: after a reboot it mounts the image
// again, after a daemon restart it finds it mounted. A budget the disk
// cannot take (below what the user already uses: ErrBelowUsage; beyond
// what it can grow to: ErrCannotGrow) leaves the user attached with the
// budget the disk had, and returns the user's directories with the error.
// A zero budget (KeepBudget) attaches the user's disk with the budget it
// has; for a user without a disk yet that is ErrInvalid.
func (m *Manager) AttachUser(ctx context.Context, userID, dir string, o Owner, l UserLimits) (UserDirs, error) {
	if err := checkName("user", userID); err != nil {
		return UserDirs{}, err
	}
	if err := l.check(); err != nil && l != KeepBudget {
		return UserDirs{}, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	m.mu.Lock()
	u := m.users[userID]
	if u == nil {
		u = &user{id: userID, dir: dir, lock: make(chan struct{}, 1), owner: owner{o.UID, o.GID}}
		m.users[userID] = u
	}
	m.mu.Unlock()
	if u.dir != dir || u.owner != (owner{o.UID, o.GID}) {
		return UserDirs{}, fmt.Errorf("quota: user %q: %w: attached at %s for uid %d, not %s for uid %d", userID, ErrInvalid, u.dir, u.owner.uid, dir, o.UID)
	}
	unlock, err := acquire(ctx, u)
	if err != nil {
		return UserDirs{}, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	defer unlock()
	prev := u.limits
	u.limits = l
	if err := m.backend.attachUser(ctx, u); err != nil {
		u.limits = prev
		if errors.Is(err, ErrBelowUsage) || errors.Is(err, ErrCannotGrow) {
			// The budget is applied last: the disk is ready.
			u.attached = true
			return userDirs(dir), fmt.Errorf("quota: user %q: %w", userID, err)
		}
		if !u.attached {
			m.forget(u)
		}
		return UserDirs{}, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	u.attached = true
	return userDirs(dir), nil
}

// ReserveSession reserves l of the user's budget for the session and
// returns the session's trees, made and mounted. When the budget cannot
// hold it, the error is ErrNoRoom and nothing is left behind. It is
// idempotent: for a session already reserved (a restart, or a sandbox
// given anew over the same files) it mounts what exists and keeps the
// reservation it has, whatever l now says.
func (m *Manager) ReserveSession(ctx context.Context, userID, sessionID string, l SessionLimits) (SessionDirs, error) {
	if err := checkName("session", sessionID); err != nil {
		return SessionDirs{}, err
	}
	if err := l.check(); err != nil {
		return SessionDirs{}, fmt.Errorf("quota: user %q session %q: %w", userID, sessionID, err)
	}
	var dirs SessionDirs
	err := m.withUser(ctx, userID, func(u *user) error {
		var err error
		dirs, err = m.backend.reserveSession(ctx, u, sessionID, l)
		return err
	})
	if err != nil {
		return SessionDirs{}, fmt.Errorf("quota: user %q session %q: %w", userID, sessionID, err)
	}
	return dirs, nil
}

// ReleaseSession gives the session's reservation back to its user and
// deletes the session's tree: files to keep must be copied out first (a
// rename cannot leave a session's filesystem or project: EXDEV). The
// session's sandbox must be stopped: in loop mode a process still using
// the session's filesystem keeps it, and its space, until it ends.
// Releasing a session that holds nothing is not an error.
func (m *Manager) ReleaseSession(ctx context.Context, userID, sessionID string) error {
	if err := checkName("session", sessionID); err != nil {
		return err
	}
	err := m.withUser(ctx, userID, func(u *user) error {
		return m.backend.releaseSession(ctx, u, sessionID)
	})
	if err != nil {
		return fmt.Errorf("quota: user %q session %q: %w", userID, sessionID, err)
	}
	return nil
}

// SetUserLimits changes the user's budget while the user's sessions run.
// Growing always works (loop mode: the image grows online); a budget
// below what is used or reserved is refused with ErrBelowUsage and
// changes nothing.
func (m *Manager) SetUserLimits(ctx context.Context, userID string, l UserLimits) error {
	if err := l.check(); err != nil {
		return fmt.Errorf("quota: user %q: %w", userID, err)
	}
	err := m.withUser(ctx, userID, func(u *user) error {
		if err := m.backend.setUserLimits(ctx, u, l); err != nil {
			return err
		}
		u.limits = l
		return nil
	})
	if err != nil {
		return fmt.Errorf("quota: user %q: %w", userID, err)
	}
	return nil
}

// Usage reads the user's usage from the mechanism: a statfs or quotactl
// per session and one for the user, whatever the number of files.
func (m *Manager) Usage(userID string) (UserUsage, error) {
	u, err := m.user(userID)
	if err != nil {
		return UserUsage{}, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	uu, err := m.backend.usage(u)
	if err != nil {
		return UserUsage{}, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	return uu, nil
}

// Sessions names the sessions that hold a reservation, so that recovery
// can release those no session record claims any more.
func (m *Manager) Sessions(userID string) ([]string, error) {
	u, err := m.user(userID)
	if err != nil {
		return nil, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	ids, err := m.backend.sessions(u)
	if err != nil {
		return nil, fmt.Errorf("quota: user %q: %w", userID, err)
	}
	return ids, nil
}

// DetachUser unmounts everything of the user's (sessions first) and
// forgets the user, so that the user's directory can be removed. Files
// stay. Sandboxes still running keep their view until they end.
func (m *Manager) DetachUser(ctx context.Context, userID string) error {
	err := m.withUser(ctx, userID, func(u *user) error {
		if err := m.backend.detachUser(ctx, u); err != nil {
			return err
		}
		u.attached = false
		m.forget(u)
		return nil
	})
	if err != nil {
		return fmt.Errorf("quota: user %q: %w", userID, err)
	}
	return nil
}

// forget drops u from the users, unless another record replaced it.
func (m *Manager) forget(u *user) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[u.id] == u {
		delete(m.users, u.id)
	}
}

func (m *Manager) user(userID string) (*user, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[userID]
	if u == nil {
		return nil, ErrNotAttached
	}
	return u, nil
}

// withUser runs f holding the user's token, if the user is attached.
func (m *Manager) withUser(ctx context.Context, userID string, f func(*user) error) error {
	u, err := m.user(userID)
	if err != nil {
		return err
	}
	unlock, err := acquire(ctx, u)
	if err != nil {
		return err
	}
	defer unlock()
	if !u.attached {
		return ErrNotAttached
	}
	return f(u)
}

func acquire(ctx context.Context, u *user) (func(), error) {
	select {
	case u.lock <- struct{}{}:
		return func() { <-u.lock }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
