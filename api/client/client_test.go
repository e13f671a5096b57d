package client_test

import (
	"bytes"
	"context"
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
	"github.com/sandboxd/sandboxd/api/client"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// startServer serves the fake backend on a fresh Unix socket and returns
// a client for it. The fake has no session yet.
func startServer(t *testing.T) (*client.Client, *servertest.Backend) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx") // short: socket paths must fit sun_path
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")

	fb := servertest.New()
	srv := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler), Version: "test"})
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on %s", path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
		assert.NoError(t, <-served, "serve")
	})
	return client.New(path), fb
}

func TestClientSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)

	info, err := c.Info(ctx)
	require.NoError(t, err, "Info")
	assert.Equal(t, api.Info{
		Version: "test", APIVersion: "v1", CgroupMode: "unified", CgroupParent: "/sandboxd",
		Controllers:   []string{"cpu", "memory", "pids"},
		DefaultLimits: api.Limits{CPUs: 1, MemoryMB: 512, Pids: 128, TmpMB: 64},
		MaxLimits:     api.Limits{CPUs: 2, MemoryMB: 2048, Pids: 512, TmpMB: 256},
		QuotaMode:     "loop",
	}, info, "Info answer")

	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "a/b c", Limits: &api.Limits{CPUs: 0.5, MemoryMB: 256}})
	require.NoError(t, err, "CreateSession")
	assert.Equal(t, "a/b c", sess.ID, "an id with a slash and a space survives the path")
	assert.Equal(t, &sandbox.Limits{CPUs: 0.5, MemoryMB: 256}, fb.LastCreate().Limits, "limits sent as given")
	assert.Equal(t, api.Limits{CPUs: 0.5, MemoryMB: 256, Pids: 128, TmpMB: 64}, sess.Limits, "limits as the daemon resolved them")
	_, err = c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u2", SessionID: "other"})
	require.NoError(t, err, "CreateSession other")

	all, err := c.ListSessions(ctx, "")
	require.NoError(t, err, "ListSessions")
	assert.Len(t, all, 2, "both sessions listed")
	mine, err := c.ListSessions(ctx, "u1")
	require.NoError(t, err, "ListSessions u1")
	assert.Equal(t, []api.Session{sess}, mine, "only u1's session listed")

	got, err := c.GetSession(ctx, "a/b c")
	require.NoError(t, err, "GetSession")
	assert.Equal(t, sess, got, "GetSession answer")

	fb.SetScript(servertest.Script{
		Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("hello\n")}, {Stream: sandbox.Stderr, Data: []byte("oops\n")}},
		Result: sandbox.ExecResult{ExitCode: 3, Duration: 5 * time.Millisecond},
	})
	req := api.ExecRequest{Command: "echo hello; exit 3", Env: map[string]string{"K": "v"}, Stdin: "in", TimeoutSec: 1.5}
	res, err := c.Exec(ctx, "a/b c", req)
	require.NoError(t, err, "Exec")
	assert.Equal(t, servertest.ExecCall{ID: "a/b c", Req: sandbox.ExecRequest{
		Command: sandbox.Command{Shell: "echo hello; exit 3", Env: map[string]string{"K": "v"}}, Stdin: "in", Timeout: 1500 * time.Millisecond,
	}}, fb.LastExec(), "backend got the request as sent")
	assert.Equal(t, api.ExecResult{ExitCode: 3, Stdout: "hello\n", Stderr: "oops\n", DurationMS: 5}, res, "Exec answer")

	_, err = c.WriteFile(ctx, "a/b c", "", "notes.pdf", strings.NewReader("%PDF"), false)
	require.NoError(t, err, "WriteFile")
	del, err := c.DeleteSession(ctx, "a/b c", true)
	require.NoError(t, err, "DeleteSession")
	assert.Equal(t, api.DeleteSessionResult{ID: "a/b c", KeptFiles: []string{"notes.pdf"}, NotKept: []api.NotKept{}}, del,
		"DeleteSession with keep_files")
	kept, err := readAll(c.DownloadOutput(ctx, "u1", "notes.pdf"))
	require.NoError(t, err, "download the kept file")
	assert.Equal(t, "%PDF", kept, "the kept file")
	del, err = c.DeleteSession(ctx, "other", false)
	require.NoError(t, err, "DeleteSession other")
	assert.Empty(t, del.KeptFiles, "nothing kept without keep_files")

	all, err = c.ListSessions(ctx, "")
	require.NoError(t, err, "ListSessions after delete")
	assert.Empty(t, all, "no sessions left")
}

