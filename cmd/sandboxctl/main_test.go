package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// s1 is the fake's one session, as the wire has it.
var s1 = api.Session{
	ID: "s1", UserID: "u1", CreatedAt: time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC),
	Limits: api.Limits{CPUs: 1, MemoryMB: 512, Pids: 128, TmpMB: 64}, Status: "running", Workspace: "/workspace",
}

// exitThree is what a command does unless a test says otherwise: it
// prints to both streams, times out with exit status 3, and its stdout
// is truncated.
var exitThree = servertest.Script{
	Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("out\n")}, {Stream: sandbox.Stderr, Data: []byte("err\n")}},
	Result: sandbox.ExecResult{ExitCode: 3, TimedOut: true, StdoutTruncated: true},
}

// startServer serves the fake backend, knowing session s1, on a fresh
// socket and returns the socket's path.
func startServer(t *testing.T) (string, *servertest.Backend) {
	t.Helper()
	fb := servertest.New()
	fb.AddSession(sandbox.Session{ID: s1.ID, UserID: s1.UserID})
	fb.SetScript(exitThree)
	return serveSocket(t, server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler), Version: "test"})), fb
}

// serveSocket serves srv on a fresh socket until the test ends and
// returns the socket's path.
func serveSocket(t *testing.T, srv interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx") // short: socket paths must fit sun_path
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on %s", path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			assert.NoError(t, err, "serve")
		}
	})
	return path
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
		setup      func(t *testing.T, fb *servertest.Backend)
		check      func(t *testing.T, fb *servertest.Backend)
	}{
		{name: "info", args: []string{"info"}, wantStdout: `"version": "test"`},
		{
			name: "create", args: []string{"session", "create", "--user", "u1", "--id", "s9", "--cpus", "0.5", "--memory-mb", "256", "--pids", "64", "--tmp-mb", "32"},
			wantStdout: `"id": "s9"`,
			check: func(t *testing.T, fb *servertest.Backend) {
				assert.Equal(t, sandbox.CreateRequest{UserID: "u1", SessionID: "s9", Limits: &sandbox.Limits{CPUs: 0.5, MemoryMB: 256, Pids: 64, TmpMB: 32}},
					fb.LastCreate(), "request built from the flags")
			},
		},
		{
			name: "create with default limits", args: []string{"session", "create", "--user", "u1"},
			check: func(t *testing.T, fb *servertest.Backend) {
				assert.Nil(t, fb.LastCreate().Limits, "no limit flags, no limits sent")
			},
		},
		{
			name: "ls", args: []string{"session", "ls", "--user", "u2"}, wantStdout: `"id": "s2"`,
			setup: func(_ *testing.T, fb *servertest.Backend) { fb.AddSession(sandbox.Session{ID: "s2", UserID: "u2"}) },
		},
		{
			name: "ls filters by user", args: []string{"session", "ls", "--user", "u2"}, wantStdout: `"sessions": []`,
		},
		{name: "get", args: []string{"session", "get", "s1"}, wantStdout: `"workspace": "/workspace"`},
		{
			name: "rm", args: []string{"session", "rm", "s1"}, wantStdout: `"kept_files": []`,
			setup: func(t *testing.T, fb *servertest.Backend) {
				_, err := fb.WriteFile(context.Background(), s1.ID, sandbox.RootWorkspace, "report.pdf", strings.NewReader("%PDF"), false)
				require.NoError(t, err, "write report.pdf")
			},
			check: func(t *testing.T, fb *servertest.Backend) {
				_, err := fb.GetSession(context.Background(), s1.ID)
				assert.ErrorIs(t, err, sandbox.ErrNotFound, "the session is gone")
			},
		},
		{
			name: "rm keeping files", args: []string{"session", "rm", "--keep-files", "s1"}, wantStdout: `"report.pdf"`,
			setup: func(t *testing.T, fb *servertest.Backend) {
				_, err := fb.WriteFile(context.Background(), s1.ID, sandbox.RootWorkspace, "report.pdf", strings.NewReader("%PDF"), false)
				require.NoError(t, err, "write report.pdf")
			},
			check: func(t *testing.T, fb *servertest.Backend) {
				f, err := fb.OpenOutput(context.Background(), s1.UserID, "report.pdf")
				require.NoError(t, err, "--keep-files sent: the report is kept")
				assert.NoError(t, f.Close(), "close")
			},
		},
		{name: "get missing", args: []string{"session", "get", "nope"}, wantCode: 1, wantStderr: `not found: session "nope" (not_found, HTTP 404)`},
		{name: "user", args: []string{"user", "u1"}, wantStdout: `"max_workspace_size_mb": 1024`},
		{name: "user lists sessions", args: []string{"user", "u1"}, wantStdout: `"session_id": "s1"`},
		{name: "user missing", args: []string{"user", "nobody"}, wantCode: 1, wantStderr: `not found: user "nobody" (not_found, HTTP 404)`},
		{name: "user without id", args: []string{"user"}, wantCode: 2, wantStderr: "one user ID"},
		{
			name: "exec in an expired session", args: []string{"exec", "old", "--", "true"}, wantCode: 1, wantStderr: "expired at noon (expired, HTTP 410)",
			setup: func(_ *testing.T, fb *servertest.Backend) {
				fb.AddSession(sandbox.Session{ID: "old", UserID: "u1", State: sandbox.StateExpired, Reason: "expired at noon"})
			},
		},
		{
			name: "exec argv", args: []string{"exec", "--timeout", "5", "--cwd", "/w", "--env", "A=1", "--env", "B=x=y", "--stdin-file", "-", "s1", "--", "cat", "-n"},
			stdin: "input", wantCode: 3, wantStdout: "out\n", wantStderr: "err\nsandboxctl: the command timed out",
			check: func(t *testing.T, fb *servertest.Backend) {
				assert.Equal(t, sandbox.ExecRequest{
					Command: sandbox.Command{Argv: []string{"cat", "-n"}, Cwd: "/w", Env: map[string]string{"A": "1", "B": "x=y"}},
					Stdin:   "input", Timeout: 5 * time.Second,
				}, fb.LastExec().Req, "request built from the flags")
			},
		},
		{name: "exec notes truncation", args: []string{"exec", "s1", "--", "yes"}, wantCode: 3, wantStderr: "sandboxctl: stdout was truncated"},
		{
			name: "exec command after the id", args: []string{"exec", "s1", "-c", "echo hi | wc"}, wantCode: 3,
			check: func(t *testing.T, fb *servertest.Backend) {
				assert.Equal(t, sandbox.ExecRequest{Command: sandbox.Command{Shell: "echo hi | wc"}}, fb.LastExec().Req, "-c after the ID is the command")
			},
		},
		{
			name: "exec success", args: []string{"exec", "s1", "--", "true"},
			setup: func(_ *testing.T, fb *servertest.Backend) { fb.SetScript(servertest.Script{}) },
		},
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
		{
			name: "exec in the background", args: []string{"exec", "--background", "--cwd", "/w", "--env", "A=1", "s1", "--", "sleep", "9"},
			wantStdout: `"status": "running"`,
			check: func(t *testing.T, fb *servertest.Backend) {
				list, err := fb.ListProcesses(context.Background(), s1.ID)
				require.NoError(t, err, "list")
				require.Len(t, list, 1, "one process started")
				assert.Equal(t, "sleep 9", list[0].Command, "argv after --")
			},
		},
		{
			name: "exec a command line in the background", args: []string{"exec", "--background", "s1", "-c", "make serve"},
			wantStdout: `"command": "make serve"`,
		},
		{name: "exec in the background with a timeout", args: []string{"exec", "--background", "--timeout", "5", "s1", "--", "x"}, wantCode: 2, wantStderr: "--timeout does not go with --background"},
		{name: "exec in the background with stdin", args: []string{"exec", "--background", "--stdin-file", "-", "s1", "--", "x"}, wantCode: 2, wantStderr: "--stdin-file does not go with --background"},
		{name: "exec in the background streamed", args: []string{"exec", "--stream", "s1", "--background", "-c", "x"}, wantCode: 2, wantStderr: "--stream does not go with --background"},
		{name: "exec in the background in a missing session", args: []string{"exec", "--background", "nope", "--", "x"}, wantCode: 1, wantStderr: "not found"},
		{name: "exec in the background without a command", args: []string{"exec", "--background", "s1"}, wantCode: 2, wantStderr: "either -- ARGV... or -c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			if tt.setup != nil {
				tt.setup(t, fb)
			}
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

// seedFiles gives s1 a workspace with a.txt and sub/b.txt, a shared s.txt,
// and user u1 an output.
func seedFiles(t *testing.T, fb *servertest.Backend) {
	t.Helper()
	for _, f := range []struct {
		root       sandbox.Root
		path, data string
	}{
		{sandbox.RootWorkspace, "a.txt", "hello\nworld\n"},
		{sandbox.RootWorkspace, "sub/b.txt", "b"},
		{sandbox.RootShared, "s.txt", "shared\n"},
	} {
		_, err := fb.WriteFile(context.Background(), s1.ID, f.root, f.path, strings.NewReader(f.data), true)
		require.NoError(t, err, "seed %s %s", f.root, f.path)
	}
	fb.AddOutput("u1", "résumé.docx", []byte("PK\x03\x04"))
}

// stored is the content of path in s1's root, or the error reading it.
func stored(t *testing.T, fb *servertest.Backend, root sandbox.Root, path string) (string, error) {
	t.Helper()
	f, err := fb.OpenFile(context.Background(), s1.ID, root, path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err, "read %s %s", root, path)
	return string(b), nil
}

func TestFileCommands(t *testing.T) {
	local := filepath.Join(t.TempDir(), "local.bin")
	require.NoError(t, os.WriteFile(local, []byte("local data"), 0o644), "write the local file")

	type check func(t *testing.T, fb *servertest.Backend, got outcome, dir string)
	hasContent := func(root sandbox.Root, path, want string) check {
		return func(t *testing.T, fb *servertest.Backend, _ outcome, _ string) {
			got, err := stored(t, fb, root, path)
			require.NoError(t, err, "%s %s exists", root, path)
			assert.Equal(t, want, got, "content of %s %s", root, path)
		}
	}
	isGone := func(path string) check {
		return func(t *testing.T, fb *servertest.Backend, _ outcome, _ string) {
			_, err := fb.StatFile(context.Background(), s1.ID, sandbox.RootWorkspace, path)
			assert.ErrorIs(t, err, sandbox.ErrNotFound, "%s is gone", path)
		}
	}
	localContent := func(name, want string) check {
		return func(t *testing.T, _ *servertest.Backend, _ outcome, dir string) {
			got, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err, "read the local %s", name)
			assert.Equal(t, want, string(got), "local %s", name)
		}
	}
	stdoutIs := func(want string) check {
		return func(t *testing.T, _ *servertest.Backend, got outcome, _ string) {
			assert.Equal(t, want, got.stdout, "stdout is exactly the file")
		}
	}
	tests := []struct {
		name       string
		args       []string // {dir} is a fresh local directory
		stdin      string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
		check      check
	}{
		{
			name: "ls", args: []string{"ls", "s1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome, _ string) {
				assert.Regexp(t, `(?m)^file  0644  12  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  a\.txt\n`+
					`dir   0755  0   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  sub/\n\z`, got.stdout, "a table of the entries")
			},
		},
		{name: "ls recursively", args: []string{"ls", "-r", "s1"}, wantStdout: "  sub/b.txt\n"},
		{name: "ls a directory", args: []string{"ls", "s1", "sub"}, wantStdout: "  b.txt\n"},
		{
			name: "ls shared", args: []string{"ls", "--root", "shared", "s1"}, wantStdout: "  s.txt\n",
			check: func(t *testing.T, _ *servertest.Backend, got outcome, _ string) {
				assert.NotContains(t, got.stdout, "a.txt", "the workspace is not listed")
			},
		},
		{
			name: "ls as JSON", args: []string{"ls", "--json", "s1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome, _ string) {
				var l api.FileList
				require.NoError(t, json.Unmarshal([]byte(got.stdout), &l), "stdout is a JSON listing")
				assert.Equal(t, api.RootWorkspace, l.Root, "root")
				assert.Len(t, l.Entries, 2, "entries")
			},
		},
		{name: "ls a bad root", args: []string{"ls", "--root", "home", "s1"}, wantCode: 1, wantStderr: `root "home"`},
		{name: "ls without an ID", args: []string{"ls"}, wantCode: 2, wantStderr: "ls takes a session ID"},
		{name: "stat", args: []string{"stat", "s1", "/workspace/a.txt"}, wantStdout: `"size": 12`},
		{name: "cat", args: []string{"cat", "s1", "a.txt"}, check: stdoutIs("hello\nworld\n")},
		{name: "cat shared", args: []string{"cat", "--root", "shared", "s1", "s.txt"}, check: stdoutIs("shared\n")},
		{name: "cat a missing file", args: []string{"cat", "s1", "nope"}, wantCode: 1, wantStderr: `not found: "nope" in workspace (not_found, HTTP 404)`},
		{
			name: "cp a file in", args: []string{"cp", "--mkdirs", local, "s1:up/x.bin"},
			wantStderr: "up/x.bin: 10 bytes, sha256 e4d6f89c0dfaff00eec8e8792a0e1fa5f01d5a572397a4ebebca66b4817a34a6\n",
			check:      hasContent(sandbox.RootWorkspace, "up/x.bin", "local data"),
		},
		{
			name: "cp stdin in to shared", args: []string{"cp", "--root", "shared", "-", "s1:in.txt"}, stdin: "from stdin",
			wantStderr: "in.txt: 10 bytes",
			check:      hasContent(sandbox.RootShared, "in.txt", "from stdin"),
		},
		{name: "cp in without mkdirs", args: []string{"cp", local, "s1:up/x.bin"}, wantCode: 1, wantStderr: "not found"},
		{name: "cp a file out", args: []string{"cp", "s1:a.txt", "{dir}/copy.txt"}, check: localContent("copy.txt", "hello\nworld\n")},
		{name: "cp a file out into a directory", args: []string{"cp", "s1:sub/b.txt", "{dir}"}, check: localContent("b.txt", "b")},
		{name: "cp a shared file to stdout", args: []string{"cp", "--root", "shared", "s1:s.txt", "-"}, check: stdoutIs("shared\n")},
		{
			name: "cp a missing file out", args: []string{"cp", "s1:nope", "{dir}/n"}, wantCode: 1, wantStderr: "not found",
			check: func(t *testing.T, _ *servertest.Backend, _ outcome, dir string) {
				assert.NoFileExists(t, filepath.Join(dir, "n"), "no local file for a failed copy")
			},
		},
		{name: "cp local to local", args: []string{"cp", local, "{dir}/x"}, wantCode: 2, wantStderr: "exactly one of SRC and DST"},
		{name: "cp session to session", args: []string{"cp", "s1:a.txt", "s1:b.txt"}, wantCode: 2, wantStderr: "exactly one of SRC and DST"},
		{name: "cp a local path with a colon", args: []string{"cp", "./a:b", "{dir}/x"}, wantCode: 2, wantStderr: "exactly one of SRC and DST"},
		{name: "cp in without a path", args: []string{"cp", local, "s1:"}, wantCode: 2, wantStderr: "has no PATH"},
		{name: "rm", args: []string{"rm", "s1", "a.txt"}, check: isGone("a.txt")},
		{name: "rm a directory", args: []string{"rm", "s1", "sub"}, wantCode: 1, wantStderr: "not empty"},
		{name: "rm -r", args: []string{"rm", "-r", "s1", "sub"}, check: isGone("sub/b.txt")},
		{
			name: "mkdir -p", args: []string{"mkdir", "-p", "--root", "shared", "s1", "x/y"}, wantStdout: `"path": "x/y"`,
			check: func(t *testing.T, fb *servertest.Backend, _ outcome, _ string) {
				info, err := fb.StatFile(context.Background(), s1.ID, sandbox.RootShared, "x/y")
				require.NoError(t, err, "x/y exists in shared")
				assert.Equal(t, sandbox.TypeDir, info.Type, "x/y is a directory")
			},
		},
		{name: "mkdir of an existing one", args: []string{"mkdir", "s1", "sub"}, wantCode: 1, wantStderr: "already exists"},
		{name: "mv", args: []string{"mv", "s1", "a.txt", "sub/a.txt"}, wantStdout: `"path": "sub/a.txt"`, check: hasContent(sandbox.RootWorkspace, "sub/a.txt", "hello\nworld\n")},
		{name: "mv onto a file", args: []string{"mv", "s1", "a.txt", "sub/b.txt"}, wantCode: 1, wantStderr: "already exists"},
		{name: "mv --overwrite", args: []string{"mv", "--overwrite", "s1", "a.txt", "sub/b.txt"}, check: hasContent(sandbox.RootWorkspace, "sub/b.txt", "hello\nworld\n")},
		{
			name: "edit", args: []string{"edit", "--old", "world", "--new", "there", "s1", "a.txt"}, wantStdout: `"replacements": 1`,
			check: hasContent(sandbox.RootWorkspace, "a.txt", "hello\nthere\n"),
		},
		{name: "edit a count", args: []string{"edit", "--old", "l", "--new", "L", "--count", "3", "s1", "a.txt"}, check: hasContent(sandbox.RootWorkspace, "a.txt", "heLLo\nworLd\n")},
		{name: "edit a mismatch", args: []string{"edit", "--old", "l", "--new", "L", "s1", "a.txt"}, wantCode: 1, wantStderr: "occurs 3 times, expected 1"},
		{name: "edit without --old", args: []string{"edit", "--new", "x", "s1", "a.txt"}, wantCode: 2, wantStderr: "--old is required"},
		{name: "download", args: []string{"download", "u1", "résumé.docx", "{dir}/r.docx"}, check: localContent("r.docx", "PK\x03\x04")},
		{name: "download to stdout", args: []string{"download", "u1", "résumé.docx", "-"}, check: stdoutIs("PK\x03\x04")},
		{name: "download a missing output", args: []string{"download", "u2", "résumé.docx", "-"}, wantCode: 1, wantStderr: "not found"},
		{name: "download without a name", args: []string{"download", "u1"}, wantCode: 2, wantStderr: "download takes USER, NAME"},
		{name: "cp help", args: []string{"cp", "--help"}, wantStderr: "ID:PATH"},
		{name: "ls help", args: []string{"ls", "--help"}, wantStderr: "-json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			seedFiles(t, fb)
			dir := t.TempDir()
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "{dir}", dir)
			}
			got := runCLI(socket, tt.stdin, args...)
			assert.Equal(t, tt.wantCode, got.code, "exit status; stderr: %s", got.stderr)
			assert.Contains(t, got.stdout, tt.wantStdout, "stdout")
			assert.Contains(t, got.stderr, tt.wantStderr, "stderr")
			if tt.check != nil {
				tt.check(t, fb, got, dir)
			}
		})
	}
}

