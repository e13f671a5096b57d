package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
	sbevents "github.com/sandboxd/sandboxd/sandbox/events"
)

func TestSessionStatsRoute(t *testing.T) {
	fb := newFake()
	at := time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)
	fb.SetStats("s1", sandbox.SessionStats{
		CPU: 1500 * time.Millisecond, CPUThrottled: 250 * time.Millisecond,
		MemoryBytes: 1 << 20, MemoryPeakBytes: 2 << 20, Pids: 3, PidsLimit: 128,
		OOMKills: 1, Execs: 7, Processes: 2, LastActivity: at,
		Disk: &sandbox.DiskUsage{Bytes: 4096, LimitBytes: 1 << 30, Files: 2, LimitFiles: 10000},
	})
	srv, _ := newServer(fb, 0)

	rec := serve(srv.Handler(), http.MethodGet, "/v1/sessions/s1/stats", "")
	require.Equal(t, http.StatusOK, rec.Code, "status: %s", rec.Body)
	assert.Equal(t, api.SessionStats{
		ID: "s1", UserID: "u1", Status: "running", Limits: testSession.Limits,
		CPUMS: 1500, CPUThrottledMS: 250, MemoryBytes: 1 << 20, MemoryPeakBytes: 2 << 20,
		Pids: 3, PidsLimit: 128, OOMKills: 1, Execs: 7, Processes: 2, LastActivity: at,
		Disk: &api.DiskUsage{Bytes: 4096, LimitBytes: 1 << 30, Files: 2, LimitFiles: 10000},
	}, decodeBody[api.SessionStats](t, rec), "the statistics on the wire")

	fb.SetStats("s1", sandbox.SessionStats{})
	rec = serve(srv.Handler(), http.MethodGet, "/v1/sessions/s1/stats", "")
	var raw map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw), "decode")
	assert.NotContains(t, raw, "disk", "no disk figures while nobody measures them")
	assert.Contains(t, raw, "cpu_ms", "zero figures are still sent")

	rec = serve(srv.Handler(), http.MethodGet, "/v1/sessions/nope/stats", "")
	assert.Equal(t, http.StatusNotFound, rec.Code, "unknown session")
}

// eventStream opens GET target on the server at path and returns a reader
// of its lines once the status line is in, which is when the subscription
// is in place.
func eventStream(t *testing.T, path, target string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sandboxd"+target, nil)
	require.NoError(t, err, "request")
	resp, err := unixHTTPClient(path).Do(req)
	require.NoError(t, err, "GET %s", target)
	require.Equal(t, http.StatusOK, resp.StatusCode, "status")
	assert.Equal(t, api.NDJSON, resp.Header.Get("Content-Type"), "content type")
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
}

// nextEvent reads one line of an event stream.
func nextEvent(t *testing.T, r *bufio.Reader) api.Event {
	t.Helper()
	line, err := r.ReadBytes('\n')
	require.NoError(t, err, "read an event line")
	var ev api.Event
	require.NoError(t, json.Unmarshal(line, &ev), "event line %q", line)
	return ev
}

func TestEventsStreamASessionsLifeInOrder(t *testing.T) {
	fb := newFake()
	fb.SetScript(servertest.Script{Result: sandbox.ExecResult{ExitCode: 137, Signal: "SIGKILL", TimedOut: true, Duration: time.Second}})
	srv, _ := newServer(fb, 0)
	path, _ := serveUnix(t, srv)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	life, _ := eventStream(t, path, "/v1/events?session_id=s2")
	u1, _ := eventStream(t, path, "/v1/events?user_id=u1")

	client := unixHTTPClient(path)
	do := func(method, target, body string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://sandboxd"+target, strings.NewReader(body))
		require.NoError(t, err, "request")
		resp, err := client.Do(req)
		require.NoError(t, err, "%s %s", method, target)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300, "%s %s", method, target)
	}
	do(http.MethodPost, "/v1/sessions", `{"user_id":"u2","session_id":"s2"}`)
	do(http.MethodPost, "/v1/sessions/s2/exec", `{"command":"sleep 100","timeout":1}`)
	do(http.MethodDelete, "/v1/sessions/s2", "")
	fb.Publish(sbevents.Event{Type: sbevents.SessionFrozen, UserID: "u1", SessionID: "s1"})

	var got []string
	var seq uint64
	for range 4 {
		ev := nextEvent(t, life)
		got = append(got, ev.Type)
		assert.Equal(t, "u2", ev.UserID, "%s's user", ev.Type)
		assert.Equal(t, "s2", ev.SessionID, "%s's session", ev.Type)
		assert.Greater(t, ev.Seq, seq, "%s numbered after the one before", ev.Type)
		assert.False(t, ev.Time.IsZero(), "%s has its time", ev.Type)
		seq = ev.Seq
		if ev.Type == "exec_timed_out" {
			assert.Equal(t, "sleep 100", ev.Command, "the command")
			assert.Equal(t, &api.Outcome{ExitCode: 137, Signal: "SIGKILL", TimedOut: true, DurationMS: 1000}, ev.Outcome, "its outcome")
		}
	}
	assert.Equal(t, []string{"session_created", "exec_timed_out", "exec_finished", "session_deleted"}, got, "created, timed out, deleted, in order")
	assert.Equal(t, "session_frozen", nextEvent(t, u1).Type, "another user's stream saw none of u2's events")
}

