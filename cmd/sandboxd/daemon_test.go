package main

// These tests run the real daemon: the test binary itself is sandboxd when
// SANDBOXD_TEST_DAEMON=1 is set (main's init handles libcontainer's "init"
// re-exec and the C shim the sandbox modes, as in the built binary). One
// state directory serves the whole test binary, so the base venv is built
// once; daemons come and go on it, one at a time.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

const (
	// daemonEnv turns the test binary into the daemon.
	daemonEnv = "SANDBOXD_TEST_DAEMON"
	// startTimeout covers the first start, which builds the base venv.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop.
	stopTimeout = 10 * time.Second
	// maxSessions is the per-user quota of every test daemon's config.
	maxSessions = 2
	// outputLimit is the daemon's default cap of each output stream.
	outputLimit = 1 << 20
	// maxDaemonRSS bounds the daemon's peak resident memory.
	maxDaemonRSS = 150 << 20
)

// suite is the state the test binary's daemons share.
var suite struct {
	root   bool
	dir    string // temporary directory holding everything below
	state  string // --state-dir
	socket string // --socket
	parent string // --cgroup-parent, unique to this run
	config string // --config
	// metrics is the TCP address the daemons serve /metrics on.
	metrics string
	// configOwn is the same without ready sandboxes: each session starts
	// its own.
	configOwn string

	mu      sync.Mutex
	cur     *daemon // the daemon tests talk to, if running
	started int     // daemons started so far
	client  *http.Client
}

func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) == "1" {
		os.Exit(run(os.Args[1:], hooks{faults: killPoints(os.Getenv(killPointEnv))}))
	}
	if os.Geteuid() != 0 {
		fmt.Println("sandboxd daemon tests need root (namespaces, cgroups, mounts); each is skipped")
		os.Exit(m.Run())
	}
	if err := setupSuite(); err != nil {
		fmt.Fprintln(os.Stderr, "set up daemon tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := teardownSuite(); err != nil {
		fmt.Fprintln(os.Stderr, "tear down daemon tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func setupSuite() error {
	dir, err := os.MkdirTemp("", "sandboxd-itest-")
	if err != nil {
		return err
	}
	suite.root = true
	suite.dir = dir
	suite.state = filepath.Join(dir, "state")
	suite.socket = filepath.Join(dir, "run", "sandboxd.sock")
	suite.parent = fmt.Sprintf("/sandboxd-itest-%d", os.Getpid())
	suite.config = filepath.Join(dir, "sandboxd.yaml")
	if suite.metrics, err = freeTCPAddress(); err != nil {
		return err
	}
	cfg := fmt.Sprintf("# written by daemon_test.go\nquota:\n  max_sessions: %d\nmetrics_listen: %s\n", maxSessions, suite.metrics)
	if err := os.WriteFile(suite.config, []byte(cfg), 0o644); err != nil {
		return err
	}
	suite.configOwn = filepath.Join(dir, "sandboxd-own.yaml")
	if err := os.WriteFile(suite.configOwn, []byte(cfg+"ready_sandboxes: 0\n"), 0o644); err != nil {
		return err
	}
	suite.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", suite.socket)
		},
		// Each request gets a fresh connection: daemons are restarted
		// under the client's feet.
		DisableKeepAlives: true,
	}}
	return nil
}

