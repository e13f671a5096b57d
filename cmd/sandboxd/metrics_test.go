package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

// freeTCPAddress is a loopback address nothing listens on now, for the
// daemons' metrics_listen.
func freeTCPAddress() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// scrapeMetrics gets /metrics with client from base and parses it with
// Prometheus's text parser.
func scrapeMetrics(t *testing.T, client *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	require.NoError(t, err, "GET %s/metrics", base)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "status of %s/metrics", base)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "%s/metrics parses", base)
	return fams
}

// metricValue is the value of the unlabelled counter or gauge name, or of
// its series with the label name=value; a histogram's count.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	t.Helper()
	v, ok := lookupMetric(fams, name, label...)
	require.True(t, ok, "%s %v is exposed", name, label)
	return v
}

// lookupMetric is metricValue, with ok false when there is no such series.
func lookupMetric(fams map[string]*dto.MetricFamily, name string, label ...string) (v float64, ok bool) {
	for _, m := range fams[name].GetMetric() {
		if len(label) == 2 && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != label[0] || m.GetLabel()[0].GetValue() != label[1]) {
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

func TestMetricsEventsAndStatsThroughTheDaemon(t *testing.T) {
	setup(t)
	id := fmt.Sprintf("obs-%d", time.Now().UnixNano())
	tcp := &http.Client{Timeout: time.Minute}
	before := scrapeMetrics(t, suite.client, "http://sandboxd")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sandboxd/v1/events?session_id="+id, nil)
	require.NoError(t, err, "events request")
	resp, err := suite.client.Do(req)
	require.NoError(t, err, "GET /v1/events")
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "events status")
	stream := bufio.NewReader(resp.Body)

	createSession(t, "obs", id)
	res := execIn(t, id, "sleep 5", 1)
	require.True(t, res.TimedOut, "the command timed out")
	burn := execIn(t, id, `python3 -c 'x = 0
for i in range(2 * 10**6): x += i'`, 60)
	require.Equal(t, 0, burn.ExitCode, "burn: %s", burn.Stderr)

	status, data := call(t, http.MethodGet, "/v1/sessions/"+id+"/stats", "")
	require.Equal(t, http.StatusOK, status, "stats: %s", data)
	var st api.SessionStats
	require.NoError(t, json.Unmarshal(data, &st), "decode stats")
	assert.Equal(t, "running", st.Status, "running")
	assert.Equal(t, uint64(2), st.Execs, "two commands")
	assert.GreaterOrEqual(t, st.CPUMS, burn.CPUMS, "the session's CPU time holds its commands'")
	assert.Positive(t, st.PidsLimit, "the pids limit")

	status, data = call(t, http.MethodDelete, "/v1/sessions/"+id, "")
	require.Equal(t, http.StatusOK, status, "delete: %s", data)

	var types []string
	for len(types) == 0 || types[len(types)-1] != "session_deleted" {
		line, err := stream.ReadBytes('\n')
		require.NoError(t, err, "read the events (so far %v)", types)
		var ev api.Event
		require.NoError(t, json.Unmarshal(line, &ev), "event %q", line)
		assert.Equal(t, id, ev.SessionID, "only the session's events")
		types = append(types, ev.Type)
	}
	assert.Equal(t, []string{"session_created", "exec_timed_out", "exec_finished", "exec_finished", "session_deleted"}, types, "the session's life, in order")

	for _, where := range []struct {
		name   string
		client *http.Client
		base   string
	}{{"socket", suite.client, "http://sandboxd"}, {"TCP", tcp, "http://" + suite.metrics}} {
		after := scrapeMetrics(t, where.client, where.base)
		grew := func(name string, by float64, label ...string) {
			t.Helper()
			// A series an event creates is absent before the first.
			was, _ := lookupMetric(before, name, label...)
			assert.GreaterOrEqual(t, metricValue(t, after, name, label...)-was, by, "%s on the %s", name, where.name)
		}
		grew("sandboxd_sessions_created_total", 1)
		grew("sandboxd_sessions_deleted_total", 1)
		grew("sandboxd_execs_total", 2)
		grew("sandboxd_exec_duration_seconds", 2)
		grew("sandboxd_exec_timeouts_total", 1)
		grew("sandboxd_events_total", 1, "type", "exec_timed_out")
		metricValue(t, after, "sandboxd_sessions", "state", "running")
		assert.Positive(t, metricValue(t, after, "go_goroutines"), "the Go runtime's own, on the %s", where.name)
	}
	resp, err = tcp.Get("http://" + suite.metrics + "/v1")
	require.NoError(t, err, "GET /v1 on TCP")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the TCP address serves nothing but /metrics")
}
