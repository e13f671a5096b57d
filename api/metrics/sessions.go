package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/sandbox"
)

var (
	sessionsDesc = prometheus.NewDesc(namespace+"_sessions",
		"Sessions by state (running, stopped, broken, and those the daemon adds).", []string{"state"}, nil)
	sessionCPUDesc = prometheus.NewDesc(namespace+"_session_cpu_seconds_total",
		"CPU time a session's processes used (opt-in: metrics_per_session).", []string{"user", "session"}, nil)
	sessionMemoryDesc = prometheus.NewDesc(namespace+"_session_memory_bytes",
		"Memory a session uses now, its /tmp included (opt-in: metrics_per_session).", []string{"user", "session"}, nil)
	omittedDesc = prometheus.NewDesc(namespace+"_session_series_omitted",
		"Sessions beyond metrics_per_session_max, whose per-session series are left out.", nil, nil)
)

// knownStates are reported even when no session is in them.
var knownStates = []sandbox.State{sandbox.StateRunning, sandbox.StateStopped, sandbox.StateBroken}

// sessionCollector reads the sessions at each scrape.
type sessionCollector struct {
	src  Source
	opts Options
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	if c.opts.PerSession {
		ch <- sessionCPUDesc
		ch <- sessionMemoryDesc
		ch <- omittedDesc
	}
}

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sessions, err := c.src.ListSessions(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(sessionsDesc, err)
		return
	}
	byState := map[sandbox.State]int{}
	for _, st := range knownStates {
		byState[st] = 0
	}
	for _, s := range sessions {
		byState[s.State]++
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), string(st))
	}
	if !c.opts.PerSession {
		return
	}
	// Oldest first, as listed: a session keeps its series while it lives.
	omitted := max(0, len(sessions)-c.opts.MaxSessions)
	for _, s := range sessions[:len(sessions)-omitted] {
		st, err := c.src.SessionStats(ctx, s.ID)
		if errors.Is(err, sandbox.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			c.opts.Logger.Warn("metrics: session stats", "session", s.ID, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(sessionCPUDesc, prometheus.CounterValue, st.CPU.Seconds(), s.UserID, s.ID)
		ch <- prometheus.MustNewConstMetric(sessionMemoryDesc, prometheus.GaugeValue, float64(st.MemoryBytes), s.UserID, s.ID)
	}
	ch <- prometheus.MustNewConstMetric(omittedDesc, prometheus.GaugeValue, float64(omitted))
}
