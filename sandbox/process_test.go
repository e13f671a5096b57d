package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitOutput reads a background process until cond holds of everything
// read so far, or fails after a while.
func waitOutput(t *testing.T, id, pid string, cond func(all []string, out ProcessOutput) bool) ([]string, ProcessOutput) {
	t.Helper()
	var all []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := env.m.ProcessOutput(context.Background(), id, pid, "")
		require.NoError(t, err, "read output of %s", pid)
		all = append(all, out.Lines...)
		if cond(all, out) {
			return all, out
		}
		require.True(t, time.Now().Before(deadline), "waited too long; read so far: %q", all)
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBackgroundProcessLifecycle(t *testing.T) {
	s := startSession(t, "bg", nil)
	ctx := context.Background()

	p, err := env.m.StartProcess(ctx, s.ID, Command{Shell: `for i in 1 2 3 4 5; do echo "Line $i"; sleep 0.3; done; echo err >&2; sleep 1000`})
	require.NoError(t, err, "start")
	assert.Equal(t, ProcessRunning, p.State, "running at first")
	assert.Positive(t, p.PID, "pid inside the sandbox")

	first, _ := waitOutput(t, s.ID, p.ID, func(all []string, _ ProcessOutput) bool { return len(all) >= 1 })
	assert.Equal(t, "Line 1", first[0], "output arrives while the process runs")
	time.Sleep(2 * time.Second) // the loop and the stderr line are done
	filtered, err := env.m.ProcessOutput(ctx, s.ID, p.ID, "Line [24]")
	require.NoError(t, err, "read filtered")
	assert.Subset(t, []string{"Line 2", "Line 4"}, filtered.Lines, "only lines matching the filter")
	assert.NotEmpty(t, filtered.Lines, "some of the filtered lines are there")

	_, err = env.m.ProcessOutput(ctx, s.ID, p.ID, "Line [")
	assert.ErrorIs(t, err, ErrInvalid, "an invalid regex is refused")

	list, err := env.m.ListProcesses(ctx, s.ID)
	require.NoError(t, err, "list")
	require.Len(t, list, 1, "one process")
	assert.Equal(t, ProcessRunning, list[0].State, "still running")

	killed, err := env.m.KillProcess(ctx, s.ID, p.ID, time.Second)
	require.NoError(t, err, "kill")
	assert.Equal(t, ProcessKilled, killed.State, "killed")
	require.NotNil(t, killed.ExitCode, "an exit code")
	assert.Equal(t, 143, *killed.ExitCode, "128+SIGTERM: the shell died of the SIGTERM")
	assert.Equal(t, "SIGTERM", killed.Signal, "signal")
	onlyInitLeft(t, s, "nothing of the process tree is left")

	_, err = env.m.ProcessOutput(ctx, s.ID, p.ID, "")
	assert.ErrorIs(t, err, ErrNotFound, "gone after the kill")
	log, err := os.ReadFile(filepath.Join(env.treesOf(t, s).Logs, "process-"+p.ID+".log"))
	require.NoError(t, err, "the output is logged")
	assert.Contains(t, string(log), "Line 5\nerr\n", "with stdout and stderr in order")
}

func TestBackgroundProcessLastLinesAndGrace(t *testing.T) {
	s := startSession(t, "bg-last", nil)
	ctx := context.Background()

	quick, err := env.m.StartProcess(ctx, s.ID, Command{Argv: []string{"sh", "-c", "echo a; echo b >&2; printf c"}})
	require.NoError(t, err, "start")
	all, out := waitOutput(t, s.ID, quick.ID, func(_ []string, out ProcessOutput) bool { return out.State != ProcessRunning })
	assert.Equal(t, []string{"a", "b", "c"}, all, "the last lines of a process that just exited, the unfinished one too")
	assert.Equal(t, ProcessExited, out.State, "exited by itself")
	require.NotNil(t, out.ExitCode, "exit code")
	assert.Equal(t, 0, *out.ExitCode, "exit code")

	// A process that ignores SIGTERM is killed after the grace.
	stubborn, err := env.m.StartProcess(ctx, s.ID, Command{Shell: `trap '' TERM; sleep 1000 & setsid sleep 1000 & wait`})
	require.NoError(t, err, "start")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	killed, err := env.m.KillProcess(ctx, s.ID, stubborn.ID, 500*time.Millisecond)
	require.NoError(t, err, "kill")
	assert.Less(t, time.Since(start), 5*time.Second, "the grace is bounded")
	assert.Equal(t, "SIGKILL", killed.Signal, "killed after the grace")
	onlyInitLeft(t, s, "the whole tree is gone")
}

func TestBackgroundProcessesLimitAndSessionDelete(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := env.m.CreateSession(ctx, CreateRequest{UserID: "bg-many"})
	require.NoError(t, err, "create")
	var ids []string
	for i := 0; i < env.cfg.MaxProcessesPerSession; i++ {
		p, err := env.m.StartProcess(ctx, s.ID, Command{Shell: "echo started; sleep 1000"})
		require.NoError(t, err, "start %d", i)
		ids = append(ids, p.ID)
	}
	_, err = env.m.StartProcess(ctx, s.ID, Command{Shell: "sleep 1"})
	assert.ErrorIs(t, err, ErrQuota, "one past the limit")
	for _, id := range ids {
		waitOutput(t, s.ID, id, func(all []string, _ ProcessOutput) bool { return len(all) == 1 })
	}
	_, err = env.m.DeleteSession(ctx, s.ID, false)
	require.NoError(t, err, "deleting the session ends them all")
	assertSessionGone(t, s)
}

func TestExecStreamDeliversOutputAsItComes(t *testing.T) {
	s := startSession(t, "stream", nil)
	var mu sync.Mutex
	type arrival struct {
		out Output
		at  time.Time
	}
	var got []arrival
	start := time.Now()
	res, err := env.m.ExecStream(context.Background(), s.ID,
		ExecRequest{Command: Command{Shell: `for i in 1 2 3; do echo "line $i"; sleep 0.5; done; printf '\377\376' >&2`}},
		func(o Output) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, arrival{Output{o.Stream, append([]byte(nil), o.Data...)}, time.Now()})
			return nil
		})
	require.NoError(t, err, "stream")
	assert.Equal(t, 0, res.ExitCode, "exit code in the result")
	assert.Empty(t, res.Stdout, "the output went out as events")

	var stdout []arrival
	var stderr []byte
	for _, a := range got {
		switch a.out.Stream {
		case Stdout:
			stdout = append(stdout, a)
		case Stderr:
			stderr = append(stderr, a.out.Data...)
		}
	}
	require.Len(t, stdout, 3, "one piece per line: %+v", got)
	for i, a := range stdout {
		assert.Equal(t, "line "+string(rune('1'+i))+"\n", string(a.out.Data), "line %d", i+1)
		assert.Less(t, a.at.Sub(start), time.Duration(i)*500*time.Millisecond+400*time.Millisecond,
			"line %d arrived before the next was printed", i+1)
	}
	assert.Equal(t, []byte{0xff, 0xfe}, stderr, "output is carried byte for byte")
}
