package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
)

// fakeBackend knows session "s1" and records the last request of each kind.
// Exec of argv ["true"] succeeds quietly; anything else exits 3 with
// output, timed out and truncated.
type fakeBackend struct {
	create api.CreateSessionRequest
	user   string
	exec   api.ExecRequest
	keep   bool
}

var s1 = api.Session{ID: "s1", UserID: "u1", Status: "running", Workspace: "/workspace"}

func (f *fakeBackend) Info(context.Context) api.Info {
	return api.Info{Version: "test", APIVersion: api.Version}
}

func (f *fakeBackend) CreateSession(_ context.Context, req api.CreateSessionRequest) (api.Session, error) {
	f.create = req
	return api.Session{ID: req.SessionID, UserID: req.UserID, Status: "running"}, nil
}

func (f *fakeBackend) ListSessions(_ context.Context, userID string) ([]api.Session, error) {
	f.user = userID
	return []api.Session{s1}, nil
}

func (f *fakeBackend) GetSession(_ context.Context, id string) (api.Session, error) {
	if id != s1.ID {
		return api.Session{}, fmt.Errorf("session %q: %w", id, api.ErrNotFound)
	}
	return s1, nil
}

func (f *fakeBackend) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	if _, err := f.GetSession(ctx, id); err != nil {
		return api.ExecResult{}, err
	}
	f.exec = req
	if len(req.Argv) == 1 && req.Argv[0] == "true" {
		return api.ExecResult{}, nil
	}
	return api.ExecResult{ExitCode: 3, Stdout: "out\n", Stderr: "err\n", TimedOut: true, StdoutTruncated: true}, nil
}

func (f *fakeBackend) DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error) {
	if _, err := f.GetSession(ctx, id); err != nil {
		return api.DeleteSessionResult{}, err
	}
	f.keep = keepFiles
	return api.DeleteSessionResult{ID: id, KeptFiles: []string{}}, nil
}

func startServer(t *testing.T) (string, *fakeBackend) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx") // short: socket paths must fit sun_path
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")

	fb := &fakeBackend{}
	srv := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on %s", path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
		assert.NoError(t, <-served, "serve")
	})
	return path, fb
}

type outcome struct {
	code           int
	stdout, stderr string
}

