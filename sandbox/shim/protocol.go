package shim

// The agent protocol: what the daemon and a sandbox's PID 1 (and the
// supervisors it forks) say to each other. This file and wire.h are its
// only definition; wire.h is generated from the constants below by
// TestWireHeader (run it with -update after changing one).
//
// Transport: one SOCK_SEQPACKET connection per command, so every message
// is one record, read whole or not at all. Integers are native-endian (both
// ends run on one host). Every message starts with the same 8-byte header,
// in every version: magic u32, version u16, type u16.
//
//	daemon → PID 1       spawn  {flags u32, njoin u32}         + cgroup fd if flags&spawnCgroup,
//	                                                           then njoin cgroup.procs fds
//	daemon → supervisor  exec   {uid, gid, argc, envc, flags, group u32}
//	                            cwd\0 argv[0]\0 … env[0]\0 …    + stdin, stdout, stderr fds
//	daemon → supervisor  go, kill, term                        (header only)
//	agent  → daemon      held    {supervisor pid u32, 0}
//	                     started {command pid u32, 0}
//	                     failed  {stage u32, errno i32}
//	                     exit    {code i32, signal i32, user µs u64, system µs u64, max RSS KiB u64}
//
// The daemon sends spawn and exec back to back. PID 1 reads only spawn,
// without ever blocking, forks the supervisor and forgets the connection;
// the supervisor reads exec. A reply whose version differs from the
// daemon's is a version mismatch (failed with stageVersion carries the
// agent's version).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

const (
	wireMagic = 0x44584253 // "SBXD" in little-endian bytes
	// ProtocolVersion is the version of this protocol; an agent answers a
	// request of another version with a version failure. Version 2: spawn
	// carries the cgroup v1 files the supervisor joins (njoin).
	ProtocolVersion = 2
	headerLen       = 8
)

// fd layout of the agent (PID 1) when it starts.
const (
	listenerFD = 3 // the listening SOCK_SEQPACKET socket
	seccompFD  = 4 // optional: the compiled seccomp programs
	// connFD is where a supervisor keeps its connection.
	connFD = 3
)

// fd layout of the binder ("<exe> sandbox-bind", BindMode).
const (
	bindMntnsFD  = 3 // the sandbox's mount namespace
	bindUtsnsFD  = 4 // its UTS namespace
	bindMountsFD = 5 // the first detached mount; one per target
)

type msgType uint16

// Message types. Requests are below 16, replies from 16 on.
const (
	msgSpawn   msgType = 1
	msgExec    msgType = 2
	msgGo      msgType = 3 // release a held supervisor
	msgKill    msgType = 4 // SIGKILL to the command's whole tree
	msgTerm    msgType = 5 // SIGTERM to the command's whole tree
	msgHeld    msgType = 16
	msgStarted msgType = 17
	msgFailed  msgType = 18
	msgExit    msgType = 19
)

// Flags.
const (
	spawnCgroup = 1 // spawn carries a cgroup v2 directory fd
	execHold    = 1 // the supervisor waits for go before forking the command
)

type stage uint32

// Failure stages: where starting a command failed.
const (
	stageProtocol  stage = 1  // malformed request (errno 0)
	stageVersion   stage = 2  // version mismatch (errno field: the agent's version)
	stagePidsLimit stage = 3  // fork failed with EAGAIN: the pids limit
	stageFork      stage = 4  // fork failed otherwise
	stageCgroup    stage = 5  // entering the cgroup failed
	stageSeccomp   stage = 6  // installing the per-command seccomp layer failed
	stageSetID     stage = 7  // dropping to the uid/gid failed
	stageCwd       stage = 8  // chdir to the working directory failed
	stageExec      stage = 9  // exec failed
	stageInternal  stage = 10 // the supervisor could not set itself up
)

// Sizes and limits. Requests beyond a limit are refused by both ends.
const (
	spawnLen     = 16
	execFixedLen = 32
	replyLen     = 16
	exitLen      = 40
	execFDs      = 3
	maxArgs      = 8192
	maxEnv       = 8192
	maxCwd       = 4095
	// maxExecBytes bounds a whole exec record; Linux itself refuses an
	// argv+env beyond a quarter of the stack limit.
	maxExecBytes = 256 << 10
	// maxPending bounds the connections PID 1 holds before their spawn
	// arrives; the oldest is dropped beyond it.
	maxPending = 64
	// maxJoin bounds the cgroup.procs files of one spawn: one per v1
	// hierarchy an exec cgroup is in.
	maxJoin = 4
	// The seccomp file at seccompFD: magic u32, version u32, number of
	// base programs u32, number of layer programs u32, the length of
	// each program u32 (in instructions), then the programs as struct
	// sock_filter arrays. PID 1 installs the base programs on itself;
	// each supervisor installs the layer before forking its command.
	seccompMagic       = 0x43434553 // "SECC"
	seccompHeaderLen   = 16
	maxSeccompPrograms = 8
	maxSeccompInsns    = 4096 // BPF_MAXINSNS
)

