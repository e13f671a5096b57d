package quota

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var bg = context.Background()

func TestLoopSessionBytesAreHard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int64
	}{
		{"small image without journal", 16 * mib},
		{"image with journal", 96 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLoopState(t)
			s.attach(t, "alice", 256*mib)
			sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: tc.bytes, Files: 1000})
			require.NoError(t, err)

			n, out := writeAsSandbox(t, filepath.Join(sd.Files, "big"))
			assert.Contains(t, out, "No space left on device", "the sandbox's writer is told ENOSPC")
			assert.LessOrEqual(t, n, tc.bytes, "nothing is written past S")
			assert.Greater(t, n, tc.bytes*90/100, "S less the filesystem's metadata is usable")

			u, err := s.m.Usage("alice")
			require.NoError(t, err)
			su := u.Sessions["s1"]
			assert.InDelta(t, n, su.Bytes, float64(mib), "session usage is what was written")
			assert.InDelta(t, su.LimitBytes, su.Bytes, float64(256<<10), "the session is full")
			assert.Equal(t, tc.bytes, u.Reserved, "the reservation is S")

			// Root writes fail too: no blocks are reserved for root.
			_, err = writeUntilFull(filepath.Join(sd.Logs, "root"), 64*mib)
			assert.True(t, isNoSpace(err), "root's write fails with ENOSPC too: %v", err)
		})
	}
}

func TestLoopSessionFilesAreHard(t *testing.T) {
	s := newLoopState(t)
	s.attach(t, "alice", 64*mib)
	const files = 300
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: files})
	require.NoError(t, err)
	n, err := makeFiles(sd.Files, 10*files)
	require.Error(t, err, "creating files must stop")
	assert.True(t, isNoSpace(err), "inode exhaustion is ENOSPC: %v", err)
	assert.GreaterOrEqual(t, n, files, "at least F files fit")
	assert.Less(t, n, files+32, "F is rounded up to fill the inode table, no more")

	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(n), u.Sessions["s1"].Files, "file count from statfs")
	assert.Equal(t, u.Sessions["s1"].LimitFiles, u.Sessions["s1"].Files, "the session is at its file limit")
}

func TestLoopSharedGetsWhatIsNotReserved(t *testing.T) {
	s := newLoopState(t)
	const budget = 64 * mib
	ud := s.attach(t, "alice", budget)
	_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	_, err = s.m.ReserveSession(bg, "alice", "s2", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)

	n, out := writeAsSandbox(t, filepath.Join(ud.SharedFiles, "big"))
	assert.Contains(t, out, "No space left on device")
	free := int64(budget - 32*mib)
	assert.LessOrEqual(t, n, free+dirAllowance, "shared_files stops at U less the reservations")
	assert.Greater(t, n, free-mib, "shared_files gets all of U less the reservations")

	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(budget), u.LimitBytes)
	assert.Equal(t, int64(32*mib), u.Reserved)
	assert.InDelta(t, n, u.Shared.Bytes, float64(256<<10), "shared usage is what was written")
	assert.Equal(t, int64(budget-32*mib), u.Shared.LimitBytes)

	// Now no session fits: shared_files took the rest.
	_, err = s.m.ReserveSession(bg, "alice", "s3", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrNoRoom)
	assertNoSessionLeft(t, ud, "s3")

	// Freed space can be reserved again.
	require.NoError(t, os.Remove(filepath.Join(ud.SharedFiles, "big")))
	_, err = s.m.ReserveSession(bg, "alice", "s3", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err, "after shared_files shrank")
}

// assertNoSessionLeft checks that a refused reservation left nothing.
func assertNoSessionLeft(t *testing.T, ud UserDirs, sid string) {
	t.Helper()
	_, err := os.Lstat(filepath.Join(ud.Disk, sessionsDir, sid))
	assert.ErrorIs(t, err, os.ErrNotExist, "no mount point left")
	entries, err := os.ReadDir(filepath.Join(ud.Disk, imagesDir))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), sid, "no image left")
		assert.False(t, strings.HasPrefix(e.Name(), tmpPrefix), "no temporary image left: %s", e.Name())
	}
}

