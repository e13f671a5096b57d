package sandbox

import (
	"context"
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/sandbox/events"
)

// Subscribe returns the events of one user or session (all, with an empty
// filter) from now on, until ctx ends, the caller closes the subscription,
// the daemon stops or the consumer falls so far behind that it is dropped
// (package events).
func (m *Manager) Subscribe(ctx context.Context, f events.Filter) (*events.Subscription, error) {
	if f.UserID != "" {
		if err := validateID("user_id", f.UserID); err != nil {
			return nil, err
		}
	}
	if f.SessionID != "" {
		if err := validateID("session_id", f.SessionID); err != nil {
			return nil, err
		}
	}
	return m.events.Subscribe(ctx, f, 0), nil
}

// publish publishes ev about session s.
func (m *Manager) publish(s *session, ev events.Event) {
	ev.UserID, ev.SessionID = s.meta.UserID, s.meta.ID
	m.events.Publish(ev)
}

// refused publishes a quota_exceeded event when err is a quota's refusal
// of a request in s, and returns err.
func (m *Manager) refused(s *session, quota string, err error) error {
	if errors.Is(err, ErrQuota) {
		m.publish(s, events.Event{Type: events.QuotaExceeded, Quota: quota, Reason: err.Error()})
	}
	return err
}

// execEnded counts a command run to its end and publishes how it ended.
func (m *Manager) execEnded(s *session, command string, exit Exit, res ExecResult) {
	s.usage.execs.Add(1)
	s.usage.commandOOMKills.Add(exit.OOMKills)
	out := &events.Outcome{
		ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut, OOMKilled: res.OOMKilled,
		Duration: res.Duration, CPU: res.CPU, PeakMemory: res.PeakMemory,
	}
	command = events.CutCommand(command)
	if res.TimedOut {
		m.publish(s, events.Event{Type: events.ExecTimedOut, Command: command, Outcome: out})
	}
	if res.OOMKilled {
		m.publish(s, events.Event{Type: events.OOMKill, Command: command, Outcome: out})
	}
	m.publish(s, events.Event{Type: events.ExecFinished, Command: command, Outcome: out})
}

// processStarted counts a background process and publishes its start.
func (m *Manager) processStarted(s *session, b *background) {
	s.usage.execs.Add(1)
	m.publish(s, events.Event{Type: events.ProcessStarted, Process: b.id, Command: events.CutCommand(b.command)})
}

// processEnded publishes how a background process ended.
func (m *Manager) processEnded(s *session, b *background, exit Exit, killed bool) {
	s.usage.commandOOMKills.Add(exit.OOMKills)
	out := &events.Outcome{
		ExitCode: exit.Code, OOMKilled: exit.OOMKilled, Duration: b.ended.Sub(b.started),
		CPU: exit.CPU, PeakMemory: exit.PeakMemory,
	}
	if exit.Signal != 0 {
		out.Signal = unix.SignalName(exit.Signal)
	}
	command := events.CutCommand(b.command)
	if exit.OOMKilled {
		m.publish(s, events.Event{Type: events.OOMKill, Process: b.id, Command: command, Outcome: out})
	}
	ev := events.Event{Type: events.ProcessExited, Process: b.id, Command: command, Outcome: out}
	if killed {
		ev.Reason = "killed"
	}
	m.publish(s, ev)
}

// commandLine is how events name a command: its shell line, or its argv
// joined with spaces.
func commandLine(c Command, l launch) string {
	if c.Shell != "" {
		return c.Shell
	}
	return strings.Join(l.Args, " ")
}
