package sandbox

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The janitor's timers are shown two ways: with limits of hours and the
// janitor's sweep called with a clock of the test's (deterministic: the
// janitor's own sweeps, in real time, find nothing due), and once end to
// end with limits of seconds and the janitor on its own.

func (e *testEnv) state(t *testing.T, id string) State {
	t.Helper()
	s, err := e.m.GetSession(context.Background(), id)
	require.NoError(t, err, "get session %s", id)
	return s.State
}

func (e *testEnv) frozen(t *testing.T, s Session) bool {
	t.Helper()
	frozen, err := e.m.cg.Frozen(e.m.cg.SessionPath(s.UserID, s.ID))
	require.NoError(t, err, "freezer state of %s", s.ID)
	return frozen
}

func (e *testEnv) live(t *testing.T, id string) *session {
	t.Helper()
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	s := e.m.sessions[id]
	require.NotNil(t, s, "session %s is known", id)
	return s
}

func TestIdleSessionIsFrozenAndThawedByItsNextCall(t *testing.T) {
	requireRoot(t)
	e, ctx := env, context.Background()
	e.writeQuota(t, "idle", `{"limits":{"idle_freeze_after":"1h"}}`)
	s := e.session(t, "idle", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo kept > /tmp/t", 10).ExitCode)

	e.m.sweep(ctx, time.Now().Add(30*time.Minute))
	assert.Equal(t, StateRunning, e.state(t, s.ID), "not idle long enough")

	e.m.sweep(ctx, time.Now().Add(2*time.Hour))
	assert.Equal(t, StateFrozen, e.state(t, s.ID), "idle past idle_freeze_after: frozen")
	assert.True(t, e.frozen(t, s), "by the cgroup freezer")
	c, err := libcontainer.Load(e.m.layout.Containers(), s.ID)
	require.NoError(t, err, "load the container")
	st, err := c.Status()
	require.NoError(t, err, "container status")
	assert.Equal(t, libcontainer.Paused, st, "libcontainer sees it paused")
	assert.Equal(t, StateFrozen, e.state(t, s.ID), "describing it is no activity")

	// Its next call thaws it, and finds everything as it was.
	start := time.Now()
	res := e.run(t, s.ID, "cat /tmp/t", 10)
	t.Logf("first call after the freeze: %v", time.Since(start))
	assert.Equal(t, "kept\n", res.Stdout, "memory and /tmp kept")
	assert.Equal(t, StateRunning, e.state(t, s.ID), "running again")
	assert.False(t, e.frozen(t, s), "thawed")

	// A call in flight is activity, however long.
	done := make(chan ran)
	go func() { done <- e.run(t, s.ID, "sleep 2; echo slept", 10) }()
	require.Eventually(t, func() bool { return e.live(t, s.ID).busy.Load() > 0 }, 5*time.Second, 5*time.Millisecond, "the call is in flight")
	e.m.sweep(ctx, time.Now().Add(2*time.Hour))
	assert.Equal(t, StateRunning, e.state(t, s.ID), "a session running a call is not idle")
	assert.Equal(t, "slept\n", (<-done).Stdout, "the call ran to its end")

	// The files API and background processes thaw it too.
	e.m.sweep(ctx, time.Now().Add(2*time.Hour))
	require.Equal(t, StateFrozen, e.state(t, s.ID), "frozen again")
	_, err = e.m.WriteFile(ctx, s.ID, RootWorkspace, "a.txt", strings.NewReader("a"), false)
	require.NoError(t, err, "a write to a frozen session")
	assert.Equal(t, StateRunning, e.state(t, s.ID), "thawed by the files API")
	e.m.sweep(ctx, time.Now().Add(2*time.Hour))
	p, err := e.m.StartProcess(ctx, s.ID, Command{Shell: "echo bg"})
	require.NoError(t, err, "start a process in a frozen session")
	assert.NotEmpty(t, p.ID)
	assert.Equal(t, StateRunning, e.state(t, s.ID), "thawed by the process API")
}

func TestFrozenSessionComesThroughARestart(t *testing.T) {
	e, ctx := isolated(t, nil), context.Background()
	e.writeQuota(t, "idle-restart", `{"limits":{"idle_freeze_after":"1h","idle_delete_after":"3h"}}`)
	s := e.session(t, "idle-restart", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo kept > /tmp/t", 10).ExitCode)
	e.m.sweep(ctx, time.Now().Add(2*time.Hour))
	require.Equal(t, StateFrozen, e.state(t, s.ID), "frozen")
	meta, err := readMeta(e.m.layout.Session(s.UserID, s.ID))
	require.NoError(t, err, "session.json")
	last := e.live(t, s.ID).activity()
	assert.True(t, meta.LastActive.Equal(last), "the last activity is written when frozen: %v, %v", meta.LastActive, last)

	// A new daemon (as after a kill -9: nothing but what is on disk and in
	// the kernel) adopts the paused sandbox and counts from the same point.
	e.restart(t)
	assert.True(t, e.live(t, s.ID).activity().Equal(meta.LastActive), "the idle time counts from the last activity written")
	e.m.sweep(ctx, meta.LastActive.Add(61*time.Minute))
	assert.Equal(t, StateFrozen, e.state(t, s.ID), "frozen again by the new daemon's timers")
	assert.Equal(t, "kept\n", e.run(t, s.ID, "cat /tmp/t", 10).Stdout, "its memory came through")

	// Expired sessions and idle deletion come through it too.
	e.m.sweep(ctx, time.Now().Add(4*time.Hour))
	_, err = e.m.GetSession(ctx, s.ID)
	assert.ErrorIs(t, err, ErrNotFound, "idle past idle_delete_after: deleted")
}

func TestExpiredSessionIsStoppedAndKeepsItsDocuments(t *testing.T) {
	e, ctx := isolated(t, nil), context.Background()
	e.writeQuota(t, "expire", `{"limits":{"max_session_duration_hours":1}}`)
	s := e.session(t, "expire", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo report > /workspace/report.pdf && echo notes > /workspace/notes.txt", 10).ExitCode)
	_, err := e.m.StartProcess(ctx, s.ID, Command{Shell: "sleep 1000"})
	require.NoError(t, err, "a background process")

	e.m.sweep(ctx, s.CreatedAt.Add(59*time.Minute))
	assert.Equal(t, StateRunning, e.state(t, s.ID), "not yet")
	e.m.sweep(ctx, s.CreatedAt.Add(61*time.Minute))
	got, err := e.m.GetSession(ctx, s.ID)
	require.NoError(t, err, "an expired session is still described")
	assert.Equal(t, StateExpired, got.State, "as expired")
	assert.Contains(t, got.Reason, "max_session_duration_hours is 1", "saying why")

	_, err = e.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Shell: "true"}})
	assert.ErrorIs(t, err, ErrExpired, "exec is refused as expired")
	assert.ErrorContains(t, err, "max_session_duration_hours", "with the reason")
	_, err = e.m.ReadText(ctx, s.ID, RootWorkspace, "notes.txt", 1, 0)
	assert.ErrorIs(t, err, ErrExpired, "so are the files")
	_, err = e.m.StartProcess(ctx, s.ID, Command{Shell: "true"})
	assert.ErrorIs(t, err, ErrExpired, "and processes")

	_, err = libcontainer.Load(e.m.layout.Containers(), s.ID)
	assert.Error(t, err, "its sandbox is gone")
	for _, dir := range e.m.cg.Dirs(e.m.cg.SessionPath(s.UserID, s.ID)) {
		assert.NoDirExists(t, dir, "and its cgroup")
	}
	assert.FileExists(t, filepath.Join(e.outputsOf(t, s.UserID), "report.pdf"), "its documents were kept")
	u, err := e.m.userUsage(s.UserID)
	require.NoError(t, err)
	assert.NotContains(t, u.Sessions, s.ID, "its disk was given back")
	assert.Zero(t, u.ReservedBytes, "nothing reserved")
	list, err := e.m.ListSessions(ctx, s.UserID)
	require.NoError(t, err)
	require.Len(t, list, 1, "listed")
	assert.Equal(t, StateExpired, list[0].State, "as expired")

	e.restart(t)
	got, err = e.m.GetSession(ctx, s.ID)
	require.NoError(t, err, "described after a restart")
	assert.Equal(t, StateExpired, got.State, "still expired")
	_, err = libcontainer.Load(e.m.layout.Containers(), s.ID)
	assert.Error(t, err, "no sandbox was started for it")

	res, err := e.m.DeleteSession(ctx, s.ID, true)
	require.NoError(t, err, "an expired session can be deleted")
	assert.Equal(t, []string{"report.pdf"}, res.Kept, "the delete says what the expiry kept")
	_, err = e.m.GetSession(ctx, s.ID)
	assert.ErrorIs(t, err, ErrNotFound, "gone")
	assert.NoDirExists(t, e.m.layout.Session(s.UserID, s.ID).Dir, "with its directory")
}

