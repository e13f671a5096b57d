package quota

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// projectDirEnv names a directory on a filesystem with project quotas
// enforced (ext4 mounted with prjquota, XFS with pquota). This kernel has
// none; testdata/vm-project.sh makes such filesystems in the VM of make
// vmtest and runs these tests there.
const projectDirEnv = "SANDBOXD_QUOTA_PROJECT_DIR"

// newProjectState is a state directory on the project-quota filesystem
// and a project-mode Manager on it. Without the environment variable the
// test is skipped; with it, a filesystem that fails the probe fails it.
func newProjectState(t *testing.T) *testState {
	t.Helper()
	requireRoot(t)
	base := os.Getenv(projectDirEnv)
	if base == "" {
		t.Skipf("needs %s: a directory on a filesystem with project quotas (this kernel has none; the VM test sets it)", projectDirEnv)
	}
	require.NoError(t, probeProject(context.Background(), base), "%s must enforce project quotas", base)
	dir, err := os.MkdirTemp(base, "test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o711))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	records := filepath.Join(dir, "quota")
	require.NoError(t, os.Mkdir(records, 0o700))
	m, err := New(context.Background(), Config{Mode: ModeProject, Dir: records})
	require.NoError(t, err)
	s := &testState{dir: dir, m: m}
	t.Cleanup(func() { s.detachAll(t) })
	return s
}

func TestProjectDetect(t *testing.T) {
	s := newProjectState(t)
	r := Detect(bg, s.dir)
	require.Equal(t, ModeProject, r.Mode, "%s", r)
	t.Logf("doctor: %s", r)
}

func TestProjectSessionLimitsAreHard(t *testing.T) {
	s := newProjectState(t)
	s.attach(t, "alice", 256*mib)
	const bytes, files = 16 * mib, 300
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: bytes, Files: files})
	require.NoError(t, err)

	n, out := writeAsSandbox(t, filepath.Join(sd.Files, "big"))
	assertQuotaError(t, out)
	assert.LessOrEqual(t, n, int64(bytes), "nothing is written past S")
	assert.Greater(t, n, int64(bytes)-mib, "S less the session's directories is usable")
	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.InDelta(t, n, u.Sessions["s1"].Bytes, float64(64<<10), "session usage is what was written")
	assert.Equal(t, int64(bytes), u.Sessions["s1"].LimitBytes)
	require.NoError(t, os.Remove(filepath.Join(sd.Files, "big")))

	k, out := makeFilesAsSandbox(t, sd.Files, 10*files)
	assertQuotaError(t, out)
	assert.Equal(t, files, k, "exactly F files")
	u, err = s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(files), u.Sessions["s1"].Files)
	assert.Equal(t, int64(files), u.Sessions["s1"].LimitFiles)
}

// assertQuotaError checks a writer was stopped by the quota: EDQUOT on
// ext4, ENOSPC on XFS (its project quotas report a full filesystem).
func assertQuotaError(t *testing.T, out string) {
	t.Helper()
	assert.True(t, strings.Contains(out, "Disk quota exceeded") || strings.Contains(out, "No space left on device"),
		"the sandbox's writer is told EDQUOT or ENOSPC: %s", out)
}

// makeFilesAsSandbox creates empty files as the sandbox user until an
// error, and returns how many it made and what it was told.
func makeFilesAsSandbox(t *testing.T, dir string, limit int) (int, string) {
	t.Helper()
	// printf, not ':': a failed redirection of a special builtin would
	// end the shell.
	script := `i=0; while [ $i -lt "$2" ]; do printf '' > "$1/f$i" || break; i=$((i+1)); done; echo $i`
	out, err := runAsSandbox(script, dir, strconv.Itoa(limit))
	require.NoError(t, err, "%s", out)
	fields := strings.Fields(out)
	require.NotEmpty(t, fields)
	n, err := strconv.Atoi(fields[len(fields)-1])
	require.NoError(t, err, "%s", out)
	return n, out
}

