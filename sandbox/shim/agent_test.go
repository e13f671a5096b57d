package shim

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

var _ = unix.EPERM
