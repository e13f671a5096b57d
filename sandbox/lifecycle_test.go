package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInvalidIDsCreateNothing(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name, user, session string
	}{
		{"parent user", "../x", ""},
		{"slash user", "a/b", ""},
		{"empty user", "", ""},
		{"NUL user", "a\x00b", ""},
		{"long user", strings.Repeat("u", 65), ""},
		{"dot user", ".hidden", ""},
		{"parent session", "valid", "../x"},
		{"slash session", "valid", "a/b"},
		{"NUL session", "valid", "a\x00"},
		{"long session", "valid", strings.Repeat("s", 65)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.ReadDir(env.m.layout.Workspaces())
			require.NoError(t, err, "list workspaces")
			_, err = env.m.CreateSession(context.Background(), CreateRequest{UserID: tt.user, SessionID: tt.session})
			assert.ErrorIs(t, err, ErrInvalid, "refused as invalid")
			after, err := os.ReadDir(env.m.layout.Workspaces())
			require.NoError(t, err, "list workspaces")
			assert.Equal(t, len(before), len(after), "no directory was created")
		})
	}
}

func TestDuplicateAndQuota(t *testing.T) {
	s := startSession(t, "quota", nil)
	_, err := env.m.CreateSession(context.Background(), CreateRequest{UserID: "quota-other", SessionID: s.ID})
	assert.ErrorIs(t, err, ErrExists, "a session id is unique across users")

	// The design's quota.json lowers this user's session count to two.
	env.writeQuota(t, s.UserID, `{"user_id":"quota","limits":{"max_sessions":2}}`)
	startSession(t, "quota", nil)
	_, err = env.m.CreateSession(context.Background(), CreateRequest{UserID: "quota"})
	assert.ErrorIs(t, err, ErrQuota, "a third session is over the quota")
	// Two sessions reserve 102 and 512 MiB of 1024 (S = U/max_sessions
	// when each was made): a third of 500 MiB does not fit.
	env.writeQuota(t, s.UserID, `{"user_id":"quota","limits":{"max_sessions":5,"session_disk_mb":500}}`)
	_, err = env.m.CreateSession(context.Background(), CreateRequest{UserID: "quota"})
	assert.ErrorIs(t, err, ErrQuota, "a user whose disk budget cannot hold another reservation gets no new session")
	assert.Contains(t, fmt.Sprint(err), "max_workspace_size_mb 1024 MiB cannot hold another session of session_disk_mb 500 MiB", "the error names the limit")
}

func TestDeleteKeepsListedFilesWithoutOverwriting(t *testing.T) {
	s := startSession(t, "keep", nil)
	outputs := env.outputsOf(t, s.UserID)
	require.NoError(t, os.WriteFile(filepath.Join(outputs, "report.pdf"), []byte("older"), 0o644), "an earlier report")

	res := run(t, s.ID, `cd /workspace &&
		echo new > report.pdf && echo x > sheet.xlsx && echo p > deck.pptx && echo d > memo.docx &&
		echo t > notes.txt && echo c > data.csv && mkdir sub && echo s > sub/inner.pdf &&
		ln -s /etc/passwd link.pdf && mkdir dir.pdf`, 10)
	require.Equal(t, 0, res.ExitCode, "create files: %s", res.Stderr)

	del, err := env.m.DeleteSession(context.Background(), s.ID, true)
	require.NoError(t, err, "delete with keep_files")
	assert.ElementsMatch(t, []string{"report-1.pdf", "sheet.xlsx", "deck.pptx", "memo.docx"}, del.Kept,
		"exactly the listed kinds at the top of the workspace, regular files only")

	older, err := os.ReadFile(filepath.Join(outputs, "report.pdf"))
	require.NoError(t, err, "read the earlier report")
	assert.Equal(t, "older", string(older), "an existing output is never overwritten")
	newer, err := os.ReadFile(filepath.Join(outputs, "report-1.pdf"))
	require.NoError(t, err, "read the kept report")
	assert.Equal(t, "new\n", string(newer), "the kept report got a suffix")
	entries, err := os.ReadDir(outputs)
	require.NoError(t, err, "list outputs")
	assert.Len(t, entries, 5, "nothing else was moved")
	assertSessionGone(t, s)
}

func TestDeleteLeavesNothing(t *testing.T) {
	s := startSession(t, "gone", nil)
	require.Equal(t, 0, run(t, s.ID, "echo x > /workspace/report.pdf", 10).ExitCode, "write a file")

	del, err := env.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "delete")
	assert.Empty(t, del.Kept, "nothing kept without keep_files")
	assertSessionGone(t, s)
	assert.NoFileExists(t, filepath.Join(env.outputsOf(t, s.UserID), "report.pdf"), "nothing moved")
	assert.Eventually(t, func() bool { return len(existingDirs(env.m.cg.Dirs(env.m.cg.UserPath(s.UserID)))) == 0 },
		5*time.Second, time.Millisecond, "the user's cgroup goes with their last session")

	_, err = env.m.DeleteSession(context.Background(), s.ID, false)
	assert.ErrorIs(t, err, ErrNotFound, "a second delete finds nothing")
	_, err = env.m.GetSession(context.Background(), s.ID)
	assert.ErrorIs(t, err, ErrNotFound, "the session is gone")
}

// assertSessionGone checks that no process, cgroup, container state or
// directory of a session of the shared Manager is left.
func assertSessionGone(t *testing.T, s Session) {
	t.Helper()
	env.assertGone(t, s)
}

