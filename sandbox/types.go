package sandbox

import (
	"io"
	"os"
	"time"
)

// The domain's own types: what a Manager takes and returns. The HTTP layer
// (api/server) converts them to and from the wire; nothing here knows of
// JSON, HTTP or the API's version.

// Limits are a session's kernel-enforced resource limits.
type Limits struct {
	// CPUs is the CPU bandwidth in cores (0.5 = half a core).
	CPUs float64
	// MemoryMB is the memory limit in MiB; swap is not allowed.
	MemoryMB int64
	// Pids caps the session's processes and threads.
	Pids int64
	// TmpMB is the size of the session's /tmp, which counts against
	// MemoryMB.
	TmpMB int64
}

// Info describes the daemon.
type Info struct {
	Version       string
	CgroupMode    string
	CgroupParent  string
	Controllers   []string
	DefaultLimits Limits
	MaxLimits     Limits
	// Sessions counts the sessions the daemon serves.
	Sessions int
	// Env is the base environment new sessions get (nil before one is
	// built): what it has and lacks of the declared packages.
	Env *Env
	// QuotaMode is the mechanism enforcing disk limits: "project",
	// "loop" or "none" (not enforced).
	QuotaMode string
}

// State is where a session is in its life.
type State string

const (
	// StateRunning: the sandbox is up and takes commands.
	StateRunning State = "running"
	// StateStopped: the sandbox died under the daemon (killed from
	// outside); the files are intact and the next daemon start gives the
	// session a new sandbox.
	StateStopped State = "stopped"
	// StateBroken: the daemon could not restore the session at start-up;
	// Reason says why. Its files are untouched and it can be deleted.
	StateBroken State = "broken"
	// StateFrozen: idle past its user's idle_freeze_after, the sandbox is
	// frozen (memory kept, no CPU); the session's next call thaws it.
	StateFrozen State = "frozen"
	// StateExpired: past its user's max_session_duration_hours, the
	// sandbox was stopped and its documents kept (as a delete with
	// keep_files keeps them); Reason says when. It can be described and
	// deleted, nothing else.
	StateExpired State = "expired"
)

// CreateRequest asks for a new session.
type CreateRequest struct {
	UserID string
	// SessionID is generated when empty.
	SessionID string
	// Limits, when set, overrides the defaults field by field (zero keeps
	// the default); values above the maximums are capped.
	Limits *Limits
}

// Session describes one session.
type Session struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	Limits    Limits
	State     State
	// Reason says why the session is not running, when it is not.
	Reason string
	// Workspace is where the session's files are inside the sandbox.
	Workspace string
	// Env is the version of the base environment the session runs on.
	Env string
}

// DeleteResult says what a delete kept of the session.
type DeleteResult struct {
	ID string
	// Kept are the names the kept files got in shared_files/outputs/.
	Kept []string
	// NotKept are the files that should have been kept and could not be,
	// with the reason for each.
	NotKept []NotKept
}

// NotKept is a file a delete with keep_files could not keep.
type NotKept struct {
	Name   string
	Reason string
}

// Command is what to run inside a sandbox: Argv directly, or Shell under
// /bin/sh -c; exactly one of the two.
type Command struct {
	Argv  []string
	Shell string
	// Cwd is a path inside the sandbox; relative paths are taken from
	// the workspace, which is also the default.
	Cwd string
	// Env is added to the sandbox's default environment.
	Env map[string]string
}

// ExecRequest is a command run to its end.
type ExecRequest struct {
	Command
	Stdin string
	// Timeout is the daemon's default when zero and is capped by its
	// maximum.
	Timeout time.Duration
}

// ExecResult is how a command ended.
type ExecResult struct {
	// ExitCode is the command's exit status, or 128+n when signal n
	// ended it.
	ExitCode int
	// Signal names the signal that ended the command ("SIGKILL"), if any.
	Signal   string
	TimedOut bool
	// OOMKilled: the kernel's OOM killer killed a process of this
	// command.
	OOMKilled bool
	Duration  time.Duration
	// CPU is the user and system time the command's processes used.
	CPU time.Duration
	// PeakMemory is the most memory (bytes) the command used at once.
	PeakMemory uint64
	// Stdout and Stderr are kept up to the daemon's output cap; a
	// streamed exec leaves them empty.
	Stdout, Stderr                   []byte
	StdoutTruncated, StderrTruncated bool
}

// Stream names a command's output stream.
type Stream int

const (
	Stdout Stream = iota
	Stderr
)

// Output is a piece of a command's output, as it arrived.
type Output struct {
	Stream Stream
	Data   []byte
}

// ProcessState is where a background process is.
type ProcessState string

const (
	ProcessRunning ProcessState = "running"
	ProcessExited  ProcessState = "exited"
	// ProcessKilled: ended through the API.
	ProcessKilled ProcessState = "killed"
)

