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
			_, err := s.m.AttachUser(bg, "alice", filepath.Dir(d.Disk), sandboxOwner, UserLimits{Bytes: 1024 * mib})
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

// BenchmarkWrite writes 256 MiB sequentially in 1 MiB writes and fsyncs:
// on the plain disk (a new file each time, as in the images); in a
// user's shared_files (one loop level) and a session (two), rewriting a
// file in an image that was written before; and in a fresh session each
// time, whose blocks are still unwritten extents at both levels (the
// worst case). Loop devices in direct I/O and, for comparison, buffered.
func BenchmarkWrite(b *testing.B) {
	const size = 256 * mib
	write := func(b *testing.B, dir string) {
		b.Helper()
		buf := make([]byte, mib)
		f, err := os.OpenFile(filepath.Join(dir, "bench"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		require.NoError(b, err)
		for n := 0; n < size; n += len(buf) {
			_, err := f.Write(buf)
			require.NoError(b, err)
		}
		require.NoError(b, f.Sync())
		require.NoError(b, f.Close())
	}
	b.Run("plain", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(size)
		for b.Loop() {
			write(b, dir)
		}
	})
	for _, dio := range []bool{true, false} {
		io := map[bool]string{true: "dio", false: "buffered"}[dio]
		s := newLoopState(b)
		s.m.backend.(*loopBackend).directIO = dio
		ud := s.attach(b, "alice", 1536*mib)
		l := SessionLimits{Bytes: 512 * mib, Files: 1000}
		sd, err := s.m.ReserveSession(bg, "alice", "s1", l)
		require.NoError(b, err)
		for _, tc := range []struct{ name, dir string }{{"session", sd.Files}, {"shared", ud.SharedFiles}} {
			b.Run(tc.name+"/"+io, func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					write(b, tc.dir)
				}
			})
		}
		b.Run("fresh-session/"+io, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				sid := "fresh" + strconv.Itoa(i)
				sd, err := s.m.ReserveSession(bg, "alice", sid, l)
				require.NoError(b, err)
				b.StartTimer()
				write(b, sd.Files)
				b.StopTimer()
				require.NoError(b, s.m.ReleaseSession(bg, "alice", sid))
				b.StartTimer()
			}
		})
	}
}
