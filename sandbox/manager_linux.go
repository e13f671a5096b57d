package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/cgroup"
	"github.com/sandboxd/sandboxd/mounts"
)

// Manager owns every session of the daemon.
type Manager struct {
	cfg         Config
	layout      mounts.Layout
	cg          *cgroup.Manager
	log         *slog.Logger
	owner       mounts.Owner
	swap        bool
	controllers []string
	// lock keeps a second daemon off the same state tree.
	lock *os.File
	// filesErr says why the files API is off (no openat2), or is nil.
	filesErr error

	mu sync.Mutex
	// sessions holds live sessions and, with box == nil, ids being
	// created, so that a duplicate is refused while the first is built.
	sessions map[string]*session
}

type session struct {
	meta     sessionMeta
	dir      mounts.Session
	box      *libcontainer.Container
	exec     Executor
	deleting bool
	procs    processes
}

// NewManager prepares the state tree and the cgroup parent, then recovers
// what a previous daemon left: running sandboxes are adopted, sessions
// whose sandbox is gone get a new one, half-done creates and deletes are
// finished, and stray cgroups are removed.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	checks := Doctor(cfg)
	if err := Healthy(checks); err != nil {
		return nil, fmt.Errorf("this host cannot sandbox (see sandboxd doctor): %w", err)
	}
	cg, err := cgroup.New(cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	controllers, err := cg.Controllers()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:         cfg,
		layout:      mounts.Layout{Root: cfg.StateDir},
		cg:          cg,
		log:         cfg.Logger,
		owner:       mounts.Owner{UID: cfg.SandboxUID, GID: cfg.SandboxGID},
		swap:        swapAccounting(cg.Mode()),
		controllers: controllers,
		sessions:    map[string]*session{},
		filesErr:    optionalFailure(checks, checkOpenat2),
	}
	if m.filesErr != nil {
		m.log.Error("the files API is off", "err", m.filesErr)
	}
	if err := m.layout.Init(); err != nil {
		return nil, err
	}
	if m.lock, err = lockState(m.layout); err != nil {
		return nil, err
	}
	if err := m.layout.PrepareRootfs(m.owner); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.recover(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("recover sessions: %w", err)
	}
	return m, nil
}

// lockState takes the state tree's lock, which lives as long as the
// process: recovery would otherwise kill another daemon's commands.
func lockState(l mounts.Layout) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.Root, "sandboxd.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("state dir %s is in use by another sandboxd: %w", l.Root, err)
	}
	return f, nil
}

// Close releases the state tree. Sessions keep running, for the next
// daemon to adopt.
func (m *Manager) Close() {
	if m.lock != nil {
		_ = m.lock.Close()
	}
}

