package api

// User is the answer of GET /v1/users/{user_id}: the user's limits, their
// disk as the quota mechanism counts it, and their sessions.
type User struct {
	UserID   string     `json:"user_id"`
	Limits   UserLimits `json:"limits"`
	Usage    UserUsage  `json:"usage"`
	Sessions []Session  `json:"sessions"`
	// Aggregated session statistics (CPU, memory, exec counts) belong
	// beside Usage when the daemon gains them.
}

// UserLimits are a user's limits: the daemon's defaults, overridden by the
// user's quota.json. A duration of 0 is "never".
type UserLimits struct {
	MaxSessions             int     `json:"max_sessions"`
	MaxWorkspaceSizeMB      int64   `json:"max_workspace_size_mb"`
	SessionDiskMB           int64   `json:"session_disk_mb"`
	MaxFilesPerSession      int64   `json:"max_files_per_session"`
	MaxSessionDurationHours float64 `json:"max_session_duration_hours"`
	IdleFreezeAfterSec      float64 `json:"idle_freeze_after_sec"`
	IdleDeleteAfterSec      float64 `json:"idle_delete_after_sec"`
}

// UserUsage is a user's disk. With quota_mode "none" nothing is enforced
// and the figures are zero.
type UserUsage struct {
	QuotaMode string `json:"quota_mode"`
	Enforced  bool   `json:"enforced"`
	// UsedBytes is what shared_files and the sessions' trees hold.
	UsedBytes int64 `json:"used_bytes"`
	// ReservedBytes is what the live sessions reserve of LimitBytes, the
	// budget (max_workspace_size_mb).
	ReservedBytes int64 `json:"reserved_bytes"`
	LimitBytes    int64 `json:"limit_bytes"`
	// Files counts files and directories in shared_files and the
	// sessions' trees.
	Files int64 `json:"files"`
	// Sessions counts the user's sessions that are not expired.
	Sessions int `json:"sessions"`
	// Shared is shared_files: its limit is the budget less the
	// reservations.
	Shared DiskUsage `json:"shared"`
	// SessionDisks is each live session's own disk.
	SessionDisks []SessionDisk `json:"session_disks"`
}

// DiskUsage is what is used of one disk limit.
type DiskUsage struct {
	Bytes      int64 `json:"bytes"`
	LimitBytes int64 `json:"limit_bytes"`
	Files      int64 `json:"files"`
	LimitFiles int64 `json:"limit_files"`
}

// SessionDisk is one session's disk.
type SessionDisk struct {
	SessionID string `json:"session_id"`
	DiskUsage
}
