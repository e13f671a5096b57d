package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// maxErrorBody bounds how much of a non-JSON error body is kept.
const maxErrorBody = 64 << 10

// Client talks to sandboxd over its Unix socket. Failed requests return an
// *api.Error, so errors.Is(err, api.ErrNotFound) and the like tell the kind
// of failure. A Client is safe for concurrent use.
type Client struct {
	http *http.Client
	base string
}

// New returns a Client for the daemon listening on socketPath. It
// sets no timeout of its own: the daemon bounds exec, ctx bounds the rest.
func New(socketPath string) *Client {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
	}
	return &Client{
		http: &http.Client{Transport: transport},
		// The host is never resolved; the transport always dials the socket.
		base: "http://sandboxd",
	}
}

// Info returns the daemon's version, cgroup setup, limits and session count.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var info api.Info
	err := c.do(ctx, http.MethodGet, "/"+api.Version, nil, nil, &info)
	return info, err
}

// CreateSession starts a session.
func (c *Client) CreateSession(ctx context.Context, req api.CreateSessionRequest) (api.Session, error) {
	var sess api.Session
	err := c.do(ctx, http.MethodPost, "/"+api.Version+"/sessions", nil, req, &sess)
	return sess, err
}

// ListSessions returns the live sessions, only userID's when it is not empty.
func (c *Client) ListSessions(ctx context.Context, userID string) ([]api.Session, error) {
	var q url.Values
	if userID != "" {
		q = url.Values{"user_id": {userID}}
	}
	var list api.SessionList
	err := c.do(ctx, http.MethodGet, "/"+api.Version+"/sessions", q, nil, &list)
	return list.Sessions, err
}

// GetSession describes session id.
func (c *Client) GetSession(ctx context.Context, id string) (api.Session, error) {
	var sess api.Session
	err := c.do(ctx, http.MethodGet, sessionPath(id), nil, nil, &sess)
	return sess, err
}

// User describes a user: their limits, disk usage and sessions.
func (c *Client) User(ctx context.Context, userID string) (api.User, error) {
	var u api.User
	err := c.do(ctx, http.MethodGet, "/"+api.Version+"/users/"+url.PathEscape(userID), nil, nil, &u)
	return u, err
}

// Exec runs one command in session id and waits for it to end.
func (c *Client) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	var res api.ExecResult
	err := c.do(ctx, http.MethodPost, sessionPath(id)+"/exec", nil, req, &res)
	return res, err
}

// ExecStream runs one command in session id like Exec, but hands its output
// to fn as it arrives: stdout and stderr events, each chunk in Data, or in
// DataB64 when it is not UTF-8. It returns the command's result, whose
// Stdout and Stderr are empty. A failure before the output began is an
// *Error with the HTTP status; one after it is an *Error with Status 0. If
// fn fails, ExecStream stops and returns fn's error. Both that and
// cancelling ctx close the connection, and the daemon then kills the
// command's whole process tree.
func (c *Client) ExecStream(ctx context.Context, id string, req api.ExecRequest, fn func(api.ExecEvent) error) (api.ExecResult, error) {
	st, err := c.postStream(ctx, sessionPath(id)+"/exec", req)
	if err != nil {
		return api.ExecResult{}, err
	}
	defer st.close()
	for {
		var ev api.ExecEvent
		if err := st.next(&ev); err != nil {
			return api.ExecResult{}, err
		}
		switch ev.Type {
		case api.EventStdout, api.EventStderr:
			if err := fn(ev); err != nil {
				return api.ExecResult{}, err
			}
		case api.EventExit:
			if ev.Result == nil {
				return api.ExecResult{}, fmt.Errorf("%s: exit event without a result", st.where)
			}
			return *ev.Result, nil
		case api.EventError:
			return api.ExecResult{}, &api.Error{Message: ev.Error, Code: ev.Code}
		}
		// Event types newer than this client are skipped.
	}
}

// eventStream reads the NDJSON events of a streamed answer.
type eventStream struct {
	ctx   context.Context
	body  io.ReadCloser
	dec   *json.Decoder
	where string
}