// teardownSuite deletes every session through the API, stops the daemon,
// then removes whatever is left under the run's cgroup parent (it is
// unique to this run, so everything in it is ours) and the temp dir.
func teardownSuite() error {
	var errs []error
	suite.mu.Lock()
	started := suite.started
	suite.mu.Unlock()
	if started > 0 {
		d, err := currentDaemon()
		if err != nil {
			errs = append(errs, fmt.Errorf("start a daemon for cleanup: %w", err))
		} else {
			errs = append(errs, deleteAllSessions())
			if err := d.stop(stopTimeout); err != nil {
				errs = append(errs, fmt.Errorf("stop daemon: %w", err))
			}
		}
	}
	for _, pid := range pidsUnderParent(underParent) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, dir := range parentDirs() {
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// The users' disks (loop mode) stay mounted after the daemon: they
	// are the next daemon's.
	errs = append(errs, unmountUnder(suite.dir))
	if err := os.RemoveAll(suite.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func deleteAllSessions() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, body, err := request(ctx, http.MethodGet, "/v1/sessions", "")
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("list sessions: %d %s %v", status, body, err)
	}
	var list api.SessionList
	if err := json.Unmarshal(body, &list); err != nil {
		return err
	}
	var errs []error
	for _, s := range list.Sessions {
		status, body, err := request(ctx, http.MethodDelete, "/v1/sessions/"+s.ID, "")
		if err != nil || status != http.StatusOK {
			errs = append(errs, fmt.Errorf("delete session %s: %d %s %v", s.ID, status, body, err))
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount under dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes dir and the cgroups below it, deepest first.
func removeCgroupTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 50; try++ {
			if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond) // killed processes may still be exiting
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// daemon is one sandboxd process run from the test binary.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's answer, once done is closed
}

// startDaemon starts a daemon on the shared state dir, its environment
// adding env, and waits until its socket answers GET /v1.
func startDaemon(env ...string) (*daemon, error) {
	d, err := spawnDaemon(env...)
	if err != nil {
		return nil, err
	}
	return d, d.ready()
}

// spawnDaemon starts a daemon on the shared state dir, its environment
// adding env, and returns at once.
func spawnDaemon(env ...string) (*daemon, error) {
	return spawnDaemonWith(suite.config, env...)
}

// spawnDaemonWith is spawnDaemon with the configuration file config.
func spawnDaemonWith(config string, env ...string) (*daemon, error) {
	suite.mu.Lock()
	suite.started++
	n := suite.started
	suite.mu.Unlock()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(suite.dir, fmt.Sprintf("daemon-%d.log", n))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the daemon has its own descriptor
	cmd := exec.Command(exe, "--state-dir", suite.state, "--socket", suite.socket,
		"--cgroup-parent", suite.parent, "--config", config)
	cmd.Env = append(append(os.Environ(), daemonEnv+"=1"), env...)
	// A file, not a pipe: Wait must not wait for sandboxes that might
	// hold an inherited descriptor.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A test binary that dies (a -timeout panic) takes its daemon along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// ready waits until the daemon's socket answers GET /v1.
func (d *daemon) ready() error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited while starting (%v); log:\n%s", d.err, d.log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		status, _, err := request(ctx, http.MethodGet, "/v1", "")
		cancel()
		if err == nil && status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("daemon did not answer GET /v1 within %s (last: %d %v); log:\n%s",
				startTimeout, status, err, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) log() string {
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return string(data)
}

// kill is kill -9: the daemon gets no chance to clean anything up.
func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stop sends SIGTERM and waits for the exit, killing the daemon after
// timeout. It returns the exit's error (nil for status 0).
func (d *daemon) stop(timeout time.Duration) error {
	if d.exited() {
		return d.err
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		d.kill()
		return fmt.Errorf("daemon did not exit within %s of SIGTERM", timeout)
	}
}

// currentDaemon returns the running daemon, starting one if there is none.
func currentDaemon() (*daemon, error) {
	suite.mu.Lock()
	cur := suite.cur
	suite.mu.Unlock()
	if cur != nil && !cur.exited() {
		return cur, nil
	}
	d, err := startDaemon()
	if err != nil {
		return nil, err
	}
	suite.mu.Lock()
	suite.cur = d
	suite.mu.Unlock()
	return d, nil
}

func requireRoot(t *testing.T) {
	t.Helper()
	if !suite.root {
		t.Skip("needs root: the daemon creates namespaces, cgroups and mounts")
	}
}

// setup skips without root, makes sure a daemon runs and, should the test
// fail, logs what every daemon started during it wrote.
func setup(t *testing.T) *daemon {
	t.Helper()
	requireRoot(t)
	suite.mu.Lock()
	first := suite.started + 1
	suite.mu.Unlock()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		suite.mu.Lock()
		last := suite.started
		suite.mu.Unlock()
		for n := first - 1; n <= last; n++ {
			if n < 1 {
				continue
			}
			data, _ := os.ReadFile(filepath.Join(suite.dir, fmt.Sprintf("daemon-%d.log", n)))
			t.Logf("daemon-%d.log:\n%s", n, tail(string(data), 60))
		}
	})
	return mustDaemon(t)
}

func mustDaemon(t *testing.T) *daemon {
	t.Helper()
	d, err := currentDaemon()
	require.NoError(t, err, "start sandboxd")
	return d
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// request sends one raw request over the socket and returns the status and
// body.
func request(ctx context.Context, method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sandboxd"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := suite.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// rawRoundTrip sends one request on its own connection the way curl does:
// it reads the answer while the body is still being written, so that an
// answer the daemon gives before reading the whole body (413) is seen even
// when the daemon hangs up on the rest of the body.
func rawRoundTrip(method, path, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, "http://sandboxd"+path, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Close = true
	conn, err := net.DialTimeout("unix", suite.socket, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		return nil, nil, err
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		_ = req.Write(conn) // fails with EPIPE when the daemon stops reading
	}()
	defer func() { conn.Close(); <-written }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// call is request for tests: a transport failure fails the test.
func call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status, data, err := request(ctx, method, path, body)
	require.NoError(t, err, "%s %s", method, path)
	return status, data
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err, "encode %T", v)
	return string(b)
}

// createSession creates a session and deletes it when the test ends, if
// the test has not already.
func createSession(t *testing.T, userID, sessionID string) api.Session {
	t.Helper()
	body := mustJSON(t, api.CreateSessionRequest{UserID: userID, SessionID: sessionID})
	status, data := call(t, http.MethodPost, "/v1/sessions", body)
	require.Equal(t, http.StatusCreated, status, "create session %s for %s: %s", sessionID, userID, data)
	var s api.Session
	require.NoError(t, json.Unmarshal(data, &s), "decode created session %s", data)
	require.Equal(t, sessionID, s.ID, "created session's id")
	t.Cleanup(func() {
		if _, err := currentDaemon(); err != nil {
			t.Errorf("cleanup: no daemon to delete session %s: %v", s.ID, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		status, data, err := request(ctx, http.MethodDelete, "/v1/sessions/"+s.ID, "")
		if err != nil || (status != http.StatusOK && status != http.StatusNotFound) {
			t.Errorf("cleanup: delete session %s: %d %s %v", s.ID, status, data, err)
		}
	})
	return s
}

// execIn runs a shell command in a session; the request must succeed.
func execIn(t *testing.T, sessionID, command string, timeout float64) api.ExecResult {
	t.Helper()
	body := mustJSON(t, api.ExecRequest{Command: command, TimeoutSec: timeout})
	status, data := call(t, http.MethodPost, "/v1/sessions/"+sessionID+"/exec", body)
	require.Equal(t, http.StatusOK, status, "exec %q in %s: %s", command, sessionID, data)
	var res api.ExecResult
	require.NoError(t, json.Unmarshal(data, &res), "decode exec result of %q", command)
	return res
}

// listSessionIDs lists the daemon's sessions.
func listSessionIDs(t *testing.T) []string {
	t.Helper()
	status, data := call(t, http.MethodGet, "/v1/sessions", "")
	require.Equal(t, http.StatusOK, status, "list sessions: %s", data)
	var list api.SessionList
	require.NoError(t, json.Unmarshal(data, &list), "decode session list %s", data)
	ids := []string{}
	for _, s := range list.Sessions {
		ids = append(ids, s.ID)
	}
	return ids
}

// --- host inspection -------------------------------------------------------

// cgroupRoots lists the mountpoints of the host's cgroup hierarchies.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"} // cgroup v2 only
	}
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var roots []string
	for _, e := range entries {
		p, err := filepath.EvalSymlinks(filepath.Join("/sys/fs/cgroup", e.Name()))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() && !slices.Contains(roots, p) {
			roots = append(roots, p)
		}
	}
	return roots
}

// parentDirs lists the run's cgroup parent in every hierarchy it exists in.
func parentDirs() []string {
	var dirs []string
	for _, r := range cgroupRoots() {
		p := filepath.Join(r, suite.parent)
		if _, err := os.Stat(p); err == nil {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// pidsDir is a cgroup's directory in the hierarchy of the pids controller.
func pidsDir(cgPath string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup", cgPath)
	}
	return filepath.Join("/sys/fs/cgroup/pids", cgPath)
}

func sessionCgroup(userID, sessionID string) string {
	return suite.parent + "/user_" + userID + "/" + sessionID
}

// underParent reports whether the cgroup path p is the run's parent or
// below it.
func underParent(p string) bool {
	return p == suite.parent || strings.HasPrefix(p, suite.parent+"/")
}

// The daemon keeps sandboxes started ahead of need (ready_sandboxes): their
// container state is named ready.<id>, their cgroup is under user_.ready.
const (
	readyPrefix = "ready."
	readyUser   = "user_.ready"
)

// inReady reports whether the cgroup path p is a ready sandbox's.
func inReady(p string) bool {
	return strings.HasPrefix(p, suite.parent+"/"+readyUser+"/") || p == suite.parent+"/"+readyUser
}

// sessionsUnderParent reports whether the cgroup path p is below the parent
// and not a ready sandbox's.
func sessionsUnderParent(p string) bool { return underParent(p) && !inReady(p) }

// proc is one live (not zombie) process.
type proc struct {
	pid     int
	cmdline string // arguments joined by spaces
	cgroups []string
}

// processes lists the host's live processes.
func processes() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 {
			continue // gone, a zombie or a kernel thread
		}
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		p := proc{pid: pid, cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))}
		for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			if parts := strings.SplitN(line, ":", 3); len(parts) == 3 {
				p.cgroups = append(p.cgroups, parts[2])
			}
		}
		out = append(out, p)
	}
	return out
}