func TestLoopReservationsFitExactly(t *testing.T) {
	s := newLoopState(t)
	const budget, sessions = 80 * mib, 5
	ud := s.attach(t, "alice", budget)
	for i := range sessions {
		_, err := s.m.ReserveSession(bg, "alice", "s"+string(rune('a'+i)), SessionLimits{Bytes: budget / sessions, Files: 100})
		require.NoError(t, err, "session %d of %d, each U/%d", i+1, sessions, sessions)
	}
	_, err := s.m.ReserveSession(bg, "alice", "extra", SessionLimits{Bytes: MinSessionBytes * 2, Files: 10})
	require.ErrorIs(t, err, ErrNoRoom, "U is fully reserved")
	assertNoSessionLeft(t, ud, "extra")

	ids, err := s.m.Sessions("alice")
	require.NoError(t, err)
	assert.Len(t, ids, sessions)

	require.NoError(t, s.m.ReleaseSession(bg, "alice", "sa"))
	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(budget-budget/sessions), u.Reserved, "a release gives the reservation back")
	assert.NotContains(t, u.Sessions, "sa")
	_, err = os.Lstat(filepath.Join(ud.Disk, sessionsDir, "sa"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the released session's tree is gone")
	_, err = s.m.ReserveSession(bg, "alice", "again", SessionLimits{Bytes: budget / sessions, Files: 100})
	require.NoError(t, err, "the released room is reservable")
	require.NoError(t, s.m.ReleaseSession(bg, "alice", "never-made"), "releasing nothing is fine")
}

func TestLoopUsersAreIndependent(t *testing.T) {
	s := newLoopState(t)
	a := s.attach(t, "alice", 32*mib)
	b := s.attach(t, "bob", 32*mib)
	_, err := writeUntilFull(filepath.Join(a.SharedFiles, "big"), 1<<30)
	require.True(t, isNoSpace(err), "alice fills her disk: %v", err)

	n, err := writeUntilFull(filepath.Join(b.SharedFiles, "data"), 8*mib)
	require.NoError(t, err, "bob's writes are unaffected")
	assert.Equal(t, int64(8*mib), n)
	_, err = s.m.ReserveSession(bg, "bob", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err, "bob can reserve")
	_, err = s.m.ReserveSession(bg, "alice", "s2", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrNoRoom, "alice cannot")
}

func TestLoopResizeWhileInUse(t *testing.T) {
	s := newLoopState(t)
	ud := s.attach(t, "alice", 64*mib)
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	keep := filepath.Join(sd.Files, "keep")
	require.NoError(t, os.WriteFile(keep, []byte("still here"), 0o644))
	fillShared := func(name string) int64 {
		t.Helper()
		n, err := writeUntilFull(filepath.Join(ud.SharedFiles, name), 1<<30)
		require.True(t, isNoSpace(err), "shared_files fills up: %v", err)
		return n
	}
	limit := func() int64 {
		t.Helper()
		u, err := s.m.Usage("alice")
		require.NoError(t, err)
		return u.LimitBytes
	}

	// Shrink: the ballast takes the difference at once.
	require.NoError(t, s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 32 * mib}), "shrink above usage")
	assert.Equal(t, int64(32*mib), limit())
	n1 := fillShared("a")
	assert.InDelta(t, 32*mib-16*mib, n1, float64(dirAllowance+mib), "full at the smaller budget")

	// Below usage: refused, nothing changes.
	err = s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 24 * mib})
	require.ErrorIs(t, err, ErrBelowUsage)
	assert.Equal(t, int64(32*mib), limit(), "a refused shrink changes nothing")

	// At start (a new Manager), a budget below usage leaves the user
	// attached as they were.
	s.m = newLoopManager(t)
	dirs, err := s.m.AttachUser(bg, "alice", filepath.Dir(ud.Disk), sandboxOwner, UserLimits{Bytes: 24 * mib})
	require.ErrorIs(t, err, ErrBelowUsage, "attach below usage")
	assert.Equal(t, ud, dirs, "the user's directories come with the error")
	assert.Equal(t, int64(32*mib), limit(), "attached with the budget the disk had")
	_, err = s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err, "the user is attached: the session is found again")
	s.m = newLoopManager(t)
	_, err = s.m.AttachUser(bg, "alice", filepath.Dir(ud.Disk), sandboxOwner, KeepBudget)
	require.NoError(t, err, "attach keeping the budget")
	assert.Equal(t, int64(32*mib), limit(), "the budget the disk had")
	_, err = s.m.AttachUser(bg, "bob", s.userDir(t, "bob"), sandboxOwner, KeepBudget)
	require.ErrorIs(t, err, ErrInvalid, "a new disk needs a budget")

	// Grow back within what the image was made for: the ballast shrinks.
	require.NoError(t, s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 64 * mib}))
	n2 := fillShared("b")
	assert.InDelta(t, 32*mib, n2, float64(mib), "the 32 MiB given back are usable")

	// Grow beyond: the image grows online, under the mounted sessions.
	err = s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 160 * mib})
	if !haveCap(unix.CAP_SYS_RESOURCE) {
		require.ErrorIs(t, err, ErrCannotGrow, "without CAP_SYS_RESOURCE ext4 cannot grow online")
		assert.Equal(t, int64(64*mib), limit(), "a refused growth changes nothing")
		t.Skip("online growth not shown: this process lacks CAP_SYS_RESOURCE (the VM test runs it)")
	}
	require.NoError(t, err, "grow while mounted and in use")
	assert.Equal(t, int64(160*mib), limit())
	n3 := fillShared("c")
	assert.InDelta(t, 96*mib, n3, float64(2*mib), "the growth is usable")
	b, err := os.ReadFile(keep)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(b), "the session's files survive the growth")
}

