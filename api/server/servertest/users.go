package servertest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sandboxd/sandboxd/sandbox"
)

// UserLimits are the limits of every user of the fake: the daemon's
// defaults.
func (b *Backend) UserLimits() sandbox.UserLimits {
	return sandbox.UserLimits{
		MaxSessions: 10, MaxWorkspaceMB: 1024, SessionDiskMB: 102, MaxFilesPerSession: 10000,
		MaxSessionDuration: 24 * time.Hour, IdleFreezeAfter: 10 * time.Minute, IdleDeleteAfter: 24 * time.Hour,
	}
}

// User implements server.UserBackend: a user is known once they have a
// session, shared files or an output. Usage counts the bytes and files
// stored in the user's trees; each session that is not expired reserves
// SessionDiskMB.
func (b *Backend) User(_ context.Context, userID string) (sandbox.User, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("User"); err != nil {
		return sandbox.User{}, err
	}
	l := b.UserLimits()
	u := sandbox.User{ID: userID, Limits: l, Sessions: []sandbox.Session{}, Usage: sandbox.UserUsage{
		QuotaMode: "loop", Enforced: true, LimitBytes: l.MaxWorkspaceMB << 20, Sessions: map[string]sandbox.DiskUsage{},
	}}
	known := false
	for k, n := range b.files {
		if k.tree.root == sandbox.RootShared && k.tree.owner == userID && k.path != "" {
			u.Usage.Shared.Bytes += int64(len(n.data))
			u.Usage.Shared.Files++
			known = true
		}
	}
	for o := range b.outputs {
		known = known || o.user == userID
	}
	for _, s := range b.sessions {
		if s.UserID != userID {
			continue
		}
		known = true
		u.Sessions = append(u.Sessions, s.Session)
		if s.State == sandbox.StateExpired {
			continue
		}
		d := sandbox.DiskUsage{LimitBytes: l.SessionDiskMB << 20, LimitFiles: l.MaxFilesPerSession}
		for k, n := range b.files {
			if k.tree == workspaceTree(s.ID) && k.path != "" {
				d.Bytes += int64(len(n.data))
				d.Files++
			}
		}
		u.Usage.Sessions[s.ID] = d
		u.Usage.ReservedBytes += d.LimitBytes
		u.Usage.UsedBytes += d.Bytes
		u.Usage.Files += d.Files
	}
	if !known {
		return sandbox.User{}, fmt.Errorf("%w: user %q", sandbox.ErrNotFound, userID)
	}
	u.Usage.UsedBytes += u.Usage.Shared.Bytes
	u.Usage.Files += u.Usage.Shared.Files
	u.Usage.Shared.LimitBytes = u.Usage.LimitBytes - u.Usage.ReservedBytes
	u.Usage.Shared.LimitFiles = u.Usage.LimitBytes / (16 << 10)
	slices.SortFunc(u.Sessions, func(x, y sandbox.Session) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return u, nil
}