func TestDownloadSavesInTheWorkingDirectory(t *testing.T) {
	socket, fb := startServer(t)
	seedFiles(t, fb)
	t.Chdir(t.TempDir())
	got := runCLI(socket, "", "download", "u1", "résumé.docx")
	require.Equal(t, 0, got.code, "exit status; stderr: %s", got.stderr)
	b, err := os.ReadFile("résumé.docx")
	require.NoError(t, err, "the output is saved under its name")
	assert.Equal(t, "PK\x03\x04", string(b), "saved content")
}

func TestExecStream(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		script     servertest.Script
		wantCode   int
		wantStdout string // exactly
		wantStderr string // substring
	}{
		{
			name: "output as it comes, then the exit status",
			args: []string{"exec", "--stream", "--env", "A=1", "s1", "--", "make"},
			script: servertest.Script{
				Output: []sandbox.Output{
					{Stream: sandbox.Stdout, Data: []byte("out\n")},
					{Stream: sandbox.Stderr, Data: []byte("\xff\xfe\n")},
					{Stream: sandbox.Stdout, Data: []byte("é")},
				},
				Result: sandbox.ExecResult{ExitCode: 3, TimedOut: true},
			},
			wantCode: 3, wantStdout: "out\né", wantStderr: "\xff\xfe\nsandboxctl: the command timed out",
		},
		{
			name: "success",
			args: []string{"exec", "s1", "--stream", "-c", "true"},
		},
		{
			name:     "failure before the output",
			args:     []string{"exec", "--stream", "s1", "--", "x"},
			script:   servertest.Script{Err: fmt.Errorf("session %q: %w", "s1", sandbox.ErrQuota)},
			wantCode: 1, wantStderr: `sandboxctl: session "s1": quota exceeded (quota_exceeded, HTTP 429)`,
		},
		{
			name: "failure after the output began",
			args: []string{"exec", "--stream", "s1", "--", "x"},
			script: servertest.Script{
				Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("partial")}},
				Err:    fmt.Errorf("session %q: %w", "s1", sandbox.ErrUnavailable),
			},
			wantCode: 1, wantStdout: "partial", wantStderr: `sandboxctl: session "s1": unavailable`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			fb.SetScript(tt.script)
			got := runCLI(socket, "", tt.args...)
			assert.Equal(t, tt.wantCode, got.code, "exit status; stderr: %s", got.stderr)
			assert.Equal(t, tt.wantStdout, got.stdout, "stdout")
			assert.Contains(t, got.stderr, tt.wantStderr, "stderr")
			assert.Equal(t, []string{"ExecStream"}, fb.Calls(), "the plain exec is not used")
		})
	}
}

