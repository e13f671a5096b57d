package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// seed gives session s1 a workspace with a.txt and sub/b.txt, a shared a.txt
// and empty directory, and user u1 an output.
func seed(t *testing.T, fb *servertest.Backend) {
	t.Helper()
	write(t, fb, sandbox.RootWorkspace, "a.txt", "hello\nworld\n")
	write(t, fb, sandbox.RootWorkspace, "sub/b.txt", "b")
	write(t, fb, sandbox.RootShared, "a.txt", "shared\n")
	_, err := fb.Mkdir(context.Background(), "s1", sandbox.RootShared, "empty", false)
	require.NoError(t, err, "seed shared/empty")
	fb.AddOutput("u1", "report.pdf", []byte("%PDF-1.7"))
}

// content is what the fake holds at path, or the error reading it.
func content(t *testing.T, fb *servertest.Backend, root sandbox.Root, path string) (string, error) {
	t.Helper()
	f, err := fb.OpenFile(context.Background(), "s1", root, path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err, "read %s %s", root, path)
	return string(b), nil
}

func serveRaw(h http.Handler, method, target, contentType string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestFileRoutesSucceed(t *testing.T) {
	type check func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend)
	entryPaths := func(t *testing.T, rec *httptest.ResponseRecorder) []string {
		var paths []string
		for _, e := range decodeBody[api.FileList](t, rec).Entries {
			paths = append(paths, e.Path)
		}
		return paths
	}
	stored := func(root sandbox.Root, path, want string) check {
		return func(t *testing.T, _ *httptest.ResponseRecorder, fb *servertest.Backend) {
			got, err := content(t, fb, root, path)
			require.NoError(t, err, "%s %s is stored", root, path)
			assert.Equal(t, want, got, "content of %s %s", root, path)
		}
	}
	bytesSent := func(want string, wantLength int) check {
		return func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
			assert.Equal(t, want, rec.Body.String(), "bytes sent")
			assert.Equal(t, fmt.Sprint(wantLength), rec.Header().Get("Content-Length"), "Content-Length is what is sent")
		}
	}
	tests := []struct {
		name        string
		method      string
		target      string
		contentType string
		body        string
		wantStatus  int
		check       check
	}{
		{
			name: "list the workspace by default", method: http.MethodGet, target: "/v1/sessions/s1/files", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				list := decodeBody[api.FileList](t, rec)
				assert.Equal(t, api.RootWorkspace, list.Root, "root defaults to workspace")
				assert.Equal(t, []api.FileInfo{
					{Name: "a.txt", Path: "a.txt", Type: api.TypeFile, Size: 12, Mode: "0644", ModTime: fb.Epoch()},
					{Name: "sub", Path: "sub", Type: api.TypeDir, Mode: "0755", ModTime: fb.Epoch()},
				}, list.Entries, "top-level entries")
			},
		},
		{
			name: "list shared", method: http.MethodGet, target: "/v1/sessions/s1/files?root=shared", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"root":"shared","path":"","truncated":false,"entries":[
					{"name":"a.txt","path":"a.txt","type":"file","size":7,"mode":"0644","mtime":"2025-06-01T12:00:00Z"},
					{"name":"empty","path":"empty","type":"dir","size":0,"mode":"0755","mtime":"2025-06-01T12:00:00Z"}]}`,
					rec.Body.String(), "shared root's listing")
			},
		},
		{
			name: "list recursively", method: http.MethodGet, target: "/v1/sessions/s1/files?recursive=1&root=workspace", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, []string{"a.txt", "sub", "sub/b.txt"}, entryPaths(t, rec), "every entry")
			},
		},
		{
			name: "list a subdirectory", method: http.MethodGet, target: "/v1/sessions/s1/files?path=sub", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, []string{"sub/b.txt"}, entryPaths(t, rec), "the subdirectory's entries")
			},
		},
		{
			name: "list an empty directory", method: http.MethodGet, target: "/v1/sessions/s1/files?path=empty&recursive=false&root=shared", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"root":"shared","path":"empty","truncated":false,"entries":[]}`, rec.Body.String(), "no entries is []")
			},
		},
		{
			name: "stat", method: http.MethodGet, target: "/v1/sessions/s1/files/stat?path=sub%2Fb.txt", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, api.FileInfo{Name: "b.txt", Path: "sub/b.txt", Type: api.TypeFile, Size: 1, Mode: "0644", ModTime: fb.Epoch()},
					decodeBody[api.FileInfo](t, rec), "file info")
			},
		},
		{
			name: "stat an absolute path", method: http.MethodGet, target: "/v1/sessions/s1/files/stat?path=/workspace/shared/a.txt&root=shared", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, int64(7), decodeBody[api.FileInfo](t, rec).Size, "the shared file's size")
			},
		},
		{
			name: "read a whole file", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				bytesSent("hello\nworld\n", 12)(t, rec, fb)
				h := rec.Header()
				assert.Equal(t, "application/octet-stream", h.Get("Content-Type"), "raw bytes")
				assert.Equal(t, "12", h.Get("X-Sandboxd-Size"), "full size")
				assert.Equal(t, "Sun, 01 Jun 2025 12:00:00 GMT", h.Get("Last-Modified"), "modification time")
			},
		},
		{
			name: "read from an offset", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt&offset=6", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				bytesSent("world\n", 6)(t, rec, fb)
				assert.Equal(t, "12", rec.Header().Get("X-Sandboxd-Size"), "the full size, not the slice's")
			},
		},
		{
			name: "read a slice", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt&offset=6&length=3", wantStatus: http.StatusOK,
			check: bytesSent("wor", 3),
		},
		{
			name: "length past the end", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt&offset=10&length=100", wantStatus: http.StatusOK,
			check: bytesSent("d\n", 2),
		},
		{
			name: "offset at the end", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt&offset=12", wantStatus: http.StatusOK,
			check: bytesSent("", 0),
		},
		{
			name: "read from shared", method: http.MethodGet, target: "/v1/sessions/s1/files/content?path=a.txt&root=shared", wantStatus: http.StatusOK,
			check: bytesSent("shared\n", 7),
		},
		{
			name: "HEAD of content", method: http.MethodHead, target: "/v1/sessions/s1/files/content?path=a.txt", wantStatus: http.StatusOK,
			check: bytesSent("", 12),
		},
		{
			name: "read text", method: http.MethodGet, target: "/v1/sessions/s1/files/text?path=a.txt", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, api.TextFile{Path: "a.txt", TotalLines: 2, Lines: []api.TextLine{{Number: 1, Text: "hello"}, {Number: 2, Text: "world"}}},
					decodeBody[api.TextFile](t, rec), "every line")
			},
		},
		{
			name: "read text lines", method: http.MethodGet, target: "/v1/sessions/s1/files/text?path=a.txt&line=2&limit=1", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.Equal(t, []api.TextLine{{Number: 2, Text: "world"}}, decodeBody[api.TextFile](t, rec).Lines, "line 2 only")
			},
		},
		{
			name: "read text past the end", method: http.MethodGet, target: "/v1/sessions/s1/files/text?path=a.txt&line=9", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ *servertest.Backend) {
				assert.JSONEq(t, `{"path":"a.txt","lines":[],"total_lines":2}`, rec.Body.String(), "no lines is []")
			},
		},
		{
			name: "write a file", method: http.MethodPut, target: "/v1/sessions/s1/files/content?path=new.bin",
			contentType: "application/octet-stream", body: "\x00\x01", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, api.WriteResult{Path: "new.bin", Size: 2, SHA256: "b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2"},
					decodeBody[api.WriteResult](t, rec), "write result")
				stored(sandbox.RootWorkspace, "new.bin", "\x00\x01")(t, rec, fb)
			},
		},
		{
			name: "write any content type", method: http.MethodPut, target: "/v1/sessions/s1/files/content?path=page.html",
			contentType: "text/html", body: "<p>", wantStatus: http.StatusOK,
			check: stored(sandbox.RootWorkspace, "page.html", "<p>"),
		},
		{
			name: "write with mkdirs to shared", method: http.MethodPut, target: "/v1/sessions/s1/files/content?path=x/y/z.txt&mkdirs=true&root=shared",
			body: "deep", wantStatus: http.StatusOK,
			check: stored(sandbox.RootShared, "x/y/z.txt", "deep"),
		},
		{
			name: "write without mkdirs", method: http.MethodPut, target: "/v1/sessions/s1/files/content?path=x/y/z.txt",
			body: "deep", wantStatus: http.StatusNotFound,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, fb *servertest.Backend) {
				_, err := content(t, fb, sandbox.RootWorkspace, "x/y/z.txt")
				assert.ErrorIs(t, err, sandbox.ErrNotFound, "nothing written without the parents")
			},
		},
		{
			name: "edit", method: http.MethodPost, target: "/v1/sessions/s1/files/edit", contentType: "application/json",
			body: `{"path":"a.txt","old":"world","new":"there"}`, wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				res := decodeBody[api.EditResult](t, rec)
				assert.Equal(t, 1, res.Replacements, "one replacement")
				assert.Equal(t, int64(12), res.Size, "new size")
				stored(sandbox.RootWorkspace, "a.txt", "hello\nthere\n")(t, rec, fb)
			},
		},
		{
			name: "edit in shared", method: http.MethodPost, target: "/v1/sessions/s1/files/edit?root=shared", contentType: "application/json",
			body: `{"path":"a.txt","old":"shared","new":"common","count":1}`, wantStatus: http.StatusOK,
			check: stored(sandbox.RootShared, "a.txt", "common\n"),
		},
		{
			name: "remove a file", method: http.MethodDelete, target: "/v1/sessions/s1/files?path=a.txt", wantStatus: http.StatusNoContent,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Empty(t, rec.Body.String(), "no body")
				_, err := content(t, fb, sandbox.RootWorkspace, "a.txt")
				assert.ErrorIs(t, err, sandbox.ErrNotFound, "a.txt is gone")
				stored(sandbox.RootShared, "a.txt", "shared\n")(t, rec, fb)
			},
		},
		{
			name: "remove a tree", method: http.MethodDelete, target: "/v1/sessions/s1/files?path=sub&recursive=true", wantStatus: http.StatusNoContent,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, fb *servertest.Backend) {
				_, err := fb.StatFile(context.Background(), "s1", sandbox.RootWorkspace, "sub")
				assert.ErrorIs(t, err, sandbox.ErrNotFound, "sub is gone")
			},
		},
		{
			name: "mkdir", method: http.MethodPost, target: "/v1/sessions/s1/files/mkdir?root=shared", contentType: "application/json",
			body: `{"path":"out/charts","parents":true}`, wantStatus: http.StatusCreated,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, api.FileInfo{Name: "charts", Path: "out/charts", Type: api.TypeDir, Mode: "0755", ModTime: fb.Epoch()},
					decodeBody[api.FileInfo](t, rec), "the new directory")
				_, err := fb.StatFile(context.Background(), "s1", sandbox.RootShared, "out/charts")
				assert.NoError(t, err, "made in shared")
			},
		},
		{
			name: "move", method: http.MethodPost, target: "/v1/sessions/s1/files/move", contentType: "application/json",
			body: `{"from":"sub","to":"moved"}`, wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				assert.Equal(t, "moved", decodeBody[api.FileInfo](t, rec).Path, "the destination's info")
				stored(sandbox.RootWorkspace, "moved/b.txt", "b")(t, rec, fb)
			},
		},
		{
			name: "download an output", method: http.MethodGet, target: "/v1/users/u1/files/outputs/report.pdf", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, fb *servertest.Backend) {
				bytesSent("%PDF-1.7", 8)(t, rec, fb)
				assert.Equal(t, "application/pdf", rec.Header().Get("Content-Type"), "type by extension")
				assert.Equal(t, "attachment; filename=report.pdf", rec.Header().Get("Content-Disposition"), "an attachment")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			seed(t, fb)
			srv, _ := newServer(fb, 0)
			rec := serveRaw(srv.Handler(), tt.method, tt.target, tt.contentType, strings.NewReader(tt.body))
			require.Equal(t, tt.wantStatus, rec.Code, "status of %s %s; body %s", tt.method, tt.target, rec.Body)
			tt.check(t, rec, fb)
		})
	}
}

