package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	occgroups "github.com/opencontainers/cgroups"
	ocmanager "github.com/opencontainers/cgroups/manager"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// helperEnv makes the test binary a worker process instead of running
// tests; see TestMain.
const helperEnv = "CGROUP_TEST_HELPER"

// TestMain turns the test binary into a worker when helperEnv is set. A
// worker waits for one byte on stdin (the test places it in its cgroup
// first, as the daemon holds a command's supervisor), says "ready" on
// stdout once its work is done or under way, and then blocks until stdin
// closes or it is killed.
func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(worker(role, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

func worker(role, arg string) int {
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadByte(); err != nil {
		return 2
	}
	n, _ := strconv.Atoi(arg)
	switch role {
	case "idle":
	case "burn": // spin for n ms of this process's own CPU time
		for cpuTime() < time.Duration(n)*time.Millisecond {
			spin()
		}
	case "spin": // spin for ever
		fmt.Println("ready")
		for {
			spin()
		}
	case "sleep": // for ever, whatever happens to stdin
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "hog": // touch n MiB and keep it
		hog := make([]byte, n*mib)
		for i := 0; i < len(hog); i += 4096 {
			hog[i] = 1
		}
		defer runtime.KeepAlive(hog)
	case "tree": // start n sleeping children, which inherit the cgroup
		for range n {
			c := exec.Command(os.Args[0], "0")
			c.Env = append(os.Environ(), helperEnv+"=sleep")
			c.Stdin = strings.NewReader("g")
			if err := c.Start(); err != nil {
				return 3
			}
		}
	default:
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, in)
	return 0
}

func spin() {
	x := 0
	for i := range 1 << 20 {
		x += i
	}
	_ = x
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// worker is one helper process, held before its work until released.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startWorker starts a held worker of the given role; attr, if set, is
// its SysProcAttr (to clone it into a cgroup). It is killed at the end of
// the test.
func startWorker(t testing.TB, role string, arg int, attr *syscall.SysProcAttr) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], strconv.Itoa(arg))
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err, "stdin pipe")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err, "stdout pipe")
	require.NoError(t, cmd.Start(), "start %s worker", role)
	w := &workerProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return w
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// release lets the worker start its work.
func (w *workerProc) release(t testing.TB) {
	t.Helper()
	_, err := w.stdin.Write([]byte("g"))
	require.NoError(t, err, "release worker %d", w.pid())
}

// ready waits for the worker to say its work is done or under way; false
// if it died first.
func (w *workerProc) ready() bool {
	line, err := w.out.ReadString('\n')
	return err == nil && line == "ready\n"
}

// finish closes the worker's stdin and collects it.
func (w *workerProc) finish(t testing.TB) {
	t.Helper()
	require.NoError(t, w.stdin.Close(), "close worker stdin")
	require.NoError(t, w.cmd.Wait(), "worker %d exits cleanly", w.pid())
}

// requireRoot skips a test that needs to create cgroups.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
}

// testParent is a cgroup parent of the test's own.
func testParent(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("/sandboxd-cgtest-%d-%s", os.Getpid(), name)
}

// newTestManager returns a Manager on a parent of the test's own, whose
// tree is removed (and checked gone from every hierarchy) at the end.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	requireRoot(t)
	m, err := New(testParent(t))
	require.NoError(t, err, "new manager")
	cleanupParent(t, m)
	return m
}

func cleanupParent(t testing.TB, m *Manager) {
	t.Cleanup(func() {
		require.NoError(t, m.RemoveParent(), "remove the test's cgroup tree")
		for _, dir := range m.Dirs(m.Parent()) {
			require.NoDirExists(t, dir, "test cgroup removed")
		}
	})
}

// sessionLimits are a session's limits, set as libcontainer sets them.
type sessionLimits struct {
	memoryBytes int64
	cpuQuota    int64 // µs per 100 ms
	pids        int64
}

// testSession is a session cgroup as libcontainer makes it.
type testSession struct {
	path string
	// init is the sandbox's PID 1.
	init *workerProc
	// cg is libcontainer's cgroup manager for the session.
	cg occgroups.Manager
}

// newSession creates a session cgroup the way libcontainer does
// (opencontainers/cgroups, every hierarchy, the limits set) and puts an
// idle worker in it as the sandbox's PID 1.
func newSession(t testing.TB, m *Manager, user, id string, l sessionLimits) *testSession {
	t.Helper()
	p := m.SessionPath(user, id)
	res := &occgroups.Resources{SkipDevices: true, Memory: l.memoryBytes, CpuQuota: l.cpuQuota, CpuPeriod: 100_000}
	if l.pids > 0 {
		res.PidsLimit = &l.pids
	}
	if l.memoryBytes > 0 && m.Mode() != ModeV2 && swapAccounted() {
		res.MemorySwap = l.memoryBytes
	}
	if l.cpuQuota == 0 {
		res.CpuPeriod = 0
	}
	cg, err := ocmanager.New(&occgroups.Cgroup{Path: p, Resources: res})
	require.NoError(t, err, "libcontainer's cgroup manager for %s", p)
	init := startWorker(t, "idle", 0, nil)
	require.NoError(t, cg.Apply(init.pid()), "create session %s", p)
	require.NoError(t, cg.Set(res), "limit session %s", p)
	require.NoError(t, m.PrepareSession(p, init.pid()), "prepare session %s", p)
	init.release(t)
	require.True(t, init.ready(), "session init runs")
	return &testSession{path: p, init: init, cg: cg}
}

// runIn starts a held worker as a command of the session in exec e and
// releases it. In the daemon the sandbox's PID 1 forks a command's
// supervisor, which so starts in the session's cgroups, and then into e
// (cloned into it on v2, moved into it elsewhere); a worker here is the
// test's child, so it joins the session first where it is not cloned.
func runIn(t testing.TB, s *testSession, e *Exec, role string, arg int) *workerProc {
	t.Helper()
	w := startWorker(t, role, arg, cloneInto(e))
	if e.Dir() == nil {
		require.NoError(t, s.cg.Apply(w.pid()), "worker joins session %s", s.path)
		require.NoError(t, e.AddProc(w.pid()), "place worker in %s", e.Path())
	}
	w.release(t)
	return w
}

func swapAccounted() bool {
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// eventually polls cond every millisecond until it holds or the deadline
// passes; it is the tests' only wait, always bounded.
func eventually(t testing.TB, within time.Duration, cond func() (bool, error), msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		require.NoError(t, err, append([]any{msg}, args...)...)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			require.Fail(t, fmt.Sprintf(msg, args...), "not within %s", within)
		}
		time.Sleep(time.Millisecond)
	}
}

// alive reports whether pid still exists as a process that is not a
// zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
