// Package shim holds the two small programs sandboxd runs inside every
// sandbox: the sandbox's PID 1, which only reaps orphans, and the
// per-command supervisor, which drops to the sandbox user, makes itself the
// child subreaper of everything the command starts, and kills that whole
// tree when the command ends, times out or is cancelled.
//
// Both are C, run from an ELF constructor before the Go runtime starts (as
// libcontainer's nsenter does), because they live inside the session's pids
// limit: written in Go each would cost several threads of a 50-pid budget
// and milliseconds of start-up per command. The daemon binds its own
// executable into the sandbox and runs it as "<exe> sandbox-init" or
// "<exe> sandbox-exec UID GID CWD -- ARGV...".
//
// A program importing this package (for its side effect) must be the
// sandboxd binary itself.
package shim
