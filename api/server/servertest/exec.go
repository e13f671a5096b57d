package servertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Script is what an exec plays instead of running a command: it hands
// out Output in order, then ends with Result, or fails with Err. Exec
// gathers the output into the result's Stdout and Stderr (Result's own
// are ignored); ExecStream emits it. Every exec until the next SetScript
// plays the same script.
type Script struct {
	Output []sandbox.Output
	Result sandbox.ExecResult
	// Err fails the exec once Output is out; with no Output, before any
	// stream begins.
	Err error
	// Next, when not nil, paces the exec: after each output it waits to
	// receive from Next, so that the test decides when the next output,
	// or the end, comes.
	Next <-chan struct{}
	// Hold, when not nil, keeps the exec from ending until it receives
	// from Hold or Hold is closed.
	Hold <-chan struct{}
	// Started and Ended, when not nil, are closed once: Started when an
	// exec of this script first begins (after its checks), Ended when one
	// first returns.
	Started, Ended chan struct{}
}

// script is a Script and what makes closing its channels once safe.
type script struct {
	Script
	start, end sync.Once
}

// ExecCall is an exec the fake ran or runs.
type ExecCall struct {
	ID       string
	Req      sandbox.ExecRequest
	Streamed bool
	// Err is what the exec returned; nil while it runs.
	Err error
}

// execCall is the last exec and its number among those begun, so that an
// earlier exec ending late does not set the last one's Err.
type execCall struct {
	ExecCall
	n int
}

// SetScript makes the execs from now on play s.
func (b *Backend) SetScript(s Script) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.script = &script{Script: s}
}

// LastExec is the last exec begun, plain or streamed.
func (b *Backend) LastExec() ExecCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastExec.ExecCall
}

// Exec implements server.Backend.
func (b *Backend) Exec(ctx context.Context, id string, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	var stdout, stderr []byte
	res, err := b.exec(ctx, "Exec", id, req, func(o sandbox.Output) error {
		if o.Stream == sandbox.Stderr {
			stderr = append(stderr, o.Data...)
		} else {
			stdout = append(stdout, o.Data...)
		}
		return nil
	})
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	res.Stdout, res.Stderr = stdout, stderr
	return res, nil
}

// ExecStream implements server.Backend. Like the daemon, it stops at the
// first error of emit and ends when ctx does.
func (b *Backend) ExecStream(ctx context.Context, id string, req sandbox.ExecRequest, emit func(sandbox.Output) error) (sandbox.ExecResult, error) {
	res, err := b.exec(ctx, "ExecStream", id, req, emit)
	res.Stdout, res.Stderr = nil, nil
	return res, err
}

// exec checks the request as the daemon does and plays the script.
func (b *Backend) exec(ctx context.Context, method, id string, req sandbox.ExecRequest, emit func(sandbox.Output) error) (sandbox.ExecResult, error) {
	s, n, err := b.beginExec(method, id, req)
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	if s.Started != nil {
		s.start.Do(func() { close(s.Started) })
	}
	res, err := s.play(ctx, emit)
	b.mu.Lock()
	if b.lastExec.n == n {
		b.lastExec.Err = err
	}
	if err == nil {
		b.execEnded(id, req, res)
	}
	b.mu.Unlock()
	if s.Ended != nil {
		s.end.Do(func() { close(s.Ended) })
	}
	return res, err
}

// beginExec records an exec and returns the script it plays and the
// exec's number.
func (b *Backend) beginExec(method, id string, req sandbox.ExecRequest) (*script, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.lastExec.n + 1
	b.lastExec = execCall{ExecCall{ID: id, Req: req, Streamed: method == "ExecStream"}, n}
	if err := b.call(method); err != nil {
		return nil, 0, err
	}
	if err := checkCommand(req.Command); err != nil {
		return nil, 0, err
	}
	if req.Timeout < 0 {
		return nil, 0, fmt.Errorf("%w: timeout must not be negative", sandbox.ErrInvalid)
	}
	if _, err := b.running(id); err != nil {
		return nil, 0, err
	}
	return b.script, n, nil
}

func (s *script) play(ctx context.Context, emit func(sandbox.Output) error) (sandbox.ExecResult, error) {
	for _, o := range s.Output {
		if err := context.Cause(ctx); err != nil {
			return sandbox.ExecResult{}, fmt.Errorf("exec: %w", err)
		}
		if err := emit(o); err != nil {
			return sandbox.ExecResult{}, fmt.Errorf("exec: emit output: %w", err)
		}
		if err := wait(ctx, s.Next); err != nil {
			return sandbox.ExecResult{}, err
		}
	}
	if err := wait(ctx, s.Hold); err != nil {
		return sandbox.ExecResult{}, err
	}
	if s.Err != nil {
		return sandbox.ExecResult{}, s.Err
	}
	return s.Result, nil
}

// wait receives from ch, when it is not nil, or fails when ctx ends.
func wait(ctx context.Context, ch <-chan struct{}) error {
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("exec: %w", context.Cause(ctx))
	}
}

// checkCommand refuses a command as the daemon does.
func checkCommand(c sandbox.Command) error {
	switch {
	case len(c.Argv) > 0 && c.Shell != "":
		return fmt.Errorf("%w: set either argv or command, not both", sandbox.ErrInvalid)
	case len(c.Argv) == 0 && c.Shell == "":
		return fmt.Errorf("%w: argv or command is required", sandbox.ErrInvalid)
	case len(c.Argv) > 0 && c.Argv[0] == "":
		return fmt.Errorf("%w: argv[0] is empty", sandbox.ErrInvalid)
	}
	return nil
}
