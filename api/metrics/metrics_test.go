package metrics_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api/metrics"
	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// families is a scrape, parsed by Prometheus's own text parser.
type families map[string]*dto.MetricFamily

func parse(t *testing.T, body io.Reader) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(body)
	require.NoError(t, err, "the exposition parses")
	return fams
}

// scrape gets h's metrics as a scraper would.
func scrape(t *testing.T, h http.Handler) families {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, "status")
	return parse(t, rec.Body)
}

// value is the value of the series of name with exactly labels (name
// value pairs): a counter's or gauge's value, a histogram's count. ok is
// false when there is no such series.
func (f families) value(name string, labels ...string) (v float64, ok bool) {
	fam, found := f[name]
	if !found {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (f families) require(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.value(name, labels...)
	require.True(t, ok, "series %s %v is exposed", name, labels)
	return v
}

func TestCountersFollowTheEvents(t *testing.T) {
	bus := events.NewBus()
	m := metrics.New(bus, metrics.Options{Version: "1.2.3", Logger: slog.New(slog.DiscardHandler)})
	before := scrape(t, m.Handler())
	for _, name := range []string{
		"sandboxd_sessions_created_total", "sandboxd_execs_total", "sandboxd_exec_timeouts_total",
		"sandboxd_package_installs_total", "sandboxd_background_processes",
	} {
		assert.Zero(t, before.require(t, name), "%s starts at 0", name)
	}
	assert.Zero(t, before.require(t, "sandboxd_quota_refusals_total", "quota", "files"), "each quota starts at 0")

	exec := func(d time.Duration, timedOut, oom bool) *events.Outcome {
		return &events.Outcome{Duration: d, TimedOut: timedOut, OOMKilled: oom}
	}
	for _, ev := range []events.Event{
		{Type: events.SessionCreated},
		{Type: events.SessionCreated},
		{Type: events.ExecFinished, Outcome: exec(20*time.Millisecond, false, false)},
		{Type: events.ExecTimedOut, Outcome: exec(30*time.Second, true, false)},
		{Type: events.ExecFinished, Outcome: exec(30*time.Second, true, false)},
		{Type: events.OOMKill, Outcome: exec(time.Second, false, true)},
		{Type: events.ExecFinished, Outcome: exec(time.Second, false, true)},
		{Type: events.ProcessStarted, Process: "p1"},
		{Type: events.ProcessStarted, Process: "p2"},
		{Type: events.OOMKill, Process: "p1"},
		{Type: events.ProcessExited, Process: "p1"},
		{Type: events.QuotaExceeded, Quota: events.QuotaProcesses},
		{Type: events.PackageInstalled, Package: "numpy"},
		{Type: events.PackageRefused, Package: "evil"},
		{Type: events.SessionAdopted},
		{Type: events.SessionBroken},
		{Type: events.SessionDeleted},
	} {
		bus.Publish(ev)
	}
	after := scrape(t, m.Handler())
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sandboxd_sessions_created_total", nil, 2},
		{"sandboxd_sessions_deleted_total", nil, 1},
		{"sandboxd_sessions_recovered_total", []string{"outcome", "adopted"}, 1},
		{"sandboxd_sessions_recovered_total", []string{"outcome", "restarted"}, 0},
		{"sandboxd_sessions_broken_total", nil, 1},
		{"sandboxd_execs_total", nil, 3},
		{"sandboxd_exec_duration_seconds", nil, 3},
		{"sandboxd_exec_timeouts_total", nil, 1},
		{"sandboxd_oom_kills_total", []string{"source", "exec"}, 1},
		{"sandboxd_oom_kills_total", []string{"source", "process"}, 1},
		{"sandboxd_quota_refusals_total", []string{"quota", "processes"}, 1},
		{"sandboxd_package_installs_total", nil, 1},
		{"sandboxd_package_refusals_total", nil, 1},
		{"sandboxd_background_processes", nil, 1},
		{"sandboxd_background_processes_started_total", nil, 2},
		{"sandboxd_events_total", []string{"type", "exec_finished"}, 3},
		{"sandboxd_events_total", []string{"type", "session_created"}, 2},
		{"sandboxd_build_info", []string{"version", "1.2.3"}, 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, after.require(t, tt.name, tt.labels...), "%s %v", tt.name, tt.labels)
	}
	h := after["sandboxd_exec_duration_seconds"].GetMetric()[0].GetHistogram()
	assert.InDelta(t, 31.02, h.GetSampleSum(), 1e-9, "the durations add up")
	var underTenth uint64
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.1 {
			underTenth = b.GetCumulativeCount()
		}
	}
	assert.Equal(t, uint64(1), underTenth, "one exec took under 100 ms")
}