func TestFileRouteErrors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"missing session", http.MethodGet, "/v1/sessions/s9/files", "", 404, api.CodeNotFound, `session "s9"`},
		{"missing file", http.MethodGet, "/v1/sessions/s1/files/content?path=nope", "", 404, api.CodeNotFound, `"nope"`},
		{"missing in shared", http.MethodGet, "/v1/sessions/s1/files/stat?path=sub&root=shared", "", 404, api.CodeNotFound, `"sub" in shared`},
		{"missing output", http.MethodGet, "/v1/users/u2/files/outputs/report.pdf", "", 404, api.CodeNotFound, `user "u2"`},
		{"path leaves the root", http.MethodGet, "/v1/sessions/s1/files/text?path=../etc/passwd", "", 403, api.CodePermission, "leaves the workspace root"},
		{"absolute path leaves the root", http.MethodGet, "/v1/sessions/s1/files/stat?path=/workspace/../etc", "", 403, api.CodePermission, "leaves the workspace root"},
		{"absolute path elsewhere", http.MethodGet, "/v1/sessions/s1/files/stat?path=/etc/passwd", "", 400, api.CodeInvalidArgument, "must be under /workspace"},
		{"read a directory", http.MethodGet, "/v1/sessions/s1/files/content?path=sub", "", 403, api.CodePermission, "not a regular file"},
		{"remove the root", http.MethodDelete, "/v1/sessions/s1/files?recursive=true", "", 409, api.CodeConflict, "cannot remove the root"},
		{"edit mismatch", http.MethodPost, "/v1/sessions/s1/files/edit", `{"path":"a.txt","old":"l","new":"L"}`, 409, api.CodeConflict, "occurs 3 times, expected 1"},
		{"remove a non-empty directory", http.MethodDelete, "/v1/sessions/s1/files?path=sub", "", 409, api.CodeConflict, "not empty"},
		{"mkdir over a file", http.MethodPost, "/v1/sessions/s1/files/mkdir", `{"path":"a.txt"}`, 409, api.CodeAlreadyExists, `"a.txt"`},
		{"move to the shared files", http.MethodPost, "/v1/sessions/s1/files/move", `{"from":"a.txt","to":"shared/a.txt"}`, 400, api.CodeInvalidArgument, "between the workspace and the shared files"},
		{"text of a binary file", http.MethodGet, "/v1/sessions/s1/files/text?path=bin", "", 415, api.CodeUnsupported, "not valid UTF-8 text"},
		{"offset past the end", http.MethodGet, "/v1/sessions/s1/files/content?path=a.txt&offset=13", "", 400, api.CodeInvalidArgument, "offset 13 is past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			seed(t, fb)
			write(t, fb, sandbox.RootWorkspace, "bin", "\xff\x00")
			srv, _ := newServer(fb, 0)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			assert.Equal(t, tt.wantStatus, rec.Code, "status; body %s", rec.Body)
			got := decodeBody[api.Error](t, rec)
			assert.Equal(t, tt.wantCode, got.Code, "error code")
			assert.Contains(t, got.Message, tt.wantMsg, "error message")
		})
	}
}

