package api

import "time"

// Version is the API version every route is prefixed with.
const Version = "v1"

// Limits are a session's kernel-enforced resource limits. On create, zero
// fields take the daemon's defaults; values above the daemon's maximums are
// capped.
type Limits struct {
	// CPUs is the CPU bandwidth in cores (0.5 = half a core).
	CPUs float64 `json:"cpus,omitempty"`
	// MemoryMB is the memory limit in MiB; swap is disabled.
	MemoryMB int64 `json:"memory_mb,omitempty"`
	// Pids caps the number of processes and threads.
	Pids int64 `json:"pids,omitempty"`
	// TmpMB is the size of the session's /tmp (it counts against MemoryMB).
	TmpMB int64 `json:"tmp_mb,omitempty"`
}

// Info is the answer of GET /v1.
type Info struct {
	Version       string   `json:"version"`
	APIVersion    string   `json:"api_version"`
	CgroupMode    string   `json:"cgroup_mode"`
	CgroupParent  string   `json:"cgroup_parent"`
	Controllers   []string `json:"controllers"`
	DefaultLimits Limits   `json:"default_limits"`
	MaxLimits     Limits   `json:"max_limits"`
	Sessions      int      `json:"sessions"`
	// Env is the base environment new sessions get, with what it has and
	// lacks of the declared packages; absent before one is built.
	Env *Env `json:"env,omitempty"`
	// QuotaMode is how disk limits are enforced: "project" (the state
	// filesystem's project quotas), "loop" (loop-mounted images) or "none"
	// (not enforced).
	QuotaMode string `json:"quota_mode"`
}

// CreateSessionRequest is the body of POST /v1/sessions.
type CreateSessionRequest struct {
	UserID    string  `json:"user_id"`
	SessionID string  `json:"session_id,omitempty"`
	Limits    *Limits `json:"limits,omitempty"`
}

// Session describes one live session.
type Session struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
	Limits    Limits    `json:"limits"`
	// Status is "running", "frozen" (idle: its sandbox is frozen until its
	// next call, which thaws it), "stopped" (the sandbox died; the next
	// daemon start gives the session a new one), "expired" (stopped at its
	// maximum duration, its documents kept; Reason says when) or "broken"
	// (the daemon could not restore it; Reason says why).
	Status string `json:"status"`
	// Reason says why a session is not running.
	Reason string `json:"reason,omitempty"`
	// Workspace is where the session's files live inside the sandbox.
	Workspace string `json:"workspace"`
}

// SessionList is the answer of GET /v1/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// ExecRequest is the body of POST /v1/sessions/{id}/exec. Exactly one of
// Argv and Command is set; Command runs under /bin/sh -c.
type ExecRequest struct {
	Argv    []string          `json:"argv,omitempty"`
	Command string            `json:"command,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Stdin   string            `json:"stdin,omitempty"`
	// TimeoutSec defaults to the daemon's default (30 s) and is capped by its
	// maximum.
	TimeoutSec float64 `json:"timeout,omitempty"`
}

// ExecResult is the outcome of one command.
type ExecResult struct {
	// ExitCode is the command's exit status, or 128+n when signal n ended it.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that ended the command ("SIGKILL"), if any.
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out"`
	// OOMKilled: the OOM killer killed a process of this command.
	OOMKilled  bool  `json:"oom_killed"`
	DurationMS int64 `json:"duration_ms"`
	// CPUMS is the command's user and system CPU time.
	CPUMS int64 `json:"cpu_ms"`
	// PeakMemoryBytes is the most memory the command used at once.
	PeakMemoryBytes uint64 `json:"peak_memory_bytes"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
}

// DeleteSessionResult is the answer of DELETE /v1/sessions/{id}.
type DeleteSessionResult struct {
	ID string `json:"id"`
	// KeptFiles are the names the kept files got in shared_files/outputs/.
	KeptFiles []string `json:"kept_files"`
	// NotKept are the files that should have been kept and could not be.
	NotKept []NotKept `json:"not_kept"`
}

// NotKept is a file a delete with keep_files could not keep, and why.
type NotKept struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}
