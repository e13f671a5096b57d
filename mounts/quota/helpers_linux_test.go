package quota

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sandboxUID owns the sandbox-writable directories in the tests, as a
// user's own uid does in the daemon.
const sandboxUID = 10000

var sandboxOwner = Owner{UID: sandboxUID, GID: sandboxUID}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and mounts")
	}
}

// testState is a state directory under the test's temporary directory,
// and a loop-mode Manager on it. Cleanup unmounts whatever is left under
// it, deepest first, and fails the test if a loop device still reads an
// image from it.
type testState struct {
	dir string
	m   *Manager
}

func newLoopState(t testing.TB) *testState {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	// The sandbox user writes in some tests: let it through the test's
	// temporary directories, as through the daemon's state root (0711).
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		require.NoError(t, os.Chmod(p, 0o711))
	}
	s := &testState{dir: dir, m: newLoopManager(t)}
	t.Cleanup(func() { cleanupMounts(t, dir) })
	t.Cleanup(func() { s.detachAll(t) })
	return s
}

// detachAll detaches the users the current Manager knows, as user removal
// would: what it leaves mounted, cleanupMounts reports.
func (s *testState) detachAll(t testing.TB) {
	s.m.mu.Lock()
	var ids []string
	for id := range s.m.users {
		ids = append(ids, id)
	}
	s.m.mu.Unlock()
	for _, id := range ids {
		if err := s.m.DetachUser(context.Background(), id); err != nil {
			t.Logf("detach %s: %v", id, err)
		}
	}
}

func newLoopManager(t testing.TB) *Manager {
	t.Helper()
	m, err := New(context.Background(), Config{Mode: ModeLoop})
	require.NoError(t, err, "loop-mode manager")
	return m
}

// userDir makes a user's directory, root's like the daemon's, but 0711
// so that the sandbox user's writes in the tests find their way.
func (s *testState) userDir(t testing.TB, id string) string {
	t.Helper()
	d := filepath.Join(s.dir, "user_"+id)
	require.NoError(t, os.Mkdir(d, 0o711))
	return d
}

func (s *testState) attach(t testing.TB, id string, budget int64) UserDirs {
	t.Helper()
	d := filepath.Join(s.dir, "user_"+id)
	if _, err := os.Stat(d); err != nil {
		s.userDir(t, id)
	}
	dirs, err := s.m.AttachUser(context.Background(), id, d, sandboxOwner, UserLimits{Bytes: budget})
	require.NoError(t, err, "attach user %s", id)
	return dirs
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	require.NoError(t, err)
	defer f.Close()
	var mps []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mps = append(mps, fields[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
}

// loopsUnder lists the loop devices whose backing file is under dir.
func loopsUnder(dir string) []string {
	var devs []string
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		b, err := os.ReadFile("/sys/block/" + e.Name() + "/loop/backing_file")
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir+"/") {
			devs = append(devs, e.Name()+"="+strings.TrimSpace(string(b)))
		}
	}
	return devs
}

func cleanupMounts(t testing.TB, dir string) {
	leftover := mountsUnder(t, dir)
	for _, mp := range leftover {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if len(leftover) > 0 {
		t.Logf("cleanup unmounted %v", leftover)
	}
	if devs := loopsLeft(dir); len(devs) > 0 {
		t.Errorf("loop devices left bound to images under %s: %v", dir, devs)
	}
}

// loopsLeft is loopsUnder once the devices had their chance to come free.
// Autoclear frees a device at its last close, which is ours unless
// another process (a scan of loop devices) has it open for a moment:
// wait for that, within reason.
func loopsLeft(dir string) []string {
	deadline := time.Now().Add(5 * time.Second)
	devs := loopsUnder(dir)
	for len(devs) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		devs = loopsUnder(dir)
	}
	return devs
}

// writeUntilFull writes zeros into path in 1 MiB steps until an error,
// and returns the bytes written and the error.
func writeUntilFull(path string, limit int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, mib)
	var n int64
	for n < limit {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			f.Close()
			return n, err
		}
	}
	return n, f.Close()
}

// writeAsSandbox writes until the disk is full as the sandbox user, like
// a command in a sandbox, and returns the bytes written and what the
// writer was told.
func writeAsSandbox(t testing.TB, path string) (int64, string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `head -c 1073741824 /dev/zero > "$1"`, "sh", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandboxUID, Gid: sandboxUID}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "a 1 GiB write must fail")
	st, serr := os.Stat(path)
	require.NoError(t, serr)
	return st.Size(), string(out)
}

// makeFiles creates empty files in dir until an error or limit, and
// returns how many it made and the error.
func makeFiles(dir string, limit int) (int, error) {
	for i := 0; i < limit; i++ {
		f, err := os.OpenFile(filepath.Join(dir, "f"+strconv.Itoa(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return i, err
		}
		f.Close()
	}
	return limit, nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