func (p proc) inCgroup(match func(string) bool) bool {
	return slices.ContainsFunc(p.cgroups, match)
}

// pidsUnderParent lists the live processes in any cgroup below the parent
// for which match holds.
func pidsUnderParent(match func(string) bool) []int {
	var pids []int
	for _, p := range processes() {
		if p.inCgroup(match) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// procsMatching lists the live processes under the parent whose command
// line contains substr.
func procsMatching(substr string) []proc {
	var out []proc
	for _, p := range processes() {
		if strings.Contains(p.cmdline, substr) && p.inCgroup(underParent) {
			out = append(out, p)
		}
	}
	return out
}

// sessionProcs lists the live processes in a session's cgroup.
func sessionProcs(t *testing.T, userID, sessionID string) []proc {
	t.Helper()
	procs, err := readSessionProcs(userID, sessionID)
	require.NoError(t, err, "read cgroup.procs of session %s", sessionID)
	return procs
}

// readSessionProcs is sessionProcs for conditions polled off the test's
// goroutine.
func readSessionProcs(userID, sessionID string) ([]proc, error) {
	data, err := os.ReadFile(filepath.Join(pidsDir(sessionCgroup(userID, sessionID)), "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out = append(out, proc{pid: pid, cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))})
	}
	return out, nil
}

// sandboxInit returns the pid of a session's sandbox init (its reaper).
func sandboxInit(t *testing.T, userID, sessionID string) int {
	t.Helper()
	for _, p := range sessionProcs(t, userID, sessionID) {
		if strings.HasSuffix(p.cmdline, "sandbox-init") {
			return p.pid
		}
	}
	require.Failf(t, "no sandbox init", "session %s has no sandbox-init process in its cgroup", sessionID)
	return 0
}

// cgroupDirsBelowParent lists every directory below the parent in every
// hierarchy but the ready sandboxes'.
func cgroupDirsBelowParent() []string {
	var out []string
	for _, dir := range parentDirs() {
		_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && e.Name() == readyUser && filepath.Dir(p) == dir {
				return filepath.SkipDir
			}
			if err == nil && e.IsDir() && p != dir {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// sessionContainers lists the container state of the sessions, not of the
// ready sandboxes.
func sessionContainers(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(suite.state, "containers"))
	require.NoError(t, err, "list container state")
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), readyPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// diskSnapshot lists the user, session and container directories of the
// state tree.
func diskSnapshot(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"workspaces/*", "workspaces/*/*", "workspaces/*/sessions/*", "workspaces/*/disk/sessions/*", "containers/*"} {
		m, err := filepath.Glob(filepath.Join(suite.state, pattern))
		require.NoError(t, err, "glob %s", pattern)
		for _, p := range m {
			// Ready sandboxes come and go on their own.
			if !strings.HasPrefix(filepath.Base(p), readyPrefix) {
				out = append(out, p)
			}
		}
	}
	// Names with path separators or dots that escape the tree would land
	// next to workspaces/ and containers/.
	top, err := os.ReadDir(suite.state)
	require.NoError(t, err, "list state dir")
	for _, e := range top {
		out = append(out, "state/"+e.Name())
	}
	slices.Sort(out)
	return out
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err, "read status of daemon %d", pid)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err, "parse VmHWM %q", line)
			return kb << 10
		}
	}
	require.Fail(t, "no VmHWM", "/proc/%d/status has no VmHWM line", pid)
	return 0
}

