package server

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// UserBackend describes users.
type UserBackend interface {
	// User is a user's limits, disk usage and sessions; a user the daemon
	// has no directory of is sandbox.ErrNotFound.
	User(ctx context.Context, userID string) (sandbox.User, error)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.backend.User(r.Context(), r.PathValue("user_id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireUser(u))
	return nil
}

// wireUser is a user on the wire: durations in seconds (hours for the
// design's max_session_duration_hours), session disks ordered by id.
func wireUser(u sandbox.User) api.User {
	out := api.User{
		UserID: u.ID,
		Limits: api.UserLimits{
			MaxSessions:             u.Limits.MaxSessions,
			MaxWorkspaceSizeMB:      u.Limits.MaxWorkspaceMB,
			SessionDiskMB:           u.Limits.SessionDiskMB,
			MaxFilesPerSession:      u.Limits.MaxFilesPerSession,
			MaxSessionDurationHours: u.Limits.MaxSessionDuration.Hours(),
			IdleFreezeAfterSec:      u.Limits.IdleFreezeAfter.Seconds(),
			IdleDeleteAfterSec:      u.Limits.IdleDeleteAfter.Seconds(),
		},
		Usage: api.UserUsage{
			QuotaMode:     u.Usage.QuotaMode,
			Enforced:      u.Usage.Enforced,
			UsedBytes:     u.Usage.UsedBytes,
			ReservedBytes: u.Usage.ReservedBytes,
			LimitBytes:    u.Usage.LimitBytes,
			Files:         u.Usage.Files,
			Shared:        wireDisk(u.Usage.Shared),
			SessionDisks:  make([]api.SessionDisk, 0, len(u.Usage.Sessions)),
		},
		Sessions: make([]api.Session, 0, len(u.Sessions)),
	}
	for _, sess := range u.Sessions {
		out.Sessions = append(out.Sessions, wireSession(sess))
		if sess.State != sandbox.StateExpired {
			out.Usage.Sessions++
		}
	}
	for id, d := range u.Usage.Sessions {
		out.Usage.SessionDisks = append(out.Usage.SessionDisks, api.SessionDisk{SessionID: id, DiskUsage: wireDisk(d)})
	}
	slices.SortFunc(out.Usage.SessionDisks, func(a, b api.SessionDisk) int { return strings.Compare(a.SessionID, b.SessionID) })
	return out
}

func wireDisk(d sandbox.DiskUsage) api.DiskUsage {
	return api.DiskUsage{Bytes: d.Bytes, LimitBytes: d.LimitBytes, Files: d.Files, LimitFiles: d.LimitFiles}
}