// postStream posts in to path asking for NDJSON, and returns the stream
// of events of its 2xx answer; the caller closes it.
func (c *Client) postStream(ctx context.Context, path string, in any) (*eventStream, error) {
	hreq, err := c.jsonRequest(ctx, http.MethodPost, path, nil, in)
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Accept", api.NDJSON)
	resp, err := c.send(hreq)
	if err != nil {
		return nil, err
	}
	where := hreq.Method + " " + hreq.URL.EscapedPath()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != api.NDJSON {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: answer is %q, not %s", where, resp.Header.Get("Content-Type"), api.NDJSON)
	}
	return &eventStream{ctx: ctx, body: resp.Body, dec: json.NewDecoder(resp.Body), where: where}, nil
}

// next decodes the next event into v. A stream always ends with its final
// event, so running out before it is an error.
func (s *eventStream) next(v any) error {
	err := s.dec.Decode(v)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if s.ctx.Err() != nil {
		err = context.Cause(s.ctx)
	}
	return fmt.Errorf("%s: read stream: %w", s.where, err)
}

func (s *eventStream) close() { _ = s.body.Close() }

// DeleteSession ends session id; with keepFiles its output files are kept.
func (c *Client) DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error) {
	q := url.Values{"keep_files": {strconv.FormatBool(keepFiles)}}
	var res api.DeleteSessionResult
	err := c.do(ctx, http.MethodDelete, sessionPath(id), q, nil, &res)
	return res, err
}

// ListFiles lists directory path ("" for the root itself) of session id's
// root: RootWorkspace when root is empty, or RootShared. With recursive it
// descends into subdirectories.
func (c *Client) ListFiles(ctx context.Context, id, root, path string, recursive bool) (api.FileList, error) {
	q := fileQuery(root, path)
	if recursive {
		q.Set("recursive", "true")
	}
	var list api.FileList
	err := c.do(ctx, http.MethodGet, filesPath(id), q, nil, &list)
	return list, err
}

// StatFile describes path in session id's root; symlinks are not followed.
func (c *Client) StatFile(ctx context.Context, id, root, path string) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.do(ctx, http.MethodGet, filesPath(id)+"/stat", fileQuery(root, path), nil, &info)
	return info, err
}

// ReadFile streams the bytes of path in session id's root from offset, at
// most length of them (all when 0). The caller closes the stream.
func (c *Client) ReadFile(ctx context.Context, id, root, path string, offset, length int64) (io.ReadCloser, error) {
	q := fileQuery(root, path)
	if offset != 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if length != 0 {
		q.Set("length", strconv.FormatInt(length, 10))
	}
	return c.stream(ctx, filesPath(id)+"/content", q)
}

