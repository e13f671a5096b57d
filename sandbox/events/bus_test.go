package events

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// guard fails the test when done is not closed in a generous while: a
// publisher that blocked on a consumer would never close it.
func guard(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish: it waited for a consumer", what)
	}
}

// drain reads a subscription until it ends.
func drain(s *Subscription) []Event {
	var out []Event
	for ev := range s.Events() {
		out = append(out, ev)
	}
	return out
}

func TestFilterMatch(t *testing.T) {
	ev := Event{UserID: "alice", SessionID: "s1"}
	tests := []struct {
		filter Filter
		want   bool
	}{
		{Filter{}, true},
		{Filter{UserID: "alice"}, true},
		{Filter{SessionID: "s1"}, true},
		{Filter{UserID: "alice", SessionID: "s1"}, true},
		{Filter{UserID: "bob"}, false},
		{Filter{SessionID: "s2"}, false},
		{Filter{UserID: "alice", SessionID: "s2"}, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.filter.Match(ev), "%+v matches %+v", tt.filter, ev)
	}
}

func TestEventsArriveInOrderThroughTheirFilter(t *testing.T) {
	b := NewBus()
	ctx := context.Background()
	all := b.Subscribe(ctx, Filter{}, 0)
	s1 := b.Subscribe(ctx, Filter{SessionID: "s1"}, 0)
	bob := b.Subscribe(ctx, Filter{UserID: "bob"}, 0)
	for _, ev := range []Event{
		{Type: SessionCreated, UserID: "alice", SessionID: "s1"},
		{Type: SessionCreated, UserID: "bob", SessionID: "s2"},
		{Type: ExecTimedOut, UserID: "alice", SessionID: "s1"},
		{Type: SessionDeleted, UserID: "alice", SessionID: "s1"},
	} {
		b.Publish(ev)
	}
	b.Close()

	types := func(evs []Event) (out []string) {
		for _, ev := range evs {
			out = append(out, fmt.Sprintf("%d %s %s", ev.Seq, ev.Type, ev.SessionID))
		}
		return out
	}
	assert.Equal(t, []string{"1 session_created s1", "2 session_created s2", "3 exec_timed_out s1", "4 session_deleted s1"}, types(drain(all)), "everything, numbered in order")
	assert.Equal(t, []string{"1 session_created s1", "3 exec_timed_out s1", "4 session_deleted s1"}, types(drain(s1)), "one session's life")
	assert.Equal(t, []string{"2 session_created s2"}, types(drain(bob)), "one user's")
}

func TestPublishStampsTheTime(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(context.Background(), Filter{}, 0)
	before := time.Now()
	b.Publish(Event{Type: SessionCreated})
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b.Publish(Event{Type: SessionDeleted, Time: at})
	b.Close()
	evs := drain(s)
	require.Len(t, evs, 2, "both events")
	assert.False(t, evs[0].Time.Before(before.Truncate(time.Microsecond)), "stamped when published: %s", evs[0].Time)
	assert.Equal(t, at, evs[1].Time, "a time set by the publisher is kept")
}

// A consumer that stops reading is dropped once its queue is full, with a
// last event saying so; the publisher never waits, and a consumer that
// keeps up gets everything.
func TestASlowConsumerIsDroppedWithoutSlowingAnything(t *testing.T) {
	b := NewBus()
	ctx := context.Background()
	const queue, n = 8, 20000
	slow := b.Subscribe(ctx, Filter{}, queue)
	fast := b.Subscribe(ctx, Filter{}, n)
	var got []Event
	read := make(chan struct{})
	go func() {
		defer close(read)
		got = drain(fast)
	}()

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			b.Publish(Event{Type: ExecFinished, SessionID: "s", Reason: fmt.Sprint(i)})
		}
	}()
	guard(t, published, "publishing to a consumer that never reads")
	subscribers, dropped := b.Stats()
	assert.Equal(t, 1, subscribers, "only the fast consumer is left")
	assert.Equal(t, uint64(1), dropped, "the slow one was dropped")

	evs := drain(slow)
	require.Len(t, evs, queue+1, "its queue, then the drop notice")
	for i, ev := range evs[:queue] {
		assert.Equal(t, uint64(i+1), ev.Seq, "event %d in order", i)
	}
	last := evs[queue]
	assert.Equal(t, Dropped, last.Type, "the last event says it was dropped")
	assert.Equal(t, uint64(queue+1), last.Seq, "from the first event it missed")
	assert.NotEmpty(t, last.Reason, "with the reason")

	b.Close()
	guard(t, read, "the fast consumer")
	require.Len(t, got, n, "the fast consumer got every event")
	for i, ev := range got {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: out of order", i, ev.Seq)
		}
	}
}

func TestSubscriptionEnds(t *testing.T) {
	b := NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	byCtx := b.Subscribe(ctx, Filter{}, 0)
	byClose := b.Subscribe(context.Background(), Filter{}, 0)
	b.Publish(Event{Type: SessionCreated})

	cancel()
	assert.Len(t, drain(byCtx), 1, "the end of its context ends it, the queued event still readable")
	byClose.Close()
	byClose.Close()
	assert.Len(t, drain(byClose), 1, "Close ends it, twice is fine")
	subscribers, dropped := b.Stats()
	assert.Zero(t, subscribers, "nobody left")
	assert.Zero(t, dropped, "nobody dropped")

	byBus := b.Subscribe(context.Background(), Filter{}, 0)
	b.Close()
	assert.Empty(t, drain(byBus), "closing the bus ends them without a drop notice")
	late := b.Subscribe(context.Background(), Filter{}, 0)
	assert.Empty(t, drain(late), "a subscription to a closed bus is over at once")
}

func TestHooksSeeEveryEvent(t *testing.T) {
	b := NewBus()
	var mu sync.Mutex
	var seen []Type
	b.Hook(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev.Type)
	})
	b.Publish(Event{Type: SessionCreated})
	b.Close()
	b.Publish(Event{Type: SessionDeleted})
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []Type{SessionCreated, SessionDeleted}, seen, "with no subscriber, and after the bus closed")
}

func TestConcurrentPublishersKeepEachSubscriptionInOrder(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(context.Background(), Filter{}, 4000)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				b.Publish(Event{Type: ExecFinished})
			}
		})
	}
	wg.Wait()
	b.Close()
	evs := drain(s)
	require.Len(t, evs, 4000, "every event")
	for i := 1; i < len(evs); i++ {
		require.Less(t, evs[i-1].Seq, evs[i].Seq, "in publishing order at %d", i)
	}
}

func TestCutCommand(t *testing.T) {
	assert.Equal(t, "echo hi", CutCommand("echo hi"), "short ones stay whole")
	long := strings.Repeat("é", MaxCommand) // two bytes each
	cut := CutCommand(long)
	assert.True(t, utf8.ValidString(cut), "never inside a character")
	assert.LessOrEqual(t, len(strings.TrimSuffix(cut, "…")), MaxCommand, "at most MaxCommand bytes before the ellipsis")
	assert.True(t, strings.HasSuffix(cut, "…"), "marked as cut")
}
