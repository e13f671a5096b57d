package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/mounts/quota"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"

	// The test binary is the sandboxes' helper, as sandboxd is; importing
	// the shim installs its init hook.
	_ "github.com/sandboxd/sandboxd/sandbox/shim"
)

// The privileged tests share one Manager, built on first use, because
// building the base venv costs seconds and sessions are cheap. A test that
// restarts, breaks or reconfigures a Manager takes one of its own
// (isolated), so that no test depends on another's order.

// testEnv is one Manager and what it was built from.
type testEnv struct {
	m   *Manager
	cfg Config
}

var (
	// env is the shared Manager; requireRoot sets it.
	env       *testEnv
	sharedErr error
	sharedSet sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.destroy()
	}
	os.Exit(code)
}

// requireRoot skips a test or benchmark that needs namespaces, cgroups
// and mounts when not root, and otherwise makes sure the shared Manager
// exists.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces, cgroups and mounts")
	}
	sharedSet.Do(func() {
		dir, err := os.MkdirTemp("", "sandboxd-test-")
		if err != nil {
			sharedErr = err
			return
		}
		env, sharedErr = newTestEnv(testConfig(dir, fmt.Sprintf("/sandboxd-test-%d", os.Getpid())))
		if sharedErr == nil {
			sharedErr = env.m.BuildBaseEnv(context.Background(), false)
		}
	})
	require.NoError(t, sharedErr, "the shared test manager")
}

// isolated is a Manager of the test's own, with its own state directory and
// cgroup parent, and the shared base envs hard-linked in so that they need
// not be built again. It is destroyed when the test ends.
func isolated(t *testing.T, adjust func(*Config)) *testEnv {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	cfg := testConfig(dir, fmt.Sprintf("/sandboxd-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if adjust != nil {
		adjust(&cfg)
	}
	l := filepath.Join(dir, "envs")
	require.NoError(t, os.MkdirAll(l, 0o711), "envs dir")
	out, err := exec.Command("cp", "-al", env.m.layout.Envs()+"/.", l+"/").CombinedOutput()
	require.NoError(t, err, "link the base envs: %s", out)
	e, err := newTestEnv(cfg)
	require.NoError(t, err, "isolated manager")
	t.Cleanup(e.destroy)
	return e
}

func newTestEnv(cfg Config) (*testEnv, error) {
	m, err := NewManager(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return &testEnv{m: m, cfg: cfg}, nil
}

// crashWith stops the Manager, edits a session's session.json as a daemon
// that died half-way would have left it, and starts a new Manager on the
// same state (with the janitor stopped meanwhile, nothing else writes it).
func (e *testEnv) crashWith(t *testing.T, s Session, edit func(*sessionMeta)) {
	t.Helper()
	e.m.Close()
	dir := e.m.layout.Session(s.UserID, s.ID)
	meta, err := readMeta(dir)
	require.NoError(t, err, "read session.json")
	edit(&meta)
	require.NoError(t, writeMeta(dir, meta), "write session.json")
	m, err := NewManager(context.Background(), e.cfg)
	require.NoError(t, err, "a new manager recovers the state")
	e.m = m
}

// restart replaces the Manager by a new one on the same state, as a
// restarted daemon would be.
func (e *testEnv) restart(t *testing.T) {
	t.Helper()
	e.whileStopped(t, func() {})
}

// whileStopped stops the Manager, runs change on its state as something
// other than the daemon would, and starts a new Manager on it.
func (e *testEnv) whileStopped(t *testing.T, change func()) {
	t.Helper()
	e.m.Close()
	change()
	m, err := NewManager(context.Background(), e.cfg)
	require.NoError(t, err, "a new manager recovers the state")
	e.m = m
}

func testConfig(stateDir, parent string) Config {
	exe, _ := os.Executable()
	return Config{
		StateDir:                stateDir,
		CgroupParent:            parent,
		Helper:                  exe,
		SandboxUID:              10000,
		SandboxGID:              10000,
		UserUIDs:                UIDRange{First: 200000, Count: 1000},
		Python:                  "/usr/bin/python3",
		BasePackages:            envs.DefaultDeclared(),
		DefaultLimits:           Limits{CPUs: 0.5, MemoryMB: 512, Pids: 50, TmpMB: 100},
		MaxLimits:               Limits{CPUs: 2, MemoryMB: 2048, Pids: 512, TmpMB: 512},
		ReadySandboxes:          1,
		MaxSessionsPerUser:      10,
		MaxWorkspaceMB:          1024,
		JanitorInterval:         100 * time.Millisecond,
		ExecTimeout:             30 * time.Second,
		MaxExecTimeout:          120 * time.Second,
		OutputLimit:             1 << 20,
		MaxFileBytes:            64 << 20,
		MaxFilesPerSession:      10000,
		MaxListEntries:          100000,
		MaxProcessesPerSession:  4,
		ProcessBufferBytes:      64 << 10,
		ProcessBufferTotalBytes: 1 << 20,
		KeepExtensions:          []string{".pdf", ".xlsx", ".pptx", ".docx"},
		Logger:                  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Version:                 "test",
	}
}

// destroy deletes every session of the manager, its cgroup parent and its
// state directory.
func (e *testEnv) destroy() {
	ctx := context.Background()
	sessions, _ := e.m.ListSessions(ctx, "")
	for _, s := range sessions {
		_, _ = e.m.DeleteSession(ctx, s.ID, false)
	}
	e.m.Close()
	e.m.mu.Lock()
	users := slices.Collect(maps.Keys(e.m.disks))
	e.m.mu.Unlock()
	for _, id := range users {
		if err := e.m.quota.DetachUser(ctx, id); err != nil {
			fmt.Fprintln(os.Stderr, "detach test user:", err)
		}
	}
	if err := e.m.cg.RemoveParent(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test cgroups:", err)
	}
	_ = os.RemoveAll(e.cfg.StateDir)
}

// session creates a session for user that the test deletes at its end.
func (e *testEnv) session(t *testing.T, user string, limits *Limits) Session {
	t.Helper()
	s, err := e.m.CreateSession(context.Background(), CreateRequest{UserID: user, Limits: limits})
	require.NoError(t, err, "create session for %s", user)
	t.Cleanup(func() {
		_, _ = e.m.DeleteSession(context.Background(), s.ID, false)
	})
	return s
}

// ran is an ExecResult with its output as text, for assertions.
type ran struct {
	ExecResult
	Stdout, Stderr string
}

func asText(r ExecResult) ran {
	return ran{ExecResult: r, Stdout: string(r.Stdout), Stderr: string(r.Stderr)}
}

// run execs a shell command in a session and fails the test on an error.
func (e *testEnv) run(t *testing.T, id, command string, timeout float64) ran {
	t.Helper()
	res, err := e.m.Exec(context.Background(), id, ExecRequest{Command: Command{Shell: command}, Timeout: secs(timeout)})
	require.NoError(t, err, "exec %q", command)
	return asText(res)
}

// filesOf is where a session's files are on the host: in its user's disk
// (also for a session not restored, whose trees the Manager lacks).
func (e *testEnv) filesOf(t testing.TB, s Session) string {
	t.Helper()
	return filepath.Join(filepath.Dir(e.sharedOf(t, s.UserID)), "sessions", s.ID, "files")
}

// treesOf are a live session's trees on the host.
func (e *testEnv) treesOf(t testing.TB, s Session) quota.SessionDirs {
	t.Helper()
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	ss := e.m.sessions[s.ID]
	require.NotNil(t, ss, "session %s is known", s.ID)
	return ss.trees
}

// sharedOf is a user's shared_files on the host.
func (e *testEnv) sharedOf(t testing.TB, userID string) string {
	t.Helper()
	d, err := e.m.disk(userID)
	require.NoError(t, err, "user %s has a disk", userID)
	return d.dirs.SharedFiles
}

// outputsOf is a user's shared_files/outputs on the host.
func (e *testEnv) outputsOf(t testing.TB, userID string) string {
	t.Helper()
	return filepath.Join(e.sharedOf(t, userID), "outputs")
}

// writeQuota replaces a user's quota.json as an operator should: a new
// file renamed over the old one.
func (e *testEnv) writeQuota(t *testing.T, userID, content string) {
	t.Helper()
	u, err := e.m.layout.EnsureUser(userID)
	require.NoError(t, err, "user directory")
	tmp := u.QuotaFile() + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600), "write quota.json")
	require.NoError(t, os.Rename(tmp, u.QuotaFile()), "replace quota.json")
}

