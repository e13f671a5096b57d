package shim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// inNamespaces starts a sleeper in new mount and UTS namespaces and
// returns its pid once it is in them.
func inNamespaces(t *testing.T) int {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	cmd := exec.Command("unshare", "--mount", "--uts", "--propagation", "private", "sleep", "1000")
	require.NoError(t, cmd.Start(), "start a process in new namespaces")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ours, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// unshare(1) execs sleep in its own process once it unshared.
		theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if theirs != "" && theirs != ours && strings.HasSuffix(exe, "/sleep") {
			return cmd.Process.Pid
		}
		require.True(t, time.Now().Before(deadline), "the process entered its namespaces")
		time.Sleep(time.Millisecond)
	}
}

func nsFile(t *testing.T, pid int, ns string) *os.File {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	require.NoError(t, err, "open %s namespace", ns)
	t.Cleanup(func() { f.Close() })
	return f
}

// detached is a detached copy of the tree at dir.
func detached(t *testing.T, dir string) *os.File {
	t.Helper()
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	require.NoError(t, err, "open_tree %s", dir)
	f := os.NewFile(uintptr(fd), dir)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestBindAttachesMountsInTheSandboxOnly(t *testing.T) {
	requireRoot(t, "makes namespaces and mounts")
	exe, err := os.Executable()
	require.NoError(t, err)
	base := t.TempDir()
	target := filepath.Join(base, "target")
	require.NoError(t, os.Mkdir(target, 0o755))
	src := filepath.Join(base, "src")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "inner"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "hello"), []byte("hi"), 0o644))
	src2 := filepath.Join(base, "src2")
	require.NoError(t, os.Mkdir(src2, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src2, "nested"), []byte("deep"), 0o644))
	pid := inNamespaces(t)

	err = Bind(context.Background(), exe, nsFile(t, pid, "mnt"), nsFile(t, pid, "uts"), "bound-host", []Mount{
		{Target: target, Tree: detached(t, src)},
		{Target: filepath.Join(target, "inner"), Tree: detached(t, src2)},
	})
	require.NoError(t, err, "bind")
	root := fmt.Sprintf("/proc/%d/root", pid)
	data, err := os.ReadFile(root + filepath.Join(target, "hello"))
	require.NoError(t, err, "the mount is in the sandbox")
	assert.Equal(t, "hi", string(data))
	data, err = os.ReadFile(root + filepath.Join(target, "inner", "nested"))
	require.NoError(t, err, "a target may lie in an earlier mount")
	assert.Equal(t, "deep", string(data))
	assert.NoFileExists(t, filepath.Join(target, "hello"), "and not in the daemon's namespace")
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-u", "hostname").Output()
	require.NoError(t, err, "read the sandbox's hostname")
	assert.Equal(t, "bound-host\n", string(out), "the sandbox's hostname")
	host, err := os.Hostname()
	require.NoError(t, err)
	assert.NotEqual(t, "bound-host", host, "not the daemon's")
}

func TestBindRefusesSymlinkedTargets(t *testing.T) {
	requireRoot(t, "makes namespaces and mounts")
	exe, err := os.Executable()
	require.NoError(t, err)
	base := t.TempDir()
	dir := filepath.Join(base, "real")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.Symlink(dir, filepath.Join(base, "link")))
	src := filepath.Join(base, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "planted"), nil, 0o644))
	pid := inNamespaces(t)
	for _, target := range []string{filepath.Join(base, "link"), filepath.Join(base, "link", "sub")} {
		err := Bind(context.Background(), exe, nsFile(t, pid, "mnt"), nsFile(t, pid, "uts"), "h", []Mount{{Target: target, Tree: detached(t, src)}})
		assert.Error(t, err, "target %s is refused", target)
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	assert.NoFileExists(t, root+filepath.Join(dir, "planted"), "nothing was mounted through the symlink")
	assert.NoFileExists(t, root+filepath.Join(dir, "sub", "planted"), "nor beneath it")
}

func TestBindRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		mounts     []Mount
	}{
		{"empty hostname", "", nil},
		{"NUL in hostname", "a\x00b", nil},
		{"relative target", "h", []Mount{{Target: "tmp", Tree: os.Stdin}}},
		{"no tree", "h", []Mount{{Target: "/tmp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Bind(context.Background(), "/nonexistent", nil, nil, tc.host, tc.mounts)
			assert.ErrorIs(t, err, ErrInvalid)
		})
	}
}
