package shim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The agent under test is this test binary re-executed as "sandbox-init"
// (its constructor is the real one). Unprivileged, commands run as the
// test's own uid; as root, as nobody, which exercises the drop.

// testAgent is an agent started by a test and killed at its end.
type testAgent struct {
	path string
	cmd  *exec.Cmd
}

type agentOptions struct {
	seccomp bool
	// wrap runs the agent under another program (e.g. unshare).
	wrap []string
	// cgroup, when set, is a cgroup v1 or v2 directory the agent is
	// moved into right after it started, before any request.
	cgroup string
}

func startAgent(t testing.TB, opts agentOptions) *testAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "shimtest-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := Listen(path)
	require.NoError(t, err, "listen")
	defer ln.Close()
	var sec *os.File
	if opts.seccomp {
		sec, err = SeccompFile()
		require.NoError(t, err, "seccomp file")
		defer sec.Close()
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	args := append(append([]string{}, opts.wrap...), exe, InitMode)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{} // not nil: nil would pass the test's environment
	cmd.ExtraFiles = AgentFiles(ln, sec)
	logs, err := os.Create(filepath.Join(dir, "agent.log"))
	require.NoError(t, err)
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start(), "start agent")
	a := &testAgent{path: path, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if b, _ := os.ReadFile(logs.Name()); len(b) > 0 {
			t.Logf("agent's output:\n%s", b)
		}
	})
	if opts.cgroup != "" {
		require.NoError(t, os.WriteFile(filepath.Join(opts.cgroup, "cgroup.procs"),
			[]byte(strconv.Itoa(cmd.Process.Pid)), 0), "move agent into %s", opts.cgroup)
	}
	return a
}

// commandIDs are the ids commands run as.
func commandIDs() (int, int) {
	if os.Geteuid() == 0 {
		return 65534, 65534
	}
	return os.Getuid(), os.Getgid()
}

// request fills in the ids and a default environment and cwd.
func request(args ...string) Request {
	uid, gid := commandIDs()
	return Request{Args: args, Env: []string{"PATH=/usr/bin:/bin"}, Cwd: "/", UID: uid, GID: gid}
}

type result struct {
	out  string
	exit Exit
	err  error
	pid  int
}

// run runs req with stdout and stderr on one pipe and waits for it.
func (a *testAgent) run(t *testing.T, req Request) result {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	req.Stdout, req.Stderr = w, w
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Start(ctx, a.path, req)
	w.Close()
	if err != nil {
		out, _ := io.ReadAll(r)
		return result{out: string(out), err: err}
	}
	out, _ := io.ReadAll(r)
	exit, err := p.Wait()
	return result{out: string(out), exit: exit, err: err, pid: p.PID()}
}

func TestAgentRuns(t *testing.T) {
	a := startAgent(t, agentOptions{})
	for _, tc := range []struct {
		name   string
		args   []string
		out    string
		code   int
		signal syscall.Signal
	}{
		{"output", []string{"echo", "hello"}, "hello\n", 0, 0},
		{"exit code", []string{"sh", "-c", "exit 3"}, "", 3, 0},
		{"signal", []string{"sh", "-c", "kill -TERM $$"}, "", 128 + 15, syscall.SIGTERM},
		{"stderr and stdout in order", []string{"sh", "-c", "echo 1; echo 2 >&2; echo 3"}, "1\n2\n3\n", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := a.run(t, request(tc.args...))
			require.NoError(t, res.err, "run %v", tc.args)
			assert.Equal(t, tc.out, res.out, "output of %v", tc.args)
			assert.Equal(t, tc.code, res.exit.Code, "exit code of %v", tc.args)
			assert.Equal(t, tc.signal, res.exit.Signal, "signal of %v", tc.args)
			assert.Positive(t, res.pid, "pid of %v", tc.args)
		})
	}
}

// sharedDir is a directory the command's user may use.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shimtest-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	return dir
}

// buildC compiles a C file of testdata into dir.
func buildC(t *testing.T, dir, src string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc to build", src)
	}
	out := filepath.Join(dir, strings.TrimSuffix(src, ".c"))
	if strings.Contains(strings.Join(args, " "), "-shared") {
		out += ".so"
	}
	cmd := exec.Command("gcc", append(append([]string{"-O2", "-Wall", "-o", out}, args...), filepath.Join("testdata", src))...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "gcc %s: %s", src, b)
	require.NoError(t, os.Chmod(out, 0o755))
	return out
}

func TestAgentStdin(t *testing.T) {
	a := startAgent(t, agentOptions{})
	in, w, err := os.Pipe()
	require.NoError(t, err)
	_, err = w.WriteString("from stdin\n")
	require.NoError(t, err)
	w.Close()
	req := request("cat")
	req.Stdin = in
	res := a.run(t, req)
	in.Close()
	require.NoError(t, res.err)
	assert.Equal(t, "from stdin\n", res.out, "cat's output")

	res = a.run(t, request("cat"))
	require.NoError(t, res.err)
	assert.Equal(t, "", res.out, "no stdin is /dev/null")
}

