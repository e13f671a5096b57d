package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Listen creates the agent's listening socket, bound at path (which must
// not exist), for a sandbox about to start: hand the file to its PID 1
// with AgentFiles and close it once the sandbox runs. path belongs in a
// directory only root can enter, outside the sandbox's mount namespace;
// the socket lives as long as the agent, so a restarted daemon reconnects
// to the same path.
func Listen(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("agent socket %s: %w", path, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind agent socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("agent socket %s: %w", path, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("listen on agent socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// AgentFiles lays out the extra files of a sandbox's PID 1 (started as
// "<exe> sandbox-init", InitMode, with an empty environment): the
// listener from Listen, and the seccomp programs from SeccompFile when
// seccomp is not nil. Pass them as libcontainer's Process.ExtraFiles.
func AgentFiles(listener, seccomp *os.File) []*os.File {
	files := []*os.File{listener} // fd listenerFD
	if seccomp != nil {
		files = append(files, seccomp) // fd seccompFD
	}
	return files
}

// Request is one command for the agent.
type Request struct {
	Args []string
	// Env is the command's whole environment, applied only in the
	// command's process; PATH in it is where Args[0] is looked up.
	Env []string
	// Cwd is an absolute path inside the sandbox, entered as UID.
	Cwd string
	// UID and GID are the command's ids: not root's. An agent running
	// unprivileged (tests) runs commands only as its own ids.
	UID, GID int
	// Group, when not 0, is the command's one supplementary group.
	Group int
	// Stdin, Stdout and Stderr are passed to the command (nil is
	// /dev/null); Stderr may be Stdout, which keeps the two in order.
	// They are put in blocking mode, as commands expect.
	Stdin, Stdout, Stderr *os.File
	// Cgroup, when set, is a cgroup v2 directory the supervisor and the
	// command start in.
	Cgroup *os.File
	// Join are cgroup v1 cgroup.procs files (at most 4), open for
	// writing, that the supervisor writes itself into before it forks
	// the command, which so starts in them.
	Join []*os.File
	// Hold stops the supervisor before it forks the command, until
	// Process.Go: meanwhile the daemon moves HostPID into its cgroups
	// (cgroup v1).
	Hold bool
}

// Process is a command started by an agent. Closing it (or the daemon's
// exit) hangs up on the supervisor, which then kills the command's whole
// tree.
type Process struct {
	conn    *net.UnixConn
	pid     int
	hostPID int
	// supervisor is a pidfd of the supervisor (hostPID), or nil;
	// WaitSupervisor or Close releases it.
	supervisor  *os.File
	releaseOnce sync.Once
	// started passes a held command's start (nil) or failure from wait
	// to Go.
	started chan error
	done    chan struct{}
	exit    Exit
	err     error
}

// ErrNoReport is returned by Wait when the supervisor ended without
// reporting the command's end: it was killed, or its sandbox ended.
var ErrNoReport = errors.New("command supervisor ended without a report")

// Start asks the agent listening at socketPath to start req. It returns
// once the command runs (or, with Hold, once its supervisor waits for
// Go). ctx bounds only the start. Errors: ErrInvalid for a request the
// protocol cannot carry (nothing was sent); a *StartError when the agent
// did not start the command (errors.Is: ErrPidsLimit, ErrCwd, ErrExec,
// ErrAgent, ErrProtocol, and its errno); a *VersionError for an agent of
// another protocol version; ErrNoReport when the agent hung up.
func Start(ctx context.Context, socketPath string, req Request) (*Process, error) {
	rec, err := encodeExec(command{args: req.Args, env: req.Env, cwd: req.Cwd, uid: req.UID, gid: req.GID, group: req.Group, hold: req.Hold})
	if err != nil {
		return nil, err
	}
	if len(req.Join) > maxJoin || slices.Contains(req.Join, nil) {
		return nil, fmt.Errorf("%w: %d cgroup files to join, at most %d and none nil", ErrInvalid, len(req.Join), maxJoin)
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// Replies carry the sender's pid, translated into the daemon's
		// pid namespace: the supervisor's host pid.
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.DialContext(ctx, "unixpacket", socketPath)
	if err != nil {
		return nil, fmt.Errorf("connect to agent %s: %w", socketPath, err)
	}
	p := &Process{conn: c.(*net.UnixConn), done: make(chan struct{})}
	// ctx ends the start by a deadline in the past on the connection.
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetDeadline(time.Unix(1, 0)) })
	want := msgStarted
	if req.Hold {
		want = msgHeld
	}
	err = p.send(ctx, req, rec)
	if err == nil {
		err = p.awaitStart(ctx, want)
	}
	if err == nil && !stop() {
		// Started, but too late for the caller: hanging up ends it.
		err = fmt.Errorf("start: %w", context.Cause(ctx))
	}
	if err != nil {
		stop()
		_ = p.conn.Close()
		return nil, err
	}
	if req.Hold {
		p.started = make(chan error, 1)
	}
	go p.wait()
	return p, nil
}

// send writes spawn and exec, with their fds.
func (p *Process) send(ctx context.Context, req Request, rec []byte) error {
	var cgroup []int
	for _, f := range append([]*os.File{req.Cgroup}, req.Join...) {
		if f == nil {
			continue
		}
		fd, err := blockingFD(f)
		if err != nil {
			return fmt.Errorf("cgroup fd: %w", err)
		}
		cgroup = append(cgroup, fd)
	}
	var devNull *os.File
	stdio := []*os.File{req.Stdin, req.Stdout, req.Stderr}
	for i, f := range stdio {
		if f != nil {
			continue
		}
		if devNull == nil {
			var err error
			if devNull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return err
			}
			defer devNull.Close()
		}
		stdio[i] = devNull
	}
	fds := make([]int, 0, execFDs)
	for _, f := range stdio {
		fd, err := blockingFD(f)
		if err != nil {
			return fmt.Errorf("stdio fd: %w", err)
		}
		fds = append(fds, fd)
	}
	if len(rec) > 200<<10 {
		// Above the default socket buffer; the kernel doubles this.
		if err := p.conn.SetWriteBuffer(len(rec)); err != nil {
			return fmt.Errorf("agent socket buffer: %w", err)
		}
	}
	var oob []byte
	if len(cgroup) > 0 {
		oob = unix.UnixRights(cgroup...)
	}
	_, _, err := p.conn.WriteMsgUnix(encodeSpawn(req.Cgroup != nil, len(req.Join)), oob, nil)
	if err != nil {
		return p.ioError(ctx, "send request", err)
	}
	_, _, err = p.conn.WriteMsgUnix(rec, unix.UnixRights(fds...), nil)
	runtime.KeepAlive(stdio)
	runtime.KeepAlive(req.Cgroup)
	runtime.KeepAlive(req.Join)
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		// The agent refused the spawn already; its reply says why.
		return nil
	}
	return p.ioError(ctx, "send request", err)
}

// blockingFD returns f's descriptor after clearing O_NONBLOCK on it (the
// open file description is shared with the command's copy).
func blockingFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	var fd int
	var serr error
	if err := rc.Control(func(u uintptr) {
		fd = int(u)
		serr = unix.SetNonblock(fd, false)
	}); err != nil {
		return -1, err
	}
	return fd, serr
}