// --- tests -------------------------------------------------------------------

func TestKill9RestartAdoptsSessions(t *testing.T) {
	d := setup(t)
	require.Empty(t, listSessionIDs(t), "precondition: no session left by another test")
	sessions := []struct{ user, id string }{
		{"crash-u1", "crash-a"},
		{"crash-u1", "crash-b"},
		{"crash-u2", "crash-c"},
	}
	initPids := map[string]int{}
	for _, s := range sessions {
		createSession(t, s.user, s.id)
		res := execIn(t, s.id, fmt.Sprintf(
			"echo ws-%[1]s > /workspace/note.txt && echo venv-%[1]s > /opt/venv/marker && echo tmp-%[1]s > /tmp/alive", s.id), 30)
		require.Equal(t, 0, res.ExitCode, "write state into %s: stderr %q", s.id, res.Stderr)
		initPids[s.id] = sandboxInit(t, s.user, s.id)
	}

	// A command still running when the daemon dies.
	long := sessions[0]
	longDone := make(chan error, 1)
	go func() {
		body := `{"command":"sleep 1000","timeout":600}`
		status, data, err := request(context.Background(), http.MethodPost, "/v1/sessions/"+long.id+"/exec", body)
		if err == nil {
			err = fmt.Errorf("exec answered %d %s although the daemon was killed", status, data)
			longDone <- err
			return
		}
		longDone <- nil
	}()
	require.Eventually(t, func() bool { return len(procsMatching("sleep 1000")) > 0 },
		10*time.Second, 20*time.Millisecond, "sleep 1000 never started in %s", long.id)

	d.kill()
	select {
	case err := <-longDone:
		assert.NoError(t, err, "the exec in flight must fail with the daemon")
	case <-time.After(10 * time.Second):
		require.Fail(t, "exec in flight hangs", "the exec request did not end within 10 s of kill -9")
	}
	for _, s := range sessions {
		assert.NoError(t, syscall.Kill(initPids[s.id], 0), "sandbox of %s must outlive the daemon", s.id)
	}

	d2 := mustDaemon(t)
	require.NotEqual(t, d.pid(), d2.pid(), "a new daemon serves")
	ids := listSessionIDs(t)
	assert.ElementsMatch(t, []string{"crash-a", "crash-b", "crash-c"}, ids, "every session is listed after the restart")

	for _, s := range sessions {
		checks := []struct{ command, want string }{
			{"cat /workspace/note.txt", "ws-" + s.id + "\n"},
			{"cat /opt/venv/marker", "venv-" + s.id + "\n"},
			// /tmp is the sandbox's own tmpfs: only the adopted sandbox has it.
			{"cat /tmp/alive", "tmp-" + s.id + "\n"},
		}
		for _, c := range checks {
			res := execIn(t, s.id, c.command, 30)
			assert.Equal(t, 0, res.ExitCode, "%s in %s after the restart: stderr %q", c.command, s.id, res.Stderr)
			assert.Equal(t, c.want, res.Stdout, "%s in %s after the restart", c.command, s.id)
		}
		assert.Equal(t, initPids[s.id], sandboxInit(t, s.user, s.id), "session %s keeps its sandbox (same init pid)", s.id)
	}
	assert.Eventually(t, func() bool { return len(procsMatching("sleep 1000")) == 0 },
		5*time.Second, 20*time.Millisecond, "the crashed run's sleep 1000 (and its shell and supervisor) must be killed")
	assert.Eventually(t, func() bool {
		procs, err := readSessionProcs(long.user, long.id)
		return err == nil && len(procs) == 1
	},
		5*time.Second, 20*time.Millisecond, "only the sandbox init is left in %s's cgroup", long.id)

	for _, s := range sessions {
		status, data := call(t, http.MethodDelete, "/v1/sessions/"+s.id, "")
		require.Equal(t, http.StatusOK, status, "delete %s: %s", s.id, data)
	}
	for _, s := range sessions {
		status, data := call(t, http.MethodGet, "/v1/sessions/"+s.id, "")
		assert.Equal(t, http.StatusNotFound, status, "deleted session %s: %s", s.id, data)
		assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+s.user, "sessions", s.id), "session dir of %s", s.id)
		assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+s.user, "disk", "sessions", s.id), "session disk of %s", s.id)
		assert.NoDirExists(t, filepath.Join(suite.state, "containers", s.id), "container state of %s", s.id)
	}
	assert.Empty(t, listSessionIDs(t), "no session is listed after deleting all")
	assert.Empty(t, pidsUnderParent(sessionsUnderParent), "no process is left in any cgroup under %s but the ready sandboxes'", suite.parent)
	// A user's cgroup may outlive the delete's answer by an RCU grace period.
	assert.Eventually(t, func() bool { return len(cgroupDirsBelowParent()) == 0 },
		5*time.Second, 10*time.Millisecond, "no session or user cgroup is left under %s in any hierarchy", suite.parent)
	assert.Empty(t, sessionContainers(t), "no container state is left but the ready sandboxes'")
}