func TestAgentSeparateStderr(t *testing.T) {
	a := startAgent(t, agentOptions{})
	outR, outW, err := os.Pipe()
	require.NoError(t, err)
	errR, errW, err := os.Pipe()
	require.NoError(t, err)
	req := request("sh", "-c", "echo out; echo err >&2")
	req.Stdout, req.Stderr = outW, errW
	p, err := Start(context.Background(), a.path, req)
	outW.Close()
	errW.Close()
	require.NoError(t, err)
	stdout, _ := io.ReadAll(outR)
	stderr, _ := io.ReadAll(errR)
	_, err = p.Wait()
	require.NoError(t, err)
	assert.Equal(t, "out\n", string(stdout), "stdout")
	assert.Equal(t, "err\n", string(stderr), "stderr")
}

func TestAgentCwd(t *testing.T) {
	a := startAgent(t, agentOptions{})
	dir := sharedDir(t)
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	private := filepath.Join(dir, "private")
	require.NoError(t, os.Mkdir(private, 0o700))
	for _, tc := range []struct {
		name  string
		cwd   string
		errno syscall.Errno
	}{
		{"entered", dir, 0},
		{"missing", filepath.Join(dir, "missing"), syscall.ENOENT},
		{"a file", file, syscall.ENOTDIR},
		{"entered as the user", private, syscall.EACCES},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.errno == syscall.EACCES && os.Geteuid() != 0 {
				t.Skip("needs root: the command must run as another user than the directory's owner")
			}
			req := request("pwd")
			req.Cwd = tc.cwd
			res := a.run(t, req)
			if tc.errno == 0 {
				require.NoError(t, res.err)
				assert.Equal(t, tc.cwd+"\n", res.out, "pwd")
				return
			}
			require.ErrorIs(t, res.err, ErrCwd, "cwd %s", tc.cwd)
			require.ErrorIs(t, res.err, tc.errno, "cwd %s", tc.cwd)
			assert.Empty(t, res.out, "nothing ran")
		})
	}
}

func TestAgentExecErrors(t *testing.T) {
	a := startAgent(t, agentOptions{})
	dir := sharedDir(t)
	write := func(name, content string, mode os.FileMode) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), mode))
	}
	write("hello-from-path", "#!/bin/sh\necho found in PATH\n", 0o755)
	write("no-shebang", "echo run by sh\n", 0o755)
	write("not-executable", "#!/bin/sh\necho no\n", 0o644)
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		out   string
		errno syscall.Errno
		code  int
	}{
		{"missing program", []string{"no-such-program"}, nil, "sandboxd: no-such-program: No such file or directory\n", syscall.ENOENT, 127},
		{"missing path", []string{dir + "/missing"}, nil, "", syscall.ENOENT, 127},
		{"not executable", []string{dir + "/not-executable"}, nil, "", syscall.EACCES, 126},
		{"not executable in PATH", []string{"not-executable"}, []string{"PATH=" + dir}, "", syscall.EACCES, 126},
		{"found through the command's PATH", []string{"hello-from-path"}, []string{"PATH=/nonexistent:" + dir}, "found in PATH\n", 0, 0},
		{"the command's PATH only", []string{"hello-from-path"}, []string{"PATH=/usr/bin:/bin"}, "", syscall.ENOENT, 127},
		{"glibc's PATH without one", []string{"true"}, []string{}, "", 0, 0},
		{"a script without #! runs in sh", []string{dir + "/no-shebang"}, nil, "run by sh\n", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.args...)
			if tc.env != nil {
				req.Env = tc.env
			}
			res := a.run(t, req)
			if tc.errno == 0 {
				require.NoError(t, res.err, "run %v", tc.args)
				assert.Equal(t, tc.out, res.out, "output of %v", tc.args)
				return
			}
			require.ErrorIs(t, res.err, ErrExec, "run %v", tc.args)
			require.ErrorIs(t, res.err, tc.errno, "run %v", tc.args)
			var se *StartError
			require.ErrorAs(t, res.err, &se)
			assert.Equal(t, tc.code, se.ExitCode(), "exit code of %v", tc.args)
			if tc.out != "" {
				assert.Equal(t, tc.out, res.out, "message of %v", tc.args)
			}
		})
	}
}

// environ reads a process's environment.
func environ(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	require.NoError(t, err, "environ of %d", pid)
	return string(b)
}

func TestAgentEnvironment(t *testing.T) {
	a := startAgent(t, agentOptions{})
	env := []string{"A=1", "B=two words", "LD_PRELOAD=", "PATH=/usr/bin:/bin"}
	req := request("env")
	req.Env = env
	res := a.run(t, req)
	require.NoError(t, res.err)
	assert.Equal(t, strings.Join(env, "\n")+"\n", res.out, "the command sees exactly its environment")

	assert.Empty(t, environ(t, a.cmd.Process.Pid), "the agent's environment")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	req = request("sh", "-c", "echo started; exec sleep 1000")
	req.Env = append(env, "SECRET=from the caller")
	req.Stdout = w
	p, err := Start(context.Background(), a.path, req)
	w.Close()
	require.NoError(t, err)
	line := make([]byte, len("started\n"))
	_, err = io.ReadFull(r, line)
	require.NoError(t, err)
	assert.Empty(t, environ(t, p.HostPID()), "the supervisor's environment")
	require.NoError(t, p.Kill())
	exit, err := p.Wait()
	require.NoError(t, err)
	assert.Equal(t, syscall.SIGKILL, exit.Signal, "killed")
}

