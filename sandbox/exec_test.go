package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimeoutKillsTheWholeTree(t *testing.T) {
	s := startSession(t, "timeout", nil)

	start := time.Now()
	res := run(t, s.ID, `sleep 1000 & setsid sleep 1000 & sleep 1000`, 1)
	elapsed := time.Since(start)

	assert.True(t, res.TimedOut, "timed_out is reported: %+v", res)
	assert.Equal(t, "SIGKILL", res.Signal, "the command was killed")
	assert.Less(t, elapsed, 3*time.Second, "the call returns about when the timeout ends")
	assert.GreaterOrEqual(t, elapsed, time.Second, "the call waited for the timeout")
	onlyInitLeft(t, s, "no sleep is left, only the sandbox's PID 1")
}

func TestBackgroundChildDoesNotHangTheCall(t *testing.T) {
	s := startSession(t, "background", nil)

	start := time.Now()
	res := run(t, s.ID, `sleep 1000 & echo started`, 30)
	assert.Less(t, time.Since(start), 3*time.Second, "the call returns when the command ends")
	assert.Equal(t, 0, res.ExitCode, "exit code of the shell")
	assert.False(t, res.TimedOut, "not a timeout")
	assert.Equal(t, "started\n", res.Stdout, "output of the command")
	onlyInitLeft(t, s, "the background child ended with its command")
}

func TestCancelKillsTheWholeTree(t *testing.T) {
	s := startSession(t, "cancel", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := env.m.Exec(ctx, s.ID, ExecRequest{Command: Command{Shell: "setsid sleep 1000 & sleep 1000"}, Timeout: secs(60)})
	require.NoError(t, err, "exec")
	assert.Less(t, time.Since(start), 3*time.Second, "the call returns when its context ends")
	assert.False(t, res.TimedOut, "a cancel is not a timeout")
	onlyInitLeft(t, s, "nothing of the command is left")
}

func TestOutputIsCappedPerStream(t *testing.T) {
	s := startSession(t, "output", nil)

	res := run(t, s.ID, `head -c 5M /dev/zero | tr '\0' o; echo tail >&2`, 30)
	assert.Equal(t, 0, res.ExitCode, "the command ran to its end")
	assert.Len(t, res.Stdout, 1<<20, "stdout is cut at the cap")
	assert.True(t, res.StdoutTruncated, "stdout_truncated")
	assert.Equal(t, "tail\n", res.Stderr, "stderr is kept apart")
	assert.False(t, res.StderrTruncated, "stderr is whole")
}

func TestExecRequestFields(t *testing.T) {
	s := startSession(t, "fields", nil)
	require.Equal(t, 0, run(t, s.ID, "mkdir -p /workspace/sub", 10).ExitCode, "mkdir")

	tests := []struct {
		name       string
		req        ExecRequest
		wantStdout string
		wantCode   int
	}{
		{"argv", ExecRequest{Command: Command{Argv: []string{"printf", "%s|", "a b", "$HOME"}}}, "a b|$HOME|", 0},
		{"command", ExecRequest{Command: Command{Shell: "echo $HOME"}}, "/workspace\n", 0},
		{"stdin", ExecRequest{Command: Command{Argv: []string{"cat"}}, Stdin: "hello"}, "hello", 0},
		{"no stdin", ExecRequest{Command: Command{Argv: []string{"cat"}}}, "", 0},
		{"env", ExecRequest{Command: Command{Shell: "echo $FOO", Env: map[string]string{"FOO": "bar"}}}, "bar\n", 0},
		{"relative cwd", ExecRequest{Command: Command{Shell: "pwd", Cwd: "sub"}}, "/workspace/sub\n", 0},
		{"absolute cwd", ExecRequest{Command: Command{Shell: "pwd", Cwd: "/tmp"}}, "/tmp\n", 0},
		{"exit code", ExecRequest{Command: Command{Shell: "exit 3"}}, "", 3},
		{"missing program", ExecRequest{Command: Command{Argv: []string{"no-such-program"}}}, "", 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := env.m.Exec(context.Background(), s.ID, tt.req)
			require.NoError(t, err, "exec")
			assert.Equal(t, tt.wantStdout, string(res.Stdout), "stdout (stderr %q)", res.Stderr)
			assert.Equal(t, tt.wantCode, res.ExitCode, "exit code")
		})
	}
}

func TestExecRefusals(t *testing.T) {
	s := startSession(t, "validation", nil)
	tests := []struct {
		name string
		req  ExecRequest
		kind error
		want string
	}{
		{"nothing to run", ExecRequest{}, ErrInvalid, "argv or command is required"},
		{"negative timeout", ExecRequest{Command: Command{Shell: "true"}, Timeout: secs(-1)}, ErrInvalid, "timeout"},
		{"missing cwd", ExecRequest{Command: Command{Shell: "true", Cwd: "/nonexistent"}}, ErrInvalid, "no such file or directory"},
		{"cwd not a directory", ExecRequest{Command: Command{Shell: "true", Cwd: "/etc/passwd"}}, ErrInvalid, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.m.Exec(context.Background(), s.ID, tt.req)
			require.Error(t, err, "refused")
			assert.ErrorIs(t, err, tt.kind, "the kind of refusal")
			assert.Contains(t, err.Error(), tt.want, "the message says why")
		})
	}
	_, err := env.m.Exec(context.Background(), "no-such-session", ExecRequest{Command: Command{Shell: "true"}})
	assert.ErrorIs(t, err, ErrNotFound, "exec in a missing session")
}

func TestConcurrentExecsInOneSession(t *testing.T) {
	s := startSession(t, "concurrent", nil)
	results := make(chan ExecResult, 4)
	for i := 0; i < 4; i++ {
		go func() {
			res, _ := env.m.Exec(context.Background(), s.ID, ExecRequest{Command: Command{Shell: "sleep 0.5; echo done"}})
			results <- res
		}()
	}
	for i := 0; i < 4; i++ {
		res := <-results
		assert.Equal(t, "done\n", string(res.Stdout), "each concurrent command completes: %q", strings.TrimSpace(string(res.Stderr)))
	}
}
