package quota

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkReserveSession times what a session create adds in loop mode:
// a fully allocated image of S = 100 MiB with F = 10,000 inodes, mkfs, a
// loop device and the mount, then the session's directories. The release
// (unmount and unlink) is timed apart.
func BenchmarkReserveSession(b *testing.B) {
	s := newLoopState(b)
	s.attach(b, "alice", 1024*mib)
	l := SessionLimits{Bytes: 100 * mib, Files: 10000}
	b.Run("reserve", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, err := s.m.ReserveSession(bg, "alice", "s"+strconv.Itoa(i), l)
			require.NoError(b, err)
			b.StopTimer()
			require.NoError(b, s.m.ReleaseSession(bg, "alice", "s"+strconv.Itoa(i)))
			b.StartTimer()
		}
	})
	b.Run("release", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			_, err := s.m.ReserveSession(bg, "alice", "r"+strconv.Itoa(i), l)
			require.NoError(b, err)
			b.StartTimer()
			require.NoError(b, s.m.ReleaseSession(bg, "alice", "r"+strconv.Itoa(i)))
		}
	})
}

// BenchmarkAttachedUser times the calls a create makes on a user already
// attached: AttachUser again (it finds the disk mounted) and Usage with
// ten sessions.
func BenchmarkAttachedUser(b *testing.B) {
	s := newLoopState(b)
	d := s.attach(b, "alice", 1024*mib)
	for i := range 10 {
		_, err := s.m.ReserveSession(bg, "alice", "s"+strconv.Itoa(i), SessionLimits{Bytes: 50 * mib, Files: 1000})
		require.NoError(b, err)
	}
	b.Run("attach", func(b *testing.B) {
		for b.Loop() {
			_, err := s.m.AttachUser(bg, "alice", filepath.Dir(d.Disk), UserLimits{Bytes: 1024 * mib})
			require.NoError(b, err)
		}
	})
	b.Run("usage", func(b *testing.B) {
		for b.Loop() {
			_, err := s.m.Usage("alice")
			require.NoError(b, err)
		}
	})
}

// BenchmarkWrite writes 256 MiB sequentially in 1 MiB writes and fsyncs,
// on the plain disk, in a user's shared_files (one loop level) and in a
// session (two levels), with the loop devices in direct I/O and, for
// comparison, buffered.
func BenchmarkWrite(b *testing.B) {
	const size = 256 * mib
	for _, dio := range []bool{true, false} {
		s := newLoopState(b)
		s.m.backend.(*loopBackend).directIO = dio
		ud := s.attach(b, "alice", 1536*mib)
		sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 512 * mib, Files: 1000})
		require.NoError(b, err)
		plain := b.TempDir()
		targets := []struct{ name, dir string }{{"session", sd.Files}, {"shared", ud.SharedFiles}}
		if dio {
			targets = append([]struct{ name, dir string }{{"plain", plain}}, targets...)
		}
		for _, tc := range targets {
			name := tc.name
			if tc.name != "plain" {
				name += map[bool]string{true: "/dio", false: "/buffered"}[dio]
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(size)
				buf := make([]byte, mib)
				p := filepath.Join(tc.dir, "bench")
				for b.Loop() {
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
					require.NoError(b, err)
					for n := 0; n < size; n += len(buf) {
						_, err := f.Write(buf)
						require.NoError(b, err)
					}
					require.NoError(b, f.Sync())
					require.NoError(b, f.Close())
				}
			})
		}
	}
}