// treeScript starts three sleeps that leave the command's process group
// or parentage (setsid; a double fork; a plain background child), prints
// their pids, then ends as told.
const treeScript = `setsid sleep 1000 & echo $!
(sleep 1000 & echo $!)
sleep 1000 & echo $!
echo ready
`

// startTree starts treeScript + tail and returns the process, the pids it
// printed, and a pidfd of its supervisor.
func startTree(t *testing.T, a *testAgent, tail string) (*Process, []int, int) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	req := request("sh", "-c", treeScript+tail)
	req.Stdout, req.Stderr = w, w
	p, err := Start(context.Background(), a.path, req)
	w.Close()
	require.NoError(t, err)
	pidfd, err := unix.PidfdOpen(p.HostPID(), 0)
	require.NoError(t, err, "pidfd of the supervisor")
	t.Cleanup(func() { unix.Close(pidfd) })
	var pids []int
	lines := bufio.NewScanner(r)
	for lines.Scan() && lines.Text() != "ready" {
		pid, err := strconv.Atoi(lines.Text())
		require.NoError(t, err, "pid line %q", lines.Text())
		pids = append(pids, pid)
	}
	require.Len(t, pids, 3, "pids printed")
	return p, pids, pidfd
}

// awaitExit waits until the process of pidfd has ended.
func awaitExit(t *testing.T, pidfd int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int((time.Minute).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, 1, n, "supervisor still runs after a minute")
		return
	}
}

func requireGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		assert.ErrorIs(t, unix.Kill(pid, 0), unix.ESRCH, "process %d outlived its supervisor", pid)
	}
}

func TestAgentKillsTheWholeTree(t *testing.T) {
	a := startAgent(t, agentOptions{})
	for _, tc := range []struct {
		name   string
		tail   string
		act    func(*Process) error
		signal syscall.Signal
		err    error
	}{
		{"the command ends", "exit 0", nil, 0, nil},
		{"kill", "wait", (*Process).Kill, syscall.SIGKILL, nil},
		{"term", "wait", (*Process).Term, syscall.SIGTERM, nil},
		{"hang-up", "wait", (*Process).Close, 0, ErrNoReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, pids, pidfd := startTree(t, a, tc.tail)
			if tc.act != nil {
				for _, pid := range pids {
					require.NoError(t, unix.Kill(pid, 0), "sleep %d runs", pid)
				}
				require.NoError(t, tc.act(p), tc.name)
			}
			exit, err := p.Wait()
			awaitExit(t, pidfd)
			requireGone(t, pids)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err, "wait")
				return
			}
			require.NoError(t, err, "wait")
			assert.Equal(t, tc.signal, exit.Signal, "how the command ended")
		})
	}
}

func TestAgentTermIsNotKill(t *testing.T) {
	a := startAgent(t, agentOptions{})
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	req := request("sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; sleep 1000 & wait`)
	req.Stdout, req.Stderr = w, w
	p, err := Start(context.Background(), a.path, req)
	w.Close()
	require.NoError(t, err)
	lines := bufio.NewScanner(r)
	require.True(t, lines.Scan())
	require.Equal(t, "ready", lines.Text())
	require.NoError(t, p.Term())
	require.True(t, lines.Scan(), "output after TERM")
	assert.Equal(t, "got TERM", lines.Text(), "the command handled TERM")
	exit, err := p.Wait()
	require.NoError(t, err)
	assert.Equal(t, 7, exit.Code, "the command's own exit")
	assert.Zero(t, exit.Signal)
}

func TestAgentHold(t *testing.T) {
	a := startAgent(t, agentOptions{})
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	req := request("echo", "released")
	req.Stdout, req.Hold = w, true
	p, err := Start(context.Background(), a.path, req)
	w.Close()
	require.NoError(t, err)
	assert.Zero(t, p.PID(), "no command while held")
	require.Positive(t, p.HostPID(), "the supervisor's host pid")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.HostPID()))
	require.NoError(t, err)
	assert.Contains(t, string(status), fmt.Sprintf("PPid:\t%d\n", a.cmd.Process.Pid), "HostPID is the agent's child")
	require.NoError(t, p.Go(context.Background()))
	assert.Positive(t, p.PID(), "the command's pid")
	out, _ := io.ReadAll(r)
	exit, err := p.Wait()
	require.NoError(t, err)
	assert.Zero(t, exit.Code)
	assert.Equal(t, "released\n", string(out))

	req = request("echo", "never")
	req.Hold = true
	p, err = Start(context.Background(), a.path, req)
	require.NoError(t, err)
	pidfd, err := unix.PidfdOpen(p.HostPID(), 0)
	require.NoError(t, err)
	defer unix.Close(pidfd)
	require.NoError(t, p.Close())
	_, err = p.Wait()
	assert.ErrorIs(t, err, ErrNoReport, "a held command hung up on")
	awaitExit(t, pidfd)
}