func TestClientTypedErrors(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "s1"})
	require.NoError(t, err, "CreateSession")
	fb.AddSession(sandbox.Session{ID: "dead", UserID: "u1", State: sandbox.StateStopped, Reason: "its sandbox is not running"})
	fb.AddSession(sandbox.Session{ID: "old", UserID: "u1", State: sandbox.StateExpired, Reason: "expired at noon"})

	tests := []struct {
		name       string
		call       func() error
		sentinel   error
		wantStatus int
		wantMsg    string
	}{
		{
			name:     "get missing",
			call:     func() error { _, err := c.GetSession(ctx, "nope"); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "nope"`,
		},
		{
			name:     "exec in missing",
			call:     func() error { _, err := c.Exec(ctx, "nope", api.ExecRequest{Command: "true"}); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "nope"`,
		},
		{
			name:     "exec in a stopped session",
			call:     func() error { _, err := c.Exec(ctx, "dead", api.ExecRequest{Command: "true"}); return err },
			sentinel: api.ErrUnavailable, wantStatus: http.StatusServiceUnavailable,
			wantMsg: `unavailable: session "dead": its sandbox is not running (a daemon restart gives it a new one)`,
		},
		{
			name:     "exec in an expired session",
			call:     func() error { _, err := c.Exec(ctx, "old", api.ExecRequest{Command: "true"}); return err },
			sentinel: api.ErrExpired, wantStatus: http.StatusGone, wantMsg: `session expired: session "old": expired at noon`,
		},
		{
			name:     "missing user",
			call:     func() error { _, err := c.User(ctx, "nobody"); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: user "nobody"`,
		},
		{
			name:     "delete missing",
			call:     func() error { _, err := c.DeleteSession(ctx, "nope", false); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "nope"`,
		},
		{
			name: "create duplicate",
			call: func() error {
				_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "s1"})
				return err
			},
			sentinel: api.ErrAlreadyExists, wantStatus: http.StatusConflict, wantMsg: `already exists: session "s1"`,
		},
		{
			name:     "create without user",
			call:     func() error { _, err := c.CreateSession(ctx, api.CreateSessionRequest{}); return err },
			sentinel: api.ErrInvalidArgument, wantStatus: http.StatusBadRequest, wantMsg: "invalid argument: user_id is empty",
		},
		{
			name:     "start a process in a missing session",
			call:     func() error { _, err := c.StartProcess(ctx, "nope", api.StartProcessRequest{Command: "x"}); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "nope"`,
		},
		{
			name:     "output with a bad filter",
			call:     func() error { _, err := c.ProcessOutput(ctx, "s1", "p1", "("); return err },
			sentinel: api.ErrInvalidArgument, wantStatus: http.StatusBadRequest,
			wantMsg: "invalid argument: filter: error parsing regexp: missing closing ): `(`",
		},
		{
			name:     "kill a missing process",
			call:     func() error { _, err := c.KillProcess(ctx, "s1", "p9", 0); return err },
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "s1" has no background process "p9"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err, "call fails")
			assert.ErrorIs(t, err, tt.sentinel, "error matches its sentinel")
			apiErr, ok := errors.AsType[*api.Error](err)
			require.True(t, ok, "error is an *api.Error: %T", err)
			assert.Equal(t, tt.wantStatus, apiErr.Status, "HTTP status")
			assert.Equal(t, tt.wantMsg, apiErr.Message, "server's message")
		})
	}
}

// startRawServer serves h, standing in for the daemon, on a fresh Unix
// socket and returns a client for it.
func startRawServer(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx")
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "proxy.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err, "listen")
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return client.New(path)
}

func TestClientNonJSONError(t *testing.T) {
	// Something that is not sandboxd, answering in plain text.
	c := startRawServer(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	})
	_, err := c.GetSession(context.Background(), "s1")
	apiErr, ok := errors.AsType[*api.Error](err)
	require.True(t, ok, "error is an *api.Error: %v", err)
	assert.Equal(t, &api.Error{Code: api.CodeInternal, Message: "bad gateway", Status: http.StatusBadGateway}, apiErr,
		"plain-text body becomes an internal error carrying the text")
}

func TestClientContextCancels(t *testing.T) {
	c, _ := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Info(ctx)
	assert.ErrorIs(t, err, context.Canceled, "a cancelled context stops the request")
}

func TestClientNoDaemon(t *testing.T) {
	_, err := client.New(filepath.Join(t.TempDir(), "absent.sock")).Info(context.Background())
	require.Error(t, err, "no daemon, no answer")
	assert.ErrorIs(t, err, os.ErrNotExist, "the dial error is kept")
	_, isAPI := errors.AsType[*api.Error](err)
	assert.False(t, isAPI, "a transport failure is not an API error")
}

func TestClientFiles(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "a/b c", UserID: "u1"})
	const (
		dir  = "dir #1/ü"
		file = dir + "/a? b&c=d%20.txt" // query syntax and escapes survive
	)
	fb.AddOutput("u 1", "résumé #2.docx", []byte("PK\x03\x04"))

	res, err := c.WriteFile(ctx, "a/b c", "", file, strings.NewReader("hello\nworld\n"), true)
	require.NoError(t, err, "WriteFile")
	assert.Equal(t, api.WriteResult{Path: file, Size: 12, SHA256: "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92"},
		res, "WriteFile answer")
	_, err = c.WriteFile(ctx, "a/b c", api.RootShared, file, strings.NewReader("shared"), true)
	require.NoError(t, err, "WriteFile to shared")

	tests := []struct {
		name string
		call func() (any, error)
		want any
	}{
		{
			name: "list",
			call: func() (any, error) { return c.ListFiles(ctx, "a/b c", "", dir, false) },
			want: api.FileList{Root: api.RootWorkspace, Path: dir, Entries: []api.FileInfo{
				{Name: "a? b&c=d%20.txt", Path: file, Type: api.TypeFile, Size: 12, Mode: "0644", ModTime: fb.Epoch()},
			}},
		},
		{
			name: "list recursively",
			call: func() (any, error) {
				list, err := c.ListFiles(ctx, "a/b c", api.RootShared, "", true)
				var paths []string
				for _, e := range list.Entries {
					paths = append(paths, e.Path)
				}
				return paths, err
			},
			want: []string{"dir #1", dir, file},
		},
		{
			name: "stat",
			call: func() (any, error) { return c.StatFile(ctx, "a/b c", "", dir) },
			want: api.FileInfo{Name: "ü", Path: dir, Type: api.TypeDir, Mode: "0755", ModTime: fb.Epoch()},
		},
		{
			name: "read",
			call: func() (any, error) { return readAll(c.ReadFile(ctx, "a/b c", "", file, 0, 0)) },
			want: "hello\nworld\n",
		},
		{
			name: "read shared",
			call: func() (any, error) { return readAll(c.ReadFile(ctx, "a/b c", api.RootShared, file, 0, 0)) },
			want: "shared",
		},
		{
			name: "read from an offset",
			call: func() (any, error) { return readAll(c.ReadFile(ctx, "a/b c", "", file, 6, 0)) },
			want: "world\n",
		},
		{
			name: "read a slice",
			call: func() (any, error) { return readAll(c.ReadFile(ctx, "a/b c", "", file, 6, 3)) },
			want: "wor",
		},
		{
			name: "read text",
			call: func() (any, error) { return c.ReadText(ctx, "a/b c", "", file, 2, 1) },
			want: api.TextFile{Path: file, Lines: []api.TextLine{{Number: 2, Text: "world"}}, TotalLines: 2},
		},
		{
			name: "read all text",
			call: func() (any, error) { return c.ReadText(ctx, "a/b c", api.RootShared, file, 0, 0) },
			want: api.TextFile{Path: file, Lines: []api.TextLine{{Number: 1, Text: "shared"}}, TotalLines: 1},
		},
		{
			name: "download an output",
			call: func() (any, error) { return readAll(c.DownloadOutput(ctx, "u 1", "résumé #2.docx")) },
			want: "PK\x03\x04",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			require.NoError(t, err, "call succeeds")
			assert.Equal(t, tt.want, got, "answer")
		})
	}
}

func TestClientChangesFiles(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	_, err := c.WriteFile(ctx, "s1", api.RootShared, "notes.md", strings.NewReader("one two two"), false)
	require.NoError(t, err, "WriteFile")

	edit, err := c.EditFile(ctx, "s1", api.RootShared, api.EditRequest{Path: "notes.md", Old: "two", New: "2", Count: 2})
	require.NoError(t, err, "EditFile")
	assert.Equal(t, 2, edit.Replacements, "EditFile counts the replacements")
	assert.Equal(t, int64(7), edit.Size, "EditFile reports the new size")
	assert.Equal(t, "one 2 2", mustRead(t, fb, sandbox.RootShared, "notes.md"), "edited content")

	dir, err := c.Mkdir(ctx, "s1", api.RootShared, api.MkdirRequest{Path: "out/md", Parents: true})
	require.NoError(t, err, "Mkdir")
	assert.Equal(t, api.FileInfo{Name: "md", Path: "out/md", Type: api.TypeDir, Mode: "0755", ModTime: fb.Epoch()}, dir, "Mkdir answer")

	moved, err := c.MoveFile(ctx, "s1", api.RootShared, api.MoveRequest{From: "notes.md", To: "out/md/notes.md"})
	require.NoError(t, err, "MoveFile")
	assert.Equal(t, "out/md/notes.md", moved.Path, "MoveFile answers with the destination")
	assert.Equal(t, "one 2 2", mustRead(t, fb, sandbox.RootShared, "out/md/notes.md"), "moved content")

	require.NoError(t, c.RemoveFile(ctx, "s1", api.RootShared, "out", true), "RemoveFile")
	list, err := c.ListFiles(ctx, "s1", api.RootShared, "", true)
	require.NoError(t, err, "ListFiles")
	assert.Empty(t, list.Entries, "everything removed")
}

// readAll reads and closes a stream a client method returned.
func readAll(rc io.ReadCloser, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func mustRead(t *testing.T, fb *servertest.Backend, root sandbox.Root, path string) string {
	t.Helper()
	f, err := fb.OpenFile(context.Background(), "s1", root, path)
	require.NoError(t, err, "open %s %s", root, path)
	got, err := readAll(f, nil)
	require.NoError(t, err, "read %s %s", root, path)
	return got
}

func TestClientFileErrors(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	_, err := c.WriteFile(ctx, "s1", "", "bin", bytes.NewReader([]byte{0, 0xff}), false)
	require.NoError(t, err, "WriteFile")
	_, err = c.WriteFile(ctx, "s1", "", "d/x", strings.NewReader("x"), true)
	require.NoError(t, err, "WriteFile")

	tests := []struct {
		name       string
		call       func() error
		sentinel   error
		wantStatus int
	}{
		{"list in a missing session", func() error { _, err := c.ListFiles(ctx, "nope", "", "", false); return err }, api.ErrNotFound, 404},
		{"bad root", func() error { _, err := c.StatFile(ctx, "s1", "home", "bin"); return err }, api.ErrInvalidArgument, 400},
		{"read a missing file", func() error { _, err := c.ReadFile(ctx, "s1", "", "nope", 0, 0); return err }, api.ErrNotFound, 404},
		{"negative offset", func() error { _, err := c.ReadFile(ctx, "s1", "", "bin", -1, 0); return err }, api.ErrInvalidArgument, 400},
		{"offset past the end", func() error { _, err := c.ReadFile(ctx, "s1", "", "bin", 3, 0); return err }, api.ErrInvalidArgument, 400},
		{"negative line", func() error { _, err := c.ReadText(ctx, "s1", "", "bin", -1, 0); return err }, api.ErrInvalidArgument, 400},
		{"text of a binary file", func() error { _, err := c.ReadText(ctx, "s1", "", "bin", 1, 0); return err }, api.ErrUnsupported, 415},
		{"path leaves the root", func() error { _, err := c.StatFile(ctx, "s1", "", "../../etc"); return err }, api.ErrPermission, 403},
		{"edit mismatch", func() error {
			_, err := c.EditFile(ctx, "s1", "", api.EditRequest{Path: "d/x", Old: "y", New: "z"})
			return err
		}, api.ErrConflict, 409},
		{"remove a non-empty directory", func() error { return c.RemoveFile(ctx, "s1", "", "d", false) }, api.ErrConflict, 409},
		{"mkdir of an existing one", func() error { _, err := c.Mkdir(ctx, "s1", "", api.MkdirRequest{Path: "d"}); return err }, api.ErrAlreadyExists, 409},
		{"move onto a file", func() error {
			_, err := c.MoveFile(ctx, "s1", "", api.MoveRequest{From: "bin", To: "d/x"})
			return err
		}, api.ErrAlreadyExists, 409},
		{"download a missing output", func() error { _, err := c.DownloadOutput(ctx, "u1", "nope.pdf"); return err }, api.ErrNotFound, 404},
		{"write into a missing directory", func() error {
			_, err := c.WriteFile(ctx, "s1", "", "e/x", strings.NewReader("x"), false)
			return err
		}, api.ErrNotFound, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err, "call fails")
			assert.ErrorIs(t, err, tt.sentinel, "error matches its sentinel")
			apiErr, ok := errors.AsType[*api.Error](err)
			require.True(t, ok, "error is an *api.Error: %T", err)
			assert.Equal(t, tt.wantStatus, apiErr.Status, "HTTP status")
		})
	}
}

// TestClientUploadLength checks which bodies go with a Content-Length: a
// chunked upload cannot be refused before it is sent.
func TestClientUploadLength(t *testing.T) {
	regular, err := os.CreateTemp(t.TempDir(), "upload")
	require.NoError(t, err, "create temp file")
	t.Cleanup(func() { regular.Close() })
	_, err = regular.WriteString("0123456789")
	require.NoError(t, err, "write temp file")
	_, err = regular.Seek(4, io.SeekStart)
	require.NoError(t, err, "seek temp file")
	pipeR, pipeW, err := os.Pipe()
	require.NoError(t, err, "pipe")
	t.Cleanup(func() { pipeR.Close() })
	_, err = pipeW.WriteString("piped")
	require.NoError(t, err, "write pipe")
	require.NoError(t, pipeW.Close(), "close pipe writer")

	tests := []struct {
		name       string
		body       io.Reader
		want       string
		wantLength int64 // -1: chunked
	}{
		{"strings.Reader", strings.NewReader("text"), "text", 4},
		{"bytes.Reader", bytes.NewReader([]byte("bytes")), "bytes", 5},
		{"bytes.Buffer", bytes.NewBufferString("buffer"), "buffer", 6},
		{"regular file from its offset", regular, "456789", 6},
		{"pipe", pipeR, "piped", -1},
		{"other reader", io.MultiReader(strings.NewReader("multi")), "multi", -1},
		{"nil", nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fb, lengths := startRecordingServer(t)
			res, err := c.WriteFile(context.Background(), "s1", "", "f", tt.body, false)
			require.NoError(t, err, "WriteFile")
			assert.Equal(t, int64(len(tt.want)), res.Size, "stored size")
			assert.Equal(t, tt.want, mustRead(t, fb, sandbox.RootWorkspace, "f"), "stored content")
			assert.Equal(t, tt.wantLength, <-lengths, "request's Content-Length")
		})
	}
	_, err = regular.Stat()
	assert.NoError(t, err, "WriteFile leaves the caller's file open")
}

// startRecordingServer is startServer with session s1, sending each
// request's ContentLength on the channel it returns.
func startRecordingServer(t *testing.T) (*client.Client, *servertest.Backend, <-chan int64) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbx")
	require.NoError(t, err, "make temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")

	fb := servertest.New()
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	h := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler)}).Handler()
	lengths := make(chan int64, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lengths <- r.ContentLength
		h.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("unix", path)
	require.NoError(t, err, "listen on %s", path)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return client.New(path), fb, lengths
}

// streamTimeout bounds a streamed exec in the tests: a client holding
// events back would otherwise wait forever on a fake that waits for it.
const streamTimeout = 10 * time.Second

func TestClientExecStreamDeliversEventsAsTheyCome(t *testing.T) {
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "a/b c", UserID: "u1"})
	want := []api.ExecEvent{
		{Type: api.EventStdout, Data: "one\n"},
		{Type: api.EventStderr, DataB64: "//4="},
		{Type: api.EventStdout, Data: "two"},
	}
	next := make(chan struct{})
	fb.SetScript(servertest.Script{
		Output: []sandbox.Output{
			{Stream: sandbox.Stdout, Data: []byte("one\n")},
			{Stream: sandbox.Stderr, Data: []byte{0xff, 0xfe}},
			{Stream: sandbox.Stdout, Data: []byte("two")},
		},
		Result: sandbox.ExecResult{ExitCode: 2, Duration: 30 * time.Millisecond},
		Next:   next,
	})
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()

	req := api.ExecRequest{Argv: []string{"make", "-j4"}, Env: map[string]string{"K": "v"}}
	var got []api.ExecEvent
	res, err := c.ExecStream(ctx, "a/b c", req, func(ev api.ExecEvent) error {
		got = append(got, ev)
		// The fake emits the next output, or ends, only once this event
		// is seen here.
		next <- struct{}{}
		return nil
	})
	require.NoError(t, err, "ExecStream")
	assert.Equal(t, want, got, "every output event, in order")
	assert.Equal(t, api.ExecResult{ExitCode: 2, DurationMS: 30}, res, "the exit event's result")
	assert.Equal(t, servertest.ExecCall{ID: "a/b c", Streamed: true, Req: sandbox.ExecRequest{
		Command: sandbox.Command{Argv: []string{"make", "-j4"}, Env: map[string]string{"K": "v"}},
	}}, fb.LastExec(), "backend got the request as sent, to the session named")
}

func TestClientExecStreamErrors(t *testing.T) {
	tests := []struct {
		name       string
		session    string
		script     servertest.Script
		wantEvents int
		sentinel   error
		wantStatus int
		wantMsg    string
	}{
		{
			name: "missing session", session: "nope",
			sentinel: api.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: `not found: session "nope"`,
		},
		{
			name: "no process left", session: "s1",
			script:   servertest.Script{Err: fmt.Errorf("%w: session %q", sandbox.ErrPidsLimit, "s1")},
			sentinel: api.ErrPidsLimit, wantStatus: http.StatusTooManyRequests, wantMsg: `pids limit reached: session "s1"`,
		},
		{
			name: "after the stream began", session: "s1",
			script: servertest.Script{
				Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("partial")}},
				Err:    fmt.Errorf("session %q: %w", "s1", sandbox.ErrUnavailable),
			},
			wantEvents: 1, sentinel: api.ErrUnavailable, wantStatus: 0, wantMsg: `session "s1": unavailable`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fb := startServer(t)
			fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
			fb.SetScript(tt.script)
			var events int
			_, err := c.ExecStream(context.Background(), tt.session, api.ExecRequest{Command: "true"}, func(api.ExecEvent) error {
				events++
				return nil
			})
			require.Error(t, err, "ExecStream fails")
			assert.Equal(t, tt.wantEvents, events, "events seen before the failure")
			assert.ErrorIs(t, err, tt.sentinel, "error matches its sentinel")
			apiErr, ok := errors.AsType[*api.Error](err)
			require.True(t, ok, "error is an *api.Error: %T", err)
			assert.Equal(t, tt.wantStatus, apiErr.Status, "HTTP status")
			assert.Equal(t, tt.wantMsg, apiErr.Message, "server's message")
		})
	}
}

// TestClientExecStreamStopCancelsTheCommand checks that a caller that stops
// reading, by cancelling ctx or failing its callback, cancels the daemon's
// exec, which is what kills the command.
func TestClientExecStreamStopCancelsTheCommand(t *testing.T) {
	errStop := errors.New("seen enough")
	tests := []struct {
		name string
		// stop is the callback's answer to the first event, given the
		// exec's cancel.
		stop func(cancel context.CancelFunc) error
		want error
	}{
		{"cancelled context", func(cancel context.CancelFunc) error { cancel(); return nil }, context.Canceled},
		{"failing callback", func(context.CancelFunc) error { return errStop }, errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fb := startServer(t)
			fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
			ended := make(chan struct{})
			fb.SetScript(servertest.Script{
				Output: []sandbox.Output{{Stream: sandbox.Stdout, Data: []byte("1")}, {Stream: sandbox.Stdout, Data: []byte("2")}},
				Next:   make(chan struct{}),
				Ended:  ended,
			})
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
			defer cancel()
			var events int
			_, err := c.ExecStream(ctx, "s1", api.ExecRequest{Command: "seq 2"}, func(api.ExecEvent) error {
				events++
				return tt.stop(cancel)
			})
			assert.ErrorIs(t, err, tt.want, "ExecStream's error")
			assert.Equal(t, 1, events, "no event after the stop")
			select {
			case <-ended:
			case <-time.After(streamTimeout):
				t.Fatal("the daemon's exec was not cancelled")
			}
			assert.ErrorIs(t, fb.LastExec().Err, context.Canceled, "the exec ended by its cancelled context")
		})
	}
}

func TestClientExecStreamReadsTheWire(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantEvents  int
		wantResult  api.ExecResult
		wantErr     string // substring; empty: success
		wantErrIs   error
	}{
		{
			name: "unknown event types are skipped", contentType: api.NDJSON,
			body:       `{"type":"stdout","data":"a"}` + "\n" + `{"type":"progress","data":"50%"}` + "\n" + `{"type":"exit","result":{"exit_code":4}}` + "\n",
			wantEvents: 1, wantResult: api.ExecResult{ExitCode: 4},
		},
		{
			name: "a stream cut off", contentType: api.NDJSON,
			body:       `{"type":"stdout","data":"a"}` + "\n",
			wantEvents: 1, wantErr: "read stream", wantErrIs: io.ErrUnexpectedEOF,
		},
		{
			name: "an exit without a result", contentType: api.NDJSON,
			body: `{"type":"exit"}` + "\n", wantErr: "exit event without a result",
		},
		{
			name: "a daemon that does not stream", contentType: "application/json",
			body: `{"exit_code":0}`, wantErr: `answer is "application/json", not application/x-ndjson`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startRawServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				_, _ = io.WriteString(w, tt.body)
			})
			var events int
			res, err := c.ExecStream(context.Background(), "s1", api.ExecRequest{Command: "x"}, func(api.ExecEvent) error {
				events++
				return nil
			})
			assert.Equal(t, tt.wantEvents, events, "output events passed on")
			if tt.wantErr == "" {
				require.NoError(t, err, "ExecStream")
				assert.Equal(t, tt.wantResult, res, "result")
				return
			}
			require.Error(t, err, "ExecStream fails")
			assert.Contains(t, err.Error(), tt.wantErr, "error says what is wrong")
			if tt.wantErrIs != nil {
				assert.ErrorIs(t, err, tt.wantErrIs, "error's cause")
			}
		})
	}
}

func TestClientExecStreamAsksForNDJSON(t *testing.T) {
	accepts := make(chan string, 1)
	c := startRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		accepts <- r.Header.Get("Accept")
		w.Header().Set("Content-Type", api.NDJSON)
		_, _ = io.WriteString(w, `{"type":"exit","result":{"exit_code":0}}`+"\n")
	})
	_, err := c.ExecStream(context.Background(), "s1", api.ExecRequest{Command: "x"}, func(api.ExecEvent) error { return nil })
	require.NoError(t, err, "ExecStream")
	assert.Equal(t, api.NDJSON, <-accepts, "Accept header")
}

func TestClientProcesses(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	const id = "a/b c" // escaped in the path
	fb.AddSession(sandbox.Session{ID: id, UserID: "u1"})

	p, err := c.StartProcess(ctx, id, api.StartProcessRequest{Command: "python3 -m http.server", Cwd: "/workspace"})
	require.NoError(t, err, "StartProcess")
	assert.Equal(t, api.Process{ID: "p1", PID: 101, Command: "python3 -m http.server", Status: api.StatusRunning,
		StartedAt: fb.Epoch().Add(time.Second)}, p, "the started process")
	require.NoError(t, fb.Print(id, p.ID, "Serving", "GET / 200", "GET /x 404"), "print")

	list, err := c.ListProcesses(ctx, id)
	require.NoError(t, err, "ListProcesses")
	assert.Equal(t, []api.Process{p}, list, "the one process")

	out, err := c.ProcessOutput(ctx, id, p.ID, " 404$")
	require.NoError(t, err, "ProcessOutput filtered")
	assert.Equal(t, []string{"GET /x 404"}, out.Lines, "only the lines the filter matches")
	assert.Equal(t, p, out.Process, "the process's state comes along")
	out, err = c.ProcessOutput(ctx, id, p.ID, "")
	require.NoError(t, err, "ProcessOutput again")
	assert.Empty(t, out.Lines, "read lines are not read again, matched or not")

	require.NoError(t, fb.Print(id, p.ID, "bye"), "print")
	killed, err := c.KillProcess(ctx, id, p.ID, 1500*time.Millisecond)
	require.NoError(t, err, "KillProcess")
	assert.Equal(t, 1500*time.Millisecond, fb.LastGrace(), "grace sent")
	assert.Equal(t, []string{"bye"}, killed.Lines, "the last unread output")
	assert.Equal(t, api.StatusKilled, killed.Status, "status")
	require.NotNil(t, killed.ExitCode, "exit code set")
	assert.Equal(t, 143, *killed.ExitCode, "128+SIGTERM")

	p2, err := c.StartProcess(ctx, id, api.StartProcessRequest{Argv: []string{"sleep", "9"}})
	require.NoError(t, err, "StartProcess again")
	_, err = c.KillProcess(ctx, id, p2.ID, 0)
	require.NoError(t, err, "KillProcess without a grace")
	assert.Equal(t, 5*time.Second, fb.LastGrace(), "no grace sent: the daemon's default")

	list, err = c.ListProcesses(ctx, id)
	require.NoError(t, err, "ListProcesses after the kills")
	assert.Empty(t, list, "killed processes are gone")
}

func TestClientPackages(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	fb.SetAllowed("alpha")
	fb.SetEnvs(sandbox.Env{ID: "20250601T120000Z-00000001", Current: true, Python: "3.11.2"})

	res, err := c.InstallPackages(ctx, "s1", []string{"alpha==2.0"})
	require.NoError(t, err, "InstallPackages")
	assert.Equal(t, []api.InstalledPackage{{Name: "alpha", Version: "2.0"}}, res.Installed)
	assert.Equal(t, "20250601T120000Z-00000001", res.Env)

	_, err = c.InstallPackages(ctx, "s1", []string{"gamma"})
	require.ErrorIs(t, err, api.ErrPackageNotAllowed, "a refusal matches its sentinel")
	assert.ErrorContains(t, err, "gamma is not on the package allow-list")
	assert.Equal(t, 403, err.(*api.Error).Status)

	var out []string
	res, err = c.InstallPackagesStream(ctx, "s1", []string{"alpha"}, func(ev api.ExecEvent) error {
		out = append(out, ev.Type+": "+ev.Data)
		return nil
	})
	require.NoError(t, err, "InstallPackagesStream")
	assert.Equal(t, []string{"stdout: Installing alpha-1.0\n"}, out, "pip's output as it came")
	assert.Len(t, res.Installed, 1)
	_, err = c.InstallPackagesStream(ctx, "s1", []string{"gamma"}, func(api.ExecEvent) error { return nil })
	assert.ErrorIs(t, err, api.ErrPackageNotAllowed, "a refusal before the stream is the envelope's")

	pkgs, err := c.ListPackages(ctx, "s1")
	require.NoError(t, err, "ListPackages")
	assert.Equal(t, []api.Package{{Name: "alpha", Version: "2.0"}, {Name: "alpha", Version: "1.0"}}, pkgs.Packages)
	_, err = c.ListPackages(ctx, "nope")
	assert.ErrorIs(t, err, api.ErrNotFound)

	envs, err := c.ListEnvs(ctx)
	require.NoError(t, err, "ListEnvs")
	require.Len(t, envs, 1)
	assert.True(t, envs[0].Current)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	require.NotNil(t, info.Env)
	assert.Equal(t, envs[0], *info.Env)
}

func TestClientUser(t *testing.T) {
	ctx := context.Background()
	c, _ := startServer(t)
	_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "a/b c", SessionID: "s1"})
	require.NoError(t, err, "CreateSession")
	u, err := c.User(ctx, "a/b c")
	require.NoError(t, err, "User")
	assert.Equal(t, "a/b c", u.UserID, "an odd user id survives the URL")
	assert.Equal(t, int64(1024), u.Limits.MaxWorkspaceSizeMB, "limits")
	assert.Equal(t, 600.0, u.Limits.IdleFreezeAfterSec, "in seconds")
	assert.Equal(t, 1, u.Usage.Sessions, "one session")
	require.Len(t, u.Usage.SessionDisks, 1, "its disk")
	assert.Equal(t, "s1", u.Usage.SessionDisks[0].SessionID)
	require.Len(t, u.Sessions, 1, "and the session")
	assert.Equal(t, "s1", u.Sessions[0].ID)
}
