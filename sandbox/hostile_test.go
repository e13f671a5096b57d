package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/mounts"
)

// The hostile suite: everything a sandbox controls, and every byte a
// session can write, is attacker-controlled input to a daemon running as
// root. Each test here plays the attacker from inside a session (plus
// ordinary API calls) against one rule of the threat model in README.md.

// rootProcesses lists the processes of a session that run as root: its
// PID 1 and the supervisors of its commands.
func rootProcesses(t *testing.T, s Session) []int {
	t.Helper()
	var root []int
	for _, pid := range sessionPids(t, s) {
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d", pid), &st); err == nil && st.Uid == 0 {
			root = append(root, pid)
		}
	}
	return root
}

// TestCallerEnvironmentNeverReachesRoot runs commands whose environment
// names the dynamic loader's and glibc's hooks. No process of the session
// that holds uid 0 may see them, and a preload library that records the
// euid it ran with must never have run as root.
func TestCallerEnvironmentNeverReachesRoot(t *testing.T) {
	s := startSession(t, "hostile-env", &Limits{CPUs: 2})
	build := run(t, s.ID, `cat > /tmp/mark.c <<'EOF'
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
	char p[64];
	snprintf(p, sizeof p, "/tmp/ran-as-%d", (int)geteuid());
	FILE *f = fopen(p, "a");
	if (f) fclose(f);
}
unsigned int la_version(unsigned int v) { return v; }
EOF
gcc -shared -fPIC -o /tmp/mark.so /tmp/mark.c && mkdir -p /tmp/gconv && echo ok`, 60)
	require.Equal(t, "ok\n", build.Stdout, "build a marking library inside the sandbox: %s", build.Stderr)

	uid := env.uidOf(t, s.UserID)
	for _, key := range []string{"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH"} {
		t.Run(key, func(t *testing.T) {
			value := map[string]string{"LD_PRELOAD": "/tmp/mark.so", "LD_AUDIT": "/tmp/mark.so",
				"LD_LIBRARY_PATH": "/tmp", "GCONV_PATH": "/tmp/gconv"}[key]
			started := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := env.m.ExecStream(context.Background(), s.ID,
					ExecRequest{Command: Command{Shell: "echo up; sleep 2", Env: map[string]string{key: value}}},
					func(Output) error {
						select {
						case <-started:
						default:
							close(started)
						}
						return nil
					})
				done <- err
			}()
			<-started
			roots := rootProcesses(t, s)
			require.NotEmpty(t, roots, "PID 1 and the command's supervisor run as root")
			for _, pid := range roots {
				environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
					continue // exited meanwhile
				}
				require.NoError(t, err, "read the environment of root process %d", pid)
				assert.NotContains(t, string(environ), key+"=", "root process %d never sees %s", pid, key)
			}
			require.NoError(t, <-done, "the command ran")
		})
	}
	marks := run(t, s.ID, "ls /tmp | grep ran-as- | sort -u", 10)
	assert.Equal(t, fmt.Sprintf("ran-as-%d\n", uid), marks.Stdout, "the preloaded library ran only as the user")
}

