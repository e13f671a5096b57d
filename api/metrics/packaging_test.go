package metrics_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sandboxd/sandboxd/api/metrics"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// metricName finds the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:sandboxd|go|process)_[a-z_]+\b`)

// The sample dashboard must only query metrics the daemon exposes.
func TestGrafanaDashboardQueriesExposedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../packaging/grafana/sandboxd.json")
	require.NoError(t, err, "read the dashboard")
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash), "the dashboard is JSON")
	assert.Equal(t, "sandboxd", dash.Title, "title")

	m := metrics.New(events.NewBus(), metrics.Options{PerSession: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, m.Watch(fakeSessions()), "watch")
	exposed := scrape(t, m.Handler())
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q queries something", p.Title)
		for _, target := range p.Targets {
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				name = strings.TrimSuffix(name, "_bucket")
				queried[name] = true
				if name == "sandboxd_events_total" {
					continue // exposed once an event was published
				}
				assert.Contains(t, exposed, name, "panel %q queries %s, which the daemon exposes", p.Title, name)
			}
		}
	}
	for name := range exposed {
		if strings.HasPrefix(name, "sandboxd_") {
			assert.True(t, queried[name], "the dashboard shows %s", name)
		}
	}
}

func TestPrometheusScrapeConfig(t *testing.T) {
	data, err := os.ReadFile("../../packaging/prometheus/sandboxd.yml")
	require.NoError(t, err, "read the scrape config")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(data, &cfg), "the scrape config is YAML")
	require.Len(t, cfg.ScrapeConfigs, 1, "one job")
	job := cfg.ScrapeConfigs[0]
	assert.Equal(t, "sandboxd", job.JobName, "the job the dashboard selects")
	assert.Equal(t, "/metrics", job.MetricsPath, "the path the daemon serves")
	require.Len(t, job.StaticConfigs, 1, "one target group")
	assert.Equal(t, []string{"127.0.0.1:9464"}, job.StaticConfigs[0].Targets, "the address the README's metrics_listen example uses")
}
