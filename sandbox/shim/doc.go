// Package shim owns what sandboxd runs inside every sandbox and how the
// daemon talks to it: the agent that is the sandbox's PID 1, the
// per-command supervisor it forks, their protocol and Go client, the
// sandbox's seccomp filter, and the libcontainer init hook of the binary.
//
// The agent ("<exe> sandbox-init", InitMode) starts with an empty
// environment and two extra files (AgentFiles): a listening socket the
// daemon made with Listen at a path only root reaches, and the seccomp
// programs (SeccompFile). It installs the filter on itself once, so that
// everything in the sandbox inherits it, then reaps orphans and, for each
// connection from root, forks a supervisor, without ever blocking on a
// connection. The supervisor is never exec'd, so no dynamic loader runs in
// a privileged process with a caller's input: it reads the command, forks
// it as the sandbox user with the caller's environment applied only there,
// reports its start and end on the connection (Start, Process), and kills
// the command's whole tree (setsid and double-forked processes included:
// it is their child subreaper) when the command ends, when asked, or when
// the daemon hangs up. The protocol is protocol.go and its generated C
// header wire.h.
//
// The binder ("<exe> sandbox-bind", BindMode, run by Bind) finishes a
// sandbox that was started ahead of need, before any command ran in it: it
// enters its mount and UTS namespaces, sets its hostname and attaches the
// session's mounts, which the daemon made detached (open_tree, fsmount).
// It is a process of its own because only a single-threaded process may
// enter a mount namespace.
//
// These programs are C, run from an ELF constructor before the Go runtime
// starts (as libcontainer's nsenter does): the agent and the supervisor
// live inside the session's pids limit, where written in Go each would
// cost several threads of a small pid budget and milliseconds of start-up
// per command.
//
// A program importing this package must be the sandboxd binary itself (or
// a test binary standing in for it): the package's init runs
// libcontainer's init when the binary is re-executed as "init", and locks
// the main thread for libcontainer's namespace work.

package shim