// TestExecStreamUndecodableOutput stands a raw server in for the daemon:
// the daemon's own framing always encodes base64 correctly.
func TestExecStreamUndecodableOutput(t *testing.T) {
	socket := serveSocket(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", api.NDJSON)
		_, _ = io.WriteString(w, `{"type":"stdout","data_b64":"not base64!"}`+"\n")
	})})
	got := runCLI(socket, "", "exec", "--stream", "s1", "--", "x")
	assert.Equal(t, 1, got.code, "exit status; stderr: %s", got.stderr)
	assert.Contains(t, got.stderr, "decode stdout", "stderr")
}

// seedProcesses starts p1 ("sleep 9", running, three unread lines) and p2
// ("make\n  all", exited 0) in s1.
func seedProcesses(t *testing.T, fb *servertest.Backend) {
	t.Helper()
	ctx := context.Background()
	_, err := fb.StartProcess(ctx, s1.ID, sandbox.Command{Shell: "sleep 9"})
	require.NoError(t, err, "start p1")
	require.NoError(t, fb.Print(s1.ID, "p1", "one", "two", "error: x"), "print to p1")
	_, err = fb.StartProcess(ctx, s1.ID, sandbox.Command{Shell: "make\n  all"})
	require.NoError(t, err, "start p2")
	require.NoError(t, fb.Exit(s1.ID, "p2", 0), "exit p2")
}

