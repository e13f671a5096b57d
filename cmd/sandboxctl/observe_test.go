package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

// busy is session s1's statistics in these tests.
var busy = sandbox.SessionStats{
	CPU: 1520 * time.Millisecond, CPUThrottled: 830 * time.Millisecond,
	MemoryBytes: 40 << 20, MemoryPeakBytes: 128 << 20, Pids: 3, PidsLimit: 128,
	OOMKills: 1, Execs: 12, Processes: 1,
}

func TestStatsCommand(t *testing.T) {
	socket, fb := startServer(t)
	fb.SetStats(s1.ID, busy)

	got := runCLI(socket, "", "stats", "s1")
	require.Equal(t, 0, got.code, "exit status; stderr: %s", got.stderr)
	for _, want := range []string{
		"s1 (user u1), running",
		"1.52s used, 0.83s held back by the limit of 1 CPU",
		"40.0M now, 128.0M at peak, of 512.0M",
		"3 of 128",
		"oom kills      1",
		"12 run, 1 background running",
		"last activity  -",
	} {
		assert.Contains(t, got.stdout, want, "stdout")
	}
	assert.NotContains(t, got.stdout, "disk", "no disk line while the daemon does not measure it")

	got = runCLI(socket, "", "stats", "--json", "s1")
	require.Equal(t, 0, got.code, "exit status; stderr: %s", got.stderr)
	var st api.SessionStats
	require.NoError(t, json.Unmarshal([]byte(got.stdout), &st), "stdout is JSON")
	assert.Equal(t, int64(1520), st.CPUMS, "the statistics")

	assert.Equal(t, 1, runCLI(socket, "", "stats", "nope").code, "an unknown session")
	assert.Equal(t, 2, runCLI(socket, "", "stats").code, "a session ID is needed")
}

func TestTopOnce(t *testing.T) {
	socket, fb := startServer(t)
	fb.AddSession(sandbox.Session{ID: "s2", UserID: "u2"})
	fb.SetStats(s1.ID, busy)
	fb.SetStats("s2", sandbox.SessionStats{CPU: 5 * time.Second, MemoryBytes: 256 << 20, Pids: 1, PidsLimit: 128})

	got := runCLI(socket, "", "top", "--once")
	require.Equal(t, 0, got.code, "exit status; stderr: %s", got.stderr)
	lines := strings.Split(strings.TrimSpace(got.stdout), "\n")
	require.Len(t, lines, 3, "a header and a line per session:\n%s", got.stdout)
	assert.Equal(t, []string{"SESSION", "USER", "STATUS", "CPU%", "CPU", "MEM", "MEM%", "PIDS", "EXECS", "PROCS", "OOM", "IDLE"}, strings.Fields(lines[0]), "header")
	assert.Equal(t, []string{"s2", "u2", "running", "-", "5.00s", "256.0M", "50.0", "1/128", "0", "0", "0", "-"}, strings.Fields(lines[1]), "the busiest first")
	assert.Equal(t, []string{"s1", "u1", "running", "-", "1.52s", "40.0M", "7.8", "3/128", "12", "1", "1", "-"}, strings.Fields(lines[2]), "then the other")
	assert.NotContains(t, got.stdout, "\x1b", "--once does not clear the screen")

	got = runCLI(socket, "", "top", "--once", "--user", "u1")
	assert.Len(t, strings.Split(strings.TrimSpace(got.stdout), "\n"), 2, "one user's sessions")
	assert.Equal(t, 2, runCLI(socket, "", "top", "--interval", "0").code, "the interval must be positive")
}

func TestTopCPUPercentIsOverTheInterval(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	st := func(id string, cpuMS int64) api.SessionStats {
		return api.SessionStats{ID: id, UserID: "u", Status: "running", CPUMS: cpuMS}
	}
	prev := frame{at: at, stats: []api.SessionStats{st("a", 1000), st("b", 0)}}
	cur := frame{at: at.Add(2 * time.Second), stats: []api.SessionStats{st("a", 1500), st("b", 1000), st("new", 9000)}}
	var out bytes.Buffer
	require.NoError(t, cur.print(&out, prev), "print")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, "header and three sessions")
	fields := func(l string) []string { f := strings.Fields(l); return []string{f[0], f[3]} }
	assert.Equal(t, []string{"b", "50.0"}, fields(lines[1]), "1 s of CPU in 2 s: 50%")
	assert.Equal(t, []string{"a", "25.0"}, fields(lines[2]), "0.5 s in 2 s: 25%")
	assert.Equal(t, []string{"new", "-"}, fields(lines[3]), "a session new since the last frame has no CPU% yet")
}

func TestEventsCommand(t *testing.T) {
	socket, fb := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	ended := make(chan int, 1)
	go func() {
		std := stdio{in: strings.NewReader(""), out: &out, err: &errOut}
		ended <- run(ctx, []string{"--socket", socket, "events", "--session", "s1"}, std, func(string) string { return "" })
	}()
	require.Eventually(t, func() bool { live, _ := fb.Subscribers(); return live == 1 }, 10*time.Second, 5*time.Millisecond, "subscribed")

	fb.Publish(events.Event{Type: events.SessionCreated, UserID: "u1", SessionID: "s1"})
	fb.Publish(events.Event{Type: events.SessionCreated, UserID: "u1", SessionID: "other"})
	fb.Publish(events.Event{Type: events.ExecTimedOut, UserID: "u1", SessionID: "s1", Command: "sleep 9",
		Outcome: &events.Outcome{ExitCode: 137, Signal: "SIGKILL", TimedOut: true, Duration: time.Second}})
	fb.Publish(events.Event{Type: events.Dropped, SessionID: "s1", Reason: "test"})
	code := <-ended
	assert.Equal(t, 1, code, "a dropped stream exits 1")
	assert.Contains(t, errOut.String(), "dropped the event stream", "and says so")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2, "the session's two events:\n%s", out.String())
	assert.Contains(t, lines[0], " session_created u1/s1", "created")
	assert.Contains(t, lines[1], ` exec_timed_out u1/s1 command="sleep 9" exit=137 signal=SIGKILL timed_out duration=1.00s`, "timed out")
}

func TestEventsCommandStopsWhenInterrupted(t *testing.T) {
	socket, fb := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	ended := make(chan int, 1)
	go func() {
		std := stdio{in: strings.NewReader(""), out: &out, err: &out}
		ended <- run(ctx, []string{"--socket", socket, "events", "--json"}, std, func(string) string { return "" })
	}()
	require.Eventually(t, func() bool { live, _ := fb.Subscribers(); return live == 1 }, 10*time.Second, 5*time.Millisecond, "subscribed")
	cancel()
	assert.Equal(t, 0, <-ended, "an interrupt is the usual end")
}

func TestSizesAndTimes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 1536: "1.5K", 40 << 20: "40.0M", 3 << 30: "3.0G"} {
		assert.Equal(t, want, bytesOf(n), "bytesOf(%d)", n)
	}
	assert.Equal(t, "1.52s", millis(1520), "millis")
	now := time.Now()
	assert.Equal(t, "1m5s", idle(now.Add(-65*time.Second-300*time.Millisecond), now), "idle to the second")
	assert.Equal(t, "-", idle(time.Time{}, now), "never")
}
