package sandbox

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVenvWritesStayInTheirSession(t *testing.T) {
	a := startSession(t, "venv", nil)
	b := startSession(t, "venv", nil)

	res := run(t, a.ID, `echo installed > /opt/venv/lib/sandboxd-marker && cat /opt/venv/lib/sandboxd-marker`, 10)
	require.Equal(t, 0, res.ExitCode, "write into /opt/venv: %s", res.Stderr)
	assert.Equal(t, "installed\n", res.Stdout, "the write is visible in its own session")

	other := run(t, b.ID, `test -e /opt/venv/lib/sandboxd-marker && echo present || echo absent`, 10)
	assert.Equal(t, "absent\n", other.Stdout, "another session does not see it")
	assert.NoFileExists(t, filepath.Join(env.m.envs.Dir(a.Env), "lib", "sandboxd-marker"), "the base venv is unchanged")
	assert.FileExists(t, filepath.Join(env.treesOf(t, a).VenvUpper, "lib", "sandboxd-marker"),
		"the write landed in the session's own upper layer")

	prefix := run(t, a.ID, `python3 -c 'import sys; print(sys.prefix)'`, 30)
	assert.Equal(t, "/opt/venv\n", prefix.Stdout, "python3 is the venv's")
}

func TestRootFilesystemIsReadOnly(t *testing.T) {
	s := startSession(t, "readonly", nil)
	tests := []struct {
		name, command string
	}{
		{"/", "touch /x"},
		{"/usr", "touch /usr/x"},
		{"/etc", "touch /etc/x"},
		{"/bin", "touch /bin/x"},
		{"/opt", "mkdir /opt/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, s.ID, tt.command, 10)
			assert.NotEqual(t, 0, res.ExitCode, "%s fails", tt.command)
			assert.Contains(t, res.Stderr, "Read-only file system", "refused by the kernel, not by permissions")
		})
	}
	ok := run(t, s.ID, "touch /workspace/x /tmp/x && echo ok", 10)
	assert.Equal(t, "ok\n", ok.Stdout, "/workspace and /tmp are writable")
}

func TestCommandsRunUnprivileged(t *testing.T) {
	s := startSession(t, "unpriv", nil)
	uid := env.uidOf(t, s.UserID)
	tests := []struct {
		name, command, want string
	}{
		{"uid", "id -u", fmt.Sprintf("%d\n", uid)},
		{"groups", "id -G", fmt.Sprintf("%d %d\n", uid, env.cfg.SandboxGID)},
		{"no capabilities", "grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status | tr -d '\\t'", "CapPrm:0000000000000000\nCapEff:0000000000000000\nCapAmb:0000000000000000\n"},
		{"no new privileges", "grep NoNewPrivs /proc/self/status | tr -d '\\t'", "NoNewPrivs:1\n"},
		{"hostname", "hostname", s.ID + "\n"},
		{"pid namespace", "tr '\\0' ' ' < /proc/1/cmdline; echo", "/.sandboxd/sandboxd sandbox-init \n"},
		{"shadow unreadable", "cat /etc/shadow >/dev/null 2>&1 || echo denied", "denied\n"},
		{"keys masked", "wc -c < /proc/keys", "0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, s.ID, tt.command, 10)
			assert.Equal(t, tt.want, res.Stdout, "%s (stderr %q)", tt.command, res.Stderr)
		})
	}
}

func TestSessionsCannotSeeEachOthersFiles(t *testing.T) {
	a := startSession(t, "alice", nil)
	a2 := startSession(t, "alice", nil)
	b := startSession(t, "bob", nil)

	secret := fmt.Sprintf("secret-%d", os.Getpid())
	require.Equal(t, 0, run(t, b.ID, "echo b > /workspace/"+secret+"-ws && echo b > /workspace/shared/data/"+secret+"-shared", 10).ExitCode,
		"bob writes his files")
	require.Equal(t, 0, run(t, a.ID, "echo a > /workspace/shared/data/"+secret+"-alice", 10).ExitCode,
		"alice writes a shared file")

	bobFiles := env.treesOf(t, b).Files
	find := "find / -path /proc -prune -o -path /sys -prune -o -path /usr -prune -o -name '" + secret + "-*' -print 2>/dev/null"
	tests := []struct {
		name, session, command, want string
	}{
		{"alice finds none of bob's files", a.ID, find, "/workspace/shared/data/" + secret + "-alice\n"},
		{"bob's host path does not exist for alice", a.ID, "cat " + bobFiles + "/" + secret + "-ws 2>&1 || true", "cat: " + bobFiles + "/" + secret + "-ws: No such file or directory\n"},
		{"alice's other session shares her files", a2.ID, "cat /workspace/shared/data/" + secret + "-alice", "a\n"},
		{"alice's other session has its own workspace", a2.ID, "ls /workspace", "shared\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.session, tt.command, 30)
			assert.Equal(t, tt.want, res.Stdout, "%s (stderr %q)", tt.command, res.Stderr)
		})
	}
}

func TestNetworkIsLoopbackOnly(t *testing.T) {
	s := startSession(t, "net", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "host listener")
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	links := run(t, s.ID, "ls /sys/class/net", 10)
	assert.Equal(t, "lo\n", links.Stdout, "only the loopback interface exists")

	connect := fmt.Sprintf(`python3 -c 'import socket; socket.create_connection(("127.0.0.1", %d), timeout=2); print("connected")'`, port)
	res := run(t, s.ID, connect, 30)
	assert.NotEqual(t, 0, res.ExitCode, "connecting to a host port fails")
	assert.NotContains(t, res.Stdout, "connected", "no connection was made")
	assert.True(t, strings.Contains(res.Stderr, "Connection refused") || strings.Contains(res.Stderr, "unreachable"),
		"the sandbox's own loopback has nothing there: %s", res.Stderr)
}
