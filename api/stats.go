package api

import "time"

// SessionStats is the answer of GET /v1/sessions/{id}/stats: what a
// session uses now and has done.
type SessionStats struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	// Status is the session's, as in Session.
	Status string `json:"status"`
	Limits Limits `json:"limits"`
	// CPUMS is the CPU time (user and system) its processes used;
	// CPUThrottledMS how long its CPU limit held them back.
	CPUMS          int64 `json:"cpu_ms"`
	CPUThrottledMS int64 `json:"cpu_throttled_ms"`
	// MemoryBytes is the memory it uses now, its /tmp included;
	// MemoryPeakBytes the most it used at once.
	MemoryBytes     uint64 `json:"memory_bytes"`
	MemoryPeakBytes uint64 `json:"memory_peak_bytes"`
	// Pids counts its processes and threads; PidsLimit caps them.
	Pids      uint64 `json:"pids"`
	PidsLimit uint64 `json:"pids_limit"`
	// OOMKills counts the processes the OOM killer killed in it.
	OOMKills uint64 `json:"oom_kills"`
	// Execs counts the commands it ran (background processes included)
	// since the daemon took it on.
	Execs uint64 `json:"execs"`
	// Processes counts its background processes still running.
	Processes int `json:"processes"`
	// LastActivity is when a call in it last began or ended (or when the
	// daemon took it on, before any).
	LastActivity time.Time `json:"last_activity,omitzero"`
	// Disk is its disk use against its quota; absent while the daemon
	// does not measure it.
	Disk *DiskUsage `json:"disk,omitempty"`
}
