package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// A user's quota.json (the design's format) sets their limits:
//
//	{"limits": {"max_sessions": 10, "max_workspace_size_mb": 1024,
//	            "session_disk_mb": 102, "max_files_per_session": 10000,
//	            "max_session_duration_hours": 24,
//	            "idle_freeze_after": "10m", "idle_delete_after": "24h"},
//	 "current": {...}}
//
// Every limit is optional (the daemon's default stands for one not set);
// a key the daemon does not know inside "limits" is an error, so that a
// misspelt limit is not silently ignored; other top-level keys (the
// design's "user_id") are left alone. "current" is the daemon's: it
// rewrites it, atomically, with the user's usage, and never reads it.

// noSessionLimitShare divides a user's budget into session reservations
// when max_sessions is 0 (unlimited) and session_disk_mb is not set.
const noSessionLimitShare = 10

// quotaLimits is the "limits" object of quota.json.
type quotaLimits struct {
	MaxSessions             *int          `json:"max_sessions"`
	MaxWorkspaceMB          *int64        `json:"max_workspace_size_mb"`
	SessionDiskMB           *int64        `json:"session_disk_mb"`
	MaxFilesPerSession      *int64        `json:"max_files_per_session"`
	MaxSessionDurationHours *float64      `json:"max_session_duration_hours"`
	IdleFreezeAfter         *quotaSeconds `json:"idle_freeze_after"`
	IdleDeleteAfter         *quotaSeconds `json:"idle_delete_after"`
}

// quotaSeconds is a duration in quota.json: a Go duration string ("10m",
// "24h") or a number of seconds. Zero turns the timer off.
type quotaSeconds time.Duration

func (d *quotaSeconds) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = quotaSeconds(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s is neither a duration (\"10m\") nor a number of seconds", b)
	}
	if math.Abs(n) > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("%s seconds is out of range", b)
	}
	*d = quotaSeconds(n * float64(time.Second))
	return nil
}

// defaultUserLimits are the limits of a user without a quota.json.
func (c Config) defaultUserLimits() UserLimits {
	return UserLimits{
		MaxSessions:        c.MaxSessionsPerUser,
		MaxWorkspaceMB:     c.MaxWorkspaceMB,
		SessionDiskMB:      c.SessionDiskMB,
		MaxFilesPerSession: int64(c.MaxFilesPerSession),
		MaxSessionDuration: c.MaxSessionDuration,
		IdleFreezeAfter:    c.IdleFreezeAfter,
		IdleDeleteAfter:    c.IdleDeleteAfter,
	}
}

// readUserLimits reads the user's quota.json at path over def; a missing
// file is def. A file that cannot be read, parsed or used is an
// ErrInvalidQuota error naming the file and what is wrong with it.
func readUserLimits(path string, def UserLimits) (UserLimits, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return def.resolve()
	}
	if err != nil {
		return UserLimits{}, fmt.Errorf("%w: %w", ErrInvalidQuota, err)
	}
	l, err := parseUserLimits(data, def)
	if err != nil {
		return UserLimits{}, fmt.Errorf("%w: %s: %w", ErrInvalidQuota, path, err)
	}
	return l, nil
}

// parseUserLimits applies the limits of a quota.json's content to def.
func parseUserLimits(data []byte, def UserLimits) (UserLimits, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return UserLimits{}, err
	}
	if top == nil {
		return UserLimits{}, errors.New("not a JSON object")
	}
	l := def
	if raw, ok := top["limits"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var ql quotaLimits
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ql); err != nil {
			return UserLimits{}, fmt.Errorf("limits: %w", err)
		}
		set := func(dst *int64, v *int64) {
			if v != nil {
				*dst = *v
			}
		}
		if ql.MaxSessions != nil {
			l.MaxSessions = *ql.MaxSessions
		}
		set(&l.MaxWorkspaceMB, ql.MaxWorkspaceMB)
		set(&l.SessionDiskMB, ql.SessionDiskMB)
		set(&l.MaxFilesPerSession, ql.MaxFilesPerSession)
		if h := ql.MaxSessionDurationHours; h != nil {
			if *h < 0 || *h > float64(math.MaxInt64)/float64(time.Hour) {
				return UserLimits{}, fmt.Errorf("limits: max_session_duration_hours %g is out of range", *h)
			}
			l.MaxSessionDuration = time.Duration(*h * float64(time.Hour))
		}
		if d := ql.IdleFreezeAfter; d != nil {
			l.IdleFreezeAfter = time.Duration(*d)
		}
		if d := ql.IdleDeleteAfter; d != nil {
			l.IdleDeleteAfter = time.Duration(*d)
		}
	}
	return l.resolve()
}

