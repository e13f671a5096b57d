package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		args    []string
		cwd     string
		refused string
	}{
		{name: "argv", cmd: Command{Argv: []string{"printf", "%s", "$HOME"}}, args: []string{"printf", "%s", "$HOME"}, cwd: "/workspace"},
		{name: "shell", cmd: Command{Shell: "echo hi"}, args: []string{"/bin/sh", "-c", "echo hi"}, cwd: "/workspace"},
		{name: "relative cwd", cmd: Command{Shell: "pwd", Cwd: "sub/../x"}, args: []string{"/bin/sh", "-c", "pwd"}, cwd: "/workspace/x"},
		{name: "absolute cwd", cmd: Command{Shell: "pwd", Cwd: "/tmp/"}, args: []string{"/bin/sh", "-c", "pwd"}, cwd: "/tmp"},
		{name: "nothing to run", cmd: Command{}, refused: "argv or command is required"},
		{name: "both", cmd: Command{Argv: []string{"true"}, Shell: "true"}, refused: "not both"},
		{name: "empty argv0", cmd: Command{Argv: []string{""}}, refused: "argv[0] is empty"},
		{name: "NUL in argument", cmd: Command{Argv: []string{"echo", "a\x00b"}}, refused: "NUL"},
		{name: "NUL in command", cmd: Command{Shell: "echo a\x00b"}, refused: "NUL"},
		{name: "NUL in cwd", cmd: Command{Shell: "true", Cwd: "a\x00b"}, refused: "NUL"},
		{name: "= in env name", cmd: Command{Shell: "true", Env: map[string]string{"A=B": "c"}}, refused: "env name"},
		{name: "empty env name", cmd: Command{Shell: "true", Env: map[string]string{"": "c"}}, refused: "env name"},
		{name: "NUL in env value", cmd: Command{Shell: "true", Env: map[string]string{"A": "c\x00"}}, refused: "env name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := checkCommand(tt.cmd)
			if tt.refused != "" {
				require.ErrorIs(t, err, ErrInvalid, "refused as invalid")
				assert.Contains(t, err.Error(), tt.refused, "the message says why")
				return
			}
			require.NoError(t, err, "accepted")
			assert.Equal(t, tt.args, l.Args, "argv")
			assert.Equal(t, tt.cwd, l.Cwd, "cwd")
		})
	}
}

func TestCheckCommandEnv(t *testing.T) {
	l, err := checkCommand(Command{Shell: "true", Env: map[string]string{"FOO": "bar", "HOME": "/tmp", "LD_PRELOAD": "/tmp/x.so"}})
	require.NoError(t, err, "accepted")
	assert.Contains(t, l.Env, "FOO=bar", "the caller's variable")
	assert.Contains(t, l.Env, "HOME=/tmp", "the caller overrides a default")
	assert.Contains(t, l.Env, "PATH="+sandboxPath, "the defaults stay")
	assert.Contains(t, l.Env, "LD_PRELOAD=/tmp/x.so", "passed on: only the command's own process, after the drop, gets it")
	assert.IsNonDecreasing(t, l.Env, "sorted, so the same request gives the same environment")
}

func TestExecTimeout(t *testing.T) {
	def, max := 30*time.Second, 10*time.Minute
	tests := []struct {
		req, want time.Duration
		refused   bool
	}{
		{0, def, false},
		{time.Second, time.Second, false},
		{time.Hour, max, false},
		{-time.Second, 0, true},
	}
	for _, tt := range tests {
		got, err := execTimeout(tt.req, def, max)
		if tt.refused {
			assert.ErrorIs(t, err, ErrInvalid, "%s is refused", tt.req)
			continue
		}
		require.NoError(t, err, "%s is accepted", tt.req)
		assert.Equal(t, tt.want, got, "timeout for %s", tt.req)
	}
}