func TestProcessCommands(t *testing.T) {
	type check func(t *testing.T, fb *servertest.Backend, got outcome)
	gracePassed := func(want time.Duration) check {
		return func(t *testing.T, fb *servertest.Backend, _ outcome) {
			assert.Equal(t, want, fb.LastGrace(), "grace sent")
		}
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
		check      check
	}{
		{
			name: "ps", args: []string{"ps", "s1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome) {
				assert.Regexp(t, `^ID  PID  STATUS   EXIT  STARTED              COMMAND\n`+
					`p1  101  running  -     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  sleep 9\n`+
					`p2  102  exited   0     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  make all\n\z`, got.stdout, "a table of the processes")
			},
		},
		{
			name: "ps as JSON", args: []string{"ps", "--json", "s1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome) {
				var list api.ProcessList
				require.NoError(t, json.Unmarshal([]byte(got.stdout), &list), "stdout is a JSON process list")
				zero := 0
				assert.Equal(t, []api.Process{
					{ID: "p1", PID: 101, Command: "sleep 9", Status: api.StatusRunning, StartedAt: time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC)},
					{ID: "p2", PID: 102, Command: "make\n  all", Status: api.StatusExited, ExitCode: &zero,
						StartedAt: time.Date(2025, 6, 1, 12, 0, 2, 0, time.UTC), EndedAt: time.Date(2025, 6, 1, 12, 0, 3, 0, time.UTC)},
				}, list.Processes, "the processes")
			},
		},
		{name: "ps of a missing session", args: []string{"ps", "nope"}, wantCode: 1, wantStderr: "not found"},
		{name: "ps without an ID", args: []string{"ps"}, wantCode: 2, wantStderr: "ps takes one session ID"},
		{
			name: "logs", args: []string{"logs", "s1", "p1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome) {
				assert.Equal(t, "one\ntwo\nerror: x\n", got.stdout, "the unread lines")
			},
		},
		{
			name: "logs filtered", args: []string{"logs", "--filter", "^err", "s1", "p1"},
			check: func(t *testing.T, _ *servertest.Backend, got outcome) {
				assert.Equal(t, "error: x\n", got.stdout, "the matching line")
			},
		},
		{name: "logs with a bad filter", args: []string{"logs", "--filter", "(", "s1", "p1"}, wantCode: 1, wantStderr: "invalid_argument"},
		{name: "logs of a missing process", args: []string{"logs", "s1", "p9"}, wantCode: 1, wantStderr: "not found"},
		{name: "logs without a process", args: []string{"logs", "s1"}, wantCode: 2, wantStderr: "logs takes a session ID and a process ID"},
		{
			name: "kill", args: []string{"kill", "s1", "p1"},
			wantStdout: "one\ntwo\nerror: x\n", wantStderr: "sandboxctl: process p1 (pid 101) killed, exit code 143 (SIGTERM)\n",
			check: func(t *testing.T, fb *servertest.Backend, _ outcome) {
				assert.Equal(t, 5*time.Second, fb.LastGrace(), "no --grace: the daemon's default")
				list, err := fb.ListProcesses(context.Background(), s1.ID)
				require.NoError(t, err, "list")
				assert.Len(t, list, 1, "the killed process is gone")
			},
		},
		{name: "kill with a grace", args: []string{"kill", "--grace", "500ms", "s1", "p1"}, check: gracePassed(500 * time.Millisecond)},
		{name: "kill an exited process", args: []string{"kill", "s1", "p2"}, wantStderr: "sandboxctl: process p2 (pid 102) exited, exit code 0\n"},
		{name: "kill with a negative grace", args: []string{"kill", "--grace", "-1s", "s1", "p1"}, wantCode: 2, wantStderr: "--grace must not be negative"},
		{name: "kill with a bad grace", args: []string{"kill", "--grace", "soon", "s1", "p1"}, wantCode: 2, wantStderr: "invalid value"},
		{name: "kill a missing process", args: []string{"kill", "s1", "p9"}, wantCode: 1, wantStderr: "not found"},
		{name: "ps help", args: []string{"ps", "--help"}, wantStderr: "-json"},
		{name: "logs help", args: []string{"logs", "--help"}, wantStderr: "-filter"},
		{name: "kill help", args: []string{"kill", "--help"}, wantStderr: "-grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			seedProcesses(t, fb)
			got := runCLI(socket, "", tt.args...)
			assert.Equal(t, tt.wantCode, got.code, "exit status; stderr: %s", got.stderr)
			assert.Contains(t, got.stdout, tt.wantStdout, "stdout")
			assert.Contains(t, got.stderr, tt.wantStderr, "stderr")
			if tt.check != nil {
				tt.check(t, fb, got)
			}
		})
	}
}

