package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// servertestTimeout is an exec that times out.
var servertestTimeout = servertest.Script{Result: sandbox.ExecResult{ExitCode: 137, Signal: "SIGKILL", TimedOut: true}}

func TestClientStats(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	fb.SetStats("s1", sandbox.SessionStats{CPU: 2 * time.Second, MemoryBytes: 1 << 20, Execs: 4})

	st, err := c.Stats(ctx, "s1")
	require.NoError(t, err, "Stats")
	assert.Equal(t, "s1", st.ID, "id")
	assert.Equal(t, "u1", st.UserID, "user")
	assert.Equal(t, "running", st.Status, "status")
	assert.Equal(t, int64(2000), st.CPUMS, "cpu")
	assert.Equal(t, uint64(1<<20), st.MemoryBytes, "memory")
	assert.Equal(t, uint64(4), st.Execs, "execs")

	_, err = c.Stats(ctx, "nope")
	assert.ErrorIs(t, err, api.ErrNotFound, "an unknown session")
}

// eventsOf runs c.Events in the background and returns its events as they
// come, and its end; it returns once the client is subscribed.
func eventsOf(t *testing.T, c *client.Client, user, session string, fn func(api.Event) error) (<-chan api.Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	got := make(chan api.Event, 100)
	ended := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		ended <- c.Events(ctx, user, session, func() { close(ready) }, func(ev api.Event) error {
			got <- ev
			if fn != nil {
				return fn(ev)
			}
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-ended:
		t.Fatalf("Events ended before it was ready: %v", err)
	}
	return got, ended
}

func TestClientEvents(t *testing.T) {
	ctx := context.Background()
	c, fb := startServer(t)
	stop := errors.New("seen enough")
	life, lifeEnded := eventsOf(t, c, "", "s1", func(ev api.Event) error {
		if ev.Type == "session_deleted" {
			return stop
		}
		return nil
	})
	_, otherEnded := eventsOf(t, c, "u2", "", nil)

	fb.SetScript(servertestTimeout)
	_, err := c.CreateSession(ctx, api.CreateSessionRequest{UserID: "u1", SessionID: "s1"})
	require.NoError(t, err, "create")
	_, err = c.Exec(ctx, "s1", api.ExecRequest{Command: "sleep 9", TimeoutSec: 1})
	require.NoError(t, err, "exec")
	_, err = c.DeleteSession(ctx, "s1", false)
	require.NoError(t, err, "delete")

	require.ErrorIs(t, <-lifeEnded, stop, "fn's error ends Events")
	var types []string
	for len(life) > 0 {
		ev := <-life
		types = append(types, ev.Type)
		assert.Equal(t, "s1", ev.SessionID, "the session's")
	}
	assert.Equal(t, []string{"session_created", "exec_timed_out", "exec_finished", "session_deleted"}, types, "in order")

	fb.Publish(events.Event{Type: events.SessionFrozen, UserID: "u2", SessionID: "s2"})
	fb.Publish(events.Event{Type: events.Dropped, UserID: "u2", Reason: "test"})
	err = <-otherEnded
	assert.ErrorIs(t, err, client.ErrDropped, "a dropped stream is an error")
	assert.Contains(t, err.Error(), "test", "with the daemon's reason")
}

func TestClientEventsEndWithTheContext(t *testing.T) {
	c, _ := startServer(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	ready := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		ended <- c.Events(ctx, "", "", func() { close(ready) }, func(api.Event) error { return nil })
	}()
	<-ready
	why := errors.New("enough")
	cancel(why)
	assert.ErrorIs(t, <-ended, why, "the context's cause")
}

func TestClientEventsOfAnUnknownKindAreHandedOver(t *testing.T) {
	c, fb := startServer(t)
	got, _ := eventsOf(t, c, "", "", nil)
	fb.Publish(events.Event{Type: "from_the_future", Reason: strings.Repeat("x", 10)})
	ev := <-got
	assert.Equal(t, "from_the_future", ev.Type, "the client does not filter types: the caller skips what it does not know")
}
