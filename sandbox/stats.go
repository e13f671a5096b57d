package sandbox

import (
	"sync/atomic"
	"time"
)

// SessionStats is what a session uses and has done: the kernel's figures
// for its cgroup, and the daemon's counts of its calls.
type SessionStats struct {
	ID     string
	UserID string
	State  State
	Limits Limits
	// CPU is the CPU time (user and system) its processes used, and
	// CPUThrottled how long its CPU limit held them back.
	CPU, CPUThrottled time.Duration
	// MemoryBytes is the memory it uses now (its /tmp included),
	// MemoryPeakBytes the most it used at once (0 on a v2 kernel before
	// 5.19).
	MemoryBytes, MemoryPeakBytes uint64
	// Pids counts its processes and threads now; PidsLimit caps them.
	Pids, PidsLimit uint64
	// OOMKills counts the processes the kernel's OOM killer killed in it.
	OOMKills uint64
	// Execs counts the commands it ran, background processes included,
	// since this daemon took it on.
	Execs uint64
	// Processes counts its background processes still running.
	Processes int
	// LastActivity is when a call in it (a command, a files operation, a
	// background process call) last began or ended, or, before any, when
	// this daemon took it on. Reading its stats is not activity.
	LastActivity time.Time
	// Disk is its disk use against its quota; nil while the daemon does
	// not measure it (the per-session disk quota fills it in).
	Disk *DiskUsage
}

// usage is what the daemon counts of a session; the kernel counts the
// rest. It is safe for concurrent use.
type usage struct {
	execs atomic.Uint64
	// commandOOMKills sums the OOM kills of the session's finished
	// commands: on v1 the kernel counts them in the commands' own
	// cgroups only, which are gone once the commands are.
	commandOOMKills atomic.Uint64
}