func TestOutputIsCappedAndDaemonMemoryBounded(t *testing.T) {
	d := setup(t)
	createSession(t, "flood-u", "flood-s")
	// 100 MiB on stdout and 50 MiB on stderr at the same time.
	res := execIn(t, "flood-s",
		`(head -c 50M /dev/zero | tr '\0' b) >&2 & head -c 100M /dev/zero | tr '\0' a; wait`, 120)
	assert.Equal(t, 0, res.ExitCode, "the flood ends normally; stderr starts %.200q", res.Stderr)
	assert.False(t, res.TimedOut, "the flood must not time out")
	assert.Len(t, res.Stdout, outputLimit, "stdout is cut at exactly the cap")
	assert.True(t, res.StdoutTruncated, "stdout_truncated")
	assert.Equal(t, strings.Repeat("a", outputLimit), res.Stdout, "stdout keeps the first bytes")
	assert.Len(t, res.Stderr, outputLimit, "stderr is cut at exactly the cap")
	assert.True(t, res.StderrTruncated, "stderr_truncated")

	small := execIn(t, "flood-s", "head -c 1000 /dev/zero | tr '\\0' c", 30)
	assert.Len(t, small.Stdout, 1000, "output under the cap is whole")
	assert.False(t, small.StdoutTruncated, "output under the cap is not marked truncated")

	hwm := vmHWM(t, d.pid())
	t.Logf("daemon peak RSS (VmHWM) after 150 MiB of output: %.1f MiB", float64(hwm)/(1<<20))
	assert.Less(t, hwm, int64(maxDaemonRSS), "daemon peak RSS stays under %d MiB", maxDaemonRSS>>20)
}