func TestAgentReportsCPUTime(t *testing.T) {
	a := startAgent(t, agentOptions{})
	// The work happens in an orphan: the whole tree's time is counted.
	res := a.run(t, request("sh", "-c", `(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done) & wait`))
	require.NoError(t, res.err)
	assert.Positive(t, res.exit.UserTime+res.exit.SysTime, "CPU time of the tree")
	assert.Positive(t, res.exit.MaxRSS, "largest RSS")
}

// rawConn is a connection to the agent that the test writes bytes to.
func rawConn(t *testing.T, a *testAgent) *net.UnixConn {
	t.Helper()
	c, err := net.Dial("unixpacket", a.path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
	return c.(*net.UnixConn)
}

// readReply reads the agent's answer: a reply, or nil when it hung up.
func readReply(t *testing.T, c *net.UnixConn) *reply {
	t.Helper()
	buf := make([]byte, exitLen+1)
	n, err := c.Read(buf)
	if n == 0 || errors.Is(err, io.EOF) {
		return nil
	}
	require.NoError(t, err)
	r, err := decodeReply(buf[:n])
	require.NoError(t, err, "reply %x", buf[:n])
	return &r
}

// sendRaw sends m as one record, with n fds of /dev/null.
func sendRaw(t *testing.T, c *net.UnixConn, m []byte, n int) {
	t.Helper()
	var oob []byte
	if n > 0 {
		oob = unix.UnixRights(devNulls(t, n)...)
	}
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var serr error
	// Not WriteMsgUnix: for an empty record it sends a byte.
	require.NoError(t, rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), m, oob, nil, 0)
		return serr != unix.EAGAIN
	}))
	require.NoError(t, serr, "send %d bytes and %d fds", len(m), n)
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	return len(entries)
}

func devNulls(t *testing.T, n int) []int {
	t.Helper()
	fds := make([]int, n)
	for i := range fds {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		fds[i] = int(f.Fd())
	}
	return fds
}