func TestProjectSharedGetsWhatIsNotReserved(t *testing.T) {
	s := newProjectState(t)
	const budget = 64 * mib
	ud := s.attach(t, "alice", budget)
	for _, sid := range []string{"s1", "s2"} {
		_, err := s.m.ReserveSession(bg, "alice", sid, SessionLimits{Bytes: 16 * mib, Files: 100})
		require.NoError(t, err)
	}
	n, out := writeAsSandbox(t, filepath.Join(ud.SharedFiles, "big"))
	assertQuotaError(t, out)
	assert.LessOrEqual(t, n, int64(budget-32*mib+dirAllowance), "shared_files stops at U less the reservations")
	assert.Greater(t, n, int64(budget-32*mib-mib))

	u, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, int64(budget), u.LimitBytes)
	assert.Equal(t, int64(32*mib), u.Reserved)
	assert.InDelta(t, n, u.Shared.Bytes, float64(64<<10))

	_, err = s.m.ReserveSession(bg, "alice", "s3", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrNoRoom, "shared_files took the rest")
	_, err = os.Lstat(filepath.Join(ud.Disk, sessionsDir, "s3"))
	assert.ErrorIs(t, err, os.ErrNotExist, "a refused reservation leaves nothing")

	require.NoError(t, s.m.ReleaseSession(bg, "alice", "s1"))
	_, err = os.Lstat(filepath.Join(ud.Disk, sessionsDir, "s1"))
	assert.ErrorIs(t, err, os.ErrNotExist, "release removes the tree")
	k, _ := writeAsSandbox(t, filepath.Join(ud.SharedFiles, "more"))
	assert.InDelta(t, 16*mib, k, float64(mib), "the released reservation went to shared_files")

	require.ErrorIs(t, s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 32 * mib}), ErrBelowUsage)
	require.NoError(t, s.m.SetUserLimits(bg, "alice", UserLimits{Bytes: 128 * mib}), "grow")
	k, _ = writeAsSandbox(t, filepath.Join(ud.SharedFiles, "grown"))
	assert.InDelta(t, 64*mib, k, float64(mib), "the growth went to shared_files")
}

func TestProjectSurvivesRestart(t *testing.T) {
	s := newProjectState(t)
	s.attach(t, "alice", 64*mib)
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	before, err := s.m.Usage("alice")
	require.NoError(t, err)

	m, err := New(bg, Config{Mode: ModeProject, Dir: filepath.Join(s.dir, "quota")})
	require.NoError(t, err)
	s.m = m
	s.attach(t, "alice", 64*mib)
	_, err = s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 32 * mib, Files: 100})
	require.NoError(t, err, "re-reserve after a restart")
	after, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, before.Reserved, after.Reserved, "the reservation is the one recorded")

	// A daemon that cannot read the user's limits keeps the budget.
	m, err = New(bg, Config{Mode: ModeProject, Dir: filepath.Join(s.dir, "quota")})
	require.NoError(t, err)
	s.m = m
	_, err = s.m.AttachUser(bg, "alice", filepath.Join(s.dir, "user_alice"), sandboxOwner, KeepBudget)
	require.NoError(t, err, "attach keeping the budget")
	kept, err := s.m.Usage("alice")
	require.NoError(t, err)
	assert.Equal(t, before.LimitBytes, kept.LimitBytes, "the budget recorded")
	n, _ := writeAsSandbox(t, filepath.Join(sd.Files, "big"))
	assert.LessOrEqual(t, n, int64(16*mib), "the limit holds after a restart")
	ids, err := s.m.Sessions("alice")
	require.NoError(t, err)
	assert.Equal(t, []string{"s1"}, ids)
}

func TestProjectHostileLayout(t *testing.T) {
	s := newProjectState(t)
	ud := s.attach(t, "alice", 64*mib)
	target := t.TempDir()
	require.NoError(t, os.Symlink(target, filepath.Join(ud.Disk, sessionsDir, "s1")))
	_, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.ErrorIs(t, err, ErrForeign)
	entries, err := os.ReadDir(target)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing made through the symlink")
	f, err := os.Open(target)
	require.NoError(t, err)
	defer f.Close()
	id, err := projectOf(f)
	if err == nil {
		assert.Zero(t, id, "the symlink's target got no project")
	}
}