func putHeader(b []byte, t msgType) {
	binary.NativeEndian.PutUint32(b[0:], wireMagic)
	binary.NativeEndian.PutUint16(b[4:], ProtocolVersion)
	binary.NativeEndian.PutUint16(b[6:], uint16(t))
}

func encodeSpawn(cgroup bool, join int) []byte {
	b := make([]byte, spawnLen)
	putHeader(b, msgSpawn)
	if cgroup {
		binary.NativeEndian.PutUint32(b[8:], spawnCgroup)
	}
	binary.NativeEndian.PutUint32(b[12:], uint32(join))
	return b
}

func encodeControl(t msgType) []byte {
	b := make([]byte, headerLen)
	putHeader(b, t)
	return b
}

// command is what an exec record carries.
type command struct {
	args, env []string
	cwd       string
	uid, gid  int
	// group, when not 0, is the one supplementary group.
	group int
	hold  bool
}

// ErrInvalid is returned for a request the protocol cannot carry; nothing
// was sent.
var ErrInvalid = errors.New("invalid command request")

func (c command) validate() error {
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
	}
	switch {
	case len(c.args) == 0 || c.args[0] == "":
		return invalid("argv[0] is empty")
	case len(c.args) > maxArgs:
		return invalid("%d arguments, at most %d", len(c.args), maxArgs)
	case len(c.env) > maxEnv:
		return invalid("%d environment variables, at most %d", len(c.env), maxEnv)
	case !strings.HasPrefix(c.cwd, "/") || len(c.cwd) > maxCwd:
		return invalid("working directory %q is not an absolute path of at most %d bytes", c.cwd, maxCwd)
	case c.group < 0 || c.group > 0x7ffffffe:
		return invalid("supplementary group %d is out of range", c.group)
	case c.uid <= 0 || c.uid > 0x7ffffffe || c.gid <= 0 || c.gid > 0x7ffffffe:
		// 0 would keep root's capabilities; -1 means "unchanged" to setuid.
		return invalid("uid %d / gid %d: commands run as a non-root id", c.uid, c.gid)
	}
	for _, s := range append([]string{c.cwd}, c.args...) {
		if strings.IndexByte(s, 0) >= 0 {
			return invalid("NUL byte in %q", s)
		}
	}
	for _, e := range c.env {
		if name, _, ok := strings.Cut(e, "="); !ok || name == "" || strings.IndexByte(e, 0) >= 0 {
			return invalid("environment entry %q is not NAME=value", e)
		}
	}
	return nil
}

func encodeExec(c command) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	size := execFixedLen + len(c.cwd) + 1
	for _, s := range c.args {
		size += len(s) + 1
	}
	for _, s := range c.env {
		size += len(s) + 1
	}
	if size > maxExecBytes {
		return nil, fmt.Errorf("%w: command and environment take %d bytes, at most %d", ErrInvalid, size, maxExecBytes)
	}
	b := make([]byte, execFixedLen, size)
	putHeader(b, msgExec)
	binary.NativeEndian.PutUint32(b[8:], uint32(c.uid))
	binary.NativeEndian.PutUint32(b[12:], uint32(c.gid))
	binary.NativeEndian.PutUint32(b[16:], uint32(len(c.args)))
	binary.NativeEndian.PutUint32(b[20:], uint32(len(c.env)))
	if c.hold {
		binary.NativeEndian.PutUint32(b[24:], execHold)
	}
	binary.NativeEndian.PutUint32(b[28:], uint32(c.group))
	b = append(append(b, c.cwd...), 0)
	for _, s := range append(c.args, c.env...) {
		b = append(append(b, s...), 0)
	}
	return b, nil
}

// ErrProtocol is returned when the other end says something this version
// does not understand.
var ErrProtocol = errors.New("agent protocol error")

// VersionError is returned when the agent speaks another protocol version,
// e.g. a sandbox started by an older sandboxd.
type VersionError struct{ Agent, Client int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("agent speaks protocol version %d, this client %d", e.Agent, e.Client)
}

func (e *VersionError) Is(target error) bool { return target == ErrProtocol }

// reply is a decoded agent message.
type reply struct {
	typ msgType
	// a and b are the two fields of held, started and failed.
	a    uint32
	b    int32
	exit Exit
}

