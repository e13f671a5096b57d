package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/shim"
)

// Executor runs commands inside one sandbox.
type Executor interface {
	// Exec runs l to its end. When ctx ends first, every process the
	// command started is killed and Exit.Cancelled is set.
	Exec(ctx context.Context, l launch) (Exit, error)
	// Start starts l and returns once it runs; ctx bounds the start only.
	// The caller waits for the command.
	Start(ctx context.Context, l launch) (Started, error)
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

// Exit is how a command ended, and what it used.
type Exit struct {
	Code int
	// Signal is the signal that ended the command, or 0.
	Signal    syscall.Signal
	Cancelled bool
	// CPU is the user and system time of the command's whole tree.
	CPU time.Duration
	// PeakMemory is the most memory the command's tree used at once.
	PeakMemory uint64
	// OOMKilled: the kernel's OOM killer killed a process of this
	// command (not of another one of the session); OOMKills counts them.
	OOMKilled bool
	OOMKills  uint64
}

const (
	// killGrace is how long the supervisor gets to kill the command's tree
	// before the daemon hangs up on it, which kills the tree too.
	killGrace = 5 * time.Second
	// drainGrace is how long output may keep flowing after the supervisor
	// reported the end; only a process that escaped it could still hold
	// the pipes.
	drainGrace = 2 * time.Second
)

// errCwd is returned when the command's working directory cannot be
// entered; the command did not run.
var errCwd = errors.New("cannot enter working directory")

// agentExecutor runs each command through the sandbox's PID 1, the shim's
// agent, over its socket: no process is started from outside the sandbox
// and no namespace is joined per command. Each command runs in a cgroup of
// its own beneath the session's, which tells its memory peak and whether
// the OOM killer struck it rather than another command; its supervisor
// reports its tree's CPU time.
type agentExecutor struct {
	// socket is a path the daemon can connect to the agent at.
	socket string
	// owner is who commands run as; group, when not 0, their one
	// supplementary group.
	owner mounts.Owner
	group int
	cg    *cgroup.Manager
	// session is the session's cgroup path.
	session string
	// tails counts the commands whose cgroup is still to be removed,
	// after their end was reported; the sandbox's destruction waits for
	// it once nothing runs in the sandbox.
	tails *sync.WaitGroup
}

func (e *agentExecutor) Exec(ctx context.Context, l launch) (Exit, error) {
	p, err := e.Start(ctx, l)
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

// agentProcess is a command started by the agent, with the daemon's ends
// of its pipes and its cgroup.
type agentProcess struct {
	p  *shim.Process
	cg *cgroup.Exec
	// pipes are the daemon's ends, closed when the command is over.
	pipes  []*os.File
	copies sync.WaitGroup
	done   chan struct{}
	exit   Exit
	err    error
}

func (e *agentExecutor) Start(ctx context.Context, l launch) (Started, error) {
	var mine, theirs []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("pipe: %w", err)
		}
		return r, w, nil
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	mine, theirs = append(mine, outR), append(theirs, outW)
	errR, errW := outR, outW
	if l.Stderr != l.Stdout {
		if errR, errW, err = pipe(); err != nil {
			closeAll(append(mine, theirs...))
			return nil, err
		}
		mine, theirs = append(mine, errR), append(theirs, errW)
	}
	var stdinR, stdinW *os.File
	if l.Stdin != nil {
		if stdinR, stdinW, err = pipe(); err != nil {
			closeAll(append(mine, theirs...))
			return nil, err
		}
		mine, theirs = append(mine, stdinW), append(theirs, stdinR)
	}
	// A pipe is its creator's, mode 0600: the command's ends are given to
	// the sandbox user, so that it may reopen them by name (/dev/stdin,
	// /dev/stdout, /dev/stderr, as pip's "-r /dev/stdin" does).
	for _, f := range theirs {
		if err := f.Chown(e.owner.UID, e.owner.GID); err != nil {
			closeAll(append(mine, theirs...))
			return nil, fmt.Errorf("pipe: %w", err)
		}
	}
	cg, err := e.cg.NewExec(e.session, "exec-"+newID(6))
	if err != nil {
		closeAll(append(mine, theirs...))
		return nil, err
	}
	req := shim.Request{
		Args: l.Args, Env: l.Env, Cwd: l.Cwd, UID: e.owner.UID, GID: e.owner.GID, Group: e.group,
		Stdin: stdinR, Stdout: outW, Stderr: errW,
		// On v2 the supervisor starts in the cgroup; elsewhere it writes
		// itself into it before it forks the command.
		Cgroup: cg.Dir(), Join: cg.JoinFiles(),
	}
	p, err := shim.Start(ctx, e.socket, req)
	// Only the sandbox holds the write ends now: EOF means every process
	// that could write has exited.
	closeAll(theirs)
	a := &agentProcess{p: p, cg: cg, pipes: mine, done: make(chan struct{})}
	var code int
	switch se, _ := errors.AsType[*shim.StartError](err); {
	case err == nil:
	case errors.Is(err, shim.ErrExec):
		// As a shell reports it: the program could not run (127, 126);
		// the supervisor said why on the command's stderr.
		a.p, code = nil, se.ExitCode()
	default:
		closeAll(mine)
		_ = cg.Remove()
		switch {
		case errors.Is(err, shim.ErrCwd):
			return nil, fmt.Errorf("%w: %w", errCwd, se.Errno)
		case errors.Is(err, shim.ErrPidsLimit):
			return nil, fmt.Errorf("%w: %w", ErrPidsLimit, err)
		}
		return nil, err
	}
	if stdinW != nil {
		go func() {
			// A command that does not read its stdin gets EPIPE here.
			_, _ = io.Copy(stdinW, l.Stdin)
			_ = stdinW.Close()
		}()
	}
	a.copies.Add(1)
	go func() { defer a.copies.Done(); _, _ = io.Copy(l.Stdout, outR) }()
	if errR != outR {
		a.copies.Add(1)
		go func() { defer a.copies.Done(); _, _ = io.Copy(l.Stderr, errR) }()
	}
	e.tails.Add(1)
	go func() {
		defer e.tails.Done()
		a.wait(code)
	}()
	return a, nil
}

// wait collects the command's end and the rest of its output, and closes
// done; then it removes the command's cgroup, which its supervisor leaves
// only as it exits, just after its report: the caller need not wait for
// that. Without a process (it could not be executed) code is its exit.
func (a *agentProcess) wait(code int) {
	if a.p != nil {
		exit, err := a.p.Wait()
		switch {
		case errors.Is(err, shim.ErrNoReport):
			// The supervisor was killed, and the command with it.
			a.exit = Exit{Code: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL}
		case err != nil:
			a.err = err
		default:
			a.exit = Exit{Code: exit.Code, Signal: exit.Signal, CPU: exit.UserTime + exit.SysTime}
		}
	} else {
		a.exit = Exit{Code: code}
	}
	// Final: the command's tree is dead (the supervisor reports once it
	// killed it), or was never there.
	if st, err := a.cg.Stats(); err == nil {
		// CPU time comes from the supervisor's report: v1 exec cgroups
		// have no cpuacct.
		a.exit.PeakMemory, a.exit.OOMKilled, a.exit.OOMKills = st.MemoryPeakBytes, st.OOMKills > 0, st.OOMKills
	}
	drained := make(chan struct{})
	go func() { a.copies.Wait(); close(drained) }()
	timer := time.NewTimer(drainGrace)
	select {
	case <-drained:
	case <-timer.C:
	}
	timer.Stop()
	for _, f := range a.pipes {
		_ = f.Close()
	}
	<-drained
	close(a.done)

	if a.p != nil {
		a.p.WaitSupervisor()
		_ = a.p.Close()
	}
	// What is left (a process that escaped, or the cgroup of a session
	// being destroyed) goes with the session's cgroup, which is removed
	// with everything beneath it.
	_ = a.cg.Remove()
}

func (a *agentProcess) PID() int {
	if a.p == nil {
		return 0
	}
	return a.p.PID()
}

func (a *agentProcess) Done() <-chan struct{} { return a.done }

func (a *agentProcess) Wait() (Exit, error) {
	<-a.done
	return a.exit, a.err
}

func (a *agentProcess) Terminate() error {
	if a.p == nil {
		return nil
	}
	return a.p.Term()
}

// Kill asks the supervisor to kill the command's tree, and kills the
// command's cgroup if it does not finish in time.
func (a *agentProcess) Kill() error {
	if a.p == nil {
		return nil
	}
	err := a.p.Kill()
	go func() {
		timer := time.NewTimer(killGrace)
		defer timer.Stop()
		select {
		case <-a.done:
		case <-timer.C:
			_ = a.cg.Kill()
			_ = a.p.Close()
		}
	}()
	return err
}
