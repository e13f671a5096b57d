package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/sandboxd/sandboxd/api/metrics"
	"github.com/sandboxd/sandboxd/cmd/sandboxd/internal/config"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// observability is the daemon's events bus and the metrics hooked to it.
// It is made before the Manager so that the metrics count the events of
// recovery too.
type observability struct {
	bus     *events.Bus
	metrics *metrics.Metrics
}

func newObservability(cfg config.Config, log *slog.Logger) observability {
	bus := events.NewBus()
	return observability{bus: bus, metrics: metrics.New(bus, metrics.Options{
		Version:     version,
		PerSession:  cfg.MetricsPerSession,
		MaxSessions: cfg.MetricsPerSessionMax,
		Logger:      log,
	})}
}

// serveMetrics serves GET /metrics on cfg.MetricsListen, when it is set,
// until the returned stop is called. A listener that cannot be had fails
// the start: it was asked for.
func (o observability) serveMetrics(cfg config.Config, log *slog.Logger) (stop func(context.Context), err error) {
	if cfg.MetricsListen == "" {
		return func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	srv := o.metrics.Server()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving metrics", "address", ln.Addr().String())
	return func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("shut down the metrics server", "err", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}, nil
}
