package servertest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/sandbox"
)

// Background processes run nothing: a test writes a process's output with
// Print and ends it with Exit. The nth process started (from 1) has ID
// "pn" and PID 100+n.

type process struct {
	sandbox.Process
	unread []string
}

// Print adds lines to the unread output of process pid of session id.
func (b *Backend) Print(id, pid string, lines ...string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.process(id, pid)
	if err != nil {
		return err
	}
	p.unread = append(p.unread, lines...)
	return nil
}

// Exit ends process pid of session id with code, as if by itself, one
// second after it started.
func (b *Backend) Exit(id, pid string, code int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.process(id, pid)
	if err != nil {
		return err
	}
	p.State, p.ExitCode, p.EndedAt = sandbox.ProcessExited, &code, p.StartedAt.Add(time.Second)
	return nil
}

// LastGrace is the grace the last KillProcess was given.
func (b *Backend) LastGrace() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastGrace
}

// StartProcess implements server.ProcessBackend.
func (b *Backend) StartProcess(_ context.Context, id string, cmd sandbox.Command) (sandbox.Process, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("StartProcess"); err != nil {
		return sandbox.Process{}, err
	}
	if err := checkCommand(cmd); err != nil {
		return sandbox.Process{}, err
	}
	s, err := b.running(id)
	if err != nil {
		return sandbox.Process{}, err
	}
	b.started++
	p := &process{Process: sandbox.Process{
		ID:        fmt.Sprintf("p%d", b.started),
		PID:       100 + b.started,
		Command:   cmd.Shell,
		State:     sandbox.ProcessRunning,
		StartedAt: b.Epoch().Add(time.Duration(b.started) * time.Second),
	}}
	if p.Command == "" {
		p.Command = strings.Join(cmd.Argv, " ")
	}
	s.procs = append(s.procs, p)
	return p.Process, nil
}

// ListProcesses implements server.ProcessBackend: oldest first.
func (b *Backend) ListProcesses(_ context.Context, id string) ([]sandbox.Process, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ListProcesses"); err != nil {
		return nil, err
	}
	s, err := b.live(id)
	if err != nil {
		return nil, err
	}
	var list []sandbox.Process
	for _, p := range s.procs {
		list = append(list, p.Process)
	}
	return list, nil
}

// ProcessOutput implements server.ProcessBackend. Like the daemon, it
// refuses an invalid filter and drops a process once it has read the
// output of its end.
func (b *Backend) ProcessOutput(_ context.Context, id, pid, filter string) (sandbox.ProcessOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ProcessOutput"); err != nil {
		return sandbox.ProcessOutput{}, err
	}
	var re *regexp.Regexp
	if filter != "" {
		var err error
		if re, err = regexp.Compile(filter); err != nil {
			return sandbox.ProcessOutput{}, fmt.Errorf("%w: filter: %w", sandbox.ErrInvalid, err)
		}
	}
	p, err := b.process(id, pid)
	if err != nil {
		return sandbox.ProcessOutput{}, err
	}
	return p.read(re), nil
}

// KillProcess implements server.ProcessBackend: a running process ends as
// SIGTERM ends it, one second after it started.
func (b *Backend) KillProcess(_ context.Context, id, pid string, grace time.Duration) (sandbox.ProcessOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastGrace = grace
	if err := b.call("KillProcess"); err != nil {
		return sandbox.ProcessOutput{}, err
	}
	if grace < 0 {
		return sandbox.ProcessOutput{}, fmt.Errorf("%w: grace must not be negative", sandbox.ErrInvalid)
	}
	p, err := b.process(id, pid)
	if err != nil {
		return sandbox.ProcessOutput{}, err
	}
	if p.State == sandbox.ProcessRunning {
		code := 143
		p.State, p.ExitCode, p.Signal, p.EndedAt = sandbox.ProcessKilled, &code, "SIGTERM", p.StartedAt.Add(time.Second)
	}
	b.forget(id, p)
	return p.read(nil), nil
}

// forget removes process p of session id; the caller holds b.mu.
func (b *Backend) forget(id string, p *process) {
	s := b.sessions[id]
	s.procs = slices.DeleteFunc(s.procs, func(o *process) bool { return o == p })
}

// process looks process pid of session id up; the caller holds b.mu.
func (b *Backend) process(id, pid string) (*process, error) {
	s, err := b.live(id)
	if err != nil {
		return nil, err
	}
	for _, p := range s.procs {
		if p.ID == pid {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: session %q has no background process %q", sandbox.ErrNotFound, id, pid)
}

// read takes the unread lines, keeping those filter matches.
func (p *process) read(filter *regexp.Regexp) sandbox.ProcessOutput {
	out := sandbox.ProcessOutput{Process: p.Process}
	for _, l := range p.unread {
		if filter == nil || filter.MatchString(l) {
			out.Lines = append(out.Lines, l)
		}
	}
	p.unread = nil
	return out
}

// live looks up a session calls can act in: any but a broken or an
// expired one. A frozen one is thawed, as the daemon's next call thaws
// it. The caller holds b.mu.
func (b *Backend) live(id string) (*session, error) {
	s, err := b.session(id)
	if err != nil {
		return nil, err
	}
	switch s.State {
	case sandbox.StateBroken:
		return nil, fmt.Errorf("%w: session %q is broken: %s", sandbox.ErrUnavailable, id, s.Reason)
	case sandbox.StateExpired:
		return nil, fmt.Errorf("%w: session %q: %s", sandbox.ErrExpired, id, s.Reason)
	case sandbox.StateFrozen:
		s.State = sandbox.StateRunning
	}
	return s, nil
}

// running looks up a session that can run a command. The caller holds
// b.mu.
func (b *Backend) running(id string) (*session, error) {
	s, err := b.live(id)
	if err != nil {
		return nil, err
	}
	if s.State != sandbox.StateRunning {
		return nil, fmt.Errorf("%w: session %q: its sandbox is not running (a daemon restart gives it a new one)", sandbox.ErrUnavailable, id)
	}
	return s, nil
}
