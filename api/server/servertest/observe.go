package servertest

import (
	"context"
	"strings"

	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// Statistics and events, as the fake has them: a session's statistics are
// what SetStats set, around its identity, state and limits; the fake
// publishes session_created, session_deleted, exec_finished and
// exec_timed_out as the daemon does, and Publish adds any other event.

type observe struct {
	bus   *events.Bus
	stats map[string]sandbox.SessionStats
	// queue is the queue of new subscriptions (0: the bus's default).
	queue int
}

func newObserve() observe {
	return observe{bus: events.NewBus(), stats: map[string]sandbox.SessionStats{}}
}

// SetStats makes the statistics of session id st; their ID, user, state
// and limits are the session's.
func (b *Backend) SetStats(id string, st sandbox.SessionStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observe.stats[id] = st
}

// SetEventQueue sets how far the consumers of the subscriptions made from
// now on may fall behind before they are dropped (0: events.DefaultQueue).
func (b *Backend) SetEventQueue(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observe.queue = n
}

// Publish publishes ev as the daemon would.
func (b *Backend) Publish(ev events.Event) {
	b.observe.bus.Publish(ev)
}

// Subscribers says how many event subscriptions are live and how many
// the bus dropped.
func (b *Backend) Subscribers() (live int, dropped uint64) {
	return b.observe.bus.Stats()
}

// SessionStats implements server.ObserveBackend.
func (b *Backend) SessionStats(_ context.Context, id string) (sandbox.SessionStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("SessionStats"); err != nil {
		return sandbox.SessionStats{}, err
	}
	s, err := b.session(id)
	if err != nil {
		return sandbox.SessionStats{}, err
	}
	st := b.observe.stats[id]
	st.ID, st.UserID, st.State, st.Limits = s.ID, s.UserID, s.State, s.Limits
	return st, nil
}

// Subscribe implements server.ObserveBackend.
func (b *Backend) Subscribe(ctx context.Context, f events.Filter) (*events.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("Subscribe"); err != nil {
		return nil, err
	}
	return b.observe.bus.Subscribe(ctx, f, b.observe.queue), nil
}

// publish publishes ev about session s. The caller holds b.mu.
func (b *Backend) publish(s sandbox.Session, ev events.Event) {
	ev.UserID, ev.SessionID = s.UserID, s.ID
	b.observe.bus.Publish(ev)
}

// execEnded publishes the end of an exec in session id. The caller holds
// b.mu.
func (b *Backend) execEnded(id string, req sandbox.ExecRequest, res sandbox.ExecResult) {
	s, ok := b.sessions[id]
	if !ok {
		return
	}
	command := req.Shell
	if command == "" {
		command = strings.Join(req.Argv, " ")
	}
	out := &events.Outcome{ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut, OOMKilled: res.OOMKilled,
		Duration: res.Duration, CPU: res.CPU, PeakMemory: res.PeakMemory}
	ev := events.Event{Command: events.CutCommand(command), Outcome: out}
	if res.TimedOut {
		ev.Type = events.ExecTimedOut
		b.publish(s.Session, ev)
	}
	ev.Type = events.ExecFinished
	b.publish(s.Session, ev)
}