// swapAccounting reports whether memory+swap can be limited, so that a
// session's swap can be held at zero. On v2 libcontainer skips a missing
// memory.swap.max by itself; on v1 memsw exists only with swap accounting.
func swapAccounting(mode cgroup.Mode) bool {
	if mode == cgroup.ModeV2 {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// Info describes the daemon.
func (m *Manager) Info(context.Context) api.Info {
	m.mu.Lock()
	n := 0
	for _, s := range m.sessions {
		if s.box != nil {
			n++
		}
	}
	m.mu.Unlock()
	return api.Info{
		Version:       m.cfg.Version,
		APIVersion:    api.Version,
		CgroupMode:    string(m.cg.Mode()),
		CgroupParent:  m.cg.Parent(),
		Controllers:   m.controllers,
		DefaultLimits: m.cfg.DefaultLimits,
		MaxLimits:     m.cfg.MaxLimits,
		Sessions:      n,
	}
}

// CreateSession builds a session's directories and starts its sandbox.
func (m *Manager) CreateSession(ctx context.Context, req api.CreateSessionRequest) (api.Session, error) {
	if err := mounts.ValidateID("user_id", req.UserID); err != nil {
		return api.Session{}, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
	}
	if req.SessionID == "" {
		req.SessionID = newSessionID()
	}
	if err := mounts.ValidateID("session_id", req.SessionID); err != nil {
		return api.Session{}, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
	}
	limits, err := m.resolveLimits(req.Limits)
	if err != nil {
		return api.Session{}, err
	}
	if !m.baseEnvReady() {
		return api.Session{}, fmt.Errorf("%w: the base environment is not built yet (sandboxd env build)", api.ErrUnavailable)
	}
	quota := m.userQuota(req.UserID)

	meta := sessionMeta{ID: req.SessionID, UserID: req.UserID, CreatedAt: time.Now().UTC(), Limits: limits}
	s := &session{meta: meta, dir: m.layout.Session(req.UserID, req.SessionID)}
	if err := m.reserve(s, quota.MaxSessions); err != nil {
		return api.Session{}, err
	}
	created := false
	defer func() {
		if !created {
			m.mu.Lock()
			delete(m.sessions, s.meta.ID)
			m.mu.Unlock()
		}
	}()

	if quota.MaxWorkspaceMB > 0 {
		size, err := dirSize(m.layout.User(req.UserID).Dir)
		if err != nil {
			return api.Session{}, fmt.Errorf("user %q: workspace size: %w", req.UserID, err)
		}
		if size > quota.MaxWorkspaceMB*mib {
			return api.Session{}, fmt.Errorf("%w: user %q uses %d MiB of %d MiB", api.ErrQuotaExceeded, req.UserID, size/mib, quota.MaxWorkspaceMB)
		}
	}
	if _, err := m.layout.EnsureUser(req.UserID, m.owner); err != nil {
		return api.Session{}, err
	}
	if _, err := m.layout.CreateSession(req.UserID, req.SessionID, m.owner); err != nil {
		if errors.Is(err, os.ErrExist) {
			return api.Session{}, fmt.Errorf("%w: session %q", api.ErrAlreadyExists, req.SessionID)
		}
		return api.Session{}, err
	}
	if err := m.startSession(s); err != nil {
		_ = os.RemoveAll(s.dir.Dir)
		return api.Session{}, err
	}
	created = true
	m.log.InfoContext(ctx, "session created", "session", s.meta.ID, "user", s.meta.UserID)
	return s.meta.api(statusRunning), nil
}

// reserve claims the session's id, refusing a duplicate or a user at the
// end of their session quota.
func (m *Manager) reserve(s *session, maxSessions int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.meta.ID]; ok {
		return fmt.Errorf("%w: session %q", api.ErrAlreadyExists, s.meta.ID)
	}
	if maxSessions > 0 {
		n := 0
		for _, o := range m.sessions {
			if o.meta.UserID == s.meta.UserID {
				n++
			}
		}
		if n >= maxSessions {
			return fmt.Errorf("%w: user %q has %d of %d sessions", api.ErrQuotaExceeded, s.meta.UserID, n, maxSessions)
		}
	}
	m.sessions[s.meta.ID] = s
	return nil
}

// startSession writes the session's metadata and starts its sandbox.
func (m *Manager) startSession(s *session) error {
	if err := writeMeta(s.dir, s.meta); err != nil {
		return err
	}
	c, err := startContainer(m.layout.Containers(), m.boxSpec(s))
	if err != nil {
		_ = m.cg.Remove(m.cg.SessionPath(s.meta.UserID, s.meta.ID))
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	m.attach(s, c)
	return nil
}

func (m *Manager) attach(s *session, c *libcontainer.Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.box = c
	s.exec = &containerExecutor{c: c, uid: m.owner.UID, gid: m.owner.GID}
	m.sessions[s.meta.ID] = s
}

func (m *Manager) boxSpec(s *session) boxSpec {
	return boxSpec{
		id:         s.meta.ID,
		hostname:   s.meta.ID,
		rootfs:     m.layout.Rootfs(),
		cgroupPath: m.cg.SessionPath(s.meta.UserID, s.meta.ID),
		limits:     s.meta.Limits,
		swap:       m.swap,
		mounts: mounts.Mounts(mounts.Spec{
			Layout:   m.layout,
			UserID:   s.meta.UserID,
			Session:  s.dir,
			BaseEnv:  m.layout.BaseEnv(),
			Helper:   m.cfg.Helper,
			TmpBytes: s.meta.Limits.TmpMB * mib,
		}),
	}
}

// resolveLimits fills a request's unset limits from the defaults and caps
// the set ones at the maximums.
func (m *Manager) resolveLimits(req *api.Limits) (api.Limits, error) {
	l := m.cfg.DefaultLimits
	if req == nil {
		return l, nil
	}
	if req.CPUs < 0 || req.MemoryMB < 0 || req.Pids < 0 || req.TmpMB < 0 {
		return l, fmt.Errorf("%w: limits must not be negative", api.ErrInvalidArgument)
	}
	pick := func(v, max int64, cur *int64) {
		if v > 0 {
			*cur = min(v, max)
		}
	}
	if req.CPUs > 0 {
		l.CPUs = min(req.CPUs, m.cfg.MaxLimits.CPUs)
	}
	pick(req.MemoryMB, m.cfg.MaxLimits.MemoryMB, &l.MemoryMB)
	pick(req.Pids, m.cfg.MaxLimits.Pids, &l.Pids)
	pick(req.TmpMB, m.cfg.MaxLimits.TmpMB, &l.TmpMB)
	switch {
	case l.CPUs < 0.01:
		return l, fmt.Errorf("%w: limits.cpus must be at least 0.01", api.ErrInvalidArgument)
	case l.MemoryMB < 32:
		return l, fmt.Errorf("%w: limits.memory_mb must be at least 32", api.ErrInvalidArgument)
	case l.Pids < 8:
		return l, fmt.Errorf("%w: limits.pids must be at least 8", api.ErrInvalidArgument)
	case l.TmpMB < 1:
		return l, fmt.Errorf("%w: limits.tmp_mb must be at least 1", api.ErrInvalidArgument)
	}
	return l, nil
}

// quota is a user's limits: the daemon's, or their quota.json's.
type quota struct {
	MaxSessions        int
	MaxWorkspaceMB     int64
	MaxFilesPerSession int
}

// userQuota reads workspaces/user_<id>/quota.json (the design's format:
// {"limits": {"max_sessions": N, "max_workspace_size_mb": M,
// "max_files_per_session": F}}); fields it does not set keep the daemon's
// values.
func (m *Manager) userQuota(userID string) quota {
	q := quota{MaxSessions: m.cfg.MaxSessionsPerUser, MaxWorkspaceMB: m.cfg.MaxWorkspaceMB, MaxFilesPerSession: m.cfg.MaxFilesPerSession}
	data, err := os.ReadFile(m.layout.User(userID).QuotaFile())
	if err != nil {
		return q
	}
	var file struct {
		Limits struct {
			MaxSessions        *int   `json:"max_sessions"`
			MaxWorkspaceMB     *int64 `json:"max_workspace_size_mb"`
			MaxFilesPerSession *int   `json:"max_files_per_session"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		m.log.Warn("ignoring unreadable quota file", "user", userID, "err", err)
		return q
	}
	if file.Limits.MaxSessions != nil {
		q.MaxSessions = *file.Limits.MaxSessions
	}
	if file.Limits.MaxWorkspaceMB != nil {
		q.MaxWorkspaceMB = *file.Limits.MaxWorkspaceMB
	}
	if file.Limits.MaxFilesPerSession != nil {
		q.MaxFilesPerSession = *file.Limits.MaxFilesPerSession
	}
	return q
}

// Session statuses: a stopped session's sandbox died under the daemon
// (killed from outside); its files are intact, and the next daemon start
// gives it a new sandbox.
const (
	statusRunning = "running"
	statusStopped = "stopped"
)

func (s *session) status() string {
	if st, err := s.box.Status(); err == nil && st == libcontainer.Running {
		return statusRunning
	}
	return statusStopped
}

// lookup returns a live session.
func (m *Manager) lookup(id string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || s.box == nil || s.deleting {
		return nil, fmt.Errorf("%w: session %q", api.ErrNotFound, id)
	}
	return s, nil
}

// GetSession describes one session.
func (m *Manager) GetSession(_ context.Context, id string) (api.Session, error) {
	s, err := m.lookup(id)
	if err != nil {
		return api.Session{}, err
	}
	return s.meta.api(s.status()), nil
}

// ListSessions lists the live sessions, of one user when userID is set.
func (m *Manager) ListSessions(_ context.Context, userID string) ([]api.Session, error) {
	if userID != "" {
		if err := mounts.ValidateID("user_id", userID); err != nil {
			return nil, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.Session{}
	for _, s := range m.sessions {
		if s.box != nil && !s.deleting && (userID == "" || s.meta.UserID == userID) {
			out = append(out, s.meta.api(s.status()))
		}
	}
	slices.SortFunc(out, func(a, b api.Session) int {
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	return out, nil
}

// DeleteSession stops the session's sandbox, keeps its files of the listed
// kinds when asked, and removes everything else of it.
func (m *Manager) DeleteSession(ctx context.Context, id string, keepFiles bool) (api.DeleteSessionResult, error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	if !ok || s.box == nil || s.deleting {
		m.mu.Unlock()
		return api.DeleteSessionResult{}, fmt.Errorf("%w: session %q", api.ErrNotFound, id)
	}
	s.deleting = true
	m.mu.Unlock()

	kept, err := m.teardown(s, keepFiles)
	if err != nil {
		m.mu.Lock()
		s.deleting = false
		m.mu.Unlock()
		return api.DeleteSessionResult{}, err
	}
	m.mu.Lock()
	delete(m.sessions, id)
	m.mu.Unlock()
	if err := m.cg.RemoveUser(s.meta.UserID); err != nil {
		m.log.Warn("remove user cgroup", "user", s.meta.UserID, "err", err)
	}
	m.log.InfoContext(ctx, "session deleted", "session", id, "user", s.meta.UserID, "kept_files", len(kept))
	return api.DeleteSessionResult{ID: id, KeptFiles: kept}, nil
}

// teardown records the intent to delete, destroys the sandbox, keeps files
// and removes the session directory; each step can be redone, so a daemon
// that dies half-way finishes it on its next start.
func (m *Manager) teardown(s *session, keepFiles bool) ([]string, error) {
	meta := s.meta
	meta.Deleting = &deleteIntent{KeepFiles: keepFiles}
	if err := writeMeta(s.dir, meta); err != nil {
		return nil, err
	}
	if s.box != nil {
		if err := destroyContainer(s.box); err != nil {
			return nil, fmt.Errorf("session %q: %w", s.meta.ID, err)
		}
	}
	// Destroying the sandbox ended its background processes; their logs
	// are closed once they are collected.
	s.procs.wait()
	// libcontainer removed the session cgroup; this catches one whose
	// container state was already gone.
	if err := m.cg.Remove(m.cg.SessionPath(s.meta.UserID, s.meta.ID)); err != nil {
		return nil, fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	kept := []string{}
	if keepFiles {
		var err error
		kept, err = mounts.KeepFiles(s.dir.Files(), m.layout.User(s.meta.UserID).Outputs(), m.cfg.KeepExtensions)
		if err != nil {
			return kept, fmt.Errorf("session %q: %w", s.meta.ID, err)
		}
	}
	if err := os.RemoveAll(s.dir.Dir); err != nil {
		return kept, fmt.Errorf("session %q: remove directory: %w", s.meta.ID, err)
	}
	return kept, nil
}

// Exec runs one command in a session and returns its result, its output
// kept up to the cap.
func (m *Manager) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	stdout, stderr := newCappedBuffer(m.cfg.OutputLimit), newCappedBuffer(m.cfg.OutputLimit)
	res, err := m.execute(ctx, id, req, stdout, stderr)
	if err != nil {
		return res, err
	}
	res.Stdout, res.StdoutTruncated = stdout.Result()
	res.Stderr, res.StderrTruncated = stderr.Result()
	return res, nil
}

// ExecStream runs one command in a session like Exec, but hands its
// output to emit as it arrives instead of keeping it. emit is not called
// once ExecStream has returned; an error from it (the client went away)
// stops the output, and the cancelled ctx ends the command.
func (m *Manager) ExecStream(ctx context.Context, id string, req api.ExecRequest, emit func(api.ExecEvent) error) (api.ExecResult, error) {
	var mu sync.Mutex
	stdout := &eventWriter{mu: &mu, stream: api.EventStdout, emit: emit}
	stderr := &eventWriter{mu: &mu, stream: api.EventStderr, emit: emit}
	res, err := m.execute(ctx, id, req, stdout, stderr)
	if err != nil {
		return res, err
	}
	if err := errors.Join(stdout.flush(), stderr.flush()); err != nil {
		return res, err
	}
	return res, nil
}

// execute runs one command with its output going to stdout and stderr.
func (m *Manager) execute(ctx context.Context, id string, req api.ExecRequest, stdout, stderr io.Writer) (api.ExecResult, error) {
	s, err := m.lookup(id)
	if err != nil {
		return api.ExecResult{}, err
	}
	if s.status() != statusRunning {
		return api.ExecResult{}, fmt.Errorf("%w: session %q: its sandbox is not running (a daemon restart gives it a new one)", api.ErrUnavailable, id)
	}
	cmd, timeout, err := m.command(req)
	if err != nil {
		return api.ExecResult{}, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	cgPath := m.cg.SessionPath(s.meta.UserID, s.meta.ID)
	before, oomErr := m.cg.SessionStats(cgPath)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	exit, err := s.exec.Exec(runCtx, cmd)
	if errors.Is(err, ErrCwd) {
		return api.ExecResult{}, fmt.Errorf("%w: cwd %q: %w", api.ErrInvalidArgument, cmd.Cwd, err)
	}
	if err != nil {
		return api.ExecResult{}, fmt.Errorf("session %q: exec: %w", id, err)
	}
	res := api.ExecResult{
		ExitCode:   exit.Code,
		TimedOut:   exit.Cancelled && ctx.Err() == nil, // our deadline, not the caller's cancel
		DurationMS: time.Since(start).Milliseconds(),
	}
	if exit.Signal != 0 {
		res.Signal = unix.SignalName(exit.Signal)
	}
	if oomErr == nil {
		if after, err := m.cg.SessionStats(cgPath); err == nil && after.OOMKills > before.OOMKills {
			res.OOMKilled = true
		}
	}
	return res, nil
}

// command validates an exec request and turns it into a Command.
func (m *Manager) command(req api.ExecRequest) (Command, time.Duration, error) {
	invalid := func(format string, a ...any) (Command, time.Duration, error) {
		return Command{}, 0, fmt.Errorf("%w: "+format, append([]any{api.ErrInvalidArgument}, a...)...)
	}
	var args []string
	switch {
	case len(req.Argv) > 0 && req.Command != "":
		return invalid("set either argv or command, not both")
	case len(req.Argv) > 0:
		args = req.Argv
	case req.Command != "":
		args = []string{"/bin/sh", "-c", req.Command}
	default:
		return invalid("argv or command is required")
	}
	if args[0] == "" {
		return invalid("argv[0] is empty")
	}
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return invalid("arguments must not contain NUL bytes")
		}
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = mounts.WorkspaceDir
	}
	if strings.ContainsRune(cwd, 0) {
		return invalid("cwd must not contain NUL bytes")
	}
	if !path.IsAbs(cwd) {
		cwd = path.Join(mounts.WorkspaceDir, cwd)
	}
	cwd = path.Clean(cwd)

	env := map[string]string{
		"PATH":        strings.TrimPrefix(sandboxPath, "PATH="),
		"HOME":        mounts.WorkspaceDir,
		"USER":        "sandbox",
		"LOGNAME":     "sandbox",
		"LANG":        "C.UTF-8",
		"TMPDIR":      "/tmp",
		"VIRTUAL_ENV": mounts.VenvDir,
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return invalid("env name %q is not valid", k)
		}
		env[k] = v
	}
	cmd := Command{Args: args, Cwd: cwd}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	slices.Sort(cmd.Env)
	if req.Stdin != "" {
		cmd.Stdin = strings.NewReader(req.Stdin)
	}

	timeout := m.cfg.ExecTimeout
	switch {
	case req.TimeoutSec < 0:
		return invalid("timeout must not be negative")
	case req.TimeoutSec > 0:
		timeout = time.Duration(req.TimeoutSec * float64(time.Second))
	}
	timeout = min(timeout, m.cfg.MaxExecTimeout)
	return cmd, timeout, nil
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