func (e *testEnv) assertGone(t *testing.T, s Session) {
	t.Helper()
	assert.NoDirExists(t, e.m.layout.Session(s.UserID, s.ID).Dir, "session directory removed")
	assert.NoDirExists(t, filepath.Join(e.m.layout.Containers(), s.ID), "container state removed")
	leftovers, err := e.m.cg.Leftovers()
	require.NoError(t, err, "list cgroups")
	assert.NotContains(t, leftovers, e.m.cg.SessionPath(s.UserID, s.ID), "session cgroup removed")
}

func TestRecoveryAdoptsRestartsAndFinishes(t *testing.T) {
	e := isolated(t, nil)
	adopted := e.session(t, "recover", nil)
	dead := e.session(t, "recover", nil)
	deleting := e.session(t, "recover", nil)
	for _, s := range []Session{adopted, dead, deleting} {
		require.Equal(t, 0, e.run(t, s.ID, "echo kept > /workspace/file.docx && echo pkg > /opt/venv/pkg", 10).ExitCode, "write files")
	}
	require.Equal(t, 0, e.run(t, adopted.ID, "echo in-tmp > /tmp/t", 10).ExitCode, "write /tmp")

	// dead: its sandbox dies under the daemon.
	c, err := libcontainer.Load(e.m.layout.Containers(), dead.ID)
	require.NoError(t, err, "load container")
	require.NoError(t, c.Signal(syscall.SIGKILL), "kill the sandbox")
	// deleting: the daemon died half-way through a keep_files delete.
	e.crashWith(t, deleting, func(meta *sessionMeta) { meta.Deleting = &deleteIntent{KeepFiles: true} })

	tmp := e.run(t, adopted.ID, "cat /tmp/t /workspace/file.docx /opt/venv/pkg", 10)
	assert.Equal(t, "in-tmp\nkept\npkg\n", tmp.Stdout, "a running sandbox is adopted as it was")
	files := e.run(t, dead.ID, "cat /workspace/file.docx /opt/venv/pkg; test -e /tmp/t || echo fresh-tmp", 10)
	assert.Equal(t, "kept\npkg\nfresh-tmp\n", files.Stdout, "a dead sandbox is replaced over the same files")
	_, err = e.m.GetSession(context.Background(), deleting.ID)
	assert.ErrorIs(t, err, ErrNotFound, "an interrupted delete is finished")
	e.assertGone(t, deleting)
	assert.FileExists(t, filepath.Join(e.outputsOf(t, deleting.UserID), "file.docx"), "with its kept files")
}

// TestRecoveryRemovesUserCgroupsWithoutSessions: a user cgroup with no
// session in it (a create killed between libcontainer's two mkdirs, or one
// the kernel still called busy when the last session went) is removed by
// the next start, and a user who has a session keeps theirs.
func TestRecoveryRemovesUserCgroupsWithoutSessions(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "kept-user", nil)
	ghost := e.m.cg.Dirs(e.m.cg.UserPath("ghost"))
	require.NotEmpty(t, ghost, "the user cgroup has directories to make")
	e.whileStopped(t, func() {
		for _, dir := range ghost {
			require.NoError(t, os.Mkdir(dir, 0o755), "a user cgroup with no session")
		}
	})
	assert.Empty(t, existingDirs(ghost), "the empty user cgroup is removed at start")
	assert.NotEmpty(t, existingDirs(e.m.cg.Dirs(e.m.cg.UserPath(s.UserID))), "a user with a session keeps theirs")
	assert.Equal(t, 0, e.run(t, s.ID, "true", 10).ExitCode, "and the session still runs")
}

// existingDirs keeps the directories of dirs that exist.
func existingDirs(dirs []string) []string {
	var out []string
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err == nil {
			out = append(out, dir)
		}
	}
	return out
}

func TestDeadSandboxIsReportedStopped(t *testing.T) {
	s := startSession(t, "dead", nil)
	c, err := libcontainer.Load(env.m.layout.Containers(), s.ID)
	require.NoError(t, err, "load container")
	require.NoError(t, c.Signal(syscall.SIGKILL), "kill the sandbox from outside")
	require.Eventually(t, func() bool {
		got, err := env.m.GetSession(context.Background(), s.ID)
		return err == nil && got.State == StateStopped
	}, 5*time.Second, 20*time.Millisecond, "the session is reported stopped")
	_, err = env.m.Exec(context.Background(), s.ID, ExecRequest{Command: Command{Shell: "true"}})
	assert.ErrorIs(t, err, ErrUnavailable, "exec in a stopped session says why")
}

// TestSessionsFromAnOlderDaemonAreRestartedOnTheirBase: a session an older
// daemon made (no agent protocol, no base environment version recorded,
// the one unversioned envs/base) is given a new sandbox over the same files
// and the old base; the old base goes with its last session.
func TestSessionsFromAnOlderDaemonAreRestartedOnTheirBase(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "legacy", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo kept > /workspace/note.txt", 10).ExitCode, "write a file")
	dir := e.m.layout.Session(s.UserID, s.ID)
	meta, err := readMeta(dir)
	require.NoError(t, err, "read metadata")
	out, err := exec.Command("cp", "-al", e.m.envDir(meta.Env), e.m.envDir("")).CombinedOutput()
	require.NoError(t, err, "make the old unversioned base: %s", out)
	meta.Env, meta.Agent = "", 0
	require.NoError(t, writeMeta(dir, meta), "make the session look older")

	e.restart(t)
	got := e.run(t, s.ID, "cat /workspace/note.txt; python3 -c 'import sys; print(sys.prefix)'", 30)
	assert.Equal(t, "kept\n/opt/venv\n", got.Stdout, "the session works on its files and its old base: %s", got.Stderr)
	_, err = e.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "delete")
	assert.NoDirExists(t, e.m.envDir(""), "the old base goes with its last session")
}
