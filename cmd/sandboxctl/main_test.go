package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
)

// fakeBackend knows session "s1" and records the last request of each kind.
// Exec of argv ["true"] succeeds quietly; anything else exits 3 with
// output, timed out and truncated. Its files and background processes,
// s1's, are in memory; its streamed exec is scripted.
type fakeBackend struct {
	*servertest.Files
	*servertest.Processes
	*servertest.Stream
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

	fb := &fakeBackend{Files: servertest.New(1<<20, s1.ID), Processes: servertest.NewProcesses(s1.ID), Stream: &servertest.Stream{}}
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
		{
			name: "exec in the background", args: []string{"exec", "--background", "--cwd", "/w", "--env", "A=1", "s1", "--", "sleep", "9"},
			wantStdout: `"status": "running"`,
			check: func(t *testing.T, fb *fakeBackend) {
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
func seedFiles(t *testing.T, fb *fakeBackend) {
	t.Helper()
	for _, f := range []struct{ root, path, data string }{
		{api.RootWorkspace, "a.txt", "hello\nworld\n"},
		{api.RootWorkspace, "sub/b.txt", "b"},
		{api.RootShared, "s.txt", "shared\n"},
	} {
		_, err := fb.WriteFile(context.Background(), s1.ID, f.root, f.path, strings.NewReader(f.data), true)
		require.NoError(t, err, "seed %s %s", f.root, f.path)
	}
	fb.AddOutput("u1", "résumé.docx", []byte("PK\x03\x04"))
}

// stored is the content of path in s1's root, or the error reading it.
func stored(t *testing.T, fb *fakeBackend, root, path string) (string, error) {
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

	type check func(t *testing.T, fb *fakeBackend, got outcome, dir string)
	hasContent := func(root, path, want string) check {
		return func(t *testing.T, fb *fakeBackend, _ outcome, _ string) {
			got, err := stored(t, fb, root, path)
			require.NoError(t, err, "%s %s exists", root, path)
			assert.Equal(t, want, got, "content of %s %s", root, path)
		}
	}
	isGone := func(path string) check {
		return func(t *testing.T, fb *fakeBackend, _ outcome, _ string) {
			_, err := fb.StatFile(context.Background(), s1.ID, api.RootWorkspace, path)
			assert.ErrorIs(t, err, api.ErrNotFound, "%s is gone", path)
		}
	}
	localContent := func(name, want string) check {
		return func(t *testing.T, _ *fakeBackend, _ outcome, dir string) {
			got, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err, "read the local %s", name)
			assert.Equal(t, want, string(got), "local %s", name)
		}
	}
	stdoutIs := func(want string) check {
		return func(t *testing.T, _ *fakeBackend, got outcome, _ string) {
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
			check: func(t *testing.T, _ *fakeBackend, got outcome, _ string) {
				assert.Regexp(t, `(?m)^file  0644  12  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  a\.txt\n`+
					`dir   0755  0   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  sub/\n\z`, got.stdout, "a table of the entries")
			},
		},
		{name: "ls recursively", args: []string{"ls", "-r", "s1"}, wantStdout: "  sub/b.txt\n"},
		{name: "ls a directory", args: []string{"ls", "s1", "sub"}, wantStdout: "  b.txt\n"},
		{
			name: "ls shared", args: []string{"ls", "--root", "shared", "s1"}, wantStdout: "  s.txt\n",
			check: func(t *testing.T, _ *fakeBackend, got outcome, _ string) {
				assert.NotContains(t, got.stdout, "a.txt", "the workspace is not listed")
			},
		},
		{
			name: "ls as JSON", args: []string{"ls", "--json", "s1"},
			check: func(t *testing.T, _ *fakeBackend, got outcome, _ string) {
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
		{name: "cat a missing file", args: []string{"cat", "s1", "nope"}, wantCode: 1, wantStderr: `"nope" in workspace: not found`},
		{
			name: "cp a file in", args: []string{"cp", "--mkdirs", local, "s1:up/x.bin"},
			wantStderr: "up/x.bin: 10 bytes, sha256 e4d6f89c0dfaff00eec8e8792a0e1fa5f01d5a572397a4ebebca66b4817a34a6\n",
			check:      hasContent(api.RootWorkspace, "up/x.bin", "local data"),
		},
		{
			name: "cp stdin in to shared", args: []string{"cp", "--root", "shared", "-", "s1:in.txt"}, stdin: "from stdin",
			wantStderr: "in.txt: 10 bytes",
			check:      hasContent(api.RootShared, "in.txt", "from stdin"),
		},
		{name: "cp in without mkdirs", args: []string{"cp", local, "s1:up/x.bin"}, wantCode: 1, wantStderr: "not found"},
		{name: "cp a file out", args: []string{"cp", "s1:a.txt", "{dir}/copy.txt"}, check: localContent("copy.txt", "hello\nworld\n")},
		{name: "cp a file out into a directory", args: []string{"cp", "s1:sub/b.txt", "{dir}"}, check: localContent("b.txt", "b")},
		{name: "cp a shared file to stdout", args: []string{"cp", "--root", "shared", "s1:s.txt", "-"}, check: stdoutIs("shared\n")},
		{
			name: "cp a missing file out", args: []string{"cp", "s1:nope", "{dir}/n"}, wantCode: 1, wantStderr: "not found",
			check: func(t *testing.T, _ *fakeBackend, _ outcome, dir string) {
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
			check: func(t *testing.T, fb *fakeBackend, _ outcome, _ string) {
				info, err := fb.StatFile(context.Background(), s1.ID, api.RootShared, "x/y")
				require.NoError(t, err, "x/y exists in shared")
				assert.Equal(t, api.TypeDir, info.Type, "x/y is a directory")
			},
		},
		{name: "mkdir of an existing one", args: []string{"mkdir", "s1", "sub"}, wantCode: 1, wantStderr: "already exists"},
		{name: "mv", args: []string{"mv", "s1", "a.txt", "sub/a.txt"}, wantStdout: `"path": "sub/a.txt"`, check: hasContent(api.RootWorkspace, "sub/a.txt", "hello\nworld\n")},
		{name: "mv onto a file", args: []string{"mv", "s1", "a.txt", "sub/b.txt"}, wantCode: 1, wantStderr: "already exists"},
		{name: "mv --overwrite", args: []string{"mv", "--overwrite", "s1", "a.txt", "sub/b.txt"}, check: hasContent(api.RootWorkspace, "sub/b.txt", "hello\nworld\n")},
		{
			name: "edit", args: []string{"edit", "--old", "world", "--new", "there", "s1", "a.txt"}, wantStdout: `"replacements": 1`,
			check: hasContent(api.RootWorkspace, "a.txt", "hello\nthere\n"),
		},
		{name: "edit a count", args: []string{"edit", "--old", "l", "--new", "L", "--count", "3", "s1", "a.txt"}, check: hasContent(api.RootWorkspace, "a.txt", "heLLo\nworLd\n")},
		{name: "edit a mismatch", args: []string{"edit", "--old", "l", "--new", "L", "s1", "a.txt"}, wantCode: 1, wantStderr: "occurs 3 times, want 1"},
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
		stream     *servertest.Stream
		wantCode   int
		wantStdout string // exactly
		wantStderr string // substring
	}{
		{
			name: "output as it comes, then the exit status",
			args: []string{"exec", "--stream", "--env", "A=1", "s1", "--", "make"},
			stream: &servertest.Stream{
				Events: []api.ExecEvent{
					{Type: api.EventStdout, Data: "out\n"},
					{Type: api.EventStderr, DataB64: base64.StdEncoding.EncodeToString([]byte("\xff\xfe\n"))},
					{Type: api.EventStdout, Data: "é"},
				},
				Result: api.ExecResult{ExitCode: 3, TimedOut: true},
			},
			wantCode: 3, wantStdout: "out\né", wantStderr: "\xff\xfe\nsandboxctl: the command timed out",
		},
		{
			name:   "success",
			args:   []string{"exec", "s1", "--stream", "-c", "true"},
			stream: &servertest.Stream{},
		},
		{
			name:     "failure before the output",
			args:     []string{"exec", "--stream", "s1", "--", "x"},
			stream:   &servertest.Stream{Err: fmt.Errorf("session %q: %w", "s1", api.ErrQuotaExceeded)},
			wantCode: 1, wantStderr: `sandboxctl: session "s1": quota exceeded (quota_exceeded, HTTP 429)`,
		},
		{
			name: "failure after the output began",
			args: []string{"exec", "--stream", "s1", "--", "x"},
			stream: &servertest.Stream{
				Events: []api.ExecEvent{{Type: api.EventStdout, Data: "partial"}},
				Err:    fmt.Errorf("session %q: %w", "s1", api.ErrUnavailable),
			},
			wantCode: 1, wantStdout: "partial", wantStderr: `sandboxctl: session "s1": unavailable`,
		},
		{
			name: "undecodable output",
			args: []string{"exec", "--stream", "s1", "--", "x"},
			stream: &servertest.Stream{
				Events: []api.ExecEvent{{Type: api.EventStdout, DataB64: "not base64!"}},
			},
			wantCode: 1, wantStderr: "decode stdout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket, fb := startServer(t)
			fb.Stream = tt.stream
			got := runCLI(socket, "", tt.args...)
			assert.Equal(t, tt.wantCode, got.code, "exit status; stderr: %s", got.stderr)
			assert.Equal(t, tt.wantStdout, got.stdout, "stdout")
			assert.Contains(t, got.stderr, tt.wantStderr, "stderr")
			assert.Empty(t, fb.exec, "the plain exec is not used")
		})
	}
}

// seedProcesses starts p1 ("sleep 9", running, three unread lines) and p2
// ("make\n  all", exited 0) in s1.
func seedProcesses(t *testing.T, fb *fakeBackend) {
	t.Helper()
	ctx := context.Background()
	_, err := fb.StartProcess(ctx, s1.ID, api.StartProcessRequest{Command: "sleep 9"})
	require.NoError(t, err, "start p1")
	require.NoError(t, fb.Print(s1.ID, "p1", "one", "two", "error: x"), "print to p1")
	_, err = fb.StartProcess(ctx, s1.ID, api.StartProcessRequest{Command: "make\n  all"})
	require.NoError(t, err, "start p2")
	require.NoError(t, fb.Exit(s1.ID, "p2", 0), "exit p2")
}

func TestProcessCommands(t *testing.T) {
	type check func(t *testing.T, fb *fakeBackend, got outcome)
	gracePassed := func(want time.Duration) check {
		return func(t *testing.T, fb *fakeBackend, _ outcome) {
			assert.Equal(t, want, fb.Grace(), "grace sent")
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
			check: func(t *testing.T, _ *fakeBackend, got outcome) {
				assert.Regexp(t, `^ID  PID  STATUS   EXIT  STARTED              COMMAND\n`+
					`p1  101  running  -     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  sleep 9\n`+
					`p2  102  exited   0     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  make all\n\z`, got.stdout, "a table of the processes")
			},
		},
		{
			name: "ps as JSON", args: []string{"ps", "--json", "s1"},
			check: func(t *testing.T, fb *fakeBackend, got outcome) {
				var list api.ProcessList
				require.NoError(t, json.Unmarshal([]byte(got.stdout), &list), "stdout is a JSON process list")
				want, err := fb.ListProcesses(context.Background(), s1.ID)
				require.NoError(t, err, "list")
				assert.Equal(t, want, list.Processes, "the processes")
			},
		},
		{name: "ps of a missing session", args: []string{"ps", "nope"}, wantCode: 1, wantStderr: "not found"},
		{name: "ps without an ID", args: []string{"ps"}, wantCode: 2, wantStderr: "ps takes one session ID"},
		{
			name: "logs", args: []string{"logs", "s1", "p1"},
			check: func(t *testing.T, _ *fakeBackend, got outcome) {
				assert.Equal(t, "one\ntwo\nerror: x\n", got.stdout, "the unread lines")
			},
		},
		{
			name: "logs filtered", args: []string{"logs", "--filter", "^err", "s1", "p1"},
			check: func(t *testing.T, _ *fakeBackend, got outcome) {
				assert.Equal(t, "error: x\n", got.stdout, "the matching line")
			},
		},
		{name: "logs with a bad filter", args: []string{"logs", "--filter", "(", "s1", "p1"}, wantCode: 1, wantStderr: "invalid_argument"},
		{name: "logs of a missing process", args: []string{"logs", "s1", "p9"}, wantCode: 1, wantStderr: "not found"},
		{name: "logs without a process", args: []string{"logs", "s1"}, wantCode: 2, wantStderr: "logs takes a session ID and a process ID"},
		{
			name: "kill", args: []string{"kill", "s1", "p1"},
			wantStdout: "one\ntwo\nerror: x\n", wantStderr: "sandboxctl: process p1 (pid 101) killed, exit code 143 (SIGTERM)\n",
			check: func(t *testing.T, fb *fakeBackend, _ outcome) {
				assert.Equal(t, 5*time.Second, fb.Grace(), "no --grace: the daemon's default")
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
