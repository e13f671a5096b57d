// Package events is the daemon's bus of notable happenings: a session
// created, deleted, frozen or recovered, a command timed out or OOM-killed,
// a quota refusing a request. The domain (package sandbox) publishes typed
// Events; the API streams them to subscribers, each with a filter and a
// bounded queue, and the metrics count them through a synchronous hook. A
// subscriber that falls behind is dropped rather than waited for: publishing
// never blocks, so no consumer can slow the daemon. The bus starts no
// goroutine.
package events

import "time"

// Type names what happened. The daemon publishes the types below; a
// consumer skips types it does not know, so new ones can be added.
type Type string

// Session life.
const (
	// SessionCreated: a session's sandbox is up and takes calls.
	SessionCreated Type = "session_created"
	// SessionDeleted: a session and its sandbox are gone (Reason says
	// when recovery finished an interrupted delete).
	SessionDeleted Type = "session_deleted"
	// SessionExpired: the daemon ended a session past its lifetime.
	SessionExpired Type = "session_expired"
	// SessionFrozen: the daemon froze an idle session (its processes
	// keep their memory, use no CPU).
	SessionFrozen Type = "session_frozen"
	// SessionThawed: a frozen session runs again.
	SessionThawed Type = "session_thawed"
)

// Recovery outcomes, published while a starting daemon takes over the
// sessions of the one before.
const (
	// SessionAdopted: the session's sandbox was still running and is
	// served again as it was.
	SessionAdopted Type = "session_adopted"
	// SessionRestarted: the session's sandbox was gone; a new one runs
	// over the same files.
	SessionRestarted Type = "session_restarted"
	// SessionBroken: the session could not be restored, or a delete
	// failed half-way; Reason says why. It serves no command.
	SessionBroken Type = "session_broken"
)

// Commands.
const (
	// ExecFinished: a command run to its end (exec, streamed or not)
	// ended; Outcome says how and what it used.
	ExecFinished Type = "exec_finished"
	// ExecTimedOut: a command ran into its timeout and was killed, with
	// everything it started.
	ExecTimedOut Type = "exec_timed_out"
	// OOMKill: the kernel's OOM killer killed a process of a command
	// (Process empty) or of a background process.
	OOMKill Type = "oom_kill"
	// ProcessStarted: a background process started.
	ProcessStarted Type = "process_started"
	// ProcessExited: a background process ended, by itself or killed
	// (Reason "killed").
	ProcessExited Type = "process_exited"
)

// Refusals and packages.
const (
	// QuotaExceeded: a request was refused because a quota (Quota) is
	// used up.
	QuotaExceeded Type = "quota_exceeded"
	// PackageInstalled: a package (Package) was installed into a
	// session's environment.
	PackageInstalled Type = "package_installed"
	// PackageRefused: an install of Package was refused (not on the
	// allow-list); Reason says why.
	PackageRefused Type = "package_refused"
)

// Dropped is the last event of a subscription the bus dropped because its
// queue was full: its consumer did not keep up, and missed what followed.
const Dropped Type = "dropped"

// Quotas a QuotaExceeded event names.
const (
	QuotaSessions  = "sessions"  // a user's live sessions
	QuotaWorkspace = "workspace" // a user's workspace size
	QuotaFiles     = "files"     // the files in a session's workspace
	QuotaProcesses = "processes" // a session's live background processes
)

// MaxCommand bounds the command line an event carries, in bytes.
const MaxCommand = 256

// Event is one happening. Seq and Time are set by the bus; the other
// fields are set as the Type says.
type Event struct {
	// Seq numbers the bus's events from 1, in publishing order.
	Seq  uint64
	Time time.Time
	Type Type
	// UserID and SessionID say whose session it concerns.
	UserID, SessionID string
	// Process names the background process of process_* and oom_kill
	// events (empty for a command run to its end).
	Process string
	// Command is the command line of a command's events (CutCommand).
	Command string
	// Outcome is how a command or background process ended.
	Outcome *Outcome
	// Quota names the quota of a quota_exceeded event (QuotaSessions, …).
	Quota string
	// Package names the package of a package_* event.
	Package string
	// Reason says why, in words.
	Reason string
}

// Outcome is how a command ended and what it used.
type Outcome struct {
	// ExitCode is its exit status, or 128+n when signal n ended it.
	ExitCode int
	// Signal names the signal that ended it ("SIGKILL"), if any.
	Signal    string
	TimedOut  bool
	OOMKilled bool
	Duration  time.Duration
	// CPU is the user and system time of its processes.
	CPU time.Duration
	// PeakMemory is the most memory (bytes) it used at once.
	PeakMemory uint64
}

// Filter selects the events of one user or one session; an empty field
// selects all.
type Filter struct {
	UserID, SessionID string
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev Event) bool {
	return (f.UserID == "" || f.UserID == ev.UserID) && (f.SessionID == "" || f.SessionID == ev.SessionID)
}

// CutCommand cuts a command line longer than MaxCommand bytes there (not
// inside a UTF-8 sequence) and marks the cut with an ellipsis.
func CutCommand(s string) string {
	if len(s) <= MaxCommand {
		return s
	}
	cut := MaxCommand
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