// resolve checks the limits and fills a session reservation left to its
// default: the budget shared out between max_sessions sessions.
func (l UserLimits) resolve() (UserLimits, error) {
	var bad []string
	if l.MaxSessions < 0 {
		bad = append(bad, fmt.Sprintf("max_sessions %d is negative", l.MaxSessions))
	}
	if l.MaxWorkspaceMB < 1 {
		bad = append(bad, fmt.Sprintf("max_workspace_size_mb %d must be at least 1", l.MaxWorkspaceMB))
	}
	if l.SessionDiskMB < 0 || l.SessionDiskMB > max(l.MaxWorkspaceMB, 0) {
		bad = append(bad, fmt.Sprintf("session_disk_mb %d must lie between 1 and max_workspace_size_mb (%d), or be 0 for max_workspace_size_mb/max_sessions", l.SessionDiskMB, l.MaxWorkspaceMB))
	}
	if l.MaxFilesPerSession < 1 {
		bad = append(bad, fmt.Sprintf("max_files_per_session %d must be at least 1", l.MaxFilesPerSession))
	}
	if l.MaxSessionDuration < 0 {
		bad = append(bad, "max_session_duration_hours is negative")
	}
	if l.IdleFreezeAfter < 0 || l.IdleDeleteAfter < 0 {
		bad = append(bad, "idle_freeze_after and idle_delete_after must not be negative")
	}
	if len(bad) > 0 {
		return UserLimits{}, errors.New(strings.Join(bad, "; "))
	}
	if l.SessionDiskMB == 0 {
		n := int64(l.MaxSessions)
		if n == 0 {
			n = noSessionLimitShare
		}
		l.SessionDiskMB = max(l.MaxWorkspaceMB/n, 1)
	}
	return l, nil
}

// quotaCurrent is the "current" object the daemon writes into quota.json.
type quotaCurrent struct {
	// WorkspaceSizeMB is what the user's files take: shared_files and
	// every session's tree (MiB, rounded up).
	WorkspaceSizeMB int64 `json:"workspace_size_mb"`
	// ReservedMB is what the live sessions hold of the budget.
	ReservedMB     int64 `json:"reserved_mb"`
	ActiveSessions int   `json:"active_sessions"`
	// Files counts files and directories in shared_files and the
	// sessions' trees.
	Files     int64     `json:"files"`
	UpdatedAt time.Time `json:"updated_at"`
}

func currentOf(u UserUsage, sessions int, now time.Time) quotaCurrent {
	ceilMB := func(b int64) int64 { return (b + mib - 1) / mib }
	return quotaCurrent{
		WorkspaceSizeMB: ceilMB(u.UsedBytes),
		ReservedMB:      ceilMB(u.ReservedBytes),
		ActiveSessions:  sessions,
		Files:           u.Files,
		UpdatedAt:       now.UTC().Truncate(time.Second),
	}
}

// withCurrent returns a quota.json's content (data, nil when the file
// does not exist) with its "current" object replaced by cur, everything
// else kept as it was. Content that is not a JSON object is an error: it
// is the operator's to fix, not the daemon's to overwrite.
func withCurrent(data []byte, cur quotaCurrent) ([]byte, error) {
	top := map[string]json.RawMessage{}
	if data != nil {
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, err
		}
		if top == nil {
			return nil, errors.New("not a JSON object")
		}
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	top["current"] = raw
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
