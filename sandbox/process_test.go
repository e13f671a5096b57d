package sandbox

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
)

// waitOutput reads a background process until cond holds of everything
// read so far, or fails after a while.
func waitOutput(t *testing.T, id, pid string, cond func(all []string, out api.ProcessOutput) bool) ([]string, api.ProcessOutput) {
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
	s := newSession(t, "bg", nil)
	ctx := context.Background()

	p, err := env.m.StartProcess(ctx, s.ID, api.StartProcessRequest{
		Command: `for i in 1 2 3 4 5; do echo "Line $i"; sleep 0.3; done; echo err >&2; sleep 1000`,
	})
	require.NoError(t, err, "start")
	assert.Equal(t, api.StatusRunning, p.Status, "running at first")
	assert.Positive(t, p.PID, "pid inside the sandbox")

	first, _ := waitOutput(t, s.ID, p.ID, func(all []string, _ api.ProcessOutput) bool { return len(all) >= 1 })
	assert.Equal(t, "Line 1", first[0], "output arrives while the process runs")
	time.Sleep(2 * time.Second) // the loop and the stderr line are done
	filtered, err := env.m.ProcessOutput(ctx, s.ID, p.ID, "Line [24]")
	require.NoError(t, err, "read filtered")
	assert.Subset(t, []string{"Line 2", "Line 4"}, filtered.Lines, "only lines matching the filter")
	assert.NotEmpty(t, filtered.Lines, "some of the filtered lines are there")

	_, err = env.m.ProcessOutput(ctx, s.ID, p.ID, "Line [")
	assert.ErrorIs(t, err, api.ErrInvalidArgument, "an invalid regex is refused")

	list, err := env.m.ListProcesses(ctx, s.ID)
	require.NoError(t, err, "list")
	require.Len(t, list, 1, "one process")
	assert.Equal(t, api.StatusRunning, list[0].Status, "still running")

	killed, err := env.m.KillProcess(ctx, s.ID, p.ID, time.Second)
	require.NoError(t, err, "kill")
	assert.Equal(t, api.StatusKilled, killed.Status, "killed")
	require.NotNil(t, killed.ExitCode, "an exit code")
	assert.Equal(t, 143, *killed.ExitCode, "128+SIGTERM: the shell died of the SIGTERM")
	assert.Equal(t, "SIGTERM", killed.Signal, "signal")
	assert.Len(t, sessionPids(t, s), 1, "nothing of the process tree is left")

	_, err = env.m.ProcessOutput(ctx, s.ID, p.ID, "")
	assert.ErrorIs(t, err, api.ErrNotFound, "gone after the kill")
	log, err := os.ReadFile(filepath.Join(env.m.layout.Session(s.UserID, s.ID).Logs(), "process-"+p.ID+".log"))
	require.NoError(t, err, "the output is logged")
	assert.Contains(t, string(log), "Line 5\nerr\n", "with stdout and stderr in order")
}

func TestBackgroundProcessLastLinesAndGrace(t *testing.T) {
	s := newSession(t, "bg-last", nil)
	ctx := context.Background()

	quick, err := env.m.StartProcess(ctx, s.ID, api.StartProcessRequest{Argv: []string{"sh", "-c", "echo a; echo b >&2; printf c"}})
	require.NoError(t, err, "start")
	all, out := waitOutput(t, s.ID, quick.ID, func(_ []string, out api.ProcessOutput) bool { return out.Status != api.StatusRunning })
	assert.Equal(t, []string{"a", "b", "c"}, all, "the last lines of a process that just exited, the unfinished one too")
	assert.Equal(t, api.StatusExited, out.Status, "exited by itself")
	require.NotNil(t, out.ExitCode, "exit code")
	assert.Equal(t, 0, *out.ExitCode, "exit code")

	// A process that ignores SIGTERM is killed after the grace.
	stubborn, err := env.m.StartProcess(ctx, s.ID, api.StartProcessRequest{Command: `trap '' TERM; sleep 1000 & setsid sleep 1000 & wait`})
	require.NoError(t, err, "start")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	killed, err := env.m.KillProcess(ctx, s.ID, stubborn.ID, 500*time.Millisecond)
	require.NoError(t, err, "kill")
	assert.Less(t, time.Since(start), 5*time.Second, "the grace is bounded")
	assert.Equal(t, "SIGKILL", killed.Signal, "killed after the grace")
	assert.Len(t, sessionPids(t, s), 1, "the whole tree is gone")
}

