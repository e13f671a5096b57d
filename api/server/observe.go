package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// ObserveBackend is what the daemon tells of itself: a session's
// statistics and the stream of events.
type ObserveBackend interface {
	SessionStats(ctx context.Context, id string) (sandbox.SessionStats, error)
	// Subscribe returns the events f selects from now on; the
	// subscription ends with ctx, or earlier (a consumer that falls
	// behind is dropped, with a last Dropped event).
	Subscribe(ctx context.Context, f events.Filter) (*events.Subscription, error)
}

func (s *Server) sessionStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.backend.SessionStats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, wireStats(st))
	return nil
}

// events streams the events the query selects as NDJSON until the client
// goes away, the subscription ends or the server shuts down. The status
// line goes out once the subscription is in place, so that a client that
// has it misses nothing that happens after.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub, err := s.backend.Subscribe(ctx, events.Filter{UserID: q.Get("user_id"), SessionID: q.Get("session_id")})
	if err != nil {
		return err
	}
	defer sub.Close()
	w.Header().Set("Content-Type", api.NDJSON)
	w.WriteHeader(http.StatusOK)
	out := &eventWriter{w: w, rc: http.NewResponseController(w), timeout: s.streamTimeout, started: true}
	if err := out.rc.Flush(); err != nil {
		return nil // the client is gone
	}
	// The end of the answer is written after the handler returns, maybe
	// long after the last event's deadline: it gets one of its own.
	defer func() { _ = out.rc.SetWriteDeadline(time.Now().Add(s.streamTimeout)) }()
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return nil
			}
			if err := out.send(wireEvent(ev)); err != nil {
				s.log.WarnContext(r.Context(), "write response",
					slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
				return nil
			}
		case <-ctx.Done():
			return nil
		case <-s.shutdown:
			return nil
		}
	}
}

// metrics serves the Prometheus exposition. It is not under /v1: its
// format is Prometheus's, versioned by its content type.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.metricsHandler == nil {
		return fmt.Errorf("this server has no metrics: %w", api.ErrNotFound)
	}
	s.metricsHandler.ServeHTTP(w, r)
	return nil
}

func wireStats(st sandbox.SessionStats) api.SessionStats {
	out := api.SessionStats{
		ID:              st.ID,
		UserID:          st.UserID,
		Status:          string(st.State),
		Limits:          wireLimits(st.Limits),
		CPUMS:           st.CPU.Milliseconds(),
		CPUThrottledMS:  st.CPUThrottled.Milliseconds(),
		MemoryBytes:     st.MemoryBytes,
		MemoryPeakBytes: st.MemoryPeakBytes,
		Pids:            st.Pids,
		PidsLimit:       st.PidsLimit,
		OOMKills:        st.OOMKills,
		Execs:           st.Execs,
		Processes:       st.Processes,
		LastActivity:    st.LastActivity,
	}
	if d := st.Disk; d != nil {
		disk := wireDisk(*d)
		out.Disk = &disk
	}
	return out
}

func wireEvent(ev events.Event) api.Event {
	out := api.Event{
		Seq:       ev.Seq,
		Time:      ev.Time,
		Type:      string(ev.Type),
		UserID:    ev.UserID,
		SessionID: ev.SessionID,
		ProcessID: ev.Process,
		Command:   ev.Command,
		Quota:     ev.Quota,
		Package:   ev.Package,
		Reason:    ev.Reason,
	}
	if o := ev.Outcome; o != nil {
		out.Outcome = &api.Outcome{
			ExitCode:        o.ExitCode,
			Signal:          o.Signal,
			TimedOut:        o.TimedOut,
			OOMKilled:       o.OOMKilled,
			DurationMS:      o.Duration.Milliseconds(),
			CPUMS:           o.CPU.Milliseconds(),
			PeakMemoryBytes: o.PeakMemory,
		}
	}
	return out
}