// TestAgentRefusesMalformedRequests sends what a confused or hostile peer
// might: each is refused with a reply or a hang-up, PID 1 keeps no fd of
// it, and serves the next request.
func TestAgentRefusesMalformedRequests(t *testing.T) {
	a := startAgent(t, agentOptions{})
	uid, gid := commandIDs()
	valid, err := encodeExec(command{args: []string{"true"}, cwd: "/", uid: uid, gid: gid})
	require.NoError(t, err)
	spawn := encodeSpawn(false, 0)
	with := func(m []byte, change func([]byte) []byte) []byte { return change(append([]byte(nil), m...)) }
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.NativeEndian.PutUint32(b[off:], v); return b }
	}
	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.NativeEndian.PutUint16(b[off:], v); return b }
	}
	// Once it served a request, the agent has all the fds it keeps.
	require.NoError(t, a.run(t, request("true")).err)
	before := fdCount(t, a.cmd.Process.Pid)
	for _, tc := range []struct {
		name       string
		spawn      []byte
		spawnFDs   int
		exec       []byte
		execFDs    int
		wantStage  stage // 0: a hang-up without reply
		wantAgentV bool
	}{
		{name: "empty record", spawn: nil},
		{name: "short spawn", spawn: spawn[:8], wantStage: stageProtocol},
		{name: "long spawn", spawn: append(spawn, make([]byte, 100)...), wantStage: stageProtocol},
		{name: "bad magic", spawn: with(spawn, put32(0, 0x12345678)), wantStage: stageProtocol},
		{name: "other version", spawn: with(spawn, put16(4, 9)), wantStage: stageVersion, wantAgentV: true},
		{name: "exec first", spawn: valid, execFDs: 3, wantStage: stageProtocol},
		{name: "unknown spawn flag", spawn: with(spawn, put32(8, 2)), wantStage: stageProtocol},
		{name: "join count without its fds", spawn: with(spawn, put32(12, 1)), wantStage: stageProtocol},
		{name: "join count beyond the maximum", spawn: with(spawn, put32(12, maxJoin+1)), spawnFDs: maxJoin + 1, wantStage: stageProtocol},
		{name: "join count huge", spawn: with(spawn, put32(12, 0xffffffff)), spawnFDs: 2, wantStage: stageProtocol},
		{name: "join count one short", spawn: with(spawn, put32(12, 1)), spawnFDs: 2, wantStage: stageProtocol},
		{name: "cgroup flag without its fd", spawn: with(spawn, put32(8, spawnCgroup)), wantStage: stageProtocol},
		{name: "fds with spawn", spawn: spawn, spawnFDs: 5, wantStage: stageProtocol},
		{name: "no fds with exec", spawn: spawn, exec: valid, wantStage: stageProtocol},
		{name: "two fds with exec", spawn: spawn, exec: valid, execFDs: 2, wantStage: stageProtocol},
		{name: "nine fds with exec", spawn: spawn, exec: valid, execFDs: 9, wantStage: stageProtocol},
		{name: "exec of another version", spawn: spawn, exec: with(valid, put16(4, 9)), execFDs: 3, wantStage: stageProtocol},
		{name: "exec too short", spawn: spawn, exec: valid[:execFixedLen-1], execFDs: 3, wantStage: stageProtocol},
		{name: "uid 0", spawn: spawn, exec: with(valid, put32(8, 0)), execFDs: 3, wantStage: stageProtocol},
		{name: "uid -1", spawn: spawn, exec: with(valid, put32(8, 0xffffffff)), execFDs: 3, wantStage: stageProtocol},
		{name: "gid 0", spawn: spawn, exec: with(valid, put32(12, 0)), execFDs: 3, wantStage: stageProtocol},
		{name: "argc beyond the strings", spawn: spawn, exec: with(valid, put32(16, 5)), execFDs: 3, wantStage: stageProtocol},
		{name: "argc zero", spawn: spawn, exec: with(valid, put32(16, 0)), execFDs: 3, wantStage: stageProtocol},
		{name: "argc huge", spawn: spawn, exec: with(valid, put32(16, 0xffffffff)), execFDs: 3, wantStage: stageProtocol},
		{name: "envc beyond the strings", spawn: spawn, exec: with(valid, put32(20, 1)), execFDs: 3, wantStage: stageProtocol},
		{name: "unknown exec flag", spawn: spawn, exec: with(valid, put32(24, 4)), execFDs: 3, wantStage: stageProtocol},
		{name: "no final NUL", spawn: spawn, exec: valid[:len(valid)-1], execFDs: 3, wantStage: stageProtocol},
		{name: "relative cwd", spawn: spawn, exec: with(valid, func(b []byte) []byte { b[execFixedLen] = 'x'; return b }), execFDs: 3, wantStage: stageProtocol},
		{name: "empty argv[0]", spawn: spawn, exec: append(append([]byte{}, valid[:execFixedLen]...), "/\x00\x00"...), execFDs: 3, wantStage: stageProtocol},
		{name: "beyond maxExecBytes", spawn: spawn, exec: append(append([]byte{}, valid...), make([]byte, maxExecBytes)...), execFDs: 3, wantStage: stageProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, a)
			require.NoError(t, c.SetWriteBuffer(2*maxExecBytes))
			sendRaw(t, c, tc.spawn, tc.spawnFDs)
			if tc.exec != nil {
				sendRaw(t, c, tc.exec, tc.execFDs)
			}
			r := readReply(t, c)
			if tc.wantStage == 0 {
				require.Nil(t, r, "a hang-up")
				return
			}
			require.NotNil(t, r, "a reply")
			require.Equal(t, msgFailed, r.typ, "a failure")
			assert.Equal(t, tc.wantStage, stage(r.a), "failure stage")
			if tc.wantAgentV {
				assert.Equal(t, int32(ProtocolVersion), r.b, "the agent says its version")
			}
			assert.Nil(t, readReply(t, c), "then a hang-up")
		})
	}
	// Random records, as spawn and as exec: a reply or a hang-up each.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		junk := make([]byte, rng.IntN(2*execFixedLen))
		for j := range junk {
			junk[j] = byte(rng.UintN(256))
		}
		if rng.IntN(2) == 0 && len(junk) >= headerLen {
			putHeader(junk, msgType(rng.IntN(int(msgExit)+2)))
		}
		c := rawConn(t, a)
		if i%2 == 0 {
			sendRaw(t, c, junk, rng.IntN(4))
		} else {
			sendRaw(t, c, spawn, 0)
			sendRaw(t, c, junk, rng.IntN(5))
		}
		if r := readReply(t, c); r != nil {
			assert.Equal(t, msgFailed, r.typ, "reply to junk %x", junk)
		}
		c.Close()
	}
	assert.Equal(t, before, fdCount(t, a.cmd.Process.Pid), "the agent's fds after all that")
	res := a.run(t, request("echo", "still serving"))
	require.NoError(t, res.err)
	assert.Equal(t, "still serving\n", res.out)
}

// TestAgentIsNotHeldUpByPeers: connections that send nothing, more of
// them than the agent keeps, and a supervisor waiting for an exec record
// that never comes, do not delay anyone else.
func TestAgentIsNotHeldUpByPeers(t *testing.T) {
	a := startAgent(t, agentOptions{})
	var idle []*net.UnixConn
	for range maxPending + 10 {
		idle = append(idle, rawConn(t, a))
	}
	stalled := rawConn(t, a)
	_, err := stalled.Write(encodeSpawn(false, 0))
	require.NoError(t, err)

	res := a.run(t, request("echo", "served"))
	require.NoError(t, res.err)
	assert.Equal(t, "served\n", res.out)
	assert.Nil(t, readReply(t, idle[0]), "the oldest idle connection was dropped")
}

