// Package metrics is the daemon's Prometheus exposition: counters derived
// from the domain's events (package sandbox/events, through the bus's
// synchronous hook), gauges read from the sessions when Prometheus
// scrapes, and the Go runtime's and the process's own collectors.
//
// It sits beside api/server because, like it, it represents the domain to
// the outside — to a scraper rather than to a chat backend — and the
// domain never imports it: the Prometheus library stays out of package
// sandbox, which only publishes events and answers questions.
//
// Cardinality is bounded: every label but the opt-in per-session ones
// takes values from a fixed set (event types, quota names, session
// states), and the per-session series (Options.PerSession) are two per
// session for at most Options.MaxSessions sessions.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

const namespace = "sandboxd"

// DefaultMaxSessions is Options.MaxSessions when it is 0.
const DefaultMaxSessions = 500

// scrapeTimeout bounds the reading of the sessions at a scrape.
const scrapeTimeout = 10 * time.Second

// Options tune the metrics.
type Options struct {
	// Version is reported by sandboxd_build_info.
	Version string
	// PerSession exports each session's CPU time and memory with user and
	// session labels: two series per session, for the MaxSessions oldest
	// sessions (DefaultMaxSessions when 0). Off by default: the labels
	// come and go with sessions.
	PerSession  bool
	MaxSessions int
	// Logger receives what went wrong at a scrape; nil is slog.Default().
	Logger *slog.Logger
}

// Source is what the metrics read at a scrape: *sandbox.Manager.
type Source interface {
	ListSessions(ctx context.Context, userID string) ([]sandbox.Session, error)
	SessionStats(ctx context.Context, id string) (sandbox.SessionStats, error)
}

// Metrics holds the daemon's metrics in a registry of its own.
type Metrics struct {
	reg  *prometheus.Registry
	opts Options

	events          *prometheus.CounterVec
	created         prometheus.Counter
	deleted         prometheus.Counter
	recovered       *prometheus.CounterVec
	broken          prometheus.Counter
	execs           prometheus.Counter
	execDuration    prometheus.Histogram
	timeouts        prometheus.Counter
	oomKills        *prometheus.CounterVec
	quotaRefusals   *prometheus.CounterVec
	packageInstalls prometheus.Counter
	packageRefusals prometheus.Counter
	processes       prometheus.Gauge
	processStarts   prometheus.Counter
}

// New makes the metrics and hooks them to bus, which every event of the
// daemon goes through: hook it before the Manager starts (its recovery
// publishes too).
func New(bus *events.Bus, opts Options) *Metrics {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{label})
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		opts:      opts,
		events:    counterVec("events_total", "Events published, by type (see GET /v1/events).", "type"),
		created:   counter("sessions_created_total", "Sessions created."),
		deleted:   counter("sessions_deleted_total", "Sessions deleted, interrupted deletes finished at start-up included."),
		recovered: counterVec("sessions_recovered_total", "Sessions a starting daemon took over, by outcome: adopted (still running) or restarted (in a new sandbox).", "outcome"),
		broken:    counter("sessions_broken_total", "Sessions that became broken: not restorable at start-up, or a delete that failed half-way."),
		execs:     counter("execs_total", "Commands run to their end (exec, streamed or not)."),
		execDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "exec_duration_seconds", Help: "Wall-clock time of commands run to their end.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		timeouts:        counter("exec_timeouts_total", "Commands killed at their timeout."),
		oomKills:        counterVec("oom_kills_total", "Commands whose process the kernel's OOM killer killed, by source: exec or process (background).", "source"),
		quotaRefusals:   counterVec("quota_refusals_total", "Requests refused by a quota, by quota: sessions, workspace, files, processes.", "quota"),
		packageInstalls: counter("package_installs_total", "Packages installed into sessions' environments."),
		packageRefusals: counter("package_refusals_total", "Package installs refused."),
		processes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "background_processes", Help: "Background processes running.",
		}),
		processStarts: counter("background_processes_started_total", "Background processes started."),
	}
	// Labels with a fixed set of values start at zero, so that rates
	// exist before the first event.
	for _, o := range []string{"adopted", "restarted"} {
		m.recovered.WithLabelValues(o)
	}
	for _, s := range []string{"exec", "process"} {
		m.oomKills.WithLabelValues(s)
	}
	for _, q := range []string{events.QuotaSessions, events.QuotaWorkspace, events.QuotaFiles, events.QuotaProcesses} {
		m.quotaRefusals.WithLabelValues(q)
	}
	m.reg.MustRegister(
		m.events, m.created, m.deleted, m.recovered, m.broken, m.execs, m.execDuration, m.timeouts,
		m.oomKills, m.quotaRefusals, m.packageInstalls, m.packageRefusals, m.processes, m.processStarts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "event_subscribers", Help: "Clients of GET /v1/events streaming now.",
		}, func() float64 { n, _ := bus.Stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "event_subscribers_dropped_total", Help: "Clients of GET /v1/events dropped for falling behind.",
		}, func() float64 { _, n := bus.Stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info", Help: "Always 1; the daemon's version is in the label.",
			ConstLabels: prometheus.Labels{"version": opts.Version},
		}, func() float64 { return 1 }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bus.Hook(m.observe)
	return m
}

// observe counts one event. It runs in the publisher's goroutine: it only
// increments.
func (m *Metrics) observe(ev events.Event) {
	m.events.WithLabelValues(string(ev.Type)).Inc()
	switch ev.Type {
	case events.SessionCreated:
		m.created.Inc()
	case events.SessionDeleted:
		m.deleted.Inc()
	case events.SessionAdopted:
		m.recovered.WithLabelValues("adopted").Inc()
	case events.SessionRestarted:
		m.recovered.WithLabelValues("restarted").Inc()
	case events.SessionBroken:
		m.broken.Inc()
	case events.ExecFinished:
		m.execs.Inc()
		if ev.Outcome != nil {
			m.execDuration.Observe(ev.Outcome.Duration.Seconds())
		}
	case events.ExecTimedOut:
		m.timeouts.Inc()
	case events.OOMKill:
		source := "exec"
		if ev.Process != "" {
			source = "process"
		}
		m.oomKills.WithLabelValues(source).Inc()
	case events.QuotaExceeded:
		m.quotaRefusals.WithLabelValues(ev.Quota).Inc()
	case events.PackageInstalled:
		m.packageInstalls.Inc()
	case events.PackageRefused:
		m.packageRefusals.Inc()
	case events.ProcessStarted:
		m.processStarts.Inc()
		m.processes.Inc()
	case events.ProcessExited:
		m.processes.Dec()
	}
}

// Watch adds the metrics read from src at each scrape: the sessions by
// state and, with Options.PerSession, each session's CPU time and memory.
// Call it once.
func (m *Metrics) Watch(src Source) error {
	return m.reg.Register(&sessionCollector{src: src, opts: m.opts})
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// What could be read is served; the rest is logged.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(m.opts.Logger.Handler(), slog.LevelWarn),
	})
}

// Server is a plain HTTP server for a scraper on a TCP address: it serves
// GET /metrics and nothing else.
func (m *Metrics) Server() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		ErrorLog:          slog.NewLogLogger(m.opts.Logger.Handler(), slog.LevelWarn),
	}
}
