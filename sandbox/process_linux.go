package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
)

// Background processes: commands a session starts and reads from later
// (Mini-Agent's bash with run_in_background, bash_output and bash_kill).
// Each one's stdout and stderr share one pipe, so their lines keep the
// order they were written in; the lines wait in a bounded buffer until
// read, and every byte is also appended to the session's logs/.

// maxLogBytes bounds one background process's log file.
const maxLogBytes = 16 << 20

// background is one background process.
type background struct {
	id      string
	command string
	started time.Time
	proc    Process
	// finished is closed once the process ended and its last output,
	// exit code and log are in.
	finished chan struct{}

	mu      sync.Mutex
	lines   []string // unread, oldest first
	size    int      // bytes in lines
	partial []byte   // the unfinished last line
	dropped int64
	limit   int
	log     *os.File
	logged  int64
	// killed is set when the API ended the process.
	killed bool
	ended  time.Time
	exit   Exit
	err    error
}

// Write takes the process's output, line by line.
func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.appendLog(p)
	data := append(b.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		b.push(string(bytes.TrimSuffix(data[:i], []byte("\r"))))
		data = data[i+1:]
	}
	// An endless line is cut into pieces rather than held whole.
	for len(data) > b.limit/4 {
		b.push(string(data[:b.limit/4]))
		data = data[b.limit/4:]
	}
	b.partial = append([]byte(nil), data...)
	return len(p), nil
}

// push adds a line, dropping the oldest unread ones past the limit.
func (b *background) push(line string) {
	b.lines = append(b.lines, line)
	b.size += len(line)
	for b.size > b.limit && len(b.lines) > 1 {
		b.size -= len(b.lines[0])
		b.lines = b.lines[1:]
		b.dropped++
	}
}

func (b *background) appendLog(p []byte) {
	if b.log == nil {
		return
	}
	if b.logged+int64(len(p)) > maxLogBytes {
		_, _ = fmt.Fprintf(b.log, "\n[sandboxd: log cut at %d bytes]\n", maxLogBytes)
		_ = b.log.Close()
		b.log = nil
		return
	}
	n, _ := b.log.Write(p)
	b.logged += int64(n)
}

// finish records the end of the process once its output is all in.
func (b *background) finish() {
	defer close(b.finished)
	exit, err := b.proc.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.push(string(b.partial))
		b.partial = nil
	}
	b.exit, b.err, b.ended = exit, err, time.Now().UTC()
	if b.log != nil {
		_ = b.log.Close()
		b.log = nil
	}
}

// state describes the process; b.mu must be held.
func (b *background) state() api.Process {
	p := api.Process{ID: b.id, PID: b.proc.PID(), Command: b.command, Status: api.StatusRunning, StartedAt: b.started}
	if b.ended.IsZero() {
		return p
	}
	p.Status, p.EndedAt = api.StatusExited, b.ended
	if b.killed {
		p.Status = api.StatusKilled
	}
	code := b.exit.Code
	p.ExitCode = &code
	if b.exit.Signal != 0 {
		p.Signal = unix.SignalName(b.exit.Signal)
	}
	return p
}

// read takes the unread lines, keeping those filter matches.
func (b *background) read(filter *regexp.Regexp) api.ProcessOutput {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := api.ProcessOutput{Process: b.state(), Lines: []string{}, Dropped: b.dropped}
	for _, l := range b.lines {
		if filter == nil || filter.MatchString(l) {
			out.Lines = append(out.Lines, l)
		}
	}
	b.lines, b.size, b.dropped = nil, 0, 0
	return out
}

// processes is a session's table of background processes.
type processes struct {
	mu    sync.Mutex
	procs map[string]*background
}

// wait waits until every process of the table has finished; the sandbox
// being destroyed ends them.
func (p *processes) wait() {
	p.mu.Lock()
	procs := slices.Collect(maps.Values(p.procs))
	p.mu.Unlock()
	for _, b := range procs {
		<-b.finished
	}
}

