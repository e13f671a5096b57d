package sandbox

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failAt is a Faults that fails the named steps, once each unless sticky.
type failAt struct {
	mu     sync.Mutex
	steps  map[string]bool
	sticky bool
}

func failing(sticky bool, steps ...string) *failAt {
	f := &failAt{steps: map[string]bool{}, sticky: sticky}
	for _, s := range steps {
		f.steps[s] = true
	}
	return f
}

var errInjected = errors.New("injected failure")

func (f *failAt) At(step string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.steps[step] {
		return nil
	}
	if !f.sticky {
		delete(f.steps, step)
	}
	return errInjected
}

func TestListingIsNotBlockedByASlowExec(t *testing.T) {
	slow := startSession(t, "slowexec", &Limits{CPUs: 0.01})
	startSession(t, "slowexec", nil)

	done := make(chan ExecResult, 1)
	go func() {
		res, _ := env.m.Exec(context.Background(), slow.ID, ExecRequest{Command: Command{Shell: "echo started; sleep 1"}})
		done <- res
	}()
	// For as long as the exec takes (starting under a 1% CPU quota, then
	// running), listings keep answering.
	lists := 0
	for {
		select {
		case res := <-done:
			assert.Equal(t, 0, res.ExitCode, "the slow exec finished: %s", res.Stderr)
			assert.Greater(t, lists, 1, "listings ran while the exec did")
			return
		case <-time.After(20 * time.Millisecond):
		}
		start := time.Now()
		list, err := env.m.ListSessions(context.Background(), "slowexec")
		require.NoError(t, err, "list")
		assert.Len(t, list, 2, "both sessions listed")
		_, err = env.m.GetSession(context.Background(), slow.ID)
		require.NoError(t, err, "get")
		assert.Less(t, time.Since(start), 500*time.Millisecond, "a listing does not wait for the exec")
		lists++
	}
}

func TestDeleteDuringExec(t *testing.T) {
	s := startSession(t, "delexec", nil)
	started := make(chan struct{})
	type outcome struct {
		res ExecResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := env.m.ExecStream(context.Background(), s.ID, ExecRequest{Command: Command{Shell: "echo up; sleep 1000"}},
			func(Output) error {
				select {
				case <-started:
				default:
					close(started)
				}
				return nil
			})
		done <- outcome{res, err}
	}()
	<-started
	begin := time.Now()
	_, err := env.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "delete while a command runs")
	got := <-done
	assert.Less(t, time.Since(begin), 10*time.Second, "the running command was ended, not waited for")
	if got.err == nil {
		assert.False(t, got.res.TimedOut, "ended by the delete, not a timeout")
		assert.NotEqual(t, 0, got.res.ExitCode, "the command was killed")
	}
	assertSessionGone(t, s)
	_, err = env.m.Exec(context.Background(), s.ID, ExecRequest{Command: Command{Shell: "true"}})
	assert.ErrorIs(t, err, ErrNotFound, "no call reaches a deleted session")
}

func TestFailedCreateLeavesNothingAndCanBeRetried(t *testing.T) {
	for _, step := range []string{"create:dir", "create:sandbox", "create:commit"} {
		t.Run(step, func(t *testing.T) {
			faults := failing(false, step)
			e := isolated(t, func(c *Config) { c.Faults = faults })
			_, err := e.m.CreateSession(context.Background(), CreateRequest{UserID: "retry", SessionID: "again"})
			require.ErrorIs(t, err, errInjected, "the create fails at %s", step)
			e.assertGone(t, Session{ID: "again", UserID: "retry"})
			list, err := e.m.ListSessions(context.Background(), "")
			require.NoError(t, err, "list")
			assert.Empty(t, list, "no session is listed")

			s, err := e.m.CreateSession(context.Background(), CreateRequest{UserID: "retry", SessionID: "again"})
			require.NoError(t, err, "the same id is created at once")
			assert.Equal(t, "ok\n", e.run(t, s.ID, "echo ok", 10).Stdout, "and works")
		})
	}
}

func TestBrokenSessionDoesNotStopTheDaemon(t *testing.T) {
	faults := failing(true)
	e := isolated(t, func(c *Config) { c.Faults = faults })
	good := e.session(t, "broken", nil)
	bad := e.session(t, "broken", nil)
	require.Equal(t, 0, e.run(t, bad.ID, "echo precious > /workspace/keep.txt", 10).ExitCode, "write a file")

	faults.mu.Lock()
	faults.steps["recover:"+bad.ID] = true
	faults.mu.Unlock()
	e.restart(t)

	got, err := e.m.GetSession(context.Background(), bad.ID)
	require.NoError(t, err, "a broken session is still described")
	assert.Equal(t, StateBroken, got.State, "as broken")
	assert.Contains(t, got.Reason, "injected failure", "with the reason")
	_, err = e.m.Exec(context.Background(), bad.ID, ExecRequest{Command: Command{Shell: "true"}})
	assert.ErrorIs(t, err, ErrUnavailable, "it runs nothing")
	assert.FileExists(t, e.filesOf(t, bad)+"/keep.txt", "its files are untouched")

	assert.Equal(t, "ok\n", e.run(t, good.ID, "echo ok", 10).Stdout, "the other session is served")
	_, err = e.m.DeleteSession(context.Background(), bad.ID, false)
	require.NoError(t, err, "a broken session can be deleted")
	e.assertGone(t, bad)
}

func TestFailedDeleteLeavesABrokenSessionThatCanBeDeletedAgain(t *testing.T) {
	faults := failing(false, "delete:remove")
	e := isolated(t, func(c *Config) { c.Faults = faults })
	s := e.session(t, "delfail", nil)
	_, err := e.m.DeleteSession(context.Background(), s.ID, false)
	require.ErrorIs(t, err, errInjected, "the delete fails half-way")
	got, err := e.m.GetSession(context.Background(), s.ID)
	require.NoError(t, err, "the session is still there")
	assert.Equal(t, StateBroken, got.State, "broken")
	_, err = e.m.DeleteSession(context.Background(), s.ID, false)
	require.NoError(t, err, "a second delete finishes the job")
	e.assertGone(t, s)
}
