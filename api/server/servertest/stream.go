package servertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/sandboxd/sandboxd/api"
)

// Stream is a scripted server.Backend.ExecStream: it emits Events in
// order, then ends with Result, or with Err when that is set. Its fields
// are set before serving; it runs one exec at a time.
type Stream struct {
	Events []api.ExecEvent
	Result api.ExecResult
	// Err fails the exec once Events are out; with no Events, before the
	// stream begins.
	Err error
	// Next, when not nil, paces the exec: after each event ExecStream
	// waits to receive from it, so that the test decides when the next
	// event, or the end, comes.
	Next chan struct{}
	// Cancelled, when not nil, is closed if the exec's ctx ends while it
	// waits on Next.
	Cancelled chan struct{}

	mu  sync.Mutex
	id  string
	req api.ExecRequest
}

// ExecStream implements server.Backend.ExecStream.
func (s *Stream) ExecStream(ctx context.Context, id string, req api.ExecRequest, emit func(api.ExecEvent) error) (api.ExecResult, error) {
	s.mu.Lock()
	s.id, s.req = id, req
	s.mu.Unlock()
	for _, ev := range s.Events {
		if err := emit(ev); err != nil {
			return api.ExecResult{}, fmt.Errorf("emit %s: %w", ev.Type, err)
		}
		if err := s.wait(ctx); err != nil {
			return api.ExecResult{}, err
		}
	}
	if s.Err != nil {
		return api.ExecResult{}, s.Err
	}
	return s.Result, nil
}

func (s *Stream) wait(ctx context.Context) error {
	if s.Next == nil {
		return nil
	}
	select {
	case <-s.Next:
		return nil
	case <-ctx.Done():
		if s.Cancelled != nil {
			close(s.Cancelled)
		}
		return fmt.Errorf("exec: %w", context.Cause(ctx))
	}
}

// Request is the session id and request of the last exec.
func (s *Stream) Request() (string, api.ExecRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.req
}