// A client that stops reading is dropped once the daemon's queue for it is
// full: publishing never waits for it, a client that reads gets every
// event, and the slow one's stream, once it reads again, ends with a
// dropped event.
func TestSlowEventConsumerIsDroppedWithoutSlowingAnything(t *testing.T) {
	fb := newFake()
	const queue, batch, n = 64, 50, 4000
	fb.SetEventQueue(queue)
	srv, _ := newServer(fb, 0)
	path, _ := serveUnix(t, srv)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	slow, _ := eventStream(t, path, "/v1/events")
	fast, _ := eventStream(t, path, "/v1/events")

	// Each event is big, so that the slow client's socket buffers fill
	// long before the last one.
	padding := strings.Repeat("x", 1024)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			fb.Publish(sbevents.Event{Type: sbevents.ExecFinished, SessionID: "s1", Reason: padding})
			if (i+1)%batch == 0 {
				// The fast client keeps up: the test reads it below
				// before the next batch goes out.
				readUpTo(t, fast, i+1)
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(60 * time.Second):
		t.Fatal("publishing stalled behind a client that does not read")
	}
	live, dropped := fb.Subscribers()
	assert.Equal(t, uint64(1), dropped, "the slow client was dropped")
	assert.Equal(t, 1, live, "the fast one is still subscribed")

	var last api.Event
	var got int
	for {
		ev := nextEvent(t, slow)
		if ev.Type == api.EventDropped {
			last = ev
			break
		}
		got++
		require.Equal(t, uint64(got), ev.Seq, "the slow client's events come in order, without a gap")
	}
	assert.Less(t, got, n, "the slow client missed events")
	assert.Equal(t, uint64(got+1), last.Seq, "the drop names the first it missed")
	assert.NotEmpty(t, last.Reason, "and why")
	_, err := slow.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "its stream ends there")
}

// readUpTo reads an event stream up to the event numbered seq. It runs
// off the test's goroutine, so it reports with Errorf.
func readUpTo(t *testing.T, r *bufio.Reader, seq int) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Errorf("the fast client's stream broke before event %d: %v", seq, err)
			return
		}
		var ev api.Event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Type == api.EventDropped {
			t.Errorf("the fast client got %q before event %d", line, seq)
			return
		}
		if ev.Seq == uint64(seq) {
			return
		}
	}
}

func TestShutdownEndsEventStreams(t *testing.T) {
	fb := newFake()
	srv, _ := newServer(fb, 0)
	path, served := serveUnix(t, srv)
	stream, _ := eventStream(t, path, "/v1/events")

	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shutdown:
		require.NoError(t, err, "shutdown")
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown waited for an event stream")
	}
	require.NoError(t, <-served, "Serve returns nil after Shutdown")
	_, err := stream.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the stream ended")
	live, _ := fb.Subscribers()
	assert.Zero(t, live, "the subscription is gone")
}

// A stream that was idle past its last event's write deadline still ends
// cleanly: the end of the answer gets a deadline of its own.
func TestIdleEventStreamEndsCleanly(t *testing.T) {
	fb := newFake()
	const deadline = 20 * time.Millisecond
	srv := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler), StreamWriteTimeout: deadline})
	path, served := serveUnix(t, srv)
	stream, _ := eventStream(t, path, "/v1/events")
	fb.Publish(sbevents.Event{Type: sbevents.SessionCreated})
	assert.Equal(t, "session_created", nextEvent(t, stream).Type, "the event")
	time.Sleep(5 * deadline) // not a synchronisation: the deadline must be past

	require.NoError(t, srv.Shutdown(context.Background()), "shutdown")
	require.NoError(t, <-served, "serve")
	_, err := stream.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "a clean end of the answer, not a cut one")
}

func TestMetricsRoute(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "sandboxd_up 1")
	})
	srv := server.New(newFake(), server.Config{Logger: slog.New(slog.DiscardHandler), Metrics: metrics})
	rec := serve(srv.Handler(), http.MethodGet, "/metrics", "")
	assert.Equal(t, http.StatusOK, rec.Code, "status")
	assert.Equal(t, "sandboxd_up 1\n", rec.Body.String(), "the metrics handler answers")

	srv, _ = newServer(newFake(), 0)
	rec = serve(srv.Handler(), http.MethodGet, "/metrics", "")
	assert.Equal(t, http.StatusNotFound, rec.Code, "no metrics without a handler")
	assert.Equal(t, api.CodeNotFound, decodeBody[api.Error](t, rec).Code, "in the envelope")
}
