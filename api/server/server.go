package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is 0.
// Exec stdin travels in the body, so it is generous.
const DefaultMaxBodyBytes = 8 << 20

// Config tunes a Server. The zero value is usable.
type Config struct {
	// MaxBodyBytes limits request bodies; larger ones get 413 too_large.
	// A file upload's limit is the backend's MaxFileBytes instead.
	MaxBodyBytes int64
	// Logger receives one record per request; nil means slog.Default().
	Logger *slog.Logger
	// Version is the daemon's build version: sent in the Server header and
	// reported by GET /v1 when the backend leaves Info.Version empty.
	Version string
	// StreamWriteTimeout bounds each write of a streamed exec; 0 means
	// DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// Metrics serves GET /metrics (the Prometheus exposition); without it
	// the route answers 404.
	Metrics http.Handler
}

// Server is sandboxd's API server.
type Server struct {
	backend Backend
	maxBody int64
	log     *slog.Logger
	version string
	// streamTimeout is Config.StreamWriteTimeout or its default.
	streamTimeout time.Duration
	router        *http.ServeMux
	// fileBodies are the mux patterns whose body limit is the backend's
	// file cap rather than maxBody.
	fileBodies map[string]bool
	handler    http.Handler
	httpSrv    *http.Server
	// Observability (observe.go): the /metrics handler, and what ends
	// the event streams on Shutdown, which does not wait for them.
	metricsHandler http.Handler
	shutdown       chan struct{}
	shutdownOnce   sync.Once
}

// New returns a Server that drives b.
func New(b Backend, cfg Config) *Server {
	s := &Server{
		backend: b,
		maxBody: cfg.MaxBodyBytes,
		log:     cfg.Logger,
		version: cfg.Version,
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.streamTimeout = cfg.StreamWriteTimeout
	if s.streamTimeout <= 0 {
		s.streamTimeout = DefaultStreamWriteTimeout
	}
	s.router = s.mux()
	s.fileBodies = fileBodies()
	s.handler = s.logRequests(s.router)
	s.httpSrv = &http.Server{
		Handler:     s.handler,
		ConnContext: s.connContext,
		// No read or write timeout: exec requests legitimately run for as
		// long as the command's timeout. Headers alone must come quickly.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.metricsHandler, s.shutdown = cfg.Metrics, make(chan struct{})
	s.httpSrv.RegisterOnShutdown(func() { s.shutdownOnce.Do(func() { close(s.shutdown) }) })
	return s
}

// Handler returns the API's handler: routing, error envelopes and the
// request log. Peer credentials are only known when it runs under Serve.
func (s *Server) Handler() http.Handler {
	return s.handler
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests to
// finish, or for ctx to end, whichever comes first.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.httpSrv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down API server: %w", err)
	}
	return nil
}
