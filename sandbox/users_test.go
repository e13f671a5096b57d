package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/mounts"
)

func TestEachUserHasAUidOfTheirOwn(t *testing.T) {
	e := isolated(t, nil)
	ctx := context.Background()
	a1 := e.session(t, "uid-alice", nil)
	a2 := e.session(t, "uid-alice", nil)
	b := e.session(t, "uid-bob", nil)
	ua, ub := e.uidOf(t, "uid-alice"), e.uidOf(t, "uid-bob")
	assert.NotEqual(t, ua, ub, "two users never share a uid")
	assert.True(t, e.cfg.UserUIDs.contains(ua) && e.cfg.UserUIDs.contains(ub), "from the configured range")

	for _, tc := range []struct {
		s   Session
		uid int
	}{{a1, ua}, {a2, ua}, {b, ub}} {
		got := e.run(t, tc.s.ID, "id -u; stat -c %u /workspace /workspace/shared", 10)
		assert.Equal(t, fmt.Sprintf("%[1]d\n%[1]d\n%[1]d\n", tc.uid), got.Stdout, "commands and trees of %s are its user's", tc.s.ID)
	}
	// Files made through the API are the user's.
	_, err := e.m.WriteFile(ctx, b.ID, RootWorkspace, "api.txt", strings.NewReader("x"), false)
	require.NoError(t, err, "write through the API")
	assert.Equal(t, fmt.Sprintf("%d\n", ub), e.run(t, b.ID, "stat -c %u /workspace/api.txt", 10).Stdout, "owned by the user")

	// Bob cannot signal alice's processes even if he could see them: the
	// uids differ; and the keyring is out of reach for both.
	keys := e.run(t, a1.ID, "python3 -c 'import ctypes,os; l=ctypes.CDLL(None,use_errno=True); r=l.syscall(248,b\"user\",b\"k\",b\"v\",1,-3); print(r, os.strerror(ctypes.get_errno()))'", 10)
	assert.Equal(t, "-1 Operation not permitted\n", keys.Stdout, "add_key is refused (seccomp): %s", keys.Stderr)

	// The uid is recorded with the user and survives a restart.
	data, err := os.ReadFile(e.m.layout.User("uid-alice").Record())
	require.NoError(t, err, "user.json")
	var rec userRecord
	require.NoError(t, json.Unmarshal(data, &rec), "decode user.json")
	assert.Equal(t, ua, rec.UID, "the recorded uid")
	e.restart(t)
	assert.Equal(t, ua, e.uidOf(t, "uid-alice"), "the same uid after a restart")
	assert.Equal(t, fmt.Sprintf("%d\n", ua), e.run(t, a1.ID, "id -u", 10).Stdout, "commands of an adopted session too")
}

func TestOlderUsersAreMigratedToTheirOwnUid(t *testing.T) {
	e := isolated(t, nil)
	s := e.session(t, "uid-legacy", nil)
	require.Equal(t, 0, e.run(t, s.ID, "echo a > /workspace/a.txt && mkdir /workspace/d && echo b > /workspace/shared/data/b.txt", 10).ExitCode, "write files")
	// Make it look like state from before users had uids: everything the
	// user's uid owns goes to the shared uid, and the record goes.
	uid := e.uidOf(t, "uid-legacy")
	shared := mounts.Owner{UID: e.cfg.SandboxUID, GID: e.cfg.SandboxGID}
	u := e.m.layout.User("uid-legacy")
	for _, tree := range []string{e.sharedOf(t, s.UserID), e.filesOf(t, s)} {
		require.NoError(t, chownTree(tree, mounts.Owner{UID: uid, GID: uid}, shared), "hand %s back to the shared uid", tree)
	}
	require.NoError(t, os.Remove(u.Record()), "drop the record")
	// A symlink planted in the workspace is chowned itself, never its target.
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, nil, 0o644), "a host file")
	require.NoError(t, os.Chown(victim, e.cfg.SandboxUID, e.cfg.SandboxGID), "owned by the shared uid")
	require.NoError(t, os.Symlink(victim, filepath.Join(e.filesOf(t, s), "link")), "plant a symlink")

	e.restart(t)
	got := e.uidOf(t, "uid-legacy")
	out := e.run(t, s.ID, "id -u; stat -c %u /workspace/a.txt /workspace/d /workspace/shared/data/b.txt", 10)
	assert.Equal(t, fmt.Sprintf("%[1]d\n%[1]d\n%[1]d\n%[1]d\n", got), out.Stdout, "the files and commands are the user's own uid now: %s", out.Stderr)
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(victim, &st), "stat the host file")
	assert.Equal(t, uint32(e.cfg.SandboxUID), st.Uid, "a symlink's target is never chowned")
}
