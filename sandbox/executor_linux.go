package sandbox

import (
	"bufio"
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
	// Exec runs l to its end. When ctx ends first, every process the
	// command started is killed and Exit.Cancelled is set.
	Exec(ctx context.Context, l launch) (Exit, error)
	// Start starts l and returns at once; the caller waits for it.
	Start(l launch) (Started, error)
}

// Started is a command started by an Executor.
type Started interface {
	// PID is the command's process id inside the sandbox.
	PID() int
	// Done is closed when the command and everything it started ended.
	Done() <-chan struct{}
	// Wait waits for Done and says how the command ended.
	Wait() (Exit, error)
	// Terminate sends SIGTERM to every process of the command.
	Terminate() error
	// Kill kills every process of the command.
	Kill() error
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

func (e *containerExecutor) Exec(ctx context.Context, cmd launch) (Exit, error) {
	p, err := e.Start(cmd)
	if err != nil {
		return Exit{}, err
	}
	select {
	case <-p.Done():
		return p.Wait()
	case <-ctx.Done():
	}
	_ = p.Kill()
	exit, err := p.Wait()
	exit.Cancelled = true
	return exit, err
}

// supervised is a command running under the shim's supervisor.
type supervised struct {
	p      *libcontainer.Process
	pid    int
	status *bufio.Reader
	// pipes are the daemon's ends, closed when the command is over.
	pipes  []*os.File
	copies sync.WaitGroup
	done   chan struct{}
	exit   Exit
	err    error
}

func (e *containerExecutor) Start(cmd launch) (Started, error) {
	var pipes []*os.File
	fail := func(err error) (Started, error) {
		for _, f := range pipes {
			_ = f.Close()
		}
		return nil, err
	}
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err == nil {
			pipes = append(pipes, r, w)
		}
		return r, w, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return fail(err)
	}
	errR, errW := outR, outW
	if cmd.Stderr != cmd.Stdout {
		if errR, errW, err = pipe(); err != nil {
			return fail(err)
		}
	}
	statusR, statusW, err := pipe()
	if err != nil {
		return fail(err)
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
	var stdinR, stdinW *os.File
	if cmd.Stdin != nil {
		if stdinR, stdinW, err = pipe(); err != nil {
			return fail(err)
		}
		p.Stdin = stdinR
	}
	if err := e.c.Run(p); err != nil {
		return fail(fmt.Errorf("start command: %w", err))
	}
	// Only the sandbox holds the write ends now: EOF means every process
	// that could write has exited.
	_ = outW.Close()
	_ = errW.Close()
	_ = statusW.Close()
	s := &supervised{p: p, status: bufio.NewReader(statusR), done: make(chan struct{}),
		pipes: []*os.File{outR, errR, statusR}}
	if stdinR != nil {
		_ = stdinR.Close()
		s.pipes = append(s.pipes, stdinW)
		go func() {
			// A command that does not read its stdin gets EPIPE here.
			_, _ = io.Copy(stdinW, cmd.Stdin)
			_ = stdinW.Close()
		}()
	}
	s.copies.Add(1)
	go func() { defer s.copies.Done(); _, _ = io.Copy(cmd.Stdout, outR) }()
	if errR != outR {
		s.copies.Add(1)
		go func() { defer s.copies.Done(); _, _ = io.Copy(cmd.Stderr, errR) }()
	}
	s.pid, s.err = s.readPID()
	go s.wait()
	if s.err != nil {
		<-s.done
		return nil, s.err
	}
	return s, nil
}

// readPID reads the supervisor's first report: the command's pid, or why
// it could not start.
func (s *supervised) readPID() (int, error) {
	for {
		line, err := s.status.ReadString('\n')
		if err != nil {
			return 0, errors.New("command supervisor ended without starting the command")
		}
		kind, num, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, _ := strconv.Atoi(num)
		switch kind {
		case "pid":
			return n, nil
		case "cwd":
			return 0, fmt.Errorf("%w: %w", errCwd, syscall.Errno(n))
		}
	}
}

// wait collects the supervisor, its report and the output, then closes
// done.
func (s *supervised) wait() {
	defer close(s.done)
	_, _ = s.p.Wait()
	report, _ := io.ReadAll(io.LimitReader(s.status, 256))
	drained := make(chan struct{})
	go func() { s.copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
	}
	for _, f := range s.pipes {
		_ = f.Close()
	}
	<-drained
	if s.err != nil {
		return
	}
	s.exit.Code, s.exit.Signal, s.err = parseStatus(string(report))
}

func (s *supervised) PID() int              { return s.pid }
func (s *supervised) Done() <-chan struct{} { return s.done }
func (s *supervised) Terminate() error      { return s.p.Signal(syscall.Signal(shim.TermSignal)) }

func (s *supervised) Wait() (Exit, error) {
	<-s.done
	return s.exit, s.err
}

// Kill asks the supervisor to kill the command's tree, and kills the
// supervisor itself if it does not finish in time.
func (s *supervised) Kill() error {
	err := s.p.Signal(syscall.Signal(shim.KillSignal))
	go func() {
		select {
		case <-s.done:
		case <-time.After(killGrace):
			_ = s.p.Signal(syscall.SIGKILL)
		}
	}()
	return err
}

// errCwd is returned when the command's working directory cannot be
// entered; the command did not run.
var errCwd = errors.New("cannot enter working directory")

// parseStatus reads the supervisor's last report: "exit N" or "signal N".
// A supervisor that was killed itself reports nothing: its command was
// killed with it.
func parseStatus(s string) (int, syscall.Signal, error) {
	kind, num, ok := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 128 + int(syscall.SIGKILL), syscall.SIGKILL, nil
	}
	switch kind {
	case "exit":
		return n, 0, nil
	case "signal":
		return 128 + n, syscall.Signal(n), nil
	}
	return -1, 0, fmt.Errorf("command supervisor report %q not understood", s)
}
