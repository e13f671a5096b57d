package sandbox

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// p50 reports the median of the timed operations as "p50-ms".
func reportP50(b *testing.B, d []time.Duration) {
	b.ReportMetric(float64(median(d))/float64(time.Millisecond), "p50-ms")
}

// BenchmarkSession times a session's create, an exec of `true` and its
// delete, each on its own, and reports each one's median.
func BenchmarkSession(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	b.Run("create", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench"})
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_, _ = env.m.DeleteSession(ctx, s.ID, false)
			b.StartTimer()
		}
		reportP50(b, ds)
	})
	b.Run("exec-true", func(b *testing.B) {
		s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench", Limits: benchLimits()})
		if err != nil {
			b.Fatal(err)
		}
		defer env.m.DeleteSession(ctx, s.ID, false)
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			res, err := env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Argv: []string{"true"}}})
			ds = append(ds, time.Since(start))
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
		reportP50(b, ds)
	})
	// A delete of the user's last session also removes the user's
	// cgroup; with another session of theirs live it does not.
	for _, tc := range []struct {
		name   string
		keeper bool
	}{{"delete", false}, {"delete-not-last", true}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.keeper {
				k, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				defer env.m.DeleteSession(ctx, k.ID, false)
			}
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				_, err = env.m.DeleteSession(ctx, s.ID, false)
				ds = append(ds, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			reportP50(b, ds)
		})
	}
	// What every delete spends, before its answer, collecting unused
	// base environments.
	b.Run("collect-envs", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			env.m.collectEnvs()
			ds = append(ds, time.Since(start))
		}
		reportP50(b, ds)
	})
}

// benchLimits lets SANDBOXD_BENCH_CPUS raise the session's CPU limit, to
// tell the cost of exec from the throttling of the default 0.5 CPU.
func benchLimits() *Limits {
	cpus, err := strconv.ParseFloat(os.Getenv("SANDBOXD_BENCH_CPUS"), 64)
	if err != nil {
		return nil
	}
	return &Limits{CPUs: cpus}
}