// TestProjectRootPassesOverExt4Limits shows why the daemon's own writes
// into a user's trees (uploads) must be made without CAP_SYS_RESOURCE in
// project mode on ext4: the capability passes over quota limits there.
// XFS applies project limits to root too.
func TestProjectRootPassesOverExt4Limits(t *testing.T) {
	s := newProjectState(t)
	s.attach(t, "alice", 256*mib)
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	n, err := writeUntilFull(filepath.Join(sd.Files, "root"), 32*mib)
	switch fsName(s.dir) {
	case "ext4":
		require.NoError(t, err)
		assert.Equal(t, int64(32*mib), n, "root wrote past S")
		t.Logf("HOLE: on ext4, root (CAP_SYS_RESOURCE) wrote %d bytes into a %d-byte project", n, 16*mib)
	default:
		assert.True(t, isNoSpace(err), "root is stopped too: %v", err)
		assert.LessOrEqual(t, n, int64(16*mib))
	}
}

// TestProjectOwnerCanChangeProjectID shows why sandboxes must be denied
// FS_IOC_FSSETXATTR (seccomp) in project mode: outside a user namespace,
// a file's owner may move it to another project, here out of every limit.
func TestProjectOwnerCanChangeProjectID(t *testing.T) {
	s := newProjectState(t)
	s.attach(t, "alice", 64*mib)
	sd, err := s.m.ReserveSession(bg, "alice", "s1", SessionLimits{Bytes: 16 * mib, Files: 100})
	require.NoError(t, err)
	p := filepath.Join(sd.Files, "escape")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Chown(p, sandboxUID, sandboxUID))
	out, err := runAsSandbox(`exec python3 -c '
import fcntl, struct, sys
fd = open(sys.argv[1], "rb")
buf = bytearray(28)
fcntl.ioctl(fd, 0x801c581f, buf)
x = list(struct.unpack("5I8x", buf)); x[3] = 0
fcntl.ioctl(fd, 0x401c5820, struct.pack("5I8x", *x))
print("moved to project 0")' "$1"`, p)
	if err != nil {
		t.Logf("the kernel refused the owner: %s", out)
		return
	}
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	id, err := projectOf(f)
	require.NoError(t, err)
	assert.Zero(t, id, "the owner moved the file out of the session's project")
	t.Logf("HOLE: the sandbox user moved its file to project 0 (%s): seccomp must deny FS_IOC_FSSETXATTR and file_setattr", out)
}

func runAsSandbox(script string, args ...string) (string, error) {
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandboxUID, Gid: sandboxUID}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestProjectStructsMatchTheKernel(t *testing.T) {
	// Sizes from linux/quota.h, linux/fs.h, linux/dqblk_xfs.h.
	assert.Equal(t, uintptr(72), unsafe.Sizeof(dqblk{}), "struct if_dqblk")
	assert.Equal(t, uintptr(28), unsafe.Sizeof(fsxattr{}), "struct fsxattr")
	assert.Equal(t, uintptr(160), unsafe.Sizeof(fsQuotaStatV{}), "struct fs_quota_statv")
	assert.Equal(t, 0x80000702, qcmd(qGetQuota, prjQuota), "QCMD(Q_GETQUOTA, PRJQUOTA)")
	assert.Equal(t, 0x80000802, qcmd(qSetQuota, prjQuota), "QCMD(Q_SETQUOTA, PRJQUOTA)")
	assert.Equal(t, 0x580802, qcmd(qXGetQStatV, prjQuota), "QCMD(Q_XGETQSTATV, PRJQUOTA)")
}

// projectOf returns the project id of f.
func projectOf(f *os.File) (uint32, error) {
	var a fsxattr
	if err := ioctlPtr(f, fsIOCFSGetXAttr, unsafe.Pointer(&a)); err != nil {
		return 0, err
	}
	return a.ProjID, nil
}