// StartProcess starts a background command in a session.
func (m *Manager) StartProcess(_ context.Context, id string, req api.StartProcessRequest) (api.Process, error) {
	s, err := m.lookup(id)
	if err != nil {
		return api.Process{}, err
	}
	cmd, _, err := m.command(api.ExecRequest{Argv: req.Argv, Command: req.Command, Cwd: req.Cwd, Env: req.Env})
	if err != nil {
		return api.Process{}, err
	}
	var idBytes [4]byte
	_, _ = rand.Read(idBytes[:])
	b := &background{
		id:       hex.EncodeToString(idBytes[:]),
		command:  strings.Join(cmd.Args, " "),
		started:  time.Now().UTC(),
		limit:    m.cfg.ProcessBufferBytes,
		finished: make(chan struct{}),
	}
	if req.Command != "" {
		b.command = req.Command
	}

	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	live := 0
	for _, o := range s.procs.procs {
		select {
		case <-o.finished:
		default:
			live++
		}
	}
	if live >= m.cfg.MaxProcessesPerSession {
		return api.Process{}, fmt.Errorf("%w: session %q runs %d background processes, its maximum", api.ErrQuotaExceeded, id, live)
	}
	if f, err := os.OpenFile(filepath.Join(s.dir.Logs(), "process-"+b.id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err == nil {
		b.log = f
	} else {
		m.log.Warn("background process log", "session", id, "err", err)
	}
	cmd.Stdout, cmd.Stderr = b, b
	p, err := s.exec.Start(cmd)
	if errors.Is(err, ErrCwd) {
		b.closeLog()
		return api.Process{}, fmt.Errorf("%w: cwd %q: %w", api.ErrInvalidArgument, cmd.Cwd, err)
	}
	if err != nil {
		b.closeLog()
		return api.Process{}, fmt.Errorf("session %q: start process: %w", id, err)
	}
	b.proc = p
	go b.finish()
	if s.procs.procs == nil {
		s.procs.procs = map[string]*background{}
	}
	s.procs.procs[b.id] = b
	m.log.Info("background process started", "session", id, "process", b.id, "pid", p.PID())
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state(), nil
}

func (b *background) closeLog() {
	if b.log != nil {
		_ = b.log.Close()
	}
}

func (m *Manager) background(id, pid string) (*session, *background, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, nil, err
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	b, ok := s.procs.procs[pid]
	if !ok {
		return nil, nil, fmt.Errorf("%w: session %q has no background process %q", api.ErrNotFound, id, pid)
	}
	return s, b, nil
}

// ListProcesses lists a session's background processes, oldest first.
func (m *Manager) ListProcesses(_ context.Context, id string) ([]api.Process, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	out := make([]api.Process, 0, len(s.procs.procs))
	for _, b := range s.procs.procs {
		b.mu.Lock()
		out = append(out, b.state())
		b.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b api.Process) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

// ProcessOutput returns the output lines not read before, those matching
// filter (a regular expression) when it is set.
func (m *Manager) ProcessOutput(_ context.Context, id, pid, filter string) (api.ProcessOutput, error) {
	var re *regexp.Regexp
	if filter != "" {
		var err error
		if re, err = regexp.Compile(filter); err != nil {
			return api.ProcessOutput{}, fmt.Errorf("%w: filter: %w", api.ErrInvalidArgument, err)
		}
	}
	_, b, err := m.background(id, pid)
	if err != nil {
		return api.ProcessOutput{}, err
	}
	return b.read(re), nil
}

// KillProcess ends a background process — SIGTERM to its whole tree, then
// SIGKILL after grace — and removes it, returning its unread output.
func (m *Manager) KillProcess(ctx context.Context, id, pid string, grace time.Duration) (api.ProcessOutput, error) {
	if grace < 0 {
		return api.ProcessOutput{}, fmt.Errorf("%w: grace must not be negative", api.ErrInvalidArgument)
	}
	s, b, err := m.background(id, pid)
	if err != nil {
		return api.ProcessOutput{}, err
	}
	select {
	case <-b.finished:
	default:
		b.mu.Lock()
		b.killed = true
		b.mu.Unlock()
		_ = b.proc.Terminate()
		select {
		case <-b.finished:
		case <-time.After(grace):
			_ = b.proc.Kill()
		case <-ctx.Done():
			_ = b.proc.Kill()
		}
		<-b.finished
	}
	s.procs.mu.Lock()
	delete(s.procs.procs, pid)
	s.procs.mu.Unlock()
	m.log.Info("background process removed", "session", id, "process", pid)
	return b.read(nil), nil
}