// ReadText returns limit lines (all when 0) of text file path in session
// id's root, from line (numbered from 1; 0 means 1).
func (c *Client) ReadText(ctx context.Context, id, root, path string, line, limit int) (api.TextFile, error) {
	q := fileQuery(root, path)
	if line != 0 {
		q.Set("line", strconv.Itoa(line))
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var text api.TextFile
	err := c.do(ctx, http.MethodGet, filesPath(id)+"/text", q, nil, &text)
	return text, err
}

// WriteFile stores body as path in session id's root, replacing any file
// there; mkdirs creates missing parent directories. body is streamed, read
// to its end and not closed. When it is a *bytes.Reader, *bytes.Buffer,
// *strings.Reader or a regular *os.File its length is sent ahead; any
// other body is sent chunked.
func (c *Client) WriteFile(ctx context.Context, id, root, path string, body io.Reader, mkdirs bool) (api.WriteResult, error) {
	q := fileQuery(root, path)
	if mkdirs {
		q.Set("mkdirs", "true")
	}
	n, err := bodyLength(body)
	if err != nil {
		return api.WriteResult{}, fmt.Errorf("upload %s: %w", path, err)
	}
	req, err := c.request(ctx, http.MethodPut, filesPath(id)+"/content", q, nil)
	if err != nil {
		return api.WriteResult{}, err
	}
	if n != 0 {
		// NopCloser: the transport closes the body it sends, and body is
		// the caller's.
		req.Body, req.ContentLength = io.NopCloser(body), n
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var res api.WriteResult
	err = c.call(req, &res)
	return res, err
}

// bodyLength is body's length when it is known without reading body, -1
// when it is not.
func bodyLength(body io.Reader) (int64, error) {
	switch b := body.(type) {
	case nil:
		return 0, nil
	case interface{ Len() int }: // *bytes.Reader, *bytes.Buffer, *strings.Reader
		return int64(b.Len()), nil
	case *os.File:
		fi, err := b.Stat()
		if err != nil {
			return 0, fmt.Errorf("stat body: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return -1, nil
		}
		pos, err := b.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, fmt.Errorf("body offset: %w", err)
		}
		return fi.Size() - pos, nil
	default:
		return -1, nil
	}
}

// EditFile replaces req.Old by req.New in file req.Path of session id's
// root.
func (c *Client) EditFile(ctx context.Context, id, root string, req api.EditRequest) (api.EditResult, error) {
	var res api.EditResult
	err := c.do(ctx, http.MethodPost, filesPath(id)+"/edit", fileQuery(root, ""), req, &res)
	return res, err
}

// RemoveFile removes path from session id's root; a non-empty directory
// only with recursive.
func (c *Client) RemoveFile(ctx context.Context, id, root, path string, recursive bool) error {
	q := fileQuery(root, path)
	if recursive {
		q.Set("recursive", "true")
	}
	return c.do(ctx, http.MethodDelete, filesPath(id), q, nil, nil)
}

// Mkdir creates directory req.Path in session id's root.
func (c *Client) Mkdir(ctx context.Context, id, root string, req api.MkdirRequest) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.do(ctx, http.MethodPost, filesPath(id)+"/mkdir", fileQuery(root, ""), req, &info)
	return info, err
}

// MoveFile renames req.From to req.To within session id's root and
// describes the result.
func (c *Client) MoveFile(ctx context.Context, id, root string, req api.MoveRequest) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.do(ctx, http.MethodPost, filesPath(id)+"/move", fileQuery(root, ""), req, &info)
	return info, err
}

// DownloadOutput streams the user's file shared_files/outputs/name. The
// caller closes the stream.
func (c *Client) DownloadOutput(ctx context.Context, userID, name string) (io.ReadCloser, error) {
	path := "/" + api.Version + "/users/" + url.PathEscape(userID) + "/files/outputs/" + url.PathEscape(name)
	return c.stream(ctx, path, nil)
}

// StartProcess starts a background command in session id. Its output is
// read with ProcessOutput; KillProcess ends it.
func (c *Client) StartProcess(ctx context.Context, id string, req api.StartProcessRequest) (api.Process, error) {
	var p api.Process
	err := c.do(ctx, http.MethodPost, sessionPath(id)+"/processes", nil, req, &p)
	return p, err
}

// ListProcesses lists session id's background processes, oldest first.
func (c *Client) ListProcesses(ctx context.Context, id string) ([]api.Process, error) {
	var list api.ProcessList
	err := c.do(ctx, http.MethodGet, sessionPath(id)+"/processes", nil, nil, &list)
	return list.Processes, err
}

// ProcessOutput returns the output lines of background process pid (its
// Process.ID) not read before, only those the regular expression filter
// matches when it is not empty, and the process's state.
func (c *Client) ProcessOutput(ctx context.Context, id, pid, filter string) (api.ProcessOutput, error) {
	var q url.Values
	if filter != "" {
		q = url.Values{"filter": {filter}}
	}
	var out api.ProcessOutput
	err := c.do(ctx, http.MethodGet, processPath(id, pid)+"/output", q, nil, &out)
	return out, err
}

// KillProcess ends background process pid: SIGTERM to its whole tree, then
// SIGKILL after grace (the daemon's default, 5 s, when grace is not
// positive). It returns the unread output and the final state; the
// process is then gone.
func (c *Client) KillProcess(ctx context.Context, id, pid string, grace time.Duration) (api.ProcessOutput, error) {
	var q url.Values
	if grace > 0 {
		q = url.Values{"grace": {grace.String()}}
	}
	var out api.ProcessOutput
	err := c.do(ctx, http.MethodDelete, processPath(id, pid), q, nil, &out)
	return out, err
}

// InstallPackages installs PEP 508 requirements ("pandas>=2,<3") into
// session id's own layer of /opt/venv, offline, from the daemon's package
// cache, as its allow-list allows: a refusal is an *Error matching
// api.ErrPackageNotAllowed, naming the package and the list's line.
func (c *Client) InstallPackages(ctx context.Context, id string, requirements []string) (api.InstallPackagesResult, error) {
	var res api.InstallPackagesResult
	err := c.do(ctx, http.MethodPost, sessionPath(id)+"/packages", nil, api.InstallPackagesRequest{Requirements: requirements}, &res)
	return res, err
}

