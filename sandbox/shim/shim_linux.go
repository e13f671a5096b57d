package shim

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"

// Modes name the argv[1] values the constructor in shim.c takes over.
const (
	InitMode = "sandbox-init"
	ExecMode = "sandbox-exec"
)

// Exec supervisor signals: the daemon sends KillSignal to end the command's
// whole tree at once, and TermSignal to forward SIGTERM to it.
const (
	KillSignal = 10 // SIGUSR1
	TermSignal = 15 // SIGTERM
)