// TestAgentHangUpOfAQueuedRequest: a request whose daemon gave up before
// the supervisor read it starts nothing.
func TestAgentHangUpBeforeExec(t *testing.T) {
	a := startAgent(t, agentOptions{})
	c := rawConn(t, a)
	_, err := c.Write(encodeSpawn(false, 0))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	res := a.run(t, request("echo", "next"))
	require.NoError(t, res.err)
	assert.Equal(t, "next\n", res.out)
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// probes are the syscalls of testdata/probe.c. Under the filter each is
// refused; controlled ones also succeed or fail otherwise without it (on
// any kernel), which shows the filter is what refuses them.
var probes = []struct {
	name       string
	filtered   string
	controlled bool
}{
	{"clone3", "ENOSYS", true},
	{"clone-newuser", "EPERM", false},
	{"unshare-newuser", "EPERM", false},
	{"setns", "EPERM", true},
	{"add_key", "EPERM", true},
	{"keyctl", "EPERM", true},
	{"personality", "EPERM", true},
	{"userfaultfd", "EPERM", false},
	{"name_to_handle_at", "EPERM", true},
	{"mount", "EPERM", false},
	{"fsopen", "EPERM", false},
	{"open_tree", "EPERM", false},
	{"bpf", "EPERM", false},
	{"perf_event_open", "EPERM", false},
	{"kexec_load", "EPERM", false},
	{"init_module", "EPERM", false},
	{"open_by_handle_at", "EPERM", false},
	{"io_uring_setup", "EPERM", false},
	{"socket-alg", "EPERM", false},
}

func runProbes(t *testing.T, a *testAgent, probe string) map[string]string {
	t.Helper()
	args := []string{probe}
	for _, p := range probes {
		args = append(args, p.name)
	}
	res := a.run(t, request(args...))
	require.NoError(t, res.err, "probe: %s", res.out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(res.out), "\n") {
		name, result, _ := strings.Cut(line, " ")
		got[name] = result
	}
	return got
}

func TestAgentSeccomp(t *testing.T) {
	dir := sharedDir(t)
	probe := buildC(t, dir, "probe.c")
	filtered := runProbes(t, startAgent(t, agentOptions{seccomp: true}), probe)
	control := runProbes(t, startAgent(t, agentOptions{}), probe)
	for _, p := range probes {
		assert.Equal(t, p.filtered, filtered[p.name], "%s under the filter", p.name)
		if p.controlled {
			assert.NotEqual(t, p.filtered, control[p.name], "%s without the filter", p.name)
		}
	}
}

// TestAgentSeccompKeepsWorkWorking: what sandboxes run every day works
// under the filter, threads (clone3 falling back to clone) included.
func TestAgentSeccompKeepsWorkWorking(t *testing.T) {
	a := startAgent(t, agentOptions{seccomp: true})
	base, layer, err := seccompPrograms()
	require.NoError(t, err)
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs " + python)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sh", []string{"sh", "-c", "echo $((6*7)) | cat"}, "42\n"},
		{"coreutils", []string{"sh", "-c", "ls / >/dev/null && sort -n </dev/null && date +%Y >/dev/null && echo ok"}, "ok\n"},
		{"the filters are there", []string{"sh", "-c", "grep -E '^Seccomp(_filters)?:' /proc/self/status"},
			fmt.Sprintf("Seccomp:\t2\nSeccomp_filters:\t%d\n", len(base)+len(layer))},
		{"python threads and processes", []string{python, "-c", `
import threading, subprocess, socket, ssl, multiprocessing, json
out = []
t = threading.Thread(target=lambda: out.append(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout))
t.start(); t.join()
a, b = socket.socketpair(); a.send(b"x"); assert b.recv(1) == b"x"
with multiprocessing.Pool(2) as p: assert p.map(abs, [-1, -2]) == [1, 2]
print(out[0].strip(), json.dumps(ssl.OPENSSL_VERSION is not None))
`}, "child true\n"},
		{"pip", []string{python, "-m", "pip", "--version"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.args...)
			req.Env = append(req.Env, "HOME=/tmp")
			res := a.run(t, req)
			require.NoError(t, res.err)
			require.Equal(t, 0, res.exit.Code, "%v: %s", tc.args, res.out)
			if tc.want != "" {
				assert.Equal(t, tc.want, res.out, "%v", tc.args)
			}
		})
	}
}

// TestAgentNeverLoadsCallerLibrariesAsRoot: the loader variables of a
// request work for the command, as its user, and nothing privileged ever
// loads them.
func TestAgentNeverLoadsCallerLibrariesAsRoot(t *testing.T) {
	requireRoot(t, "the supervisor must be root, dropping to another uid")
	a := startAgent(t, agentOptions{seccomp: true})
	dir := sharedDir(t)
	lib := buildC(t, dir, "preload.c", "-shared", "-fPIC")
	markers := filepath.Join(dir, "markers")
	require.NoError(t, os.Mkdir(markers, 0o777))
	require.NoError(t, os.Chmod(markers, 0o777))
	gconv := filepath.Join(dir, "gconv")
	require.NoError(t, os.Mkdir(gconv, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(gconv, "gconv-modules"),
		[]byte("module SHIMTEST// INTERNAL "+strings.TrimSuffix(lib, ".so")+" 1\nmodule INTERNAL SHIMTEST// "+strings.TrimSuffix(lib, ".so")+" 1\n"), 0o644))
	uid, _ := commandIDs()
	for _, tc := range []struct {
		name string
		env  string
		args []string
	}{
		{"LD_PRELOAD", "LD_PRELOAD=" + lib, []string{"true"}},
		{"LD_LIBRARY_PATH", "LD_LIBRARY_PATH=" + dir, []string{"env", "LD_PRELOAD=preload.so", "true"}},
		{"LD_AUDIT", "LD_AUDIT=" + lib, []string{"true"}},
		{"GCONV_PATH", "GCONV_PATH=" + gconv, []string{"sh", "-c", "iconv -f SHIMTEST -t UTF-8 </dev/null; true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(markers))
			require.NoError(t, os.Mkdir(markers, 0o777))
			require.NoError(t, os.Chmod(markers, 0o777))
			req := request(tc.args...)
			req.Env = append(req.Env, tc.env, "SHIMTEST_MARKERS="+markers)
			for _, hold := range []bool{false, true} {
				req.Hold = hold
				p, err := Start(context.Background(), a.path, req)
				require.NoError(t, err)
				if hold {
					require.NoError(t, p.Go(context.Background()))
				}
				_, err = p.Wait()
				require.NoError(t, err)
			}
			entries, err := os.ReadDir(markers)
			require.NoError(t, err)
			require.NotEmpty(t, entries, "%s was not loaded at all: the test proves nothing", tc.env)
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(markers, e.Name()))
				require.NoError(t, err)
				for _, line := range strings.Fields(string(b)) {
					assert.Equal(t, fmt.Sprintf("euid=%d", uid), line, "%s loaded in process %s", tc.env, e.Name())
				}
			}
		})
	}
}

