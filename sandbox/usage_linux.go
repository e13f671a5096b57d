package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// User describes a user the daemon has a directory of: their limits (the
// defaults, overridden by their quota.json), their disk usage as the quota
// mechanism counts it, and their sessions, oldest first. A user the daemon
// never saw is not found; a quota.json that cannot be used is
// ErrInvalidQuota, as it is for a create.
func (m *Manager) User(ctx context.Context, userID string) (User, error) {
	if err := validateID("user_id", userID); err != nil {
		return User{}, err
	}
	if _, err := os.Lstat(m.layout.User(userID).Dir); errors.Is(err, fs.ErrNotExist) {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, userID)
	} else if err != nil {
		return User{}, fmt.Errorf("user %q: %w", userID, err)
	}
	l, err := m.userLimits(userID)
	if err != nil {
		return User{}, err
	}
	if _, err := m.disk(userID); err != nil {
		return User{}, fmt.Errorf("%w: user %q: their disk is not attached (see the daemon's log)", ErrUnavailable, userID)
	}
	u, err := m.userUsage(userID)
	if err != nil {
		return User{}, err
	}
	sessions, err := m.ListSessions(ctx, userID)
	if err != nil {
		return User{}, err
	}
	return User{ID: userID, Limits: l, Usage: u, Sessions: sessions}, nil
}