func TestBadRequestsGetClear4xx(t *testing.T) {
	setup(t)
	createSession(t, "badreq-u", "badreq-s")
	createSession(t, "quota-u", "quota-1")
	createSession(t, "quota-u", "quota-2")

	long := strings.Repeat("a", 65)
	huge := `{"user_id":"u1","session_id":"` + strings.Repeat("a", 9<<20) + `"}`
	hugeExec := `{"command":"cat","stdin":"` + strings.Repeat("a", 9<<20) + `"}`
	create := func(userID, sessionID string) string {
		return mustJSON(t, api.CreateSessionRequest{UserID: userID, SessionID: sessionID})
	}
	const (
		bad        = http.StatusBadRequest
		invalid    = api.CodeInvalidArgument
		sessions   = "/v1/sessions"
		badreqExec = "/v1/sessions/badreq-s/exec"
	)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"user id with dot-dot", http.MethodPost, sessions, create("../x", ""), bad, invalid},
		{"user id with slash", http.MethodPost, sessions, create("a/b", ""), bad, invalid},
		{"empty user id", http.MethodPost, sessions, create("", ""), bad, invalid},
		{"user id missing", http.MethodPost, sessions, `{}`, bad, invalid},
		{"user id with NUL", http.MethodPost, sessions, `{"user_id":"a\u0000b"}`, bad, invalid},
		{"user id of 65 chars", http.MethodPost, sessions, create(long, ""), bad, invalid},
		{"hidden user id", http.MethodPost, sessions, create(".x", ""), bad, invalid},
		{"session id with dot-dot", http.MethodPost, sessions, create("bad-u", "../x"), bad, invalid},
		{"session id dot-dot", http.MethodPost, sessions, create("bad-u", ".."), bad, invalid},
		{"session id with slash", http.MethodPost, sessions, create("bad-u", "a/b"), bad, invalid},
		{"session id with NUL", http.MethodPost, sessions, `{"user_id":"bad-u","session_id":"a\u0000b"}`, bad, invalid},
		{"session id of 65 chars", http.MethodPost, sessions, create("bad-u", long), bad, invalid},
		{"malformed JSON", http.MethodPost, sessions, `{"user_id": "bad-u"`, bad, invalid},
		{"not an object", http.MethodPost, sessions, `["bad-u"]`, bad, invalid},
		{"trailing data", http.MethodPost, sessions, `{"user_id":"bad-u"} {}`, bad, invalid},
		{"empty body", http.MethodPost, sessions, ``, bad, invalid},
		{"unknown field", http.MethodPost, sessions, `{"user_id":"bad-u","colour":"red"}`, bad, invalid},
		{"unknown limit", http.MethodPost, sessions, `{"user_id":"bad-u","limits":{"gpus":1}}`, bad, invalid},
		{"negative limit", http.MethodPost, sessions, `{"user_id":"bad-u","limits":{"memory_mb":-1}}`, bad, invalid},
		{"body over the limit", http.MethodPost, sessions, huge, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		{"duplicate session id", http.MethodPost, sessions, create("badreq-u", "badreq-s"), http.StatusConflict, api.CodeAlreadyExists},
		{"duplicate session id of another user", http.MethodPost, sessions, create("bad-u", "badreq-s"), http.StatusConflict, api.CodeAlreadyExists},
		{"user over max sessions", http.MethodPost, sessions, create("quota-u", "quota-3"), http.StatusTooManyRequests, api.CodeQuotaExceeded},
		{"list with bad user id", http.MethodGet, sessions + "?user_id=..%2Fx", "", bad, invalid},
		{"get missing session", http.MethodGet, sessions + "/nosuch", "", http.StatusNotFound, api.CodeNotFound},
		{"delete missing session", http.MethodDelete, sessions + "/nosuch", "", http.StatusNotFound, api.CodeNotFound},
		{"delete with bad keep_files", http.MethodDelete, sessions + "/badreq-s?keep_files=maybe", "", bad, invalid},
		{"exec in missing session", http.MethodPost, sessions + "/nosuch/exec", `{"command":"true"}`, http.StatusNotFound, api.CodeNotFound},
		{"exec with argv and command", http.MethodPost, badreqExec, `{"argv":["true"],"command":"true"}`, bad, invalid},
		{"exec with neither argv nor command", http.MethodPost, badreqExec, `{"cwd":"/workspace"}`, bad, invalid},
		{"exec with negative timeout", http.MethodPost, badreqExec, `{"command":"true","timeout":-1}`, bad, invalid},
		{"exec with unknown field", http.MethodPost, badreqExec, `{"command":"true","shell":"bash"}`, bad, invalid},
		{"exec body over the limit", http.MethodPost, badreqExec, hugeExec, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		{"wrong method", http.MethodPut, sessions, `{}`, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"unknown path", http.MethodGet, "/v2", "", http.StatusNotFound, api.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := diskSnapshot(t)
			resp, data, err := rawRoundTrip(tc.method, tc.path, tc.body)
			require.NoError(t, err, "%s %s", tc.method, tc.path)

			assert.Equal(t, tc.status, resp.StatusCode, "status; body %s", data)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "an error is JSON")
			var envelope struct {
				Error *string `json:"error"`
				Code  *string `json:"code"`
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if assert.NoError(t, dec.Decode(&envelope), "body is exactly {error, code}: %s", data) &&
				assert.NotNil(t, envelope.Error, "body has \"error\": %s", data) &&
				assert.NotNil(t, envelope.Code, "body has \"code\": %s", data) {
				assert.NotEmpty(t, *envelope.Error, "error message")
				assert.Equal(t, tc.code, *envelope.Code, "error code; message %q", *envelope.Error)
			}
			assert.Equal(t, before, diskSnapshot(t), "a refused request creates and removes nothing on disk")
		})
	}
	assert.ElementsMatch(t, []string{"badreq-s", "quota-1", "quota-2"}, listSessionIDs(t),
		"the refused requests created no session")
	for _, user := range []string{"..", "a", ".x", "bad-u", long} {
		assert.NoDirExists(t, filepath.Join(suite.state, "workspaces", "user_"+user), "no user dir for %q", user)
	}
}