// testCgroup makes a cgroup of the test's own in the hierarchy mounted at
// root, and removes it at the end with whatever still runs in it.
func testCgroup(t *testing.T, root string) string {
	t.Helper()
	parent := filepath.Join(root, fmt.Sprintf("sandboxd-shimtest-%d", os.Getpid()))
	dir := filepath.Join(parent, strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	require.NoError(t, os.MkdirAll(dir, 0o755), "cgroup %s", dir)
	t.Cleanup(func() {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				awaitExit(t, fd)
				unix.Close(fd)
			}
		}
		assert.NoError(t, os.Remove(dir), "remove cgroup %s", dir)
		_ = os.Remove(parent) // the last test's to remove
	})
	return dir
}

// cgroup2Root is where the unified hierarchy is mounted, if it is.
func cgroup2Root() string {
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return root
		}
	}
	return ""
}

func TestAgentPidsLimit(t *testing.T) {
	requireRoot(t, "makes a pids-limited cgroup")
	var cg string
	if root := cgroup2Root(); root == "/sys/fs/cgroup" {
		require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+pids"), 0))
		cg = testCgroup(t, root)
		require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(cg), "cgroup.subtree_control"), []byte("+pids"), 0))
	} else if _, err := os.Stat("/sys/fs/cgroup/pids"); err == nil {
		cg = testCgroup(t, "/sys/fs/cgroup/pids")
	} else {
		t.Skip("no pids controller")
	}
	setMax := func(n int) {
		require.NoError(t, os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(n)), 0))
	}
	// The agent, one supervisor and its sleep.
	setMax(3)
	a := startAgent(t, agentOptions{cgroup: cg})
	sleeper, err := Start(context.Background(), a.path, request("sleep", "1000"))
	require.NoError(t, err)
	defer func() { _ = sleeper.Kill(); _, _ = sleeper.Wait() }()

	_, err = Start(context.Background(), a.path, request("true"))
	require.ErrorIs(t, err, ErrPidsLimit, "PID 1 cannot fork the supervisor")
	setMax(4)
	_, err = Start(context.Background(), a.path, request("true"))
	require.ErrorIs(t, err, ErrPidsLimit, "the supervisor cannot fork the command")
	// Room for one more, and for the refused supervisor that the agent
	// may not have reaped yet.
	setMax(6)
	res := a.run(t, request("echo", "room again"))
	require.NoError(t, res.err)
	assert.Equal(t, "room again\n", res.out)
}

func TestAgentStartsInCgroup(t *testing.T) {
	requireRoot(t, "makes cgroups")
	root := cgroup2Root()
	if root == "" {
		t.Skip("no cgroup v2 hierarchy")
	}
	for _, tc := range []struct {
		name string
		wrap func(t *testing.T) []string
	}{
		{"clone3 into the cgroup", func(*testing.T) []string { return nil }},
		{"fallback without clone3", func(t *testing.T) []string {
			return []string{buildC(t, sharedDir(t), "noclone3.c")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := testCgroup(t, root)
			a := startAgent(t, agentOptions{wrap: tc.wrap(t)})
			dir, err := os.Open(cg)
			require.NoError(t, err)
			defer dir.Close()
			req := request("cat", "/proc/self/cgroup")
			req.Cgroup = dir
			res := a.run(t, req)
			require.NoError(t, res.err)
			assert.Contains(t, res.out, "0::"+strings.TrimPrefix(cg, root)+"\n", "the command's cgroup")
		})
	}
}

// TestWaitSupervisorEndsOnceItExited: by the time WaitSupervisor
// returns, the supervisor has exited (a zombie until the agent reaps it,
// or gone), so that the daemon can remove the command's cgroup at once.
func TestWaitSupervisorEndsOnceItExited(t *testing.T) {
	a := startAgent(t, agentOptions{})
	for range 20 {
		p, err := Start(context.Background(), a.path, request("true"))
		require.NoError(t, err)
		exit, err := p.Wait()
		require.NoError(t, err)
		require.Zero(t, exit.Code)
		p.WaitSupervisor()
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.HostPID()))
		if err == nil {
			s := string(stat)
			// Z: a zombie; X: being reaped right now.
			assert.Contains(t, "ZX", s[strings.LastIndexByte(s, ')')+2:][:1], "the supervisor %d has exited: %s", p.HostPID(), s)
		}
	}
}