// largeFiles opens every file as one of fileCap+10 bytes, which no upload
// to the fake can make, to check the route's own cap.
type largeFiles struct{ *servertest.Backend }

func (largeFiles) OpenFile(context.Context, string, sandbox.Root, string) (sandbox.File, error) {
	r := bytes.NewReader(bytes.Repeat([]byte("x"), fileCap+10))
	return sandbox.File{ReadSeekCloser: largeFile{r}, Info: sandbox.FileInfo{Name: "large", Path: "large", Type: sandbox.TypeFile, Size: r.Size()}}, nil
}

type largeFile struct{ *bytes.Reader }

func (largeFile) Close() error { return nil }

func TestReadCapsTheBytesSent(t *testing.T) {
	tests := []struct {
		query      string
		wantStatus int
		wantLength int64
	}{
		{"", http.StatusRequestEntityTooLarge, 0},
		{"&offset=9", http.StatusRequestEntityTooLarge, 0},
		{"&offset=10", http.StatusOK, fileCap},
		{"&length=" + fmt.Sprint(fileCap), http.StatusOK, fileCap},
		{"&offset=5&length=" + fmt.Sprint(fileCap+1), http.StatusRequestEntityTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			srv, _ := newServer(largeFiles{newFake()}, 0)
			rec := serve(srv.Handler(), http.MethodGet, "/v1/sessions/s1/files/content?path=large"+tt.query, "")
			require.Equal(t, tt.wantStatus, rec.Code, "status; body %.200s", rec.Body)
			if tt.wantStatus != http.StatusOK {
				assert.Contains(t, decodeBody[api.Error](t, rec).Message, fmt.Sprintf("exceed the limit of %d", fileCap), "says why")
				return
			}
			assert.Equal(t, fmt.Sprint(tt.wantLength), rec.Header().Get("Content-Length"), "Content-Length")
			assert.Equal(t, tt.wantLength, int64(rec.Body.Len()), "bytes sent")
		})
	}
}

