package sandbox

import "sync"

// cappedBuffer keeps the first limit bytes written to it and counts the
// rest, so a command printing without end costs the daemon at most limit
// bytes per stream while the pipe keeps draining.
type cappedBuffer struct {
	mu        sync.Mutex
	limit     int64
	buf       []byte
	truncated bool
}

func newCappedBuffer(limit int64) *cappedBuffer { return &cappedBuffer{limit: limit} }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.limit - int64(len(b.buf))
	if room <= 0 {
		b.truncated = b.truncated || len(p) > 0
		return len(p), nil
	}
	if int64(len(p)) > room {
		b.buf = append(b.buf, p[:room]...)
		b.truncated = true
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Result returns what was kept and whether anything was dropped.
func (b *cappedBuffer) Result() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.truncated
}