func TestBackgroundProcessesLimitAndSessionDelete(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s, err := env.m.CreateSession(ctx, api.CreateSessionRequest{UserID: "bg-many"})
	require.NoError(t, err, "create")
	var ids []string
	for i := 0; i < env.cfg.MaxProcessesPerSession; i++ {
		p, err := env.m.StartProcess(ctx, s.ID, api.StartProcessRequest{Command: "echo started; sleep 1000"})
		require.NoError(t, err, "start %d", i)
		ids = append(ids, p.ID)
	}
	_, err = env.m.StartProcess(ctx, s.ID, api.StartProcessRequest{Command: "sleep 1"})
	assert.ErrorIs(t, err, api.ErrQuotaExceeded, "one past the limit")
	for _, id := range ids {
		waitOutput(t, s.ID, id, func(all []string, _ api.ProcessOutput) bool { return len(all) == 1 })
	}
	_, err = env.m.DeleteSession(ctx, s.ID, false)
	require.NoError(t, err, "deleting the session ends them all")
	assertSessionGone(t, s)
}

func TestExecStreamDeliversOutputAsItComes(t *testing.T) {
	s := newSession(t, "stream", nil)
	var mu sync.Mutex
	type arrival struct {
		ev api.ExecEvent
		at time.Time
	}
	var got []arrival
	start := time.Now()
	res, err := env.m.ExecStream(context.Background(), s.ID,
		api.ExecRequest{Command: `for i in 1 2 3; do echo "line $i"; sleep 0.5; done; printf '\377\376' >&2`},
		func(ev api.ExecEvent) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, arrival{ev, time.Now()})
			return nil
		})
	require.NoError(t, err, "stream")
	assert.Equal(t, 0, res.ExitCode, "exit code in the result")
	assert.Empty(t, res.Stdout, "the output went out as events")

	var stdout []arrival
	var stderr []byte
	for _, a := range got {
		switch a.ev.Type {
		case api.EventStdout:
			stdout = append(stdout, a)
		case api.EventStderr:
			b, err := base64.StdEncoding.DecodeString(a.ev.DataB64)
			require.NoError(t, err, "base64 stderr")
			stderr = append(stderr, b...)
		}
	}
	require.Len(t, stdout, 3, "one event per line: %+v", got)
	for i, a := range stdout {
		assert.Equal(t, "line "+string(rune('1'+i))+"\n", a.ev.Data, "line %d", i+1)
		assert.Less(t, a.at.Sub(start), time.Duration(i)*500*time.Millisecond+400*time.Millisecond,
			"line %d arrived before the next was printed", i+1)
	}
	assert.Equal(t, []byte{0xff, 0xfe}, stderr, "non-UTF-8 output is carried as base64, losslessly")
}

func TestIncompleteRune(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 0},
		{"é", 0},
		{"a\xc3", 1},
		{"a\xe2\x82", 2},
		{"a\xf0\x9f\x98", 3},
		{"\xff", 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, incompleteRune([]byte(tt.in)), "incomplete tail of %q", tt.in)
	}
	var mu sync.Mutex
	var events []api.ExecEvent
	w := &eventWriter{mu: &mu, stream: api.EventStdout, emit: func(ev api.ExecEvent) error {
		events = append(events, ev)
		return nil
	}}
	_, _ = w.Write([]byte("caf\xc3"))
	_, _ = w.Write([]byte("\xa9!"))
	assert.Equal(t, "caf", events[0].Data, "the split character is held back")
	assert.Equal(t, "é!", events[1].Data, "and sent whole")
	assert.True(t, strings.HasSuffix(events[0].Data+events[1].Data, "!"), "nothing lost")
}