func TestPackageCommands(t *testing.T) {
	socket, fb := startServer(t)
	fb.SetAllowed("alpha", "beta")
	fb.SetEnvs(
		sandbox.Env{ID: "20250601T110000Z-00000001", Python: "3.11.2", Sessions: 1},
		sandbox.Env{ID: "20250601T120000Z-00000002", Python: "3.11.2", Current: true,
			Missing: []sandbox.MissingPackage{{Requirement: "python-pptx", Reason: "not installed"}}},
	)

	out := runCLI(socket, "", "pkg", "install", "s1", "alpha", "beta==2.0")
	require.Equal(t, 0, out.code, out.stderr)
	assert.Equal(t, "Installing alpha-1.0\nInstalling beta-2.0\n", out.stderr, "pip's output on stderr")
	assert.Equal(t, "installed  alpha  1.0  \ninstalled  beta   2.0  \n", out.stdout, "what was installed on stdout")

	out = runCLI(socket, "", "pkg", "install", "s1", "gamma")
	assert.Equal(t, exitFailure, out.code)
	assert.Contains(t, out.stderr, "gamma is not on the package allow-list")
	assert.Contains(t, out.stderr, "package_not_allowed, HTTP 403")

	out = runCLI(socket, "", "pkg", "install", "--json", "s1", "alpha")
	require.Equal(t, 0, out.code, out.stderr)
	var res api.InstallPackagesResult
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &res), "--json prints the result")
	assert.Equal(t, []api.InstalledPackage{{Name: "alpha", Version: "1.0"}}, res.Installed)

	out = runCLI(socket, "", "pkg", "ls", "s1")
	require.Equal(t, 0, out.code, out.stderr)
	assert.Equal(t, "NAME   VERSION\nalpha  1.0\nbeta   2.0\nalpha  1.0\n", out.stdout)

	out = runCLI(socket, "", "envs")
	require.Equal(t, 0, out.code, out.stderr)
	assert.Contains(t, out.stdout, "20250601T110000Z-00000001           1")
	assert.Regexp(t, `20250601T120000Z-00000002  \*\s+0\s+3\.11\.2\s.*python-pptx`, out.stdout)

	for _, args := range [][]string{{"pkg"}, {"pkg", "install", "s1"}, {"pkg", "ls"}, {"pkg", "up"}, {"envs", "x"}} {
		assert.Equal(t, exitUsage, runCLI(socket, "", args...).code, "%q is a usage error", args)
	}
}