// InstallPackagesStream installs like InstallPackages, handing pip's
// output to fn as it arrives (stdout and stderr events, as ExecStream
// does). Failures are reported as ExecStream reports them.
func (c *Client) InstallPackagesStream(ctx context.Context, id string, requirements []string, fn func(api.ExecEvent) error) (api.InstallPackagesResult, error) {
	st, err := c.postStream(ctx, sessionPath(id)+"/packages", api.InstallPackagesRequest{Requirements: requirements})
	if err != nil {
		return api.InstallPackagesResult{}, err
	}
	defer st.close()
	for {
		var ev api.PackageEvent
		if err := st.next(&ev); err != nil {
			return api.InstallPackagesResult{}, err
		}
		switch ev.Type {
		case api.EventStdout, api.EventStderr:
			if err := fn(ev.ExecEvent); err != nil {
				return api.InstallPackagesResult{}, err
			}
		case api.EventInstalled:
			if ev.Install == nil {
				return api.InstallPackagesResult{}, fmt.Errorf("%s: installed event without a result", st.where)
			}
			return *ev.Install, nil
		case api.EventError:
			return api.InstallPackagesResult{}, &api.Error{Message: ev.Error, Code: ev.Code}
		}
	}
}

// ListPackages lists what session id has beyond its base environment.
func (c *Client) ListPackages(ctx context.Context, id string) (api.SessionPackages, error) {
	var res api.SessionPackages
	err := c.do(ctx, http.MethodGet, sessionPath(id)+"/packages", nil, nil, &res)
	return res, err
}

// ListEnvs lists the versions of the base environment, oldest first.
func (c *Client) ListEnvs(ctx context.Context) ([]api.Env, error) {
	var list api.EnvList
	err := c.do(ctx, http.MethodGet, "/"+api.Version+"/envs", nil, nil, &list)
	return list.Envs, err
}

func sessionPath(id string) string {
	return "/" + api.Version + "/sessions/" + url.PathEscape(id)
}

func filesPath(id string) string {
	return sessionPath(id) + "/files"
}

func processPath(id, pid string) string {
	return sessionPath(id) + "/processes/" + url.PathEscape(pid)
}

// fileQuery is the query of a files route: root when it is not the
// default, path when it is not the root.
func fileQuery(root, path string) url.Values {
	q := url.Values{}
	if root != "" {
		q.Set("root", root)
	}
	if path != "" {
		q.Set("path", path)
	}
	return q
}

// do sends one request with in (when not nil) as its JSON body and decodes
// a 2xx answer into out (when not nil). Any other answer becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	req, err := c.jsonRequest(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	return c.call(req, out)
}

// jsonRequest builds a request for path with in (when not nil) as its JSON
// body.
func (c *Client) jsonRequest(ctx context.Context, method, path string, query url.Values, in any) (*http.Request, error) {
	if in == nil {
		return c.request(ctx, method, path, query, nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
	}
	req, err := c.request(ctx, method, path, query, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// stream sends a GET and returns the body of its 2xx answer.
func (c *Client) stream(ctx context.Context, path string, query url.Values) (io.ReadCloser, error) {
	req, err := c.request(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// request builds a request for path, which is already escaped.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return req, nil
}

// call sends req and decodes its 2xx answer's JSON into out, unless out is
// nil.
func (c *Client) call(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", req.Method, req.URL.EscapedPath(), err)
	}
	return nil
}

// send sends req and returns its answer if it is a 2xx; the caller closes
// its body. Any other answer becomes an *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error would repeat the method and URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.EscapedPath(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

// responseError turns a failed answer into an *Error: the envelope when the
// body is one, else an internal error carrying the body's text.
func responseError(resp *http.Response) *api.Error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && len(body) == 0 {
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("read error response: %v", err), Status: resp.StatusCode}
	}
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		e.Status = resp.StatusCode
		return &e
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &api.Error{Code: api.CodeInternal, Message: msg, Status: resp.StatusCode}
}
