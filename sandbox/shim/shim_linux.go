package shim

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"

import (
	"os"
	"runtime"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter joins a running sandbox's namespaces for libcontainer.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Modes name the argv[1] values the constructor in shim.c takes over.
const (
	// InitMode starts the agent: "<exe> sandbox-init", a sandbox's PID 1.
	InitMode = "sandbox-init"
	// ExecMode is the libcontainer executor's supervisor; it goes with
	// that executor.
	ExecMode = "sandbox-exec"
)

// The libcontainer executor's supervisor signals: KillSignal ends the
// command's whole tree at once, TermSignal forwards SIGTERM to it.
const (
	KillSignal = 10 // SIGUSR1
	TermSignal = 15 // SIGTERM
)

func init() {
	// libcontainer re-executes this binary as "init" inside a new
	// sandbox; that path must not run anything else.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
	// Namespace operations of libcontainer happen on the locked main
	// thread; unlocked, a sandbox's mount namespace can stick to it.
	runtime.LockOSThread()
}
