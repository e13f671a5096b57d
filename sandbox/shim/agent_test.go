package shim

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
	for _, pid := range pids {
		require.NoError(t, unix.Kill(pid, 0), "sleep %d runs", pid)
	}
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
