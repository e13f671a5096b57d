package servertest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
)

var _ server.ProcessBackend = (*Processes)(nil)

// Processes keeps the background processes of a fixed set of sessions in
// memory. Nothing runs: a test writes a process's output with Print and
// ends it with Exit. The nth process started (from 1) has ID "pn", PID
// 100+n and started n seconds after Epoch. It is safe for concurrent use.
type Processes struct {
	// Err, when set before serving, is what every method fails with.
	Err error

	epoch    time.Time
	mu       sync.Mutex
	sessions map[string][]*process // oldest first
	started  int
	grace    time.Duration
}

type process struct {
	api.Process
	unread []string
}

// NewProcesses returns Processes for the sessions ids.
func NewProcesses(ids ...string) *Processes {
	p := &Processes{epoch: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), sessions: map[string][]*process{}}
	for _, id := range ids {
		p.sessions[id] = nil
	}
	return p
}

// Epoch is the time the processes' start times count from.
func (p *Processes) Epoch() time.Time { return p.epoch }

// Print adds lines to the unread output of process pid of session id.
func (p *Processes) Print(id, pid string, lines ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc, err := p.lookup(id, pid)
	if err != nil {
		return err
	}
	proc.unread = append(proc.unread, lines...)
	return nil
}

// Exit ends process pid of session id with code, as if by itself, one
// second after it started.
func (p *Processes) Exit(id, pid string, code int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc, err := p.lookup(id, pid)
	if err != nil {
		return err
	}
	proc.Status, proc.ExitCode, proc.EndedAt = api.StatusExited, &code, proc.StartedAt.Add(time.Second)
	return nil
}

// Grace is the grace the last KillProcess was given.
func (p *Processes) Grace() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grace
}

// StartProcess implements server.ProcessBackend.
func (p *Processes) StartProcess(_ context.Context, id string, req api.StartProcessRequest) (api.Process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	procs, err := p.session(id)
	if err != nil {
		return api.Process{}, err
	}
	if (len(req.Argv) == 0) == (req.Command == "") {
		return api.Process{}, fmt.Errorf("exactly one of argv and command must be set: %w", api.ErrInvalidArgument)
	}
	p.started++
	proc := &process{Process: api.Process{
		ID:        fmt.Sprintf("p%d", p.started),
		PID:       100 + p.started,
		Command:   req.Command,
		Status:    api.StatusRunning,
		StartedAt: p.epoch.Add(time.Duration(p.started) * time.Second),
	}}
	if proc.Command == "" {
		proc.Command = strings.Join(req.Argv, " ")
	}
	p.sessions[id] = append(procs, proc)
	return proc.Process, nil
}

// ListProcesses implements server.ProcessBackend.
func (p *Processes) ListProcesses(_ context.Context, id string) ([]api.Process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	procs, err := p.session(id)
	if err != nil {
		return nil, err
	}
	var list []api.Process
	for _, proc := range procs {
		list = append(list, proc.Process)
	}
	return list, nil
}

// ProcessOutput implements server.ProcessBackend. Like the daemon, it
// refuses an invalid filter.
func (p *Processes) ProcessOutput(_ context.Context, id, pid, filter string) (api.ProcessOutput, error) {
	var re *regexp.Regexp
	if filter != "" {
		var err error
		if re, err = regexp.Compile(filter); err != nil {
			return api.ProcessOutput{}, fmt.Errorf("filter: %w: %w", err, api.ErrInvalidArgument)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	proc, err := p.lookup(id, pid)
	if err != nil {
		return api.ProcessOutput{}, err
	}
	return proc.read(re), nil
}

// KillProcess implements server.ProcessBackend: a running process ends as
// SIGTERM ends it.
func (p *Processes) KillProcess(_ context.Context, id, pid string, grace time.Duration) (api.ProcessOutput, error) {
	if grace < 0 {
		return api.ProcessOutput{}, fmt.Errorf("grace must not be negative: %w", api.ErrInvalidArgument)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	proc, err := p.lookup(id, pid)
	if err != nil {
		return api.ProcessOutput{}, err
	}
	p.grace = grace
	if proc.Status == api.StatusRunning {
		code := 143
		proc.Status, proc.ExitCode, proc.Signal, proc.EndedAt = api.StatusKilled, &code, "SIGTERM", proc.StartedAt.Add(time.Second)
	}
	p.sessions[id] = slices.DeleteFunc(p.sessions[id], func(o *process) bool { return o == proc })
	return proc.read(nil), nil
}

func (p *Processes) session(id string) ([]*process, error) {
	if p.Err != nil {
		return nil, p.Err
	}
	procs, ok := p.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w", id, api.ErrNotFound)
	}
	return procs, nil
}

func (p *Processes) lookup(id, pid string) (*process, error) {
	procs, err := p.session(id)
	if err != nil {
		return nil, err
	}
	for _, proc := range procs {
		if proc.ID == pid {
			return proc, nil
		}
	}
	return nil, fmt.Errorf("session %q has no background process %q: %w", id, pid, api.ErrNotFound)
}

// read takes the unread lines, keeping those filter matches.
func (proc *process) read(filter *regexp.Regexp) api.ProcessOutput {
	out := api.ProcessOutput{Process: proc.Process, Lines: []string{}}
	for _, l := range proc.unread {
		if filter == nil || filter.MatchString(l) {
			out.Lines = append(out.Lines, l)
		}
	}
	proc.unread = nil
	return out
}
