package cgroup

import (
	"fmt"
	"testing"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/stretchr/testify/require"
)

// BenchmarkExecCgroup measures what one command's cgroup costs the daemon:
// create it, place the command's process in it, read its figures, remove
// it. A parked worker stands in for the command: it is moved into each
// new exec and back out before the removal (the move out, which a real
// command does by exiting, is not counted).
func BenchmarkExecCgroup(b *testing.B) {
	requireRoot(b)
	b.Run("host", func(b *testing.B) {
		m, err := New(testParent(b))
		require.NoError(b, err, "manager")
		cleanupParent(b, m)
		benchExecs(b, m, newSession(b, m, "u1", "s1", sessionLimits{}))
	})
	if cgroups.Mode() == cgroups.Hybrid {
		// The v2 code on the unified hierarchy, where there is no
		// controller: a lower bound for a v2 host, which accounts memory.
		b.Run("v2-core", func(b *testing.B) {
			m, err := newManager(testParent(b), ModeV2, hybridMountpoint)
			require.NoError(b, err, "manager")
			cleanupParent(b, m)
			benchExecs(b, m, newUnifiedSession(b, m, "u1", "s1"))
		})
	}
}

func benchExecs(b *testing.B, m *Manager, s *testSession) {
	park, err := m.NewExec(s.path, "park")
	require.NoError(b, err, "park exec")
	worker := runIn(b, s, park, "idle", 0).pid()

	var create, place, stat, remove time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		e, err := m.NewExec(s.path, fmt.Sprintf("e%d", i))
		t1 := time.Now()
		if err == nil {
			err = e.AddProc(worker)
		}
		t2 := time.Now()
		if err == nil {
			_, err = e.Stats()
		}
		t3 := time.Now()
		if err == nil {
			b.StopTimer()
			err = park.AddProc(worker)
			b.StartTimer()
		}
		t4 := time.Now()
		if err == nil {
			err = e.Remove()
		}
		t5 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		create += t1.Sub(t0)
		place += t2.Sub(t1)
		stat += t3.Sub(t2)
		remove += t5.Sub(t4)
	}
	n := float64(b.N)
	b.ReportMetric(float64(create.Microseconds())/n, "create-µs/op")
	b.ReportMetric(float64(place.Microseconds())/n, "place-µs/op")
	b.ReportMetric(float64(stat.Microseconds())/n, "stat-µs/op")
	b.ReportMetric(float64(remove.Microseconds())/n, "remove-µs/op")
}