// TestSandboxCannotUseKernelFacilitiesOutsideItsReach checks the seccomp
// filter the sandbox's PID 1 installed for everything in it.
func TestSandboxCannotUseKernelFacilitiesOutsideItsReach(t *testing.T) {
	s := startSession(t, "hostile-seccomp", nil)
	tests := []struct{ name, command string }{
		{"new user namespace", "unshare -U true"},
		{"new mount namespace via user namespace", "unshare -Urm true"},
		{"mount", "mount -t tmpfs none /tmp"},
		{"keyring", `python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.syscall(248,b"user",b"k",b"v",1,-3) >= 0 else 1)'`},
		{"bpf", `python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.syscall(321,0,0,0) >= 0 else 1)'`},
		{"perf_event_open", `python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.syscall(298,0,0,-1,-1,0) >= 0 else 1)'`},
		{"userfaultfd", `python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.syscall(323,0) >= 0 else 1)'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, s.ID, tt.command, 20)
			assert.NotEqual(t, 0, res.ExitCode, "%s is refused: %s", tt.command, res.Stderr)
		})
	}
	ok := run(t, s.ID, `python3 -c 'import threading, multiprocessing; print("fine")'`, 30)
	assert.Equal(t, "fine\n", ok.Stdout, "ordinary work is unaffected: %s", ok.Stderr)
}

// TestOutOfPidsIsItsOwnError fills a session's pids limit with background
// processes: the next command cannot start, and says why.
func TestOutOfPidsIsItsOwnError(t *testing.T) {
	s := startSession(t, "hostile-pids", &Limits{Pids: 8})
	ctx := context.Background()
	// PID 1, then a supervisor, a shell and its sleep per background
	// process: the pids run out after two.
	var err error
	for i := 0; i < 8 && err == nil; i++ {
		_, err = env.m.StartProcess(ctx, s.ID, Command{Shell: "sleep 100; true"})
	}
	require.ErrorIs(t, err, ErrPidsLimit, "a background process that cannot start says why")
	_, err = env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Shell: "true"}})
	require.ErrorIs(t, err, ErrPidsLimit, "so does a command")
	assert.Contains(t, err.Error(), "pids", "in its message")
}

// TestHostileSharedFilesAndWorkspace plants, at every path of the user's
// trees the daemon itself touches, what a sandbox can put there — a
// symlink to a host directory, to /, to another user's files, a dangling
// one, a file, a FIFO — and checks that keep_files, the download route,
// session removal and the next create never follow it: nothing outside
// the user's trees is read, moved or removed, and the daemon serves on.
func TestHostileSharedFilesAndWorkspace(t *testing.T) {
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "secret.pdf")
	require.NoError(t, os.WriteFile(victim, []byte("host secret"), 0o600), "a host file")
	other := startSession(t, "hostile-other", nil)
	require.Equal(t, 0, run(t, other.ID, "echo theirs > /workspace/shared/outputs/theirs.pdf", 10).ExitCode, "another user's output")
	otherOutputs := env.outputsOf(t, other.UserID)

	plants := []struct {
		name, plant string
	}{
		{"symlink to a host directory", "ln -s " + victimDir + " outputs"},
		{"symlink to /", "ln -s / outputs"},
		{"symlink to another user's outputs", "ln -s " + otherOutputs + " outputs"},
		{"dangling symlink", "ln -s /nonexistent outputs"},
		{"file", "echo x > outputs"},
		{"fifo", "mkfifo outputs"},
	}
	for _, p := range plants {
		t.Run(p.name, func(t *testing.T) {
			s := startSession(t, "hostile-plant", nil)
			res := run(t, s.ID, `cd /workspace && echo mine > report.pdf && ln -s `+victim+` link.pdf &&
				cd shared && rm -rf outputs && `+p.plant+` && echo planted`, 10)
			require.Equal(t, "planted\n", res.Stdout, "plant: %s", res.Stderr)

			_, err := env.m.OpenOutput(context.Background(), s.UserID, "secret.pdf")
			assert.Error(t, err, "the download route does not follow the plant")
			_, err = env.m.OpenOutput(context.Background(), s.UserID, "theirs.pdf")
			assert.Error(t, err, "nor reaches another user's outputs")

			del, err := env.m.DeleteSession(context.Background(), s.ID, true)
			require.NoError(t, err, "the delete finishes whatever the sandbox did")
			assert.Equal(t, []string{"report.pdf"}, del.Kept, "the regular file is kept, the symlink is not")

			kept, err := os.ReadFile(filepath.Join(env.outputsOf(t, s.UserID), "report.pdf"))
			require.NoError(t, err, "kept into a real outputs/ the daemon made")
			assert.Equal(t, "mine\n", string(kept), "the session's file")
			got, err := os.ReadFile(victim)
			require.NoError(t, err, "the host file is still there")
			assert.Equal(t, "host secret", string(got), "untouched")
			entries, err := os.ReadDir(victimDir)
			require.NoError(t, err, "list the host directory")
			assert.Len(t, entries, 1, "nothing moved into the host directory")
			_, err = os.Stat(filepath.Join(otherOutputs, "report.pdf"))
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing moved into another user's outputs")
			assert.Equal(t, "theirs\n", run(t, other.ID, "cat /workspace/shared/outputs/theirs.pdf", 10).Stdout, "the other user's files are intact")

			// The next session of the user starts, whatever was left.
			next := startSession(t, "hostile-plant", nil)
			assert.Equal(t, "ok\n", run(t, next.ID, "echo ok", 10).Stdout, "a new session of the user works")
		})
	}
}

// TestRemovalFollowsNothing deletes a session whose workspace and
// environment layer are full of symlinks to host files and directories:
// they go, their targets stay.
func TestRemovalFollowsNothing(t *testing.T) {
	victimDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(victimDir, "keep"), []byte("x"), 0o644), "a host file")
	s := startSession(t, "hostile-rm", nil)
	res := run(t, s.ID, fmt.Sprintf(`cd /workspace && ln -s %[1]s dirlink && ln -s %[1]s/keep filelink && mkdir -p deep/a/b && ln -s / deep/a/b/root &&
		ln -s %[1]s /opt/venv/venvlink && echo planted`, victimDir), 10)
	require.Equal(t, "planted\n", res.Stdout, "plant: %s", res.Stderr)
	_, err := env.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "delete")
	assertSessionGone(t, s)
	data, err := os.ReadFile(filepath.Join(victimDir, "keep"))
	require.NoError(t, err, "the symlinks' targets survive")
	assert.Equal(t, "x", string(data), "untouched")
}

// TestBackgroundOutputIsBoundedAcrossProcesses: background processes that print a
// lot and are never read cost the daemon a bounded amount of memory.
func TestBackgroundOutputIsBoundedAcrossProcesses(t *testing.T) {
	e := isolated(t, func(c *Config) {
		c.ProcessBufferBytes = 64 << 10
		c.ProcessBufferTotalBytes = 128 << 10
		c.MaxProcessesPerSession = 8
	})
	s := e.session(t, "hostile-flood", nil)
	ctx := context.Background()
	var ids []string
	for range 6 {
		p, err := e.m.StartProcess(ctx, s.ID, Command{Shell: "head -c 1M /dev/zero | tr '\\0' x | fold -w 100"})
		require.NoError(t, err, "start a flood")
		ids = append(ids, p.ID)
	}
	require.Eventually(t, func() bool {
		list, err := e.m.ListProcesses(ctx, s.ID)
		if err != nil {
			return false
		}
		for _, p := range list {
			if p.State == ProcessRunning {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the floods end")
	assert.LessOrEqual(t, e.m.processBytes.Load(), int64(128<<10), "all processes' unread output stays within the daemon's bound")
	var total int
	for _, id := range ids {
		out, err := e.m.ProcessOutput(ctx, s.ID, id, "")
		require.NoError(t, err, "read %s", id)
		for _, l := range out.Lines {
			total += len(l)
		}
	}
	assert.LessOrEqual(t, total, 128<<10, "what is read back is within the bound")
	assert.Zero(t, e.m.processBytes.Load(), "reading frees it")
}

// TestMountTableNamesNoHostPath: a sandbox's /proc/self/mountinfo says,
// for each mount, where it comes from (the root of a bind within its file
// system, an overlay's directories). None of it names the state directory
// or the daemon binary, whether the sandbox was a ready one bound to the
// session or one the session started itself (restarted after its sandbox
// died).
func TestMountTableNamesNoHostPath(t *testing.T) {
	e := isolated(t, nil)
	e.awaitReady(t)
	bound := e.session(t, "mounts", nil)
	restarted := e.session(t, "mounts", nil)
	c, err := libcontainer.Load(e.m.layout.Containers(), restarted.ID)
	require.NoError(t, err, "load container")
	require.NoError(t, c.Signal(syscall.SIGKILL), "kill the sandbox")
	e.restart(t)

	// Where the state directory shares the host's root file system (loop
	// mode on a host without quotas, as here), the presented wheels' bind
	// can only show their path in it: README.md, threat model.
	var state, root syscall.Stat_t
	require.NoError(t, syscall.Stat(e.cfg.StateDir, &state), "stat the state directory")
	require.NoError(t, syscall.Stat("/", &root), "stat /")
	sharesRoot := state.Dev == root.Dev

	for _, s := range []Session{bound, restarted} {
		res := e.run(t, s.ID, "cat /proc/self/mountinfo", 10)
		require.Equal(t, 0, res.ExitCode, "read mountinfo in %s: %s", s.ID, res.Stderr)
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		require.Greater(t, len(lines), 10, "the mount table of %s", s.ID)
		for _, line := range lines {
			f := strings.Fields(line)
			require.Greater(t, len(f), 4, "a mountinfo line: %q", line)
			if f[4] == mounts.WheelsDir && sharesRoot {
				continue
			}
			assert.NotContains(t, line, e.cfg.StateDir, "%s: a mount names the state directory", s.ID)
			assert.NotContains(t, line, e.cfg.Helper, "%s: a mount names the daemon binary", s.ID)
		}
		assert.Contains(t, res.Stdout, " "+mounts.VenvDir+" ", "%s has its venv overlay", s.ID)
		assert.Contains(t, res.Stdout, "upperdir=/proc/self/fd/", "%s's overlay names its layers by descriptor", s.ID)
	}
	ls := e.run(t, restarted.ID, "ls /opt/venv/bin/python3 && test -x "+mounts.HelperPath+" && echo ok", 10)
	assert.Equal(t, "/opt/venv/bin/python3\nok\n", ls.Stdout, "the restarted sandbox has its venv and the helper: %s", ls.Stderr)
}
