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

// InitMode is the argv[1] the constructor in shim.c takes over: "<exe>
// sandbox-init" starts the agent, a sandbox's PID 1.
const InitMode = "sandbox-init"

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
