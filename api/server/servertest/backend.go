// Package servertest provides Backend, the one fake server.Backend of the
// tests of the API server, the Go client and sandboxctl. It keeps
// sessions, their files, their background processes, their packages and
// users' outputs in memory; an exec runs nothing but plays the Script the
// test set, an install records what an allow-list (SetAllowed) allows. It checks
// its arguments as *sandbox.Manager does (the files root, path confinement,
// line and limit, grace, a command's argv or shell) and fails with errors
// that wrap the sandbox error kinds, so that a test through it sees the
// statuses and codes the daemon answers with. Unlike the daemon it takes
// any string as a session or user ID, so that tests can prove odd ones
// survive the URL. It is safe for concurrent use.
package servertest

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/api/server"
	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/events"
)

var _ server.Backend = (*Backend)(nil)

// MaxFileBytes is the fake's size cap of uploads and reads.
const MaxFileBytes = 1 << 20

// workspace is where a session's files are inside its sandbox.
const workspace = "/workspace"

// Backend is an in-memory server.Backend. Its clock stands still at
// Epoch: the nth session created or added (from 1) was created n seconds
// after it, the nth background process started n seconds after it, and
// every file was last modified at it.
type Backend struct {
	mu    sync.Mutex
	fail  error
	calls []string
	// sessions by ID; added counts every session ever added, for their
	// creation times and generated IDs.
	sessions map[string]*session
	added    int
	files    map[key]node
	outputs  map[output][]byte
	notKept  map[string]string
	started  int // background processes started so far
	script   *script
	pkgs     packageState
	// The last request of the kinds tests check.
	lastCreate sandbox.CreateRequest
	lastExec   execCall
	lastGrace  time.Duration
	// observe is the statistics and events (observe.go).
	observe observe
}

type session struct {
	sandbox.Session
	procs []*process // oldest first
}

// New returns a Backend without sessions whose execs exit 0 silently.
func New() *Backend {
	return &Backend{
		sessions: map[string]*session{},
		files:    map[key]node{},
		outputs:  map[output][]byte{},
		notKept:  map[string]string{},
		script:   &script{},
		observe:  newObserve(),
	}
}

// Epoch is the time the fake's clock stands at.
func (b *Backend) Epoch() time.Time {
	return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
}

// DefaultLimits are the limits of a session that asks for none.
func (b *Backend) DefaultLimits() sandbox.Limits {
	return sandbox.Limits{CPUs: 1, MemoryMB: 512, Pids: 128, TmpMB: 64}
}

// MaxLimits cap the limits a session asks for.
func (b *Backend) MaxLimits() sandbox.Limits {
	return sandbox.Limits{CPUs: 2, MemoryMB: 2048, Pids: 512, TmpMB: 256}
}

// Fail makes every method but Info and MaxFileBytes fail with err, after
// recording the call; nil ends that.
func (b *Backend) Fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

// Calls names the Backend methods called so far, in order, Info and
// MaxFileBytes left out: the server asks for the file cap of every
// request, and Info cannot fail.
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// call records a call of method and returns the injected failure. The
// caller holds b.mu.
func (b *Backend) call(method string) error {
	b.calls = append(b.calls, method)
	return b.fail
}

// AddSession adds s as if created and returns it: fields left zero get
// the creation time, the default limits, StateRunning and the
// workspace. A session in another state keeps its files but runs no
// command, as the daemon's.
func (b *Backend) AddSession(s sandbox.Session) sandbox.Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.add(s)
}

func (b *Backend) add(s sandbox.Session) sandbox.Session {
	b.added++
	if s.ID == "" {
		s.ID = fmt.Sprintf("session-%d", b.added)
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = b.Epoch().Add(time.Duration(b.added) * time.Second)
	}
	if s.Limits == (sandbox.Limits{}) {
		s.Limits = b.DefaultLimits()
	}
	if s.State == "" {
		s.State = sandbox.StateRunning
	}
	if s.Workspace == "" {
		s.Workspace = workspace
	}
	b.sessions[s.ID] = &session{Session: s}
	return s
}

// SetNotKept makes a delete with keep_files fail to keep the workspace
// file name, giving reason, as the daemon does with a file it cannot
// move.
func (b *Backend) SetNotKept(name, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notKept[name] = reason
}

// LastCreate is the last CreateSession request.
func (b *Backend) LastCreate() sandbox.CreateRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastCreate
}

// Info implements server.Backend. Its Version is empty: the server's
// Config names it.
func (b *Backend) Info(context.Context) sandbox.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sandbox.Info{
		CgroupMode:    "unified",
		CgroupParent:  "/sandboxd",
		Controllers:   []string{"cpu", "memory", "pids"},
		DefaultLimits: b.DefaultLimits(),
		MaxLimits:     b.MaxLimits(),
		Sessions:      len(b.sessions),
		Env:           b.currentEnv(),
		QuotaMode:     "loop",
	}
}

