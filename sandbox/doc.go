// Package sandbox owns sessions: their lifecycle (create, look up, delete,
// recovery after a restart), the libcontainer container that confines each
// one, the shared base venv they overlay, and the execution of commands
// inside them behind the small Executor interface.
package sandbox