// awaitStart reads the first reply: want, or a failure.
func (p *Process) awaitStart(ctx context.Context, want msgType) error {
	r, hostPID, err := p.read()
	if err != nil {
		return p.ioError(ctx, "start", err)
	}
	switch r.typ {
	case msgFailed:
		return failure(r)
	case want:
		if want == msgStarted {
			p.pid = int(r.a)
		}
		if p.hostPID == 0 && hostPID > 0 {
			p.hostPID = hostPID
			// The supervisor is alive until it reported the command's
			// end, which comes after this reply. (Were it killed in
			// between and its pid reused at once, WaitSupervisor would
			// only wait for another process, for at most exitWait.)
			if fd, err := unix.PidfdOpen(hostPID, 0); err == nil {
				p.supervisor = os.NewFile(uintptr(fd), "pidfd")
			}
		}
		return nil
	}
	return fmt.Errorf("%w: reply type %d while starting", ErrProtocol, r.typ)
}

func (p *Process) ioError(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: %w", what, ErrNoReport)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// read reads one reply and the pid of its sender.
func (p *Process) read() (reply, int, error) {
	buf := make([]byte, exitLen+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, flags, _, err := p.conn.ReadMsgUnix(buf, oob)
	if errors.Is(err, unix.ECONNRESET) {
		// The agent closed with a record of ours unread (it refused
		// the request before reading it): the kernel reports that
		// first, then what the agent sent.
		n, oobn, flags, _, err = p.conn.ReadMsgUnix(buf, oob)
	}
	if err != nil {
		return reply{}, 0, err
	}
	if n == 0 {
		return reply{}, 0, io.EOF
	}
	if flags&unix.MSG_TRUNC != 0 {
		return reply{}, 0, fmt.Errorf("%w: reply longer than %d bytes", ErrProtocol, len(buf)-1)
	}
	r, err := decodeReply(buf[:n])
	if err != nil {
		return reply{}, 0, err
	}
	pid := 0
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				pid = int(cred.Pid)
			}
		}
	}
	return r, pid, nil
}