func TestEventSubscribersAreCounted(t *testing.T) {
	bus := events.NewBus()
	m := metrics.New(bus, metrics.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	reader := bus.Subscribe(ctx, events.Filter{}, 0)
	defer reader.Close()
	slow := bus.Subscribe(ctx, events.Filter{}, 1)
	defer slow.Close()
	assert.Equal(t, 2.0, scrape(t, m.Handler()).require(t, "sandboxd_event_subscribers"), "two streaming")
	bus.Publish(events.Event{Type: events.SessionCreated})
	bus.Publish(events.Event{Type: events.SessionDeleted})
	got := scrape(t, m.Handler())
	assert.Equal(t, 1.0, got.require(t, "sandboxd_event_subscribers"), "one left")
	assert.Equal(t, 1.0, got.require(t, "sandboxd_event_subscribers_dropped_total"), "one dropped")
}

// fakeSessions is the fake backend with a running session of u1 and a
// broken one of u2, each with statistics.
func fakeSessions() *servertest.Backend {
	fb := servertest.New()
	fb.AddSession(sandbox.Session{ID: "s1", UserID: "u1"})
	fb.AddSession(sandbox.Session{ID: "s2", UserID: "u2", State: sandbox.StateBroken, Reason: "test"})
	fb.SetStats("s1", sandbox.SessionStats{CPU: 1500 * time.Millisecond, MemoryBytes: 64 << 20})
	fb.SetStats("s2", sandbox.SessionStats{CPU: 250 * time.Millisecond, MemoryBytes: 1 << 20})
	return fb
}

func TestSessionsAreReadAtTheScrape(t *testing.T) {
	tests := []struct {
		name     string
		opts     metrics.Options
		series   []string // sessions with per-session series
		omitted  float64
		exported bool
	}{
		{"per-session off", metrics.Options{}, nil, 0, false},
		{"per-session on", metrics.Options{PerSession: true}, []string{"s1", "s2"}, 0, true},
		{"capped", metrics.Options{PerSession: true, MaxSessions: 1}, []string{"s1"}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = slog.New(slog.DiscardHandler)
			m := metrics.New(events.NewBus(), tt.opts)
			require.NoError(t, m.Watch(fakeSessions()), "watch")
			got := scrape(t, m.Handler())
			assert.Equal(t, 1.0, got.require(t, "sandboxd_sessions", "state", "running"), "running")
			assert.Equal(t, 1.0, got.require(t, "sandboxd_sessions", "state", "broken"), "broken")
			assert.Equal(t, 0.0, got.require(t, "sandboxd_sessions", "state", "stopped"), "a known state with none")

			want := map[string][2]float64{"s1": {1.5, 64 << 20}, "s2": {0.25, 1 << 20}}
			users := map[string]string{"s1": "u1", "s2": "u2"}
			for id := range want {
				_, has := got.value("sandboxd_session_cpu_seconds_total", "user", users[id], "session", id)
				assert.Equal(t, slices.Contains(tt.series, id), has, "%s's series", id)
			}
			for _, id := range tt.series {
				assert.Equal(t, want[id][0], got.require(t, "sandboxd_session_cpu_seconds_total", "user", users[id], "session", id), "%s's CPU", id)
				assert.Equal(t, want[id][1], got.require(t, "sandboxd_session_memory_bytes", "user", users[id], "session", id), "%s's memory", id)
			}
			omitted, has := got.value("sandboxd_session_series_omitted")
			assert.Equal(t, tt.exported, has, "the omitted count goes with the per-session series")
			assert.Equal(t, tt.omitted, omitted, "sessions beyond the cap")
		})
	}
}

func TestTheGoRuntimeIsMeasured(t *testing.T) {
	got := scrape(t, metrics.New(events.NewBus(), metrics.Options{}).Handler())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		assert.Contains(t, got, name, "%s is exposed", name)
	}
}

// get sends GET target with client and returns the answer's status and
// body.
func get(t *testing.T, client *http.Client, target string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(target)
	require.NoError(t, err, "GET %s", target)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "read %s", target)
	return resp.StatusCode, body
}

func TestScrapedOverTheSocketAndTCP(t *testing.T) {
	fb := fakeSessions()
	bus := events.NewBus()
	m := metrics.New(bus, metrics.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, m.Watch(fb), "watch")
	bus.Publish(events.Event{Type: events.SessionCreated})

	// The API socket serves /metrics beside /v1.
	dir, err := os.MkdirTemp("", "sbx") // short: socket paths must fit sun_path
	require.NoError(t, err, "temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	ln, err := server.Listen(path, 0, "")
	require.NoError(t, err, "listen on the socket")
	api := server.New(fb, server.Config{Logger: slog.New(slog.DiscardHandler), Metrics: m.Handler()})
	served := make(chan error, 1)
	go func() { served <- api.Serve(ln) }()
	t.Cleanup(func() {
		assert.NoError(t, api.Shutdown(context.Background()), "shutdown the API")
		assert.NoError(t, <-served, "serve the API")
	})
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	status, body := get(t, unix, "http://sandboxd/metrics")
	require.Equal(t, http.StatusOK, status, "status on the socket")
	fams := parse(t, bytes.NewReader(body))
	assert.Equal(t, 1.0, fams.require(t, "sandboxd_sessions_created_total"), "an event counted, on the socket")
	assert.Equal(t, 1.0, fams.require(t, "sandboxd_sessions", "state", "running"), "the sessions read, on the socket")

	// The TCP listener serves /metrics only.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "listen on TCP")
	srv := m.Server()
	tcpServed := make(chan error, 1)
	go func() { tcpServed <- srv.Serve(tcp) }()
	t.Cleanup(func() {
		assert.NoError(t, srv.Shutdown(context.Background()), "shutdown the TCP server")
		assert.ErrorIs(t, <-tcpServed, http.ErrServerClosed, "serve on TCP")
	})
	base := "http://" + tcp.Addr().String()
	status, body = get(t, http.DefaultClient, base+"/metrics")
	require.Equal(t, http.StatusOK, status, "status on TCP")
	fams = parse(t, bytes.NewReader(body))
	assert.Equal(t, 1.0, fams.require(t, "sandboxd_sessions_created_total"), "the same metrics on TCP")
	for _, target := range []string{"/v1", "/v1/sessions", "/"} {
		status, _ = get(t, http.DefaultClient, base+target)
		assert.Equal(t, http.StatusNotFound, status, "TCP serves nothing but /metrics: %s", target)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	require.NoError(t, err, "POST /metrics")
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "only GET")
}
