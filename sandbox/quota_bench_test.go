package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkDisk is what the disk limits cost (make bench runs it a few
// times, not 50: it writes):
//
//   - create: a session's create with the quota mechanism (the user's disk
//     attached, the session's image reserved and mounted), and the same for
//     a user holding 20,000 files in shared_files, which costs no more: the
//     mechanism's figures, no walk;
//   - thaw: thawing a frozen session, what an idle session's next call
//     waits for;
//   - write: 64 MiB written and fsynced by dd inside a session (its disk
//     limited, through two loop levels in loop mode) against the same dd on
//     the host, on the state directory's plain filesystem; reported as each
//     one's MB/s and their ratio (the goal: within 10%).
func BenchmarkDisk(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	createP50 := func(b *testing.B, user string) {
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			s, err := env.m.CreateSession(ctx, CreateRequest{UserID: user})
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_, _ = env.m.DeleteSession(ctx, s.ID, false)
			b.StartTimer()
		}
		reportP50(b, ds)
	}
	b.Run("create", func(b *testing.B) { createP50(b, "bench-disk") })
	b.Run("create-20000-shared-files", func(b *testing.B) {
		b.StopTimer()
		s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench-many"})
		if err != nil {
			b.Fatal(err)
		}
		d, err := env.m.disk(s.UserID)
		if err != nil {
			b.Fatal(err)
		}
		many := filepath.Join(d.dirs.SharedFiles, "many")
		if err := os.MkdirAll(many, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range 20000 {
			if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("f%05d", i)), []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		_, _ = env.m.DeleteSession(ctx, s.ID, false)
		b.StartTimer()
		createP50(b, "bench-many")
	})
	b.Run("thaw", func(b *testing.B) {
		s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench-disk"})
		if err != nil {
			b.Fatal(err)
		}
		defer env.m.DeleteSession(ctx, s.ID, false)
		// A command first: the sandbox's PID 1 is then past its start.
		if _, err := env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Argv: []string{"true"}}}); err != nil {
			b.Fatal(err)
		}
		env.m.mu.Lock()
		ss := env.m.sessions[s.ID]
		env.m.mu.Unlock()
		var ds []time.Duration
		for b.Loop() {
			b.StopTimer()
			ss.life.Lock()
			err := env.m.freeze(ss)
			ss.life.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := env.m.thaw(ss); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		reportP50(b, ds)
	})
	b.Run("write", func(b *testing.B) {
		const mb = 64
		s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bench-disk", Limits: &Limits{CPUs: 2}})
		if err != nil {
			b.Fatal(err)
		}
		defer env.m.DeleteSession(ctx, s.ID, false)
		plain, err := os.MkdirTemp(env.cfg.StateDir, "bench-plain-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(plain)
		dd := fmt.Sprintf("dd if=/dev/zero of=%%s bs=1M count=%d conv=fsync status=none", mb)
		var inQuota, onPlain []time.Duration
		for b.Loop() {
			start := time.Now()
			if out, err := exec.Command("sh", "-c", fmt.Sprintf(dd, filepath.Join(plain, "f"))).CombinedOutput(); err != nil {
				b.Fatal(err, string(out))
			}
			onPlain = append(onPlain, time.Since(start))
			res, err := env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Shell: fmt.Sprintf(dd, "/workspace/f")}, Timeout: time.Minute})
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res.ExitCode, string(res.Stderr))
			}
			inQuota = append(inQuota, res.Duration)
		}
		rate := func(ds []time.Duration) float64 {
			slices.Sort(ds)
			return mb * (1 << 20) / 1e6 / ds[len(ds)/2].Seconds()
		}
		q, p := rate(inQuota), rate(onPlain)
		b.ReportMetric(q, "quota-MB/s")
		b.ReportMetric(p, "plain-MB/s")
		b.ReportMetric(q/p, "quota/plain")
	})
}