// wait reads what is left to read: a held command's start, then the
// supervisor's last report; then it closes done.
func (p *Process) wait() {
	defer close(p.done)
	defer p.conn.Close()
	if p.started != nil {
		err := p.awaitStart(context.Background(), msgStarted)
		p.started <- err
		if err != nil {
			p.err = err
			return
		}
	}
	r, _, err := p.read()
	switch {
	case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)):
		p.err = ErrNoReport
	case err != nil:
		p.err = fmt.Errorf("read command's end: %w", err)
	case r.typ != msgExit:
		p.err = fmt.Errorf("%w: reply type %d instead of the command's end", ErrProtocol, r.typ)
	default:
		p.exit = r.exit
	}
}

// exitWait bounds how long the supervisor may take to exit after its last
// report; it exits right after sending it.
const exitWait = time.Second

// WaitSupervisor waits, once Wait returned, until the supervisor has
// exited (for at most a second: it exits right after its report). The
// kernel takes a process out of its cgroups only as it exits, after it
// closed its files, so even its hang-up comes too early: once this
// returned, the command's cgroup can be removed. It must not run
// concurrently with Close.
func (p *Process) WaitSupervisor() {
	<-p.done
	if p.supervisor != nil {
		fds := []unix.PollFd{{Fd: int32(p.supervisor.Fd()), Events: unix.POLLIN}}
		deadline := time.Now().Add(exitWait)
		// Readable once the process has exited.
		for left := exitWait; left > 0; left = time.Until(deadline) {
			if _, err := unix.Poll(fds, int(left.Milliseconds())+1); !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	p.release()
}

func (p *Process) release() {
	p.releaseOnce.Do(func() {
		if p.supervisor != nil {
			_ = p.supervisor.Close()
		}
	})
}

// PID is the command's pid inside the sandbox (0 while held).
func (p *Process) PID() int { return p.pid }

// HostPID is the supervisor's pid in the daemon's pid namespace.
func (p *Process) HostPID() int { return p.hostPID }

// Go releases a supervisor started with Hold: it forks the command. PID
// is valid once Go returned nil.
func (p *Process) Go(ctx context.Context) error {
	if p.started == nil {
		return errors.New("go: the command was not held")
	}
	if _, err := p.conn.Write(encodeControl(msgGo)); err != nil {
		_ = p.Close()
		return p.ioError(ctx, "release supervisor", err)
	}
	select {
	case err := <-p.started:
		return err
	case <-ctx.Done():
		_ = p.Close()
		return fmt.Errorf("release supervisor: %w", context.Cause(ctx))
	}
}

// Term sends SIGTERM to every process of the command.
func (p *Process) Term() error { return p.control(msgTerm) }

// Kill kills every process of the command; Wait then reports its end.
func (p *Process) Kill() error { return p.control(msgKill) }

func (p *Process) control(t msgType) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if _, err := p.conn.Write(encodeControl(t)); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("signal command: %w", err)
	}
	return nil
}

// Done is closed when the command and everything it started ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for Done and says how the command ended.
func (p *Process) Wait() (Exit, error) {
	<-p.done
	return p.exit, p.err
}

// Close hangs up: the supervisor kills whatever of the command still runs.
// Wait then returns ErrNoReport unless the end was reported first.
func (p *Process) Close() error {
	p.release()
	if err := p.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