func TestLoopAttachIsIdempotentAndSurvivesRestart(t *testing.T) {
	s := newLoopState(t)
	ud := s.attach(t, "alice", 64*mib)
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sd.Files, "a"), []byte("session"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ud.SharedFiles, "b"), []byte("shared"), 0o644))
	mounts := mountsUnder(t, s.dir)
	require.Len(t, mounts, 2, "the user's disk and the session")

	// Again, and from a new Manager (a daemon restart: the mounts stay).
	s.attach(t, "alice", 64*mib)
	s.m = newLoopManager(t)
	s.attach(t, "alice", 64*mib)
	_, err = s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 32 * mib, Files: 100})
	require.NoError(t, err)
	assert.Equal(t, mounts, mountsUnder(t, s.dir), "nothing mounted twice")
	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(16*mib), u.Reserved, "a session keeps the reservation it was made with")

	// Unmounted (a reboot), then attached again by a new Manager.
	require.NoError(t, s.m.DetachUser(bg, "alice"))
	assert.Empty(t, mountsUnder(t, s.dir), "detach unmounts everything")
	assert.Empty(t, loopsLeft(s.dir), "and frees the loop devices")
	_, err = s.m.Usage("alice")
	require.ErrorIs(t, err, ErrNotAttached)

	s.m = newLoopManager(t)
	s.attach(t, "alice", 64*mib)
	ids, err := s.m.Sessions("alice")
	require.NoError(t, err)
	assert.Equal(t, []string{"s1"}, ids, "recovery finds the reserved session")

	// A create cut short between the mount point and the image.
	require.NoError(t, os.Mkdir(filepath.Join(ud.Disk, sessionsDir, "cut"), 0o755))
	ids, err = s.m.Sessions("alice")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"s1", "cut"}, ids, "a mount point without an image is a reservation to release")
	require.NoError(t, s.m.ReleaseSession(bg, "alice", "cut"), "release it")
	assert.NoDirExists(t, filepath.Join(ud.Disk, sessionsDir, "cut"), "nothing of it is left")
	_, err = s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err, "re-attach the session")
	b, err := os.ReadFile(filepath.Join(sd.Files, "a"))
	require.NoError(t, err)
	assert.Equal(t, "session", string(b))
	b, err = os.ReadFile(filepath.Join(ud.SharedFiles, "b"))
	require.NoError(t, err)
	assert.Equal(t, "shared", string(b))
	n, _ := writeAsSandbox(t, filepath.Join(sd.Files, "big"))
	assert.LessOrEqual(t, n, int64(16*mib), "the limit holds after re-attach")
}

