package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/sandboxd/sandboxd/api"
)

// ErrDropped is returned by Events when the daemon dropped the stream
// because the client fell behind; the events after it were not delivered.
var ErrDropped = errors.New("the daemon dropped the event stream: the client fell behind")

// maxEventLine bounds one line of the event stream.
const maxEventLine = 1 << 20

// Stats reads what session id uses and has done.
func (c *Client) Stats(ctx context.Context, id string) (api.SessionStats, error) {
	var st api.SessionStats
	err := c.do(ctx, http.MethodGet, sessionPath(id)+"/stats", nil, nil, &st)
	return st, err
}

// Events hands the daemon's events to fn as they happen, only userID's
// or session sessionID's when set, until ctx ends (its cause is
// returned), fn fails (its error is returned) or the daemon ends the
// stream: nil when it stopped, an error wrapping ErrDropped when the
// client fell so far behind that the daemon dropped it. ready, when not
// nil, is called once the daemon has subscribed the client: nothing that
// happens after is missed.
func (c *Client) Events(ctx context.Context, userID, sessionID string, ready func(), fn func(api.Event) error) error {
	q := url.Values{}
	if userID != "" {
		q.Set("user_id", userID)
	}
	if sessionID != "" {
		q.Set("session_id", sessionID)
	}
	req, err := c.request(ctx, http.MethodGet, "/"+api.Version+"/events", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", api.NDJSON)
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	where := req.Method + " " + req.URL.EscapedPath()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != api.NDJSON {
		return fmt.Errorf("%s: answer is %q, not %s", where, resp.Header.Get("Content-Type"), api.NDJSON)
	}
	if ready != nil {
		ready()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("%s: event %q: %w", where, sc.Bytes(), err)
		}
		if ev.Type == api.EventDropped {
			return fmt.Errorf("%w (from event %d on): %s", ErrDropped, ev.Seq, ev.Reason)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	err = sc.Err()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: read stream: %w", where, err)
	}
	return nil
}
