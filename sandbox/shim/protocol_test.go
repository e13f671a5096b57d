package shim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validCommand() command {
	return command{args: []string{"sh", "-c", "true"}, env: []string{"PATH=/bin", "EMPTY="}, cwd: "/workspace", uid: 10000, gid: 10000}
}

func TestEncodeExec(t *testing.T) {
	c := validCommand()
	c.hold = true
	b, err := encodeExec(c)
	require.NoError(t, err)
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	assert.Equal(t, uint32(wireMagic), u32(0), "magic")
	assert.Equal(t, uint16(ProtocolVersion), binary.NativeEndian.Uint16(b[4:]), "version")
	assert.Equal(t, uint16(msgExec), binary.NativeEndian.Uint16(b[6:]), "type")
	assert.Equal(t, []uint32{10000, 10000, 3, 2, execHold, 0}, []uint32{u32(8), u32(12), u32(16), u32(20), u32(24), u32(28)}, "fixed fields")
	assert.Equal(t, "/workspace\x00sh\x00-c\x00true\x00PATH=/bin\x00EMPTY=\x00", string(b[execFixedLen:]), "strings")
}

func TestEncodeExecRefuses(t *testing.T) {
	long := strings.Repeat("x", maxExecBytes)
	for _, tc := range []struct {
		name   string
		change func(*command)
	}{
		{"no argv", func(c *command) { c.args = nil }},
		{"empty argv[0]", func(c *command) { c.args = []string{""} }},
		{"NUL in an argument", func(c *command) { c.args = []string{"sh", "a\x00b"} }},
		{"NUL in cwd", func(c *command) { c.cwd = "/a\x00b" }},
		{"relative cwd", func(c *command) { c.cwd = "workspace" }},
		{"empty cwd", func(c *command) { c.cwd = "" }},
		{"cwd too long", func(c *command) { c.cwd = "/" + strings.Repeat("a", maxCwd) }},
		{"env without =", func(c *command) { c.env = []string{"PATH"} }},
		{"env without a name", func(c *command) { c.env = []string{"=x"} }},
		{"NUL in env", func(c *command) { c.env = []string{"A=b\x00c"} }},
		{"root uid", func(c *command) { c.uid = 0 }},
		{"root gid", func(c *command) { c.gid = 0 }},
		{"negative uid", func(c *command) { c.uid = -1 }},
		{"uid -1 as unsigned", func(c *command) { c.uid = 0xffffffff }},
		{"too many arguments", func(c *command) { c.args = make([]string, maxArgs+1); c.args[0] = "x" }},
		{"too many variables", func(c *command) { c.env = slicesRepeat("A=1", maxEnv+1) }},
		{"too many bytes", func(c *command) { c.args = []string{"sh", long} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validCommand()
			tc.change(&c)
			_, err := encodeExec(c)
			require.ErrorIs(t, err, ErrInvalid, "encode %s", tc.name)
		})
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestEncodeExecAtTheLimit(t *testing.T) {
	c := validCommand()
	c.env = nil
	fixed := execFixedLen + len(c.cwd) + 1 + len("sh") + 1
	c.args = []string{"sh", strings.Repeat("x", maxExecBytes-fixed-1)}
	b, err := encodeExec(c)
	require.NoError(t, err, "a record of exactly maxExecBytes")
	require.Len(t, b, maxExecBytes)
}

func replyBytes(t msgType, a uint32, b int32) []byte {
	m := make([]byte, replyLen)
	putHeader(m, t)
	binary.NativeEndian.PutUint32(m[8:], a)
	binary.NativeEndian.PutUint32(m[12:], uint32(b))
	return m
}

func exitBytes(code, sig int32, user, sys, rss uint64) []byte {
	m := make([]byte, exitLen)
	putHeader(m, msgExit)
	binary.NativeEndian.PutUint32(m[8:], uint32(code))
	binary.NativeEndian.PutUint32(m[12:], uint32(sig))
	binary.NativeEndian.PutUint64(m[16:], user)
	binary.NativeEndian.PutUint64(m[24:], sys)
	binary.NativeEndian.PutUint64(m[32:], rss)
	return m
}

func TestDecodeReply(t *testing.T) {
	r, err := decodeReply(replyBytes(msgStarted, 42, 0))
	require.NoError(t, err)
	assert.Equal(t, reply{typ: msgStarted, a: 42}, r, "started")

	r, err = decodeReply(exitBytes(137, 9, 1500, 2500, 1024))
	require.NoError(t, err)
	assert.Equal(t, Exit{Code: 137, Signal: syscall.SIGKILL, UserTime: 1500 * time.Microsecond,
		SysTime: 2500 * time.Microsecond, MaxRSS: 1 << 20}, r.exit, "exit")

	r, err = decodeReply(replyBytes(msgFailed, uint32(stageCwd), int32(syscall.ENOENT)))
	require.NoError(t, err)
	err = failure(r)
	assert.ErrorIs(t, err, ErrCwd, "cwd failure")
	assert.ErrorIs(t, err, syscall.ENOENT, "cwd failure's errno")
	assert.NotErrorIs(t, err, ErrPidsLimit, "cwd failure is not pids")
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		stage    stage
		errno    syscall.Errno
		sentinel error
		code     int
	}{
		{stagePidsLimit, syscall.EAGAIN, ErrPidsLimit, 126},
		{stageCwd, syscall.ENOTDIR, ErrCwd, 126},
		{stageExec, syscall.ENOENT, ErrExec, 127},
		{stageExec, syscall.EACCES, ErrExec, 126},
		{stageProtocol, 0, ErrProtocol, 126},
		{stageFork, syscall.ENOMEM, ErrAgent, 126},
		{stageCgroup, syscall.EBUSY, ErrAgent, 126},
		{stageSeccomp, syscall.EINVAL, ErrAgent, 126},
		{stageSetID, syscall.EPERM, ErrAgent, 126},
	} {
		err := failure(reply{typ: msgFailed, a: uint32(tc.stage), b: int32(tc.errno)})
		assert.ErrorIs(t, err, tc.sentinel, "stage %d", tc.stage)
		var se *StartError
		require.ErrorAs(t, err, &se, "stage %d", tc.stage)
		assert.Equal(t, tc.code, se.ExitCode(), "exit code of stage %d", tc.stage)
		assert.NotEmpty(t, err.Error(), "message of stage %d", tc.stage)
	}
	err := failure(reply{typ: msgFailed, a: uint32(stageVersion), b: 7})
	var ve *VersionError
	require.ErrorAs(t, err, &ve, "version failure")
	assert.Equal(t, 7, ve.Agent, "agent's version")
	assert.ErrorIs(t, err, ErrProtocol, "a version mismatch is a protocol error")
}

func TestDecodeReplyRefuses(t *testing.T) {
	otherVersion := replyBytes(msgStarted, 1, 0)
	binary.NativeEndian.PutUint16(otherVersion[4:], ProtocolVersion+1)
	badMagic := replyBytes(msgStarted, 1, 0)
	badMagic[0] ^= 0xff
	for _, tc := range []struct {
		name string
		m    []byte
	}{
		{"empty", nil},
		{"short header", replyBytes(msgStarted, 1, 0)[:5]},
		{"bad magic", badMagic},
		{"other version", otherVersion},
		{"request type", replyBytes(msgSpawn, 1, 0)},
		{"unknown type", replyBytes(99, 1, 0)},
		{"started too short", replyBytes(msgStarted, 1, 0)[:replyLen-1]},
		{"started too long", append(replyBytes(msgStarted, 1, 0), 0)},
		{"exit too short", exitBytes(0, 0, 0, 0, 0)[:exitLen-8]},
		{"unknown stage", replyBytes(msgFailed, 99, 0)},
		{"stage zero", replyBytes(msgFailed, 0, 0)},
		{"negative errno", replyBytes(msgFailed, uint32(stageCwd), -1)},
		{"exit code out of range", exitBytes(256, 0, 0, 0, 0)},
		{"negative exit code", exitBytes(-1, 0, 0, 0, 0)},
		{"signal out of range", exitBytes(0, 65, 0, 0, 0)},
		{"cpu time overflowing a Duration", exitBytes(0, 0, 1<<63, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeReply(tc.m)
			require.ErrorIs(t, err, ErrProtocol, "decode %s", tc.name)
		})
	}
	_, err := decodeReply(otherVersion)
	var ve *VersionError
	require.ErrorAs(t, err, &ve, "other version")
	assert.Equal(t, ProtocolVersion+1, ve.Agent)
}

// FuzzDecodeReply: no input makes the decoder panic, and what it accepts
// has the right length and a known type.
func FuzzDecodeReply(f *testing.F) {
	f.Add(replyBytes(msgStarted, 1, 0))
	f.Add(replyBytes(msgFailed, uint32(stageExec), 2))
	f.Add(exitBytes(1, 0, 5, 5, 5))
	f.Add([]byte("SBXD"))
	f.Fuzz(func(t *testing.T, m []byte) {
		r, err := decodeReply(m)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not a protocol error", err)
			}
			return
		}
		want := replyLen
		if r.typ == msgExit {
			want = exitLen
		}
		if len(m) != want || !bytes.Equal(m[:4], replyBytes(msgStarted, 0, 0)[:4]) {
			t.Fatalf("accepted %x", m)
		}
	})
}