func TestLoopHostileLayout(t *testing.T) {
	outside := func(t *testing.T) string {
		d := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(d, "precious"), []byte("x"), 0o644))
		return d
	}
	assertUntouched := func(t *testing.T, s *testState, d string) {
		t.Helper()
		for _, mp := range mountsUnder(t, filepath.Dir(d)) {
			assert.False(t, strings.HasPrefix(mp, d), "nothing mounted on the symlink's target: %s", mp)
		}
		entries, err := os.ReadDir(d)
		require.NoError(t, err)
		require.Len(t, entries, 1, "nothing made in the symlink's target")
	}

	t.Run("symlink as a session's mount point", func(t *testing.T) {
		s := newLoopState(t)
		ud := s.attach(t, "alice", 64*mib)
		target := outside(t)
		require.NoError(t, os.Symlink(target, filepath.Join(ud.Disk, sessionsDir, "s1")))
		_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
		require.ErrorIs(t, err, ErrForeign)
		assertUntouched(t, s, target)
		assertNoImage(t, ud, "s1")
	})
	t.Run("file as a session's mount point", func(t *testing.T) {
		s := newLoopState(t)
		ud := s.attach(t, "alice", 64*mib)
		require.NoError(t, os.WriteFile(filepath.Join(ud.Disk, sessionsDir, "s1"), nil, 0o644))
		_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
		require.ErrorIs(t, err, ErrForeign)
	})
	t.Run("sandbox-owned directory as a session's mount point", func(t *testing.T) {
		s := newLoopState(t)
		ud := s.attach(t, "alice", 64*mib)
		mp := filepath.Join(ud.Disk, sessionsDir, "s1")
		require.NoError(t, os.Mkdir(mp, 0o755))
		require.NoError(t, os.Chown(mp, sandboxUID, sandboxUID))
		_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
		require.ErrorIs(t, err, ErrForeign)
		assert.Empty(t, mountsUnder(t, mp))
	})
	t.Run("symlink as the sessions directory", func(t *testing.T) {
		s := newLoopState(t)
		ud := s.attach(t, "alice", 64*mib)
		target := outside(t)
		sessions := filepath.Join(ud.Disk, sessionsDir)
		require.NoError(t, os.Remove(sessions))
		require.NoError(t, os.Symlink(target, sessions))
		_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
		require.ErrorIs(t, err, ErrForeign)
		assertUntouched(t, s, target)
	})
	t.Run("symlink as the user's image", func(t *testing.T) {
		s := newLoopState(t)
		d := s.userDir(t, "alice")
		target := filepath.Join(outside(t), "precious")
		require.NoError(t, os.Symlink(target, filepath.Join(d, userImage)))
		_, err := s.m.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
		require.ErrorIs(t, err, ErrForeign)
		b, err := os.ReadFile(target)
		require.NoError(t, err)
		assert.Equal(t, "x", string(b), "the symlink's target is untouched")
		assert.Empty(t, mountsUnder(t, d))
	})
	t.Run("symlink as the user's disk", func(t *testing.T) {
		s := newLoopState(t)
		d := s.userDir(t, "alice")
		target := outside(t)
		require.NoError(t, os.Symlink(target, filepath.Join(d, diskDir)))
		_, err := s.m.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
		require.ErrorIs(t, err, ErrForeign)
		assertUntouched(t, s, target)
	})
	t.Run("symlink as the user's directory", func(t *testing.T) {
		s := newLoopState(t)
		target := outside(t)
		d := filepath.Join(s.dir, "user_alice")
		require.NoError(t, os.Symlink(target, d))
		_, err := s.m.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
		require.Error(t, err)
		assertUntouched(t, s, target)
	})
	t.Run("another filesystem mounted on the disk", func(t *testing.T) {
		s := newLoopState(t)
		s.attach(t, "alice", 64*mib)
		d := filepath.Join(s.dir, "user_alice", diskDir)
		require.NoError(t, unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"), "stack a tmpfs on the disk")
		_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
		require.ErrorIs(t, err, ErrForeign, "a disk that is not the user's image is refused")
		require.NoError(t, unix.Unmount(d, 0))
	})
}

