package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/sandbox/events"
)

// BenchmarkExecAccounting measures what accounting adds to each command,
// on a live session, beside the exec of `true` it is part of: the
// command's own cgroup (create, read, remove), the read of its figures
// alone, the events of its end (with a subscriber reading them) and, per
// call rather than per command, a read of the session's statistics. Each
// is reported as its median, and as a share of the exec's median in
// "share-%" (the exec as measured here includes the accounting).
func BenchmarkExecAccounting(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench", Limits: benchLimits()})
	if err != nil {
		b.Fatal(err)
	}
	defer env.m.DeleteSession(ctx, s.ID, false)
	env.m.mu.Lock()
	sess := env.m.sessions[s.ID]
	env.m.mu.Unlock()
	cgPath := env.m.cg.SessionPath(s.UserID, s.ID)

	var execP50 time.Duration
	b.Run("exec-true", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			res, err := env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Argv: []string{"true"}}})
			ds = append(ds, time.Since(start))
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
		execP50 = median(ds)
		b.ReportMetric(float64(execP50)/float64(time.Millisecond), "p50-ms")
	})
	share := func(b *testing.B, d time.Duration) {
		b.ReportMetric(float64(d)/float64(time.Microsecond), "p50-µs")
		if execP50 > 0 {
			b.ReportMetric(100*float64(d)/float64(execP50), "share-%")
		}
	}
	b.Run("exec-cgroup", func(b *testing.B) {
		var ds []time.Duration
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			e, err := env.m.cg.NewExec(cgPath, fmt.Sprintf("bench-%d", i))
			if err == nil {
				_, err = e.Stats()
				err = errors.Join(err, e.Remove())
			}
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		share(b, median(ds))
	})
	b.Run("exec-stats", func(b *testing.B) {
		e, err := env.m.cg.NewExec(cgPath, "bench-stats")
		if err != nil {
			b.Fatal(err)
		}
		defer e.Remove()
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			_, err := e.Stats()
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		share(b, median(ds))
	})
	b.Run("exec-events", func(b *testing.B) {
		sub, err := env.m.Subscribe(ctx, events.Filter{SessionID: s.ID})
		if err != nil {
			b.Fatal(err)
		}
		read := make(chan struct{})
		go func() {
			defer close(read)
			for range sub.Events() {
			}
		}()
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			env.m.execEnded(sess, "true", Exit{}, ExecResult{Duration: time.Millisecond})
			ds = append(ds, time.Since(start))
		}
		sub.Close()
		<-read
		share(b, median(ds))
	})
	b.Run("session-stats", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			_, err := env.m.SessionStats(ctx, s.ID)
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(median(ds))/float64(time.Microsecond), "p50-µs")
	})
}

// median sorts d and returns its middle.
func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
