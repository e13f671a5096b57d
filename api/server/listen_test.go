package server_test

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api/server"
)

// staleSocket leaves a socket file at path that nobody listens on, as a
// daemon that was killed does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err, "listen on %s", path)
	ln.SetUnlinkOnClose(false)
	require.NoError(t, ln.Close(), "close stale listener")
	_, err = os.Stat(path)
	require.NoError(t, err, "the stale socket file is left behind")
}

// liveSocket listens at path for the rest of the test.
func liveSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	require.NoError(t, err, "listen on %s", path)
	t.Cleanup(func() { ln.Close() })
}

func regularFile(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("precious"), 0o644), "write %s", path)
}

func TestListenPrepares(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, path string)
		sub      string // directory under the temp dir the socket goes in
		mode     os.FileMode
		wantMode os.FileMode
	}{
		{name: "fresh path, default mode", wantMode: 0o660},
		{name: "missing parent directory", sub: "run/sandboxd", wantMode: 0o660},
		{name: "explicit mode", mode: 0o600, wantMode: 0o600},
		{name: "stale socket is replaced", setup: staleSocket, wantMode: 0o660},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortTempDir(t), tt.sub, "api.sock")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			ln, err := server.Listen(path, tt.mode, "")
			require.NoError(t, err, "Listen")

			fi, err := os.Stat(path)
			require.NoError(t, err, "stat socket")
			assert.Equal(t, os.ModeSocket, fi.Mode().Type(), "path is a socket")
			assert.Equal(t, tt.wantMode, fi.Mode().Perm(), "socket mode")
			conn, err := net.Dial("unix", path)
			require.NoError(t, err, "the new socket accepts connections")
			conn.Close()

			require.NoError(t, ln.Close(), "close listener")
			_, err = os.Stat(path)
			assert.ErrorIs(t, err, os.ErrNotExist, "closing the listener removes the socket")
		})
	}
}

func TestListenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		group   string
		wantErr string
	}{
		{name: "live socket", setup: liveSocket, wantErr: "another sandboxd is listening on"},
		{name: "regular file", setup: regularFile, wantErr: "not a socket"},
		{name: "unknown group", group: "sandboxd-no-such-group", wantErr: "sandboxd-no-such-group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortTempDir(t), "api.sock")
			var before os.FileInfo
			if tt.setup != nil {
				tt.setup(t, path)
				var err error
				before, err = os.Lstat(path)
				require.NoError(t, err, "stat what was there")
			}
			ln, err := server.Listen(path, 0, tt.group)
			if ln != nil {
				ln.Close()
			}
			require.Error(t, err, "Listen must refuse")
			assert.Contains(t, err.Error(), tt.wantErr, "error says why")

			after, statErr := os.Lstat(path)
			if before == nil {
				assert.ErrorIs(t, statErr, os.ErrNotExist, "nothing is left behind")
				return
			}
			require.NoError(t, statErr, "what was there is still there")
			assert.True(t, os.SameFile(before, after), "what was there is untouched")
		})
	}
}

// otherGroup finds a group the socket may be given that is not already
// this process's group, so that the test sees the chown happen.
func otherGroup(t *testing.T) *user.Group {
	t.Helper()
	var candidates []string
	if os.Getuid() == 0 {
		candidates = []string{"nogroup", "daemon", "users", "adm", "bin"}
	} else {
		gids, err := os.Getgroups()
		require.NoError(t, err, "supplementary groups")
		for _, gid := range gids {
			if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
				candidates = append(candidates, g.Name)
			}
		}
	}
	for _, name := range candidates {
		if g, err := user.LookupGroup(name); err == nil && g.Gid != strconv.Itoa(os.Getgid()) {
			return g
		}
	}
	t.Skip("no group other than the process's own to give the socket")
	return nil
}

func TestListenSetsGroup(t *testing.T) {
	group := otherGroup(t)

	path := filepath.Join(shortTempDir(t), "api.sock")
	ln, err := server.Listen(path, 0, group.Name)
	require.NoError(t, err, "Listen with group %q", group.Name)
	defer ln.Close()

	fi, err := os.Stat(path)
	require.NoError(t, err, "stat socket")
	st, ok := fi.Sys().(*syscall.Stat_t)
	require.True(t, ok, "stat carries a Stat_t")
	assert.Equal(t, group.Gid, strconv.FormatUint(uint64(st.Gid), 10), "socket's group is %s", group.Name)
}
