package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxErrorBody bounds how much of a non-JSON error body is kept.
const maxErrorBody = 64 << 10

// Client talks to sandboxd over its Unix socket. Failed requests return an
// *Error, so errors.Is(err, ErrNotFound) and the like tell the kind of
// failure. A Client is safe for concurrent use.
type Client struct {
	http *http.Client
	base string
}

// NewClient returns a Client for the daemon listening on socketPath. It
// sets no timeout of its own: the daemon bounds exec, ctx bounds the rest.
func NewClient(socketPath string) *Client {
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
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.do(ctx, http.MethodGet, "/"+Version, nil, nil, &info)
	return info, err
}

// CreateSession starts a session.
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (Session, error) {
	var sess Session
	err := c.do(ctx, http.MethodPost, "/"+Version+"/sessions", nil, req, &sess)
	return sess, err
}

// ListSessions returns the live sessions, only userID's when it is not empty.
func (c *Client) ListSessions(ctx context.Context, userID string) ([]Session, error) {
	var q url.Values
	if userID != "" {
		q = url.Values{"user_id": {userID}}
	}
	var list SessionList
	err := c.do(ctx, http.MethodGet, "/"+Version+"/sessions", q, nil, &list)
	return list.Sessions, err
}

// GetSession describes session id.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	var sess Session
	err := c.do(ctx, http.MethodGet, sessionPath(id), nil, nil, &sess)
	return sess, err
}

// Exec runs one command in session id and waits for it to end.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (ExecResult, error) {
	var res ExecResult
	err := c.do(ctx, http.MethodPost, sessionPath(id)+"/exec", nil, req, &res)
	return res, err
}

// DeleteSession ends session id; with keepFiles its output files are kept.
func (c *Client) DeleteSession(ctx context.Context, id string, keepFiles bool) (DeleteSessionResult, error) {
	q := url.Values{"keep_files": {strconv.FormatBool(keepFiles)}}
	var res DeleteSessionResult
	err := c.do(ctx, http.MethodDelete, sessionPath(id), q, nil, &res)
	return res, err
}

func sessionPath(id string) string {
	return "/" + Version + "/sessions/" + url.PathEscape(id)
}

// do sends one request with body (when not nil) as JSON and decodes a 2xx
// answer into out. Any other answer becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error would repeat the method and URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// responseError turns a failed answer into an *Error: the envelope when the
// body is one, else an internal error carrying the body's text.
func responseError(resp *http.Response) *Error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && len(body) == 0 {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("read error response: %v", err), Status: resp.StatusCode}
	}
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		e.Status = resp.StatusCode
		return &e
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Code: CodeInternal, Message: msg, Status: resp.StatusCode}
}