// The fake, like the daemon, passes the body reader's error on as it is:
// the server makes a cut upload a 413.
func TestUploadOverTheCapIsTooLargeEvenUntranslated(t *testing.T) {
	fb := newFake()
	srv, _ := newServer(fb, 0)
	rec := serveRaw(srv.Handler(), http.MethodPut, "/v1/sessions/s1/files/content?path=big", "",
		bytes.NewReader(make([]byte, fileCap+1)))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "status; body %s", rec.Body)
	assert.Equal(t, api.CodeTooLarge, decodeBody[api.Error](t, rec).Code, "a *http.MaxBytesError is too_large")
	_, err := content(t, fb, sandbox.RootWorkspace, "big")
	assert.ErrorIs(t, err, sandbox.ErrNotFound, "nothing is left of the cut upload")
}

// TestUploadLimits goes through a real socket and the Go client: what the
// client sees of a cut upload depends on net/http's connection handling.
func TestUploadLimits(t *testing.T) {
	fb := newFake()
	srv, _ := newServer(fb, 1<<10)
	path, served := serveUnix(t, srv)
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
		assert.NoError(t, <-served, "serve")
	})
	c := client.New(path)
	ctx := context.Background()

	res, err := c.WriteFile(ctx, "s1", "", "mid.bin", bytes.NewReader(make([]byte, 64<<10)), false)
	require.NoError(t, err, "an upload over the JSON limit but under the file cap")
	assert.Equal(t, int64(64<<10), res.Size, "all of it stored")

	res, err = c.WriteFile(ctx, "s1", "", "full.bin", io.LimitReader(zeros{}, fileCap), false)
	require.NoError(t, err, "a chunked upload of exactly the file cap")
	assert.Equal(t, int64(fileCap), res.Size, "all of it stored")

	for name, body := range map[string]io.Reader{
		"with a Content-Length": bytes.NewReader(make([]byte, 2*fileCap)),
		"chunked":               io.LimitReader(zeros{}, 2*fileCap),
	} {
		_, err = c.WriteFile(ctx, "s1", "", "big.bin", body, false)
		require.Error(t, err, "an upload over the file cap %s", name)
		apiErr, ok := errors.AsType[*api.Error](err)
		require.True(t, ok, "the client sees the answer, not a broken pipe: %v", err)
		assert.Equal(t, http.StatusRequestEntityTooLarge, apiErr.Status, "status %s", name)
		assert.ErrorIs(t, err, api.ErrTooLarge, "too_large %s", name)
	}
	_, err = fb.StatFile(ctx, "s1", api.RootWorkspace, "big.bin")
	assert.ErrorIs(t, err, sandbox.ErrNotFound, "nothing is left of the cut uploads")

	_, err = c.EditFile(ctx, "s1", "", api.EditRequest{Path: "mid.bin", Old: "x", New: strings.Repeat("y", 2<<10)})
	assert.ErrorIs(t, err, api.ErrTooLarge, "a JSON body keeps the JSON limit")
}