func runCLI(socket, stdin string, args ...string) outcome {
	var out, errOut bytes.Buffer
	std := stdio{in: strings.NewReader(stdin), out: &out, err: &errOut}
	code := run(context.Background(), append([]string{"--socket", socket}, args...), std, func(string) string { return "" })
	return outcome{code: code, stdout: out.String(), stderr: errOut.String()}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
		check      func(t *testing.T, fb *fakeBackend)
	}{
		{name: "info", args: []string{"info"}, wantStdout: `"version": "test"`},
		{
			name: "create", args: []string{"session", "create", "--user", "u1", "--id", "s9", "--cpus", "0.5", "--memory-mb", "256", "--pids", "64", "--tmp-mb", "32"},
			wantStdout: `"id": "s9"`,
			check: func(t *testing.T, fb *fakeBackend) {
				assert.Equal(t, api.CreateSessionRequest{UserID: "u1", SessionID: "s9", Limits: &api.Limits{CPUs: 0.5, MemoryMB: 256, Pids: 64, TmpMB: 32}},
					fb.create, "request built from the flags")
			},
		},
		{
			name: "create with default limits", args: []string{"session", "create", "--user", "u1"},
			check: func(t *testing.T, fb *fakeBackend) {
				assert.Nil(t, fb.create.Limits, "no limit flags, no limits sent")
			},
		},
		{
			name: "ls", args: []string{"session", "ls", "--user", "u1"}, wantStdout: `"sessions": [`,
			check: func(t *testing.T, fb *fakeBackend) { assert.Equal(t, "u1", fb.user, "user filter sent") },
		},
		{name: "get", args: []string{"session", "get", "s1"}, wantStdout: `"workspace": "/workspace"`},
		{
			name: "rm keeping files", args: []string{"session", "rm", "--keep-files", "s1"}, wantStdout: `"kept_files": []`,
			check: func(t *testing.T, fb *fakeBackend) { assert.True(t, fb.keep, "--keep-files sent") },
		},
		{name: "get missing", args: []string{"session", "get", "nope"}, wantCode: 1, wantStderr: `session "nope": not found`},
		{
			name: "exec argv", args: []string{"exec", "--timeout", "5", "--cwd", "/w", "--env", "A=1", "--env", "B=x=y", "--stdin-file", "-", "s1", "--", "cat", "-n"},
			stdin: "input", wantCode: 3, wantStdout: "out\n", wantStderr: "err\nsandboxctl: the command timed out",
			check: func(t *testing.T, fb *fakeBackend) {
				assert.Equal(t, api.ExecRequest{Argv: []string{"cat", "-n"}, Cwd: "/w", Env: map[string]string{"A": "1", "B": "x=y"}, Stdin: "input", TimeoutSec: 5},
					fb.exec, "request built from the flags")
			},
		},
		{name: "exec notes truncation", args: []string{"exec", "s1", "--", "yes"}, wantCode: 3, wantStderr: "sandboxctl: stdout was truncated"},
		{
			name: "exec command after the id", args: []string{"exec", "s1", "-c", "echo hi | wc"}, wantCode: 3,
			check: func(t *testing.T, fb *fakeBackend) {
				assert.Equal(t, api.ExecRequest{Command: "echo hi | wc"}, fb.exec, "-c after the ID is the command")
			},
		},
		{name: "exec success", args: []string{"exec", "s1", "--", "true"}},
		{name: "exec in missing session", args: []string{"exec", "nope", "--", "true"}, wantCode: 1, wantStderr: "not found"},
		{name: "exec without command", args: []string{"exec", "s1"}, wantCode: 2, wantStderr: "either -- ARGV... or -c"},
		{name: "exec with both", args: []string{"exec", "s1", "-c", "x", "--", "y"}, wantCode: 2, wantStderr: "either -- ARGV... or -c"},
		{name: "exec bad env", args: []string{"exec", "--env", "NOEQUALS", "s1", "--", "true"}, wantCode: 2, wantStderr: "want K=V"},
		{name: "create without user", args: []string{"session", "create"}, wantCode: 2, wantStderr: "--user is required"},
		{name: "get without id", args: []string{"session", "get"}, wantCode: 2, wantStderr: "one session ID"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "unknown session command", args: []string{"session", "zap"}, wantCode: 2, wantStderr: `unknown session command "zap"`},
		{name: "unknown flag", args: []string{"session", "ls", "--colour"}, wantCode: 2, wantStderr: "flag provided but not defined: -colour"},
		{name: "no command", args: nil, wantCode: 2, wantStderr: "missing command"},
		{name: "top help", args: []string{"--help"}, wantStderr: "-socket"},
		{name: "session help", args: []string{"session", "--help"}, wantStderr: "rm [--keep-files] ID"},
		{name: "create help", args: []string{"session", "create", "--help"}, wantStderr: "-memory-mb"},
		{name: "exec help", args: []string{"exec", "--help"}, wantStderr: "-stdin-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			got := runCLI(socket, tt.stdin, tt.args...)
			assert.Equal(t, tt.wantCode, got.code, "exit status; stderr: %s", got.stderr)
			assert.Contains(t, got.stdout, tt.wantStdout, "stdout")
			assert.Contains(t, got.stderr, tt.wantStderr, "stderr")
			if tt.check != nil {
				tt.check(t, fb)
			}
		})
	}
}

func TestSessionOutputIsJSON(t *testing.T) {
	socket, _ := startServer(t)
	got := runCLI(socket, "", "session", "get", "s1")
	require.Equal(t, 0, got.code, "exit status; stderr: %s", got.stderr)
	var sess api.Session
	require.NoError(t, json.Unmarshal([]byte(got.stdout), &sess), "stdout is a JSON session")
	assert.Equal(t, s1, sess, "printed session")
	assert.Contains(t, got.stdout, "\n  ", "JSON is indented")
}

func TestDefaultSocket(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SANDBOXD_SOCKET" {
				return v
			}
			return ""
		}
	}
	t.Chdir(t.TempDir())
	assert.Equal(t, "/x/api.sock", defaultSocket(env("/x/api.sock")), "$SANDBOXD_SOCKET wins")
	assert.Equal(t, "/run/sandboxd.sock", defaultSocket(env("")), "installed socket without a development one")

	require.NoError(t, os.MkdirAll("var/run", 0o755), "make var/run")
	require.NoError(t, os.WriteFile("var/run/sandboxd.sock", nil, 0o600), "stand-in for the development socket")
	assert.Equal(t, "./var/run/sandboxd.sock", defaultSocket(env("")), "development socket when it exists")
	assert.Equal(t, "/x/api.sock", defaultSocket(env("/x/api.sock")), "$SANDBOXD_SOCKET still wins")
}
