package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"

	// The test binary is the sandboxes' helper, as sandboxd is.
	_ "github.com/sandboxd/sandboxd/sandbox/shim"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
	runtime.LockOSThread()
}

// testEnv is one Manager shared by the package's tests: building the base
// venv costs seconds, and sessions are cheap.
type testEnv struct {
	m      *Manager
	cfg    Config
	parent string
}

var env *testEnv

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("sandbox tests need root (namespaces, cgroups, mounts); each is skipped")
		os.Exit(m.Run())
	}
	os.Exit(runWithEnv(m))
}

func runWithEnv(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sandboxd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg := testConfig(dir, fmt.Sprintf("/sandboxd-test-%d", os.Getpid()))
	mgr, err := NewManager(context.Background(), cfg)
	if err == nil {
		err = mgr.BuildBaseEnv(context.Background(), false)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test manager:", err)
		return 1
	}
	env = &testEnv{m: mgr, cfg: cfg, parent: cfg.CgroupParent}
	code := m.Run()
	env.cleanup()
	return code
}

func testConfig(stateDir, parent string) Config {
	exe, _ := os.Executable()
	return Config{
		StateDir:               stateDir,
		CgroupParent:           parent,
		Helper:                 exe,
		SandboxUID:             10000,
		SandboxGID:             10000,
		Python:                 "/usr/bin/python3",
		DefaultLimits:          api.Limits{CPUs: 0.5, MemoryMB: 512, Pids: 50, TmpMB: 100},
		MaxLimits:              api.Limits{CPUs: 2, MemoryMB: 2048, Pids: 512, TmpMB: 512},
		MaxSessionsPerUser:     10,
		MaxWorkspaceMB:         1024,
		ExecTimeout:            30 * time.Second,
		MaxExecTimeout:         120 * time.Second,
		OutputLimit:            1 << 20,
		MaxFileBytes:           64 << 20,
		MaxFilesPerSession:     10000,
		MaxListEntries:         100000,
		MaxProcessesPerSession: 4,
		ProcessBufferBytes:     64 << 10,
		KeepExtensions:         []string{".pdf", ".xlsx", ".pptx", ".docx"},
		Logger:                 slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Version:                "test",
	}
}

// cleanup deletes what the tests left and the test's cgroup parent.
func (e *testEnv) cleanup() {
	ctx := context.Background()
	sessions, _ := e.m.ListSessions(ctx, "")
	for _, s := range sessions {
		_, _ = e.m.DeleteSession(ctx, s.ID, false)
	}
	e.m.Close()
	if err := e.m.cg.RemoveParent(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test cgroups:", err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("needs root: creates namespaces, cgroups and mounts")
	}
}

// newSession creates a session for user that the test deletes at its end.
func newSession(t *testing.T, user string, limits *api.Limits) api.Session {
	t.Helper()
	requireRoot(t)
	s, err := env.m.CreateSession(context.Background(), api.CreateSessionRequest{UserID: user, Limits: limits})
	require.NoError(t, err, "create session for %s", user)
	t.Cleanup(func() {
		_, _ = env.m.DeleteSession(context.Background(), s.ID, false)
	})
	return s
}

// run execs a shell command in a session and fails the test on an API error.
func run(t *testing.T, id, command string, timeout float64) api.ExecResult {
	t.Helper()
	res, err := env.m.Exec(context.Background(), id, api.ExecRequest{Command: command, TimeoutSec: timeout})
	require.NoError(t, err, "exec %q", command)
	return res
}

// sessionPids lists the processes in a session's cgroup.
func sessionPids(t *testing.T, s api.Session) []int {
	t.Helper()
	pids, err := env.m.cg.Pids(env.m.cg.SessionPath(s.UserID, s.ID))
	require.NoError(t, err, "list pids of %s", s.ID)
	return pids
}
