package events

import (
	"context"
	"sync"
	"time"
)

// DefaultQueue is a subscription's queue when Subscribe is given none: a
// consumer may fall this many events behind before it is dropped.
const DefaultQueue = 1024

// Bus delivers published events to hooks, at once, and to subscriptions,
// through their queues. It is safe for concurrent use; the zero value is
// not usable, NewBus makes one.
type Bus struct {
	// mu guards everything below. Publish holds it only to number the
	// event and put it into the queues, which never blocks.
	mu      sync.Mutex
	seq     uint64
	subs    map[*Subscription]struct{}
	hooks   []func(Event)
	closed  bool
	dropped uint64
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}}
}

// Hook makes fn see every event published from now on, synchronously, in
// the publisher's goroutine and after the subscriptions got it. fn must
// return quickly, must not block and must not publish: it is for counters
// (the metrics), not for work.
func (b *Bus) Hook(fn func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hooks = append(b.hooks, fn)
}

// Publish numbers ev, stamps it with the time unless it has one, queues it
// for every subscription whose filter it passes and hands it to the hooks.
// It never waits for a consumer: a subscription whose queue is full is
// dropped, ending with a Dropped event.
func (b *Bus) Publish(ev Event) {
	b.mu.Lock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	for s := range b.subs {
		if !s.filter.Match(ev) {
			continue
		}
		if len(s.ch) < s.queue {
			s.ch <- ev
			continue
		}
		// The one slot beyond the queue is the drop notice's; its Seq is
		// the first event missed.
		s.ch <- Event{Seq: ev.Seq, Time: ev.Time, Type: Dropped, UserID: s.filter.UserID, SessionID: s.filter.SessionID,
			Reason: "the consumer fell behind by more than its queue of events; the events from this one on were not delivered"}
		b.remove(s)
		b.dropped++
	}
	hooks := b.hooks
	b.mu.Unlock()
	for _, fn := range hooks {
		fn(ev)
	}
}

// Subscribe returns a subscription to the events f selects from now on.
// queue bounds how far its consumer may fall behind (DefaultQueue when not
// positive). It ends when ctx does, when Close is called, when the bus is
// closed, or when the bus drops it. On a closed bus it is over at once.
func (b *Bus) Subscribe(ctx context.Context, f Filter, queue int) *Subscription {
	if queue <= 0 {
		queue = DefaultQueue
	}
	s := &Subscription{bus: b, filter: f, queue: queue, ch: make(chan Event, queue+1)}
	b.mu.Lock()
	if b.closed {
		close(s.ch)
	} else {
		b.subs[s] = struct{}{}
	}
	b.mu.Unlock()
	// No goroutine waits for ctx: the close runs when it ends.
	stop := context.AfterFunc(ctx, s.Close)
	b.mu.Lock()
	s.stop = stop
	b.mu.Unlock()
	return s
}

// Close ends every subscription, without a Dropped event, and refuses new
// ones; hooks go on seeing what is published.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.remove(s)
	}
}

// Stats says how many subscriptions are live and how many the bus dropped
// so far.
func (b *Bus) Stats() (subscribers int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs), b.dropped
}

// remove ends s; b.mu must be held.
func (b *Bus) remove(s *Subscription) {
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Subscription is one consumer's view of the bus.
type Subscription struct {
	bus    *Bus
	filter Filter
	queue  int
	// ch holds up to queue events and, once the bus drops the
	// subscription, the Dropped event; it is closed when the
	// subscription ends.
	ch chan Event
	// stop unregisters the close at the end of the context; the bus's mu
	// guards it.
	stop func() bool
}

// Events delivers the subscription's events in publishing order. It is
// closed when the subscription ends; a dropped subscription's last event
// is of type Dropped.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Close ends the subscription; the events still queued stay readable.
// Closing twice is fine.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	s.bus.remove(s)
	stop := s.stop
	s.bus.mu.Unlock()
	if stop != nil {
		stop()
	}
}
