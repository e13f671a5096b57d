// Command sandboxd is the sandbox daemon: it serves the sandboxd API on a
// Unix socket and runs each session in its own namespaces and cgroups.
package main

import (
	"os"
	"runtime"

	"github.com/opencontainers/runc/libcontainer"

	// The sandbox's PID 1 and command supervisor run from this binary.
	_ "github.com/sandboxd/sandboxd/sandbox/shim"
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

func main() {
	os.Exit(run(os.Args[1:], hooks{}))
}
