package sandbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/events"
)

// queued takes the events a subscription holds now. The Manager publishes
// before the call that caused an event returns, so they are all there.
func queued(sub *events.Subscription) []events.Event {
	var out []events.Event
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

func typesOf(evs []events.Event) []events.Type {
	out := make([]events.Type, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func TestEventsFollowASessionsLife(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	id := fmt.Sprintf("life-%d", time.Now().UnixNano())
	sub, err := env.m.Subscribe(ctx, events.Filter{SessionID: id})
	require.NoError(t, err, "subscribe")
	defer sub.Close()

	_, err = env.m.CreateSession(ctx, CreateRequest{UserID: "life", SessionID: id})
	require.NoError(t, err, "create")
	res, err := env.m.Exec(ctx, id, ExecRequest{Command: Command{Shell: "sleep 5"}, Timeout: time.Second})
	require.NoError(t, err, "exec")
	require.True(t, res.TimedOut, "the command timed out")
	_, err = env.m.DeleteSession(ctx, id, false)
	require.NoError(t, err, "delete")

	evs := queued(sub)
	require.Equal(t, []events.Type{events.SessionCreated, events.ExecTimedOut, events.ExecFinished, events.SessionDeleted}, typesOf(evs), "the session's life in order")
	for i, ev := range evs {
		assert.Equal(t, "life", ev.UserID, "event %d's user", i)
		assert.Equal(t, id, ev.SessionID, "event %d's session", i)
		if i > 0 {
			assert.Greater(t, ev.Seq, evs[i-1].Seq, "event %d numbered in order", i)
		}
	}
	timedOut := evs[1]
	assert.Equal(t, "sleep 5", timedOut.Command, "the command")
	require.NotNil(t, timedOut.Outcome, "its outcome")
	assert.True(t, timedOut.Outcome.TimedOut, "timed out")
	assert.GreaterOrEqual(t, timedOut.Outcome.Duration, time.Second, "after its timeout")
}

func TestEventsOfBackgroundProcessesOOMAndQuotas(t *testing.T) {
	s := startSession(t, "evproc", &Limits{MemoryMB: 128})
	ctx := context.Background()
	sub, err := env.m.Subscribe(ctx, events.Filter{UserID: "evproc"})
	require.NoError(t, err, "subscribe")
	defer sub.Close()

	hog, err := env.m.StartProcess(ctx, s.ID, Command{Shell: `python3 -c 'b = bytearray(512 * 1024 * 1024)'`})
	require.NoError(t, err, "start the hog")
	waitEnded(t, s.ID, hog.ID)
	exec := run(t, s.ID, `python3 -c 'b = bytearray(512 * 1024 * 1024)'`, 30)
	require.True(t, exec.OOMKilled, "the exec is OOM-killed")

	var ids []string
	for range env.cfg.MaxProcessesPerSession {
		p, err := env.m.StartProcess(ctx, s.ID, Command{Shell: "sleep 1000"})
		require.NoError(t, err, "start a sleeper")
		ids = append(ids, p.ID)
	}
	_, err = env.m.StartProcess(ctx, s.ID, Command{Shell: "sleep 1"})
	require.ErrorIs(t, err, ErrQuota, "one past the limit")
	for _, id := range ids {
		_, err := env.m.KillProcess(ctx, s.ID, id, 0)
		require.NoError(t, err, "kill a sleeper")
	}

	evs := queued(sub)
	want := []events.Type{events.ProcessStarted, events.OOMKill, events.ProcessExited, events.OOMKill, events.ExecFinished}
	for range ids {
		want = append(want, events.ProcessStarted)
	}
	want = append(want, events.QuotaExceeded)
	for range ids {
		want = append(want, events.ProcessExited)
	}
	require.Equal(t, want, typesOf(evs), "in order")
	assert.Equal(t, hog.ID, evs[1].Process, "the first kill is the background process's")
	require.NotNil(t, evs[1].Outcome, "with its outcome")
	assert.True(t, evs[1].Outcome.OOMKilled, "OOM-killed")
	assert.Empty(t, evs[3].Process, "the second is the exec's")
	quota := evs[5+len(ids)]
	assert.Equal(t, events.QuotaProcesses, quota.Quota, "the quota named")
	assert.Contains(t, quota.Reason, "background processes", "and why")
	assert.Equal(t, "killed", evs[len(evs)-1].Reason, "a process ended through the API says so")
}

func TestRecoveryPublishesItsOutcomes(t *testing.T) {
	bus := events.NewBus()
	var mu sync.Mutex
	var seen []events.Event
	bus.Hook(func(ev events.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev)
	})
	e := isolated(t, func(c *Config) { c.Events = bus })
	ctx := context.Background()
	s, err := e.m.CreateSession(ctx, CreateRequest{UserID: "recover"})
	require.NoError(t, err, "create")
	e.restart(t)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []events.Type{events.SessionCreated, events.SessionAdopted}, typesOf(seen), "created, then adopted by the next daemon")
	assert.Equal(t, s.ID, seen[1].SessionID, "the session")
	_, err = e.m.Subscribe(ctx, events.Filter{SessionID: "../x"})
	assert.ErrorIs(t, err, ErrInvalid, "a filter with a bad id is refused")
}
