package sandbox

import (
	"log/slog"
	"time"

	"github.com/sandboxd/sandboxd/sandbox/events"
)

// Config is what a Manager is built from; cmd/sandboxd fills it from flags
// and the YAML file.
type Config struct {
	// StateDir is the root of the on-disk layout (mounts.Layout).
	StateDir string
	// CgroupParent is the absolute cgroup all sessions live under.
	CgroupParent string
	// Helper is the host path of the sandboxd binary, bound into every
	// sandbox to serve as its PID 1 and command supervisor.
	Helper string
	// SandboxUID and SandboxGID own the shared environment and run its
	// builds; SandboxGID is every user's supplementary group.
	SandboxUID, SandboxGID int
	// UserUIDs are the uids users get, one each; a user's gid is their
	// uid.
	UserUIDs UIDRange
	// Python is the interpreter the base venv is made from.
	Python string
	// BasePackages are the requirements (PEP 508) the base environment
	// is built to have: from the host's packages (Debian's python3-*,
	// seen through --system-site-packages) or else the package cache.
	BasePackages []string

	DefaultLimits Limits
	MaxLimits     Limits

	// ReadySandboxes is how many sandboxes are kept started ahead of
	// need, for new sessions to start at once (0: none).
	ReadySandboxes int

	// The limits of a user without a quota.json of their own (each one
	// it sets overrides the default; see UserLimits):
	// MaxSessionsPerUser (0 = unlimited), MaxWorkspaceMB (the disk
	// budget), SessionDiskMB (each session's reservation; 0 =
	// MaxWorkspaceMB/MaxSessionsPerUser), MaxFilesPerSession (below),
	// MaxSessionDuration, IdleFreezeAfter and IdleDeleteAfter (0 = never).
	MaxSessionsPerUser int
	MaxWorkspaceMB     int64
	SessionDiskMB      int64
	MaxSessionDuration time.Duration
	IdleFreezeAfter    time.Duration
	IdleDeleteAfter    time.Duration

	// QuotaMode is the mechanism enforcing disk limits: "project",
	// "loop", "none", or "" for the one the state directory was laid out
	// with (on its first start, what quota.Detect finds best). A state
	// directory keeps its layout: see quotaMode.
	QuotaMode string
	// JanitorInterval is how often the janitor looks at the sessions'
	// timers (freeze, expiry, idle deletion) and the users' quota.json:
	// the timers' precision.
	JanitorInterval time.Duration

	ExecTimeout    time.Duration
	MaxExecTimeout time.Duration
	// OutputLimit caps each of stdout and stderr kept per command.
	OutputLimit int64
	// MaxFileBytes caps uploads and whole-file reads of the files API.
	MaxFileBytes int64
	// MaxFilesPerSession caps the files and directories a session makes
	// (its commands and the files API alike: the inodes of its tree).
	MaxFilesPerSession int
	// MaxListEntries caps one listing.
	MaxListEntries int

	// MaxProcessesPerSession caps a session's live background processes.
	MaxProcessesPerSession int
	// ProcessBufferBytes bounds the unread output kept per background
	// process; older lines are dropped and counted.
	ProcessBufferBytes int
	// ProcessBufferTotalBytes bounds the unread output of all background
	// processes of the daemon together.
	ProcessBufferTotalBytes int64

	// KeepExtensions are the kinds of files delete?keep_files=true moves
	// into the user's shared_files/outputs/.
	KeepExtensions []string

	Logger  *slog.Logger
	Version string

	// Events is the bus the Manager publishes on, so that hooks (the
	// metrics) see the events of recovery too; NewManager makes one when
	// it is nil. Manager.Close closes it.
	Events *events.Bus

	// Faults, when set (by tests only), is asked at each named step of
	// create, delete and recovery whether to fail there.
	Faults Faults
}

// Faults injects failures at named steps, so that tests can show that a
// failure or a crash at any step leaves nothing half-done.
type Faults interface {
	// At returns an error to fail the step with, or nil to go on. It may
	// also never return (a test that kills the daemon there).
	At(step string) error
}
