package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// Background processes: commands a session starts and reads from later
// (Mini-Agent's bash with run_in_background, bash_output and bash_kill).
// Each one's stdout and stderr share one pipe, so their lines keep the
// order they were written in; the lines wait in a bounded buffer until
// read, and every byte is also appended to the session's logs/.
//
// What the daemon keeps of them is bounded three ways: each process's
// unread lines (Config.ProcessBufferBytes), all processes' unread lines
// together (Config.ProcessBufferTotalBytes), and exited processes. Reading
// an exited process frees its output; what is left is its state (a few
// hundred bytes, so that a later kill or list still answers), dropped
// processRetention after the exit or beyond maxExitedProcesses per
// session, oldest first.

const (
	// maxLogBytes bounds one background process's log file.
	maxLogBytes = 16 << 20
	// processRetention is how long an exited process nobody read stays
	// listed.
	processRetention = 10 * time.Minute
	// maxExitedProcesses bounds the exited processes a session keeps.
	maxExitedProcesses = 16
)

// background is one background process.
type background struct {
	id      string
	command string
	started time.Time
	proc    Started
	// finished is closed once the process ended and its last output,
	// exit code and log are in.
	finished chan struct{}
	// total counts the unread bytes of every process of the daemon.
	total      *atomic.Int64
	totalLimit int64

	mu      sync.Mutex
	lines   []string // unread, oldest first
	size    int      // bytes in lines
	partial []byte   // the unfinished last line
	dropped int64
	limit   int
	log     io.WriteCloser
	logged  int64
	// killed is set when the API ended the process.
	killed bool
	// onExit, when set, learns how the process ended, once.
	onExit func(exit Exit, killed bool)
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

// push adds a line, dropping the oldest unread ones past this process's
// limit or the daemon's; a line that fits in neither is dropped itself.
func (b *background) push(line string) {
	b.lines = append(b.lines, line)
	b.size += len(line)
	b.total.Add(int64(len(line)))
	for len(b.lines) > 0 && (b.size > b.limit || b.total.Load() > b.totalLimit) {
		b.size -= len(b.lines[0])
		b.total.Add(-int64(len(b.lines[0])))
		b.lines = b.lines[1:]
		b.dropped++
	}
}

// takeLines empties the buffer; b.mu must be held.
func (b *background) takeLines() []string {
	lines := b.lines
	b.total.Add(-int64(b.size))
	b.lines, b.size = nil, 0
	return lines
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
	n, err := b.log.Write(p)
	b.logged += int64(n)
	if err != nil {
		// The session's disk is full, most likely: the log ends here.
		_ = b.log.Close()
		b.log = nil
	}
}

// finish records the end of the process once its output is all in.
func (b *background) finish() {
	defer close(b.finished)
	exit, err := b.proc.Wait()
	b.mu.Lock()
	if len(b.partial) > 0 {
		b.push(string(b.partial))
		b.partial = nil
	}
	b.exit, b.err, b.ended = exit, err, time.Now().UTC()
	b.closeLog()
	killed := b.killed
	b.mu.Unlock()
	if b.onExit != nil {
		b.onExit(exit, killed)
	}
}

// state describes the process; b.mu must be held.
func (b *background) state() Process {
	p := Process{ID: b.id, PID: b.proc.PID(), Command: b.command, State: ProcessRunning, StartedAt: b.started}
	if b.ended.IsZero() {
		return p
	}
	p.State, p.EndedAt = ProcessExited, b.ended
	if b.killed {
		p.State = ProcessKilled
	}
	code := b.exit.Code
	p.ExitCode = &code
	if b.exit.Signal != 0 {
		p.Signal = unix.SignalName(b.exit.Signal)
	}
	p.CPU, p.PeakMemory, p.OOMKilled = b.exit.CPU, b.exit.PeakMemory, b.exit.OOMKilled
	return p
}

// read takes the unread lines, keeping those filter matches.
func (b *background) read(filter *regexp.Regexp) ProcessOutput {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := ProcessOutput{Process: b.state(), Lines: []string{}, Dropped: b.dropped}
	for _, l := range b.takeLines() {
		if filter == nil || filter.MatchString(l) {
			out.Lines = append(out.Lines, l)
		}
	}
	b.dropped = 0
	return out
}

// discard frees what the process holds; it has finished.
func (b *background) discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.takeLines()
}

func (b *background) closeLog() {
	if b.log != nil {
		_ = b.log.Close()
		b.log = nil
	}
}

// processes is a session's table of background processes.
type processes struct {
	mu    sync.Mutex
	procs map[string]*background
}

// wait waits until every process of the table has finished; the sandbox
// being destroyed ends them. Then it frees their buffers.
func (p *processes) wait() {
	p.mu.Lock()
	procs := slices.Collect(func(yield func(*background) bool) {
		for _, b := range p.procs {
			if !yield(b) {
				return
			}
		}
	})
	p.procs = nil
	p.mu.Unlock()
	for _, b := range procs {
		<-b.finished
		b.discard()
	}
}

// prune drops exited processes past their retention, and the oldest
// exited ones beyond maxExitedProcesses; p.mu must be held.
func (p *processes) prune(now time.Time) {
	var exited []*background
	for id, b := range p.procs {
		select {
		case <-b.finished:
		default:
			continue
		}
		b.mu.Lock()
		ended := b.ended
		b.mu.Unlock()
		if now.Sub(ended) > processRetention {
			delete(p.procs, id)
			b.discard()
			continue
		}
		exited = append(exited, b)
	}
	if len(exited) <= maxExitedProcesses {
		return
	}
	slices.SortFunc(exited, func(a, b *background) int { return a.started.Compare(b.started) })
	for _, b := range exited[:len(exited)-maxExitedProcesses] {
		delete(p.procs, b.id)
		b.discard()
	}
}