func TestInterruptedExpiryIsFinished(t *testing.T) {
	e, ctx := isolated(t, nil), context.Background()
	s := e.session(t, "expire-crash", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo report > /workspace/report.docx", 10).ExitCode)
	// The daemon died just after writing the expiry's intent.
	e.crashWith(t, s, func(meta *sessionMeta) { meta.Expired = &expiry{At: time.Now().UTC(), Reason: "expired in a test"} })
	got, err := e.m.GetSession(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, StateExpired, got.State, "the expiry is finished")
	assert.Equal(t, "expired in a test", got.Reason)
	assert.FileExists(t, filepath.Join(e.outputsOf(t, s.UserID), "report.docx"), "its documents kept")
	assert.False(t, e.m.reserved(s.UserID, s.ID), "its disk given back")
	_, err = libcontainer.Load(e.m.layout.Containers(), s.ID)
	assert.Error(t, err, "no sandbox")
}

func TestIdleSessionIsDeletedWithItsDocuments(t *testing.T) {
	requireRoot(t)
	e, ctx := env, context.Background()
	e.writeQuota(t, "idle-delete", `{"limits":{"idle_delete_after":"2h"}}`)
	s := e.session(t, "idle-delete", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo slides > /workspace/deck.pptx", 10).ExitCode)
	e.m.sweep(ctx, time.Now().Add(time.Hour))
	assert.Equal(t, StateRunning, e.state(t, s.ID), "not yet")
	e.m.sweep(ctx, time.Now().Add(3*time.Hour))
	_, err := e.m.GetSession(ctx, s.ID)
	assert.ErrorIs(t, err, ErrNotFound, "deleted")
	assert.FileExists(t, filepath.Join(e.outputsOf(t, s.UserID), "deck.pptx"), "its documents kept")
	assert.False(t, e.m.reserved(s.UserID, s.ID), "its disk given back")
}

// TestLifetimeTimersRunOnTheirOwn: the janitor, every 100 ms in the tests,
// freezes, deletes and expires with limits of seconds.
func TestLifetimeTimersRunOnTheirOwn(t *testing.T) {
	requireRoot(t)
	e, ctx := env, context.Background()
	e.writeQuota(t, "timers", `{"limits":{"idle_freeze_after":"1s","idle_delete_after":"5s"}}`)
	s := e.session(t, "timers", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo report > /workspace/r.pdf", 10).ExitCode)
	require.Eventually(t, func() bool { return e.state(t, s.ID) == StateFrozen }, 20*time.Second, 20*time.Millisecond, "frozen after a second idle")
	assert.Equal(t, "thawed\n", e.run(t, s.ID, "echo thawed", 10).Stdout, "a call thaws it")
	require.Eventually(t, func() bool {
		_, err := e.m.GetSession(ctx, s.ID)
		return err != nil
	}, 30*time.Second, 50*time.Millisecond, "deleted after five seconds idle")
	assert.FileExists(t, filepath.Join(e.outputsOf(t, s.UserID), "r.pdf"), "its documents kept")

	e.writeQuota(t, "timers-expire", `{"limits":{"max_session_duration_hours":0.001}}`)
	x := e.session(t, "timers-expire", nil)
	require.Eventually(t, func() bool { return e.state(t, x.ID) == StateExpired }, 30*time.Second, 50*time.Millisecond, "expired after 3.6 s")
}

func TestSandboxCannotLeaveItsQuotaProject(t *testing.T) {
	s := startSession(t, "project-escape", nil)
	// FS_IOC_FSSETXATTR with project 0, then chattr -P's FS_IOC_SETFLAGS,
	// on a directory of the sandbox's own.
	res := run(t, s.ID, `mkdir /workspace/d && python3 -c '
import fcntl, os, struct
fd = os.open("/workspace/d", os.O_RDONLY)
for name, req, arg in (("fssetxattr", 0x401c5820, bytes(28)), ("setflags", 0x40086602, struct.pack("l", 0))):
    try:
        fcntl.ioctl(fd, req, arg)
        print(name, "allowed")
    except OSError as e:
        print(name, e.errno)
'`, 10)
	assert.Equal(t, "fssetxattr 1\nsetflags 1\n", res.Stdout, "both refused with EPERM: %s", res.Stderr)
}

// gate is a Faults that holds the step it is set for until opened.
type gate struct {
	step    string
	reached chan struct{}
	open    chan struct{}
}

func (g *gate) At(step string) error {
	if step == g.step {
		close(g.reached)
		<-g.open
	}
	return nil
}

func TestDeleteDuringAnExpiryWaitsForIt(t *testing.T) {
	g := &gate{step: "expire:keep", reached: make(chan struct{}), open: make(chan struct{})}
	e, ctx := isolated(t, func(c *Config) { c.Faults = g }), context.Background()
	e.writeQuota(t, "expire-delete", `{"limits":{"max_session_duration_hours":1}}`)
	s := e.session(t, "expire-delete", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo r > /workspace/r.xlsx", 10).ExitCode)
	go e.m.sweep(ctx, s.CreatedAt.Add(2*time.Hour))
	<-g.reached
	assert.Equal(t, StateExpired, e.state(t, s.ID), "described as expired while it expires")
	deleted := make(chan DeleteResult)
	go func() {
		res, err := e.m.DeleteSession(ctx, s.ID, false)
		assert.NoError(t, err, "the delete")
		deleted <- res
	}()
	select {
	case <-deleted:
		t.Fatal("the delete did not wait for the expiry")
	case <-time.After(100 * time.Millisecond): // the experiment: nothing may happen
	}
	close(g.open)
	res := <-deleted
	assert.Equal(t, []string{"r.xlsx"}, res.Kept, "it answers once the expiry is over, with what it kept")
}