// CreateSession implements server.Backend: limits as the daemon resolves
// them, the rest as AddSession fills it.
func (b *Backend) CreateSession(_ context.Context, req sandbox.CreateRequest) (sandbox.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastCreate = req
	if err := b.call("CreateSession"); err != nil {
		return sandbox.Session{}, err
	}
	if req.UserID == "" {
		return sandbox.Session{}, fmt.Errorf("%w: user_id is empty", sandbox.ErrInvalid)
	}
	if _, ok := b.sessions[req.SessionID]; ok {
		return sandbox.Session{}, fmt.Errorf("%w: session %q", sandbox.ErrExists, req.SessionID)
	}
	limits, err := b.limits(req.Limits)
	if err != nil {
		return sandbox.Session{}, err
	}
	s := b.add(sandbox.Session{ID: req.SessionID, UserID: req.UserID, Limits: limits})
	b.publish(s, events.Event{Type: events.SessionCreated})
	return s, nil
}

// limits fills the unset limits of req from the defaults and caps the set
// ones at the maximums.
func (b *Backend) limits(req *sandbox.Limits) (sandbox.Limits, error) {
	l, top := b.DefaultLimits(), b.MaxLimits()
	if req == nil {
		return l, nil
	}
	if req.CPUs < 0 || req.MemoryMB < 0 || req.Pids < 0 || req.TmpMB < 0 {
		return l, fmt.Errorf("%w: limits must not be negative", sandbox.ErrInvalid)
	}
	if req.CPUs > 0 {
		l.CPUs = min(req.CPUs, top.CPUs)
	}
	pick := func(v, top int64, cur *int64) {
		if v > 0 {
			*cur = min(v, top)
		}
	}
	pick(req.MemoryMB, top.MemoryMB, &l.MemoryMB)
	pick(req.Pids, top.Pids, &l.Pids)
	pick(req.TmpMB, top.TmpMB, &l.TmpMB)
	return l, nil
}

// ListSessions implements server.Backend: oldest first.
func (b *Backend) ListSessions(_ context.Context, userID string) ([]sandbox.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("ListSessions"); err != nil {
		return nil, err
	}
	var list []sandbox.Session
	for _, s := range b.sessions {
		if userID == "" || s.UserID == userID {
			list = append(list, s.Session)
		}
	}
	slices.SortFunc(list, func(x, y sandbox.Session) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return list, nil
}

// GetSession implements server.Backend.
func (b *Backend) GetSession(_ context.Context, id string) (sandbox.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("GetSession"); err != nil {
		return sandbox.Session{}, err
	}
	s, err := b.session(id)
	if err != nil {
		return sandbox.Session{}, err
	}
	return s.Session, nil
}

// DeleteSession implements server.Backend: with keepFiles the top-level
// workspace files of the kept extensions move to the user's outputs, a
// name taken there becoming name-1.ext, name-2.ext, …
func (b *Backend) DeleteSession(_ context.Context, id string, keepFiles bool) (sandbox.DeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.call("DeleteSession"); err != nil {
		return sandbox.DeleteResult{}, err
	}
	s, err := b.session(id)
	if err != nil {
		return sandbox.DeleteResult{}, err
	}
	res := sandbox.DeleteResult{ID: id, Kept: []string{}}
	tree := workspaceTree(id)
	for _, k := range slices.SortedFunc(maps.Keys(b.files), compareKeys) {
		if k.tree != tree {
			continue
		}
		if keepFiles && !b.files[k].dir && !strings.Contains(k.path, "/") && kept(k.path) {
			if reason, ok := b.notKept[k.path]; ok {
				res.NotKept = append(res.NotKept, sandbox.NotKept{Name: k.path, Reason: reason})
			} else {
				name := b.freeOutput(s.UserID, k.path)
				b.outputs[output{s.UserID, name}] = b.files[k].data
				res.Kept = append(res.Kept, name)
			}
		}
		delete(b.files, k)
	}
	delete(b.sessions, id)
	b.publish(s.Session, events.Event{Type: events.SessionDeleted})
	return res, nil
}

// kept reports whether a delete with keep_files keeps a file named name,
// as the daemon's default configuration does.
func kept(name string) bool {
	switch path.Ext(name) {
	case ".pdf", ".xlsx", ".pptx", ".docx":
		return true
	}
	return false
}

// freeOutput is the first of name, name-1, name-2, … (before the
// extension) that user has no output of.
func (b *Backend) freeOutput(user, name string) string {
	ext := path.Ext(name)
	for n, free := 1, name; ; n++ {
		if _, taken := b.outputs[output{user, free}]; !taken {
			return free
		}
		free = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(name, ext), n, ext)
	}
}

// session looks session id up; the caller holds b.mu.
func (b *Backend) session(id string) (*session, error) {
	s, ok := b.sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: session %q", sandbox.ErrNotFound, id)
	}
	return s, nil
}