func assertNoImage(t *testing.T, ud UserDirs, sid string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(ud.Disk, imagesDir))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), sid, "no image left")
	}
}

func TestLoopErrorsNameUserAndSession(t *testing.T) {
	s := newLoopState(t)
	s.attach(t, "alice", 32*mib)
	_, err := s.m.ReserveSession(bg, "alice", "big", SessionLimits{Bytes: 64 * mib, Files: 100})
	require.ErrorIs(t, err, ErrNoRoom)
	assert.Contains(t, err.Error(), `user "alice" session "big"`)
	_, err = s.m.ReserveSession(bg, "nobody", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrNotAttached)
	_, err = s.m.ReserveSession(bg, "alice", "../x", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrInvalid)
}

func TestDetect(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	r := Detect(bg, dir)
	require.NotEqual(t, ModeNone, r.Mode, "this host has loop devices: %s", r)
	assert.NoError(t, r.Err())
	t.Logf("doctor: %s", r)
	if r.Mode == ModeLoop {
		assert.Error(t, r.ProjectErr, "loop mode says why project quotas are out")
		assert.Contains(t, r.String(), "loop-mounted ext4 images")
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the probes leave nothing behind")
	assert.Empty(t, loopsLeft(dir), "nor a loop device")
}

func TestModesDoNotMix(t *testing.T) {
	s := newLoopState(t)
	none, err := New(bg, Config{Mode: ModeNone})
	require.NoError(t, err)

	// A user laid out without limits (none mode) holds files in disk/:
	// loop mode must not mount over them.
	d := s.userDir(t, "alice")
	ud, err := none.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(ud.SharedFiles, "doc"), []byte("mine"), 0o644))
	_, err = s.m.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
	require.ErrorIs(t, err, ErrForeign, "loop mode refuses a disk/ holding files")
	assert.Empty(t, mountsUnder(t, d), "nothing mounted over the files")
	b, err := os.ReadFile(filepath.Join(ud.SharedFiles, "doc"))
	require.NoError(t, err)
	assert.Equal(t, "mine", string(b))

	// A user laid out in loop mode is refused by the directory modes.
	s.attach(t, "bob", 64*mib)
	_, err = none.AttachUser(bg, "bob", filepath.Join(s.dir, "user_bob"), sandboxOwner, UserLimits{Bytes: 64 * mib})
	require.ErrorIs(t, err, ErrForeign, "none mode refuses a loop-mode user")
}

func TestNoneModeLaysOutAndSaysSo(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	m, err := New(bg, Config{Mode: ModeNone})
	require.NoError(t, err)
	d := filepath.Join(dir, "user_alice")
	require.NoError(t, os.Mkdir(d, 0o700))
	ud, err := m.AttachUser(bg, "alice", d, sandboxOwner, UserLimits{Bytes: 64 * mib})
	require.NoError(t, err)
	sd, err := m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	for _, p := range []string{ud.SharedFiles, sd.Files, sd.Logs, sd.VenvUpper, sd.VenvWork} {
		st, err := os.Stat(p)
		require.NoError(t, err, p)
		assert.True(t, st.IsDir(), p)
	}
	st, err := os.Stat(sd.Files)
	require.NoError(t, err)
	assert.Equal(t, uint32(sandboxUID), st.Sys().(*syscall.Stat_t).Uid, "files/ is the sandbox user's")
	u, err := m.Usage("alice")
	require.NoError(t, err)
	assert.False(t, u.Enforced, "none mode says limits are not enforced")
	assert.Contains(t, u.Sessions, "s1")
	require.NoError(t, m.ReleaseSession(bg, "alice", "s1"))
	_, err = os.Stat(sd.Root)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