// uidOf is the uid the user's commands run as.
func (e *testEnv) uidOf(t *testing.T, userID string) int {
	t.Helper()
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	uid, ok := e.m.userUIDs[userID]
	require.True(t, ok, "user %s has a uid", userID)
	return uid
}

// startSession is a session of the shared Manager.
func startSession(t *testing.T, user string, limits *Limits) Session {
	t.Helper()
	requireRoot(t)
	return env.session(t, user, limits)
}

// run execs a shell command in a session of the shared Manager.
func run(t *testing.T, id, command string, timeout float64) ran {
	t.Helper()
	return env.run(t, id, command, timeout)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// onlyInitLeft checks that the sandbox's PID 1 is soon the only process in
// the session: a command's supervisor reports its end once it killed the
// command's tree, and exits just after.
func onlyInitLeft(t *testing.T, s Session, why string) {
	t.Helper()
	assert.Eventually(t, func() bool {
		pids, err := env.m.cg.Pids(env.m.cg.SessionPath(s.UserID, s.ID))
		return err == nil && len(pids) == 1
	}, 5*time.Second, 10*time.Millisecond, why)
}

// sessionPids lists the processes in a session's cgroup.
func sessionPids(t *testing.T, s Session) []int {
	t.Helper()
	pids, err := env.m.cg.Pids(env.m.cg.SessionPath(s.UserID, s.ID))
	require.NoError(t, err, "list pids of %s", s.ID)
	return pids
}
