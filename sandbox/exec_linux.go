package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/shim"
)

// Executor runs commands inside one sandbox. It is the seam where a faster
// implementation can replace the libcontainer one without the API changing.
type Executor interface {
	// Exec runs cmd to its end. When ctx ends first, every process the
	// command started is killed and Exit.Cancelled is set.
	Exec(ctx context.Context, cmd Command) (Exit, error)
}

// Command is one command to run inside a sandbox.
type Command struct {
	Args []string
	Env  []string
	// Cwd is a path inside the sandbox.
	Cwd string
	// Stdin, when nil, is /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Exit is how a command ended.
type Exit struct {
	Code int
	// Signal is the signal that ended the command, or 0.
	Signal    syscall.Signal
	Cancelled bool
}

const (
	// killGrace is how long the supervisor gets to kill the command's tree
	// before the daemon kills the supervisor itself.
	killGrace = 5 * time.Second
	// drainGrace is how long output may keep flowing after the supervisor
	// exits; only a process that escaped it could still hold the pipes.
	drainGrace = 2 * time.Second
)

// supervisorCaps are what the supervisor needs to drop to the sandbox user
// and to kill the command's processes; the command itself gets none.
var supervisorCaps = []string{"CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

// containerExecutor runs each command through libcontainer (setns into the
// sandbox) under the shim's supervisor.
type containerExecutor struct {
	c        *libcontainer.Container
	uid, gid int
}

func (e *containerExecutor) Exec(ctx context.Context, cmd Command) (Exit, error) {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err == nil {
			closers = append(closers, r, w)
		}
		return r, w, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return Exit{}, err
	}
	errR, errW, err := pipe()
	if err != nil {
		return Exit{}, err
	}
	statusR, statusW, err := pipe()
	if err != nil {
		return Exit{}, err
	}
	caps := &configs.Capabilities{Bounding: supervisorCaps, Effective: supervisorCaps, Permitted: supervisorCaps}
	p := &libcontainer.Process{
		Args: append([]string{mounts.HelperPath, shim.ExecMode,
			strconv.Itoa(e.uid), strconv.Itoa(e.gid), cmd.Cwd, "--"}, cmd.Args...),
		Env: cmd.Env,
		// The supervisor enters cmd.Cwd as the sandbox user.
		Cwd:          "/",
		Stdout:       outW,
		Stderr:       errW,
		ExtraFiles:   []*os.File{statusW},
		Capabilities: caps,
	}
	var stdinW *os.File
	if cmd.Stdin != nil {
		var stdinR *os.File
		if stdinR, stdinW, err = pipe(); err != nil {
			return Exit{}, err
		}
		p.Stdin = stdinR
	}
	if err := e.c.Run(p); err != nil {
		return Exit{}, fmt.Errorf("start command: %w", err)
	}
	// Only the sandbox holds the write ends now: EOF means every process
	// that could write has exited.
	for _, f := range []*os.File{outW, errW, statusW} {
		_ = f.Close()
	}
	if p.Stdin != nil {
		_ = p.Stdin.(*os.File).Close()
		go func() {
			// A command that does not read its stdin gets EPIPE here.
			_, _ = io.Copy(stdinW, cmd.Stdin)
			_ = stdinW.Close()
		}()
	}

	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); _, _ = io.Copy(cmd.Stdout, outR) }()
	go func() { defer copies.Done(); _, _ = io.Copy(cmd.Stderr, errR) }()

	waited := make(chan error, 1)
	go func() { _, err := p.Wait(); waited <- err }()

	var exit Exit
	select {
	case <-waited:
	case <-ctx.Done():
		exit.Cancelled = true
		_ = p.Signal(syscall.Signal(shim.KillSignal))
		select {
		case <-waited:
		case <-time.After(killGrace):
			_ = p.Signal(syscall.SIGKILL)
			<-waited
		}
	}

	status, _ := io.ReadAll(io.LimitReader(statusR, 64))
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
		_ = outR.Close()
		_ = errR.Close()
		<-drained
	}
	code, sig, err := parseStatus(string(status))
	if err != nil && exit.Cancelled {
		// The supervisor itself had to be killed.
		code, sig, err = 128+int(syscall.SIGKILL), syscall.SIGKILL, nil
	}
	if err != nil {
		return exit, err
	}
	exit.Code, exit.Signal = code, sig
	return exit, nil
}

// ErrCwd is returned when the command's working directory cannot be
// entered; the command did not run.
var ErrCwd = errors.New("cannot enter working directory")

// parseStatus reads the supervisor's report: "exit N" or "signal N",
// preceded by "cwd ERRNO" when the working directory could not be entered.
func parseStatus(s string) (int, syscall.Signal, error) {
	if rest, ok := strings.CutPrefix(s, "cwd "); ok {
		errno, _, _ := strings.Cut(rest, "\n")
		n, _ := strconv.Atoi(errno)
		return -1, 0, fmt.Errorf("%w: %w", ErrCwd, syscall.Errno(n))
	}
	kind, num, ok := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return -1, 0, errors.New("command supervisor ended without a report")
	}
	switch kind {
	case "exit":
		return n, 0, nil
	case "signal":
		return 128 + n, syscall.Signal(n), nil
	}
	return -1, 0, fmt.Errorf("command supervisor report %q not understood", s)
}