func decodeReply(m []byte) (reply, error) {
	if len(m) < headerLen || binary.NativeEndian.Uint32(m) != wireMagic {
		return reply{}, fmt.Errorf("%w: reply of %d bytes without the protocol's header", ErrProtocol, len(m))
	}
	if v := binary.NativeEndian.Uint16(m[4:]); v != ProtocolVersion {
		return reply{}, &VersionError{Agent: int(v), Client: ProtocolVersion}
	}
	r := reply{typ: msgType(binary.NativeEndian.Uint16(m[6:]))}
	want := replyLen
	if r.typ == msgExit {
		want = exitLen
	}
	switch {
	case r.typ != msgHeld && r.typ != msgStarted && r.typ != msgFailed && r.typ != msgExit:
		return reply{}, fmt.Errorf("%w: unknown reply type %d", ErrProtocol, r.typ)
	case len(m) != want:
		return reply{}, fmt.Errorf("%w: reply type %d of %d bytes, want %d", ErrProtocol, r.typ, len(m), want)
	}
	if r.typ != msgExit {
		r.a = binary.NativeEndian.Uint32(m[8:])
		r.b = int32(binary.NativeEndian.Uint32(m[12:]))
		if r.typ == msgFailed && (r.a < uint32(stageProtocol) || r.a > uint32(stageInternal) || r.b < 0 || r.b > 4095) {
			return reply{}, fmt.Errorf("%w: failure stage %d errno %d out of range", ErrProtocol, r.a, r.b)
		}
		return r, nil
	}
	code := int32(binary.NativeEndian.Uint32(m[8:]))
	sig := int32(binary.NativeEndian.Uint32(m[12:]))
	user := binary.NativeEndian.Uint64(m[16:])
	sys := binary.NativeEndian.Uint64(m[24:])
	rss := binary.NativeEndian.Uint64(m[32:])
	const maxMicros = uint64(1<<63-1) / uint64(time.Microsecond)
	if code < 0 || code > 255 || sig < 0 || sig > 64 || user > maxMicros || sys > maxMicros || rss > 1<<44 {
		return reply{}, fmt.Errorf("%w: exit report out of range", ErrProtocol)
	}
	r.exit = Exit{
		Code:     int(code),
		Signal:   syscall.Signal(sig),
		UserTime: time.Duration(user) * time.Microsecond,
		SysTime:  time.Duration(sys) * time.Microsecond,
		MaxRSS:   int64(rss) << 10,
	}
	return r, nil
}

// Exit is how a command ended.
type Exit struct {
	// Code is the exit status, or 128+Signal when a signal ended it.
	Code int
	// Signal is the signal that ended the command, or 0.
	Signal syscall.Signal
	// UserTime and SysTime are the CPU time of the command's whole tree.
	UserTime, SysTime time.Duration
	// MaxRSS is the largest resident set of any process of the tree.
	MaxRSS int64
}

// Sentinel errors a StartError matches with errors.Is.
var (
	// ErrPidsLimit: the sandbox is out of pids (fork failed with EAGAIN).
	ErrPidsLimit = errors.New("out of pids")
	// ErrCwd: the working directory could not be entered; nothing ran.
	ErrCwd = errors.New("cannot enter working directory")
	// ErrExec: the program could not be executed (see StartError.ExitCode).
	ErrExec = errors.New("cannot execute program")
	// ErrAgent: the agent could not start the command for a reason of its
	// own (fork, cgroup, seccomp, setuid).
	ErrAgent = errors.New("agent could not start the command")
)

// StartError says why the agent did not start a command.
type StartError struct {
	stage stage
	// Errno is the error of the failed step, if any.
	Errno syscall.Errno
}

func (e *StartError) Error() string {
	what := map[stage]string{
		stageProtocol: "request refused as malformed", stagePidsLimit: "out of pids",
		stageFork: "fork", stageCgroup: "enter cgroup", stageSeccomp: "install seccomp filter",
		stageSetID: "drop to the command's uid/gid", stageCwd: "enter working directory",
		stageExec: "execute program", stageInternal: "supervisor setup",
	}[e.stage]
	if e.Errno == 0 {
		return "agent: " + what
	}
	return fmt.Sprintf("agent: %s: %v", what, e.Errno)
}

// Unwrap gives the sentinel of the stage and the errno.
func (e *StartError) Unwrap() []error {
	var sentinel error
	switch e.stage {
	case stageProtocol:
		sentinel = ErrProtocol
	case stagePidsLimit:
		sentinel = ErrPidsLimit
	case stageCwd:
		sentinel = ErrCwd
	case stageExec:
		sentinel = ErrExec
	default:
		sentinel = ErrAgent
	}
	if e.Errno == 0 {
		return []error{sentinel}
	}
	return []error{sentinel, e.Errno}
}

// ExitCode is the shell's status for a command that did not start: 127
// for a program not found, 126 for any other exec failure or a working
// directory that could not be entered.
func (e *StartError) ExitCode() int {
	if e.stage == stageExec && e.Errno == syscall.ENOENT {
		return 127
	}
	return 126
}

func failure(r reply) error {
	if stage(r.a) == stageVersion {
		return &VersionError{Agent: int(r.b), Client: ProtocolVersion}
	}
	return &StartError{stage: stage(r.a), Errno: syscall.Errno(r.b)}
}
