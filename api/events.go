package api

import "time"

// GET /v1/events streams Events as NDJSON, one per line, as they happen:
// session created, deleted, frozen, thawed, expired, adopted, restarted,
// broken; command finished, timed out, OOM-killed; background process
// started and exited; quota exceeded; package installed or refused. A
// consumer that falls too far behind gets a last event of type
// EventDropped and the stream ends. Clients skip types they do not know.

// EventDropped is the type of the last event of a stream whose consumer
// fell behind: the events from its seq on were not delivered.
const EventDropped = "dropped"

// Event is one line of GET /v1/events.
type Event struct {
	// Seq numbers the daemon's events from 1, in order, across all
	// streams; a gap in one stream is events its filter left out.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// UserID and SessionID say whose session it concerns.
	UserID    string `json:"user_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	// ProcessID names the background process of process_* and oom_kill
	// events (absent for a command run to its end).
	ProcessID string `json:"process_id,omitempty"`
	// Command is the command line of a command's events, cut at 256
	// bytes.
	Command string `json:"command,omitempty"`
	// Outcome is how a command or background process ended.
	Outcome *Outcome `json:"outcome,omitempty"`
	// Quota names the quota of a quota_exceeded event.
	Quota string `json:"quota,omitempty"`
	// Package names the package of a package_* event.
	Package string `json:"package,omitempty"`
	// Reason says why, in words.
	Reason string `json:"reason,omitempty"`
}

// Outcome is how a command ended and what it used, as in ExecResult.
type Outcome struct {
	ExitCode        int    `json:"exit_code"`
	Signal          string `json:"signal,omitempty"`
	TimedOut        bool   `json:"timed_out"`
	OOMKilled       bool   `json:"oom_killed"`
	DurationMS      int64  `json:"duration_ms"`
	CPUMS           int64  `json:"cpu_ms"`
	PeakMemoryBytes uint64 `json:"peak_memory_bytes"`
}
