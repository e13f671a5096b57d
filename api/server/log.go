package server

import (
	"log/slog"
	"net/http"
	"time"
)

// logRequests logs every request once, after it is answered, names the
// server in every response, and limits the request body to its route's
// limit. The limit is set here, on net/http's own writer: MaxBytesReader can
// only tell the server a body was too large (so that it reads the rest and
// the client sees the 413 instead of a broken pipe) through that writer, not
// through a wrapper.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(r))
		if s.version != "" {
			w.Header().Set("Server", "sandboxd/"+s.version)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)),
		}
		if p, ok := peerFrom(r.Context()); ok {
			attrs = append(attrs,
				slog.Uint64("peer_uid", uint64(p.uid)),
				slog.Uint64("peer_gid", uint64(p.gid)),
				slog.Int64("peer_pid", int64(p.pid)))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.written {
		w.status, w.written = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach net/http's writer, to flush a
// streamed response.
func (w *statusWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}