// TestQuickstartFlow is README.md's "Try it", request for request.
func TestQuickstartFlow(t *testing.T) {
	setup(t)
	status, data := call(t, http.MethodPost, "/v1/sessions", `{"user_id": "alice", "session_id": "chat1"}`)
	require.Equal(t, http.StatusCreated, status, "create: %s", data)
	t.Cleanup(func() { call(t, http.MethodDelete, "/v1/sessions/chat1", "") })
	var s api.Session
	require.NoError(t, json.Unmarshal(data, &s), "decode session %s", data)
	assert.Equal(t, "chat1", s.ID, "id")
	assert.Equal(t, "alice", s.UserID, "user_id")
	assert.Equal(t, "running", s.Status, "status")
	assert.Equal(t, "/workspace", s.Workspace, "workspace")

	status, data = call(t, http.MethodPost, "/v1/sessions/chat1/exec",
		`{"command": "python3 -c \"import sys; print(sys.prefix)\""}`)
	require.Equal(t, http.StatusOK, status, "exec: %s", data)
	var res api.ExecResult
	require.NoError(t, json.Unmarshal(data, &res), "decode result %s", data)
	assert.Equal(t, 0, res.ExitCode, "exit code; stderr %q", res.Stderr)
	assert.Equal(t, "/opt/venv\n", res.Stdout, "python3 runs in the session's venv")
	assert.False(t, res.TimedOut, "timed_out")

	status, data = call(t, http.MethodDelete, "/v1/sessions/chat1?keep_files=true", "")
	assert.Equal(t, http.StatusOK, status, "delete: %s", data)
	assert.JSONEq(t, `{"id":"chat1","kept_files":[],"not_kept":[]}`, string(data), "delete answer (no documents to keep)")
	status, data = call(t, http.MethodGet, "/v1/sessions/chat1", "")
	assert.Equal(t, http.StatusNotFound, status, "the deleted session is gone: %s", data)
}