// StartProcess starts a background command in a session.
func (m *Manager) StartProcess(ctx context.Context, id string, cmd Command) (Process, error) {
	l, err := checkCommand(cmd)
	if err != nil {
		return Process{}, err
	}
	s, done, err := m.acquire(id)
	if err != nil {
		return Process{}, err
	}
	defer done()
	b := &background{
		id:         newID(4),
		command:    strings.Join(l.Args, " "),
		started:    time.Now().UTC(),
		limit:      m.cfg.ProcessBufferBytes,
		total:      &m.processBytes,
		totalLimit: m.cfg.ProcessBufferTotalBytes,
		finished:   make(chan struct{}),
	}
	if cmd.Shell != "" {
		b.command = cmd.Shell
	}

	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	s.procs.prune(time.Now())
	live := 0
	for _, o := range s.procs.procs {
		select {
		case <-o.finished:
		default:
			live++
		}
	}
	if live >= m.cfg.MaxProcessesPerSession {
		return Process{}, m.refused(s, events.QuotaProcesses, fmt.Errorf("%w: session %q runs %d background processes, its maximum", ErrQuota, id, live))
	}
	if f, err := m.openLog(s.trees.Logs, "process-"+b.id+".log"); err == nil {
		b.log = f
	} else {
		m.log.Warn("background process log", "session", id, "err", err)
	}
	l.Stdout, l.Stderr = b, b
	p, err := s.exec.Start(ctx, l)
	if err != nil {
		b.closeLog()
		return Process{}, startError(id, l, err)
	}
	b.proc = p
	b.onExit = func(exit Exit, killed bool) { m.processEnded(s, b, exit, killed) }
	m.processStarted(s, b)
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

// background finds a session's background process for one call.
func (m *Manager) background(id, pid string) (*background, func(), error) {
	s, done, err := m.acquire(id)
	if err != nil {
		return nil, nil, err
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	s.procs.prune(time.Now())
	b, ok := s.procs.procs[pid]
	if !ok {
		done()
		return nil, nil, fmt.Errorf("%w: session %q has no background process %q", ErrNotFound, id, pid)
	}
	return b, done, nil
}

// forget drops a process from its session's table.
func (m *Manager) forget(id, pid string) {
	m.mu.Lock()
	s := m.sessions[id]
	m.mu.Unlock()
	if s == nil {
		return
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	if b, ok := s.procs.procs[pid]; ok {
		delete(s.procs.procs, pid)
		b.discard()
	}
}

// ListProcesses lists a session's background processes, oldest first.
func (m *Manager) ListProcesses(_ context.Context, id string) ([]Process, error) {
	s, done, err := m.acquire(id)
	if err != nil {
		return nil, err
	}
	defer done()
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	s.procs.prune(time.Now())
	out := make([]Process, 0, len(s.procs.procs))
	for _, b := range s.procs.procs {
		b.mu.Lock()
		out = append(out, b.state())
		b.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Process) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

// ProcessOutput returns the output lines not read before, those matching
// filter (a regular expression) when it is set.
func (m *Manager) ProcessOutput(_ context.Context, id, pid, filter string) (ProcessOutput, error) {
	var re *regexp.Regexp
	if filter != "" {
		var err error
		if re, err = regexp.Compile(filter); err != nil {
			return ProcessOutput{}, fmt.Errorf("%w: filter: %w", ErrInvalid, err)
		}
	}
	b, done, err := m.background(id, pid)
	if err != nil {
		return ProcessOutput{}, err
	}
	defer done()
	return b.read(re), nil
}

// KillProcess ends a background process — SIGTERM to its whole tree, then
// SIGKILL after grace — and removes it, returning its unread output.
func (m *Manager) KillProcess(ctx context.Context, id, pid string, grace time.Duration) (ProcessOutput, error) {
	if grace < 0 {
		return ProcessOutput{}, fmt.Errorf("%w: grace must not be negative", ErrInvalid)
	}
	b, done, err := m.background(id, pid)
	if err != nil {
		return ProcessOutput{}, err
	}
	defer done()
	select {
	case <-b.finished:
	default:
		b.mu.Lock()
		b.killed = true
		b.mu.Unlock()
		_ = b.proc.Terminate()
		timer := time.NewTimer(grace)
		select {
		case <-b.finished:
		case <-timer.C:
			_ = b.proc.Kill()
		case <-ctx.Done():
			_ = b.proc.Kill()
		}
		timer.Stop()
		<-b.finished
	}
	out := b.read(nil)
	m.forget(id, pid)
	m.log.Info("background process removed", "session", id, "process", pid)
	return out, nil
}

// openLog creates a new log file in dir, following nothing; what is
// written to it is charged to the session's disk limit (charged).
func (m *Manager) openLog(dir, name string) (io.WriteCloser, error) {
	var f *os.File
	err := m.charged(func() error {
		d, err := mounts.OpenDir(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		f, err = d.CreateFile(name, 0o640, mounts.Owner{})
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.chargeWrites {
		return newChargedFile(f), nil
	}
	return f, nil
}