// TestAgentJoinsCgroupFiles: a supervisor writes itself into each
// cgroup.procs file it is given, so that it and its command start there,
// in as many hierarchies as there are files.
func TestAgentJoinsCgroupFiles(t *testing.T) {
	requireRoot(t, "makes cgroups")
	var roots []string
	for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpuacct", cgroup2Root()} {
		var st unix.Statfs_t
		if root != "" && unix.Statfs(root, &st) == nil && (st.Type == unix.CGROUP_SUPER_MAGIC || st.Type == unix.CGROUP2_SUPER_MAGIC) {
			roots = append(roots, root)
		}
	}
	if len(roots) == 0 {
		t.Skip("no cgroup hierarchy")
	}
	a := startAgent(t, agentOptions{seccomp: true})
	req := request("cat", "/proc/self/cgroup")
	var want []string
	for _, root := range roots {
		cg := testCgroup(t, root)
		f, err := os.OpenFile(filepath.Join(cg, "cgroup.procs"), os.O_WRONLY, 0)
		require.NoError(t, err, "open %s", cg)
		defer f.Close()
		req.Join = append(req.Join, f)
		want = append(want, ":"+strings.TrimPrefix(cg, root)+"\n")
	}
	res := a.run(t, req)
	require.NoError(t, res.err)
	for _, w := range want {
		assert.Contains(t, res.out, w, "the command is in each cgroup")
	}
	res = a.run(t, request("cat", "/proc/self/cgroup"))
	require.NoError(t, res.err)
	for _, w := range want {
		assert.NotContains(t, res.out, w, "a command without files stays where the agent is")
	}
	req.Join = make([]*os.File, maxJoin+1)
	_, err := Start(context.Background(), a.path, req)
	assert.ErrorIs(t, err, ErrInvalid, "more files than the protocol carries")
}

func TestAgentRefusesPeersOfOtherUsers(t *testing.T) {
	requireRoot(t, "connects as another user")
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs " + python)
	}
	a := startAgent(t, agentOptions{})
	require.NoError(t, os.Chmod(filepath.Dir(a.path), 0o755))
	require.NoError(t, os.Chmod(a.path, 0o666))
	cmd := exec.Command(python, "-c", `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
try:
    s.send(bytes.fromhex(sys.argv[2]))
    print(len(s.recv(64)))
except (BrokenPipeError, ConnectionResetError):
    print(0)  # closed before or after the send: unanswered either way
`, a.path, fmt.Sprintf("%x", encodeSpawn(false, 0)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "0\n", string(out), "nobody's connection is closed unanswered")
	res := a.run(t, request("echo", "root is served"))
	require.NoError(t, res.err)
	assert.Equal(t, "root is served\n", res.out)
}

// TestAgentAsPID1 runs the agent as the PID 1 of a pid namespace, as in a
// sandbox: commands cannot signal it, and pids are the namespace's.
func TestAgentAsPID1(t *testing.T) {
	requireRoot(t, "makes a pid namespace")
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	a := startAgent(t, agentOptions{seccomp: true,
		wrap: []string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"}})
	res := a.run(t, request("sh", "-c", "echo $$; kill -KILL 1; kill -SEGV 1; kill -TERM 1; true"))
	require.NoError(t, res.err)
	pid, err := strconv.Atoi(strings.SplitN(res.out, "\n", 2)[0])
	require.NoError(t, err, "output %q", res.out)
	assert.Equal(t, res.pid, pid, "PID is the namespace's")
	assert.Less(t, pid, 100, "a pid of the namespace")

	p, pids, pidfd := startTree(t, a, "wait")
	assert.NotEqual(t, p.PID(), p.HostPID(), "HostPID is the daemon's view")
	require.NoError(t, p.Kill())
	_, err = p.Wait()
	require.NoError(t, err)
	awaitExit(t, pidfd)
	_ = pids // the namespace's pids: not the test's to check

	res = a.run(t, request("echo", "PID 1 lives"))
	require.NoError(t, res.err)
	assert.Equal(t, "PID 1 lives\n", res.out)
}

func TestSupplementaryGroup(t *testing.T) {
	requireRoot(t, "the supervisor must be root to set groups")
	a := startAgent(t, agentOptions{})
	for _, tc := range []struct {
		name  string
		group int
		want  string
	}{
		{"none", 0, "65534 65534 65534\n"},
		{"one", 4242, "65534 65534 65534 4242\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request("/bin/sh", "-c", `echo "$(id -u) $(id -g) $(id -G)"`)
			req.Group = tc.group
			res := a.run(t, req)
			require.NoError(t, res.err, "run: %s", res.out)
			assert.Equal(t, tc.want, res.out, "uid, gid and groups of the command")
		})
	}
	_, err := Start(context.Background(), a.path, Request{Args: []string{"true"}, Cwd: "/", UID: 65534, GID: 65534, Group: -1})
	assert.ErrorIs(t, err, ErrInvalid, "a negative group is refused before anything is sent")
}