func TestGracefulStopKeepsSessions(t *testing.T) {
	d := setup(t)
	createSession(t, "graceful-u", "graceful-s")
	res := execIn(t, "graceful-s", "echo kept > /workspace/kept.txt && echo tmp > /tmp/alive", 30)
	require.Equal(t, 0, res.ExitCode, "write state: stderr %q", res.Stderr)
	initPid := sandboxInit(t, "graceful-u", "graceful-s")

	start := time.Now()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM), "SIGTERM the daemon")
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		d.kill()
		require.Fail(t, "slow stop", "the daemon did not exit within %s of SIGTERM", stopTimeout)
	}
	t.Logf("daemon exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	assert.NoError(t, d.err, "the daemon exits with status 0 on SIGTERM")
	assert.NoFileExists(t, suite.socket, "the socket is removed on a graceful stop")
	assert.NoError(t, syscall.Kill(initPid, 0), "the session's sandbox outlives the daemon")

	mustDaemon(t)
	status, data := call(t, http.MethodGet, "/v1/sessions/graceful-s", "")
	require.Equal(t, http.StatusOK, status, "the new daemon knows the session: %s", data)
	var s api.Session
	require.NoError(t, json.Unmarshal(data, &s), "decode session %s", data)
	assert.Equal(t, "running", s.Status, "adopted session's status")
	res = execIn(t, "graceful-s", "cat /workspace/kept.txt /tmp/alive", 30)
	assert.Equal(t, 0, res.ExitCode, "exec in the adopted session: stderr %q", res.Stderr)
	assert.Equal(t, "kept\ntmp\n", res.Stdout, "workspace and /tmp survive the restart")
	assert.Equal(t, initPid, sandboxInit(t, "graceful-u", "graceful-s"), "the same sandbox is adopted")
}
