package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exec runs one command in a session and returns its result, its output
// kept up to the cap.
func (m *Manager) Exec(ctx context.Context, id string, req ExecRequest) (ExecResult, error) {
	stdout, stderr := newCappedBuffer(m.cfg.OutputLimit), newCappedBuffer(m.cfg.OutputLimit)
	res, err := m.execute(ctx, id, req, stdout, stderr)
	if err != nil {
		return res, err
	}
	res.Stdout, res.StdoutTruncated = stdout.Result()
	res.Stderr, res.StderrTruncated = stderr.Result()
	return res, nil
}

// ExecStream runs one command in a session like Exec, but hands its
// output to emit as it arrives instead of keeping it. emit is called
// serially, must not keep Data, and is not called once ExecStream has
// returned; an error from it (the client went away) stops the output,
// and the cancelled ctx ends the command.
func (m *Manager) ExecStream(ctx context.Context, id string, req ExecRequest, emit func(Output) error) (ExecResult, error) {
	var mu sync.Mutex
	return m.execute(ctx, id, req, &emitter{mu: &mu, stream: Stdout, emit: emit}, &emitter{mu: &mu, stream: Stderr, emit: emit})
}

// emitter hands one output stream to an emit function, one call at a
// time across both streams.
type emitter struct {
	mu     *sync.Mutex
	stream Stream
	emit   func(Output) error
}

func (e *emitter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.emit(Output{Stream: e.stream, Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// execute runs one command with its output going to stdout and stderr.
func (m *Manager) execute(ctx context.Context, id string, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	l, err := checkCommand(req.Command)
	if err != nil {
		return ExecResult{}, err
	}
	timeout, err := execTimeout(req.Timeout, m.cfg.ExecTimeout, m.cfg.MaxExecTimeout)
	if err != nil {
		return ExecResult{}, err
	}
	s, done, err := m.acquire(id)
	if err != nil {
		return ExecResult{}, err
	}
	defer done()
	if !s.running() {
		return ExecResult{}, fmt.Errorf("%w: session %q: its sandbox is not running (a daemon restart gives it a new one)", ErrUnavailable, id)
	}
	l.Stdout, l.Stderr = stdout, stderr
	if req.Stdin != "" {
		l.Stdin = strings.NewReader(req.Stdin)
	}

	ctx, release := s.bind(ctx)
	defer release()
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	exit, err := s.exec.Exec(runCtx, l)
	if err != nil {
		return ExecResult{}, startError(id, l, err)
	}
	res := ExecResult{
		ExitCode: exit.Code,
		// Our deadline, not the caller's cancel or the session's delete.
		TimedOut:   exit.Cancelled && ctx.Err() == nil,
		OOMKilled:  exit.OOMKilled,
		Duration:   time.Since(start),
		CPU:        exit.CPU,
		PeakMemory: exit.PeakMemory,
	}
	if exit.Signal != 0 {
		res.Signal = unix.SignalName(exit.Signal)
	}
	m.execEnded(s, commandLine(req.Command, l), exit, res)
	return res, nil
}

// startError says why a command did not start: a working directory that
// cannot be entered is the caller's mistake; the rest is the daemon's.
func startError(id string, l launch, err error) error {
	if errors.Is(err, errCwd) {
		return fmt.Errorf("%w: cwd %q: %w", ErrInvalid, l.Cwd, err)
	}
	return fmt.Errorf("session %q: start command: %w", id, err)
}
