package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// State from a daemon before disk quotas had the user's trees beside the
// records: they are moved onto the user's disk at start, following
// nothing the sandbox planted, and what cannot be copied is kept aside.
func TestTreesFromBeforeDiskQuotasAreMovedOntoTheDisk(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "pre-quota", nil)
	uid := e.uidOf(t, s.UserID)
	user := e.m.layout.User(s.UserID).Dir
	dir := e.m.layout.Session(s.UserID, s.ID).Dir
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("host\n"), 0o644), "a host file")
	// The sandbox runs on while the daemon is stopped, on the old trees
	// once they are there.
	e.whileStopped(t, func() {
		write := func(path, content string) {
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755), "mkdir for %s", path)
			require.NoError(t, os.WriteFile(path, []byte(content), 0o644), "write %s", path)
		}
		write(filepath.Join(user, "shared_files", "data", "old.txt"), "old shared\n")
		write(filepath.Join(user, "shared_files", "outputs", "report.pdf"), "%PDF\n")
		require.NoError(t, os.Symlink(victim, filepath.Join(user, "shared_files", "data", "link")), "a planted symlink")
		require.NoError(t, unix.Mkfifo(filepath.Join(user, "shared_files", "fifo"), 0o644), "a FIFO, which is not copied")
		write(filepath.Join(dir, "files", "note.txt"), "old workspace\n")
		write(filepath.Join(dir, "files", "shared", "ghost"), "under the old mount point\n")
		write(filepath.Join(dir, "venv", "upper", "legacy.txt"), "old layer\n")
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "venv", "upper", "bin"), 0o755), "layer bin")
		require.NoError(t, unix.Mknod(filepath.Join(dir, "venv", "upper", "bin", "activate"), unix.S_IFCHR, 0), "a whiteout")
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "venv", "work"), 0o700), "overlay work dir")
		write(filepath.Join(dir, "logs", "old.log"), "log of a process gone\n")
		for _, tree := range []string{filepath.Join(user, "shared_files"), filepath.Join(dir, "files"), filepath.Join(dir, "venv", "upper")} {
			require.NoError(t, filepath.Walk(tree, func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, uid, uid)
			}), "the user's trees are the user's")
		}
	})
	assert.Equal(t, StateRunning, e.state(t, s.ID), "the session is served")
	out := e.run(t, s.ID, `cat /workspace/note.txt /workspace/shared/data/old.txt /workspace/shared/outputs/report.pdf /opt/venv/legacy.txt
test -e /opt/venv/bin/activate && echo activate || echo no-activate
test -e /workspace/shared/ghost && echo ghost || echo no-ghost
readlink /workspace/shared/data/link
stat -c %u /workspace/note.txt`, 10)
	assert.Equal(t, "old workspace\nold shared\n%PDF\nold layer\nno-activate\nno-ghost\n"+victim+"\n"+strconv.Itoa(uid)+"\n", out.Stdout,
		"the old trees are in the new sandbox, owned by the user, whiteouts kept: %s", out.Stderr)

	for _, name := range []string{"files", "venv", "logs"} {
		_, err := os.Lstat(filepath.Join(dir, name))
		assert.ErrorIs(t, err, os.ErrNotExist, "the session's old %s is removed once copied", name)
	}
	_, err := os.Lstat(filepath.Join(user, "shared_files"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the old shared_files is not left in place")
	aside := filepath.Join(user, "shared_files."+beforeQuotas)
	st, err := os.Lstat(aside)
	require.NoError(t, err, "a tree with something left out is kept aside")
	assert.Equal(t, os.FileMode(0o700)|os.ModeDir, st.Mode(), "root-only")
	assert.Equal(t, uint32(0), st.Sys().(*syscall.Stat_t).Uid, "owned by root")
	fifo, err := os.Lstat(filepath.Join(aside, "shared_files", "fifo"))
	require.NoError(t, err, "what was left out is there")
	assert.Equal(t, os.ModeNamedPipe, fifo.Mode().Type(), "as it was")
	data, err := os.ReadFile(victim)
	require.NoError(t, err, "read the host file")
	assert.Equal(t, "host\n", string(data), "a planted link's target is never read or written")

	// The move is done once: a second start finds nothing to move.
	e.restart(t)
	out = e.run(t, s.ID, "cat /workspace/note.txt /workspace/shared/data/old.txt", 10)
	assert.Equal(t, "old workspace\nold shared\n", out.Stdout, "the files stay after the next start: %s", out.Stderr)
}

// TestOldSystemDirsGoOnceNoSandboxUsesThem: an older daemon kept the
// skeleton root and the identity files in the state directory itself. The
// identity files go at the next start; the skeleton root stays while an
// adopted sandbox still runs on it (its /bin links are looked up there),
// and goes at a start that adopts none that does.
func TestOldSystemDirsGoOnceNoSandboxUsesThem(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "old-system", nil)
	oldRootfs := filepath.Join(e.cfg.StateDir, "rootfs")
	oldIdentity := filepath.Join(e.cfg.StateDir, "identity", "12345")
	stateFile := filepath.Join(e.m.layout.Containers(), s.ID, "state.json")
	setRootfs := func(rootfs string) {
		data, err := os.ReadFile(stateFile)
		require.NoError(t, err, "read container state")
		var st map[string]any
		require.NoError(t, json.Unmarshal(data, &st), "parse container state")
		st["config"].(map[string]any)["rootfs"] = rootfs
		data, err = json.Marshal(st)
		require.NoError(t, err, "encode container state")
		require.NoError(t, os.WriteFile(stateFile, data, 0o600), "write container state")
	}
	// The session's sandbox as an older daemon started it.
	e.whileStopped(t, func() {
		require.NoError(t, os.MkdirAll(oldIdentity, 0o755), "old identity dir")
		require.NoError(t, os.MkdirAll(filepath.Join(oldRootfs, "usr"), 0o755), "old skeleton")
		require.NoError(t, os.Symlink("usr/bin", filepath.Join(oldRootfs, "bin")), "old skeleton link")
		setRootfs(oldRootfs)
	})
	assert.NoDirExists(t, filepath.Dir(oldIdentity), "the old identity files go")
	assert.DirExists(t, oldRootfs, "the old skeleton stays while an adopted sandbox runs on it")
	assert.Equal(t, 0, e.run(t, s.ID, "true", 10).ExitCode, "the session was adopted")

	e.whileStopped(t, func() { setRootfs(e.m.layout.Rootfs()) })
	assert.NoDirExists(t, oldRootfs, "the old skeleton goes once no sandbox runs on it")
}