// zeros reads as endless zero bytes, hiding its length from the client.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestDownloadHeaders(t *testing.T) {
	tests := []struct {
		name            string
		wantType        string
		wantDisposition string
	}{
		{"report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "attachment; filename=report.docx"},
		{"paper.pdf", "application/pdf", "attachment; filename=paper.pdf"},
		{"Sheet.XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "attachment; filename=Sheet.XLSX"},
		{"deck.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "attachment; filename=deck.pptx"},
		{"data.csv", "text/csv; charset=utf-8", "attachment; filename=data.csv"},
		{"plot.png", "image/png", "attachment; filename=plot.png"},
		{"blob", "application/octet-stream", "attachment; filename=blob"},
		{"my \"final\" notes.txt", "text/plain; charset=utf-8", `attachment; filename="my \"final\" notes.txt"`},
		{"résumé.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
			"attachment; filename=r_sum_.docx; filename*=UTF-8''r%C3%A9sum%C3%A9.docx"},
		{"報告 #1.pdf", "application/pdf", `attachment; filename="__ #1.pdf"; filename*=UTF-8''%E5%A0%B1%E5%91%8A%20#1.pdf`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFake()
			fb.AddOutput("u 1", tt.name, []byte("data"))
			srv, _ := newServer(fb, 0)
			path, served := serveUnix(t, srv)
			t.Cleanup(func() {
				assert.NoError(t, srv.Shutdown(context.Background()), "shutdown")
				assert.NoError(t, <-served, "serve")
			})
			req, err := http.NewRequest(http.MethodGet, "http://sandboxd/v1/users/u%201/files/outputs/"+url.PathEscape(tt.name), nil)
			require.NoError(t, err, "build request")
			resp, err := unixHTTPClient(path).Do(req)
			require.NoError(t, err, "download")
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err, "read body")
			require.Equal(t, http.StatusOK, resp.StatusCode, "status; body %s", body)

			assert.Equal(t, "data", string(body), "the file")
			assert.Equal(t, int64(4), resp.ContentLength, "Content-Length")
			assert.Equal(t, tt.wantType, resp.Header.Get("Content-Type"), "Content-Type")
			assert.Equal(t, tt.wantDisposition, resp.Header.Get("Content-Disposition"), "Content-Disposition")
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			require.NoError(t, err, "Content-Disposition parses")
			assert.Equal(t, "attachment", disp, "disposition")
			assert.Equal(t, tt.name, params["filename"], "a parser recovers the name")
		})
	}
}