// Process describes a background process of a session.
type Process struct {
	// ID names the process within its session.
	ID string
	// PID is the command's process id inside the sandbox.
	PID     int
	Command string
	State   ProcessState
	// ExitCode is set once the process ended: its status, or 128+n when
	// signal n ended it.
	ExitCode  *int
	Signal    string
	StartedAt time.Time
	EndedAt   time.Time
	// CPU, PeakMemory and OOMKilled are what the process's tree used, set
	// once it ended, as for a command run to its end (ExecResult).
	CPU        time.Duration
	PeakMemory uint64
	OOMKilled  bool
}

// ProcessOutput is the output of a background process not read before
// (stdout and stderr merged in arrival order, without line endings), and
// its state.
type ProcessOutput struct {
	Process
	Lines []string
	// Dropped counts lines that fell out of the bounded buffer before they
	// were read.
	Dropped int64
}

// Root names the tree a files operation acts on.
type Root string

const (
	// RootWorkspace is the session's files, /workspace inside.
	RootWorkspace Root = "workspace"
	// RootShared is the user's shared files, /workspace/shared inside.
	RootShared Root = "shared"
)

// FileType is the kind of a directory entry.
type FileType string

const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	// TypeOther: a FIFO, socket or device, never read or written.
	TypeOther FileType = "other"
)

// FileInfo describes one directory entry; symlinks are reported, not
// followed.
type FileInfo struct {
	Name string
	// Path is relative to the root.
	Path       string
	Type       FileType
	Size       int64
	Mode       os.FileMode
	ModTime    time.Time
	LinkTarget string
}

// FileList is a directory listing.
type FileList struct {
	Root    Root
	Path    string
	Entries []FileInfo
	// Truncated: a recursive listing stopped at the daemon's entry limit.
	Truncated bool
}

// TextLine is one line of a text file, numbered from 1.
type TextLine struct {
	Number int
	Text   string
}

// TextFile is a range of a text file's lines, without their endings, and
// the file's line count.
type TextFile struct {
	Path       string
	Lines      []TextLine
	TotalLines int
}

// WriteResult describes a file just written.
type WriteResult struct {
	Path   string
	Size   int64
	SHA256 string
}

// EditRequest replaces Old by New in a text file: Old must occur exactly
// once, or exactly Count times when Count is set.
type EditRequest struct {
	Path  string
	Old   string
	New   string
	Count int
}

// EditResult describes an edit.
type EditResult struct {
	Path         string
	Replacements int
	Size         int64
	SHA256       string
}

// File is a regular file opened for reading; the caller closes it.
type File struct {
	io.ReadSeekCloser
	Info FileInfo
}

// UserLimits are a user's limits: the daemon's defaults, overridden by the
// user's quota.json.
type UserLimits struct {
	// MaxSessions caps the user's live sessions (0: no cap).
	MaxSessions int
	// MaxWorkspaceMB is the user's disk budget: shared_files and every
	// live session's reservation together.
	MaxWorkspaceMB int64
	// SessionDiskMB is what each live session reserves of the budget, and
	// all its trees (files, venv layer, logs) may hold.
	SessionDiskMB int64
	// MaxFilesPerSession caps the files and directories a session makes.
	MaxFilesPerSession int64
	// MaxSessionDuration is how long a session may live (0: for ever).
	MaxSessionDuration time.Duration
	// IdleFreezeAfter and IdleDeleteAfter are how long a session without
	// API activity lives on unfrozen, and at all (0: for ever).
	IdleFreezeAfter, IdleDeleteAfter time.Duration
}

// DiskUsage is what is used of one disk limit; Files counts files and
// directories.
type DiskUsage struct {
	Bytes, LimitBytes int64
	Files, LimitFiles int64
}

// UserUsage is a user's disk as the quota mechanism counts it (O(1) in
// the number of files: no tree is walked).
type UserUsage struct {
	// QuotaMode is the mechanism: "project", "loop" or "none". In "none"
	// nothing is enforced and Enforced is false.
	QuotaMode string
	Enforced  bool
	// UsedBytes is what shared_files and the sessions' trees hold;
	// ReservedBytes what the live sessions reserve of LimitBytes, the
	// budget.
	UsedBytes, ReservedBytes, LimitBytes int64
	// Files counts files and directories in shared_files and the
	// sessions' trees.
	Files int64
	// Shared is shared_files, whose limit is the budget less the
	// reservations.
	Shared DiskUsage
	// Sessions is each live session's tree, by session id.
	Sessions map[string]DiskUsage
}

// User describes one user: their limits, their disk and their sessions.
type User struct {
	ID       string
	Limits   UserLimits
	Usage    UserUsage
	Sessions []Session
}
