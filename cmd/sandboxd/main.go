// Command sandboxd is the sandbox daemon: it serves the sandboxd API on a
// Unix socket and runs each session in its own namespaces and cgroups.
package main

import (
	"os"

	// The sandbox's PID 1 and command supervisors run from this binary;
	// the package's init also handles libcontainer's re-execution.
	_ "github.com/sandboxd/sandboxd/sandbox/shim"
)

func main() {
	os.Exit(run(os.Args[1:], hooks{}))
}
