package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

const (
	// maxInstallError bounds the part of pip's stderr a failed install's
	// error carries.
	maxInstallError = 4 << 10
	// allowListPoll is how often the allow-list is checked for changes
	// that the presented wheels must follow.
	allowListPoll = 5 * time.Second
)

// OpenPackageCache opens the package cache of the state tree at stateDir
// and its allow-list (writing the default one if there is none), for
// tools that work beside a running daemon (sandboxd packages): the
// cache's own lock serialises its writers, and the daemon reads the index
// and the list afresh. Call Present after adding to it, so that running
// sessions see the new wheels.
func OpenPackageCache(stateDir string) (*packages.Cache, error) {
	l := mounts.Layout{Root: stateDir}
	if err := l.Init(); err != nil {
		return nil, err
	}
	cache, _, err := openCache(l)
	return cache, err
}

func openCache(l mounts.Layout) (*packages.Cache, *packages.AllowFile, error) {
	if err := writeIfMissing(l.AllowedPackages(), defaultAllowedPackages); err != nil {
		return nil, nil, fmt.Errorf("allow-list: %w", err)
	}
	allow := packages.NewAllowFile(l.AllowedPackages())
	cache, err := packages.Open(l.PackageCache(), allow)
	if err != nil {
		return nil, nil, err
	}
	return cache, allow, nil
}

// InstallPackages installs requirements (PEP 508, as pip takes them) into
// the session's own layer of /opt/venv: the plan (allow-list, dependencies,
// the cached wheel of each) is made by the daemon against what the
// session's environment has, then pip runs in the session as the sandbox
// user, offline, from the presented cache, checking each wheel's hash.
// A refusal of the allow-list is ErrPackageNotAllowed naming the package
// and the list's line; what the cache cannot satisfy is ErrConflict; a
// failed pip is ErrConflict with its last output.
func (m *Manager) InstallPackages(ctx context.Context, id string, requirements []string) (InstallResult, error) {
	stdout, stderr := newCappedBuffer(m.cfg.OutputLimit), newCappedBuffer(m.cfg.OutputLimit)
	res, err := m.install(ctx, id, requirements, stdout, stderr)
	if err != nil || res.Pip == nil {
		return res, err
	}
	res.Pip.Stdout, res.Pip.StdoutTruncated = stdout.Result()
	res.Pip.Stderr, res.Pip.StderrTruncated = stderr.Result()
	return res, nil
}

// InstallPackagesStream installs like InstallPackages but hands pip's
// output to emit as it arrives, as ExecStream does.
func (m *Manager) InstallPackagesStream(ctx context.Context, id string, requirements []string, emit func(Output) error) (InstallResult, error) {
	var mu sync.Mutex
	return m.install(ctx, id, requirements, &emitter{mu: &mu, stream: Stdout, emit: emit}, &emitter{mu: &mu, stream: Stderr, emit: emit})
}

func (m *Manager) install(ctx context.Context, id string, requirements []string, stdout, stderr io.Writer) (InstallResult, error) {
	if err := checkRequirements(requirements); err != nil {
		return InstallResult{}, err
	}
	s, done, err := m.acquire(id)
	if err != nil {
		return InstallResult{}, err
	}
	defer done()
	if !s.running() {
		return InstallResult{}, fmt.Errorf("%w: session %q: its sandbox is not running (a daemon restart gives it a new one)", ErrUnavailable, id)
	}
	ctx, release := s.bind(ctx)
	defer release()
	have, err := m.probeSession(ctx, s)
	if err != nil {
		return InstallResult{}, err
	}
	plan, err := m.cache.Plan(requirements, have.Installed())
	if err != nil {
		return InstallResult{}, packageError(id, err)
	}
	res := InstallResult{Env: s.meta.Env, Installed: []InstalledPackage{}, Satisfied: []SatisfiedPackage{}}
	for _, p := range plan.Satisfied {
		res.Satisfied = append(res.Satisfied, SatisfiedPackage{Name: p.Name, Version: p.Version, Requirement: p.Requirement, RequiredBy: p.RequiredBy})
	}
	argv := plan.Command(packages.VenvPython, packages.WheelsDir)
	if argv == nil {
		return res, nil
	}
	l, err := checkCommand(Command{Argv: argv})
	if err != nil {
		return InstallResult{}, err
	}
	l.Stdin = bytes.NewReader(plan.Requirements())
	tail := newTailBuffer(maxInstallError)
	l.Stdout, l.Stderr = stdout, io.MultiWriter(stderr, tail)
	runCtx, cancel := context.WithTimeout(ctx, m.cfg.MaxExecTimeout)
	defer cancel()
	start := time.Now()
	exit, err := s.exec.Exec(runCtx, l)
	if err != nil {
		return InstallResult{}, startError(id, l, err)
	}
	pip := ExecResult{ExitCode: exit.Code, TimedOut: exit.Cancelled && ctx.Err() == nil, OOMKilled: exit.OOMKilled,
		Duration: time.Since(start), CPU: exit.CPU, PeakMemory: exit.PeakMemory}
	switch {
	case exit.Cancelled && ctx.Err() != nil:
		return InstallResult{}, fmt.Errorf("session %q: install: %w", id, context.Cause(ctx))
	case exit.Cancelled:
		return InstallResult{}, fmt.Errorf("%w: session %q: pip install did not finish within %s", ErrConflict, id, m.cfg.MaxExecTimeout)
	case exit.OOMKilled:
		return InstallResult{}, fmt.Errorf("%w: session %q: pip install ran out of the session's memory", ErrConflict, id)
	case exit.Code != 0:
		return InstallResult{}, fmt.Errorf("%w: session %q: pip install exited with %d: %s", ErrConflict, id, exit.Code, tail.String())
	}
	for _, p := range plan.Install {
		res.Installed = append(res.Installed, InstalledPackage{Name: p.Name, Version: p.Version, RequiredBy: p.RequiredBy})
	}
	res.Pip = &pip
	m.log.InfoContext(ctx, "packages installed", "session", id, "user", s.meta.UserID, "installed", len(res.Installed))
	return res, nil
}

// checkRequirements refuses a malformed request before the session is
// asked anything; Plan takes the requirements apart again.
func checkRequirements(requirements []string) error {
	switch {
	case len(requirements) == 0:
		return fmt.Errorf("%w: requirements: at least one is needed", ErrInvalid)
	case len(requirements) > packages.MaxRequirements:
		return fmt.Errorf("%w: requirements: more than %d", ErrInvalid, packages.MaxRequirements)
	}
	for _, r := range requirements {
		if _, err := pyreq.ParseRequirement(r); err != nil {
			return fmt.Errorf("%w: requirements: %w", ErrInvalid, err)
		}
	}
	return nil
}

// packageError gives a planning failure its kind.
func packageError(id string, err error) error {
	switch {
	case errors.Is(err, packages.ErrAllowList), errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: packages cannot be installed until the allow-list is fixed: %w", ErrUnavailable, err)
	case errors.Is(err, packages.ErrNotAllowed):
		return fmt.Errorf("%w: session %q: %w", ErrPackageNotAllowed, id, err)
	case errors.Is(err, packages.ErrBadRequest), errors.Is(err, pyreq.ErrRequirement):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, packages.ErrUnavailable):
		return fmt.Errorf("%w: session %q: %w", ErrConflict, id, err)
	}
	return fmt.Errorf("session %q: install: %w", id, err)
}

// probeSession asks the session's python what it has. Its answer comes
// from the sandbox and is bounded and checked as such (envs.ParseProbe);
// a session that lies about itself only misleads its own installs, which
// the presented cache still confines to what the allow-list allows.
func (m *Manager) probeSession(ctx context.Context, s *session) (envs.Probe, error) {
	l, err := checkCommand(Command{Argv: envs.ProbeArgs(packages.VenvPython)})
	if err != nil {
		return envs.Probe{}, err
	}
	stdout, stderr := newCappedBuffer(envs.MaxProbeOutput+1), newTailBuffer(maxInstallError)
	l.Stdout, l.Stderr = stdout, stderr
	ctx, cancel := context.WithTimeout(ctx, m.cfg.MaxExecTimeout)
	defer cancel()
	exit, err := s.exec.Exec(ctx, l)
	if err != nil {
		return envs.Probe{}, startError(s.meta.ID, l, err)
	}
	if exit.Code != 0 || exit.Cancelled {
		return envs.Probe{}, fmt.Errorf("%w: session %q: its python cannot list its packages (exit %d): %s", ErrConflict, s.meta.ID, exit.Code, stderr.String())
	}
	out, _ := stdout.Result()
	p, err := envs.ParseProbe(out)
	if err != nil {
		return envs.Probe{}, fmt.Errorf("%w: session %q: %w", ErrConflict, s.meta.ID, err)
	}
	return p, nil
}

// ListPackages lists what the session has beyond its base environment.
func (m *Manager) ListPackages(ctx context.Context, id string) (SessionPackages, error) {
	s, done, err := m.acquire(id)
	if err != nil {
		return SessionPackages{}, err
	}
	defer done()
	if !s.running() {
		return SessionPackages{}, fmt.Errorf("%w: session %q: its sandbox is not running (a daemon restart gives it a new one)", ErrUnavailable, id)
	}
	base, err := m.envs.Manifest(s.meta.Env)
	if err != nil {
		return SessionPackages{}, fmt.Errorf("session %q: base env %s: %w", id, s.meta.Env, err)
	}
	ctx, release := s.bind(ctx)
	defer release()
	have, err := m.probeSession(ctx, s)
	if err != nil {
		return SessionPackages{}, err
	}
	out := SessionPackages{Env: s.meta.Env, Packages: []Package{}}
	for _, p := range have.Beyond(base.Env) {
		out.Packages = append(out.Packages, Package{Name: p.Name, Version: p.Version})
	}
	return out, nil
}

// ListEnvs lists the versions of the base environment, oldest first, with
// the sessions on each. An unreadable manifest is left out and logged.
func (m *Manager) ListEnvs(context.Context) ([]Env, error) {
	vs, err := m.envs.Versions()
	if err != nil {
		m.log.Warn("base envs", "err", err)
	}
	m.mu.Lock()
	current := m.current.ID
	used := m.envUse()
	m.mu.Unlock()
	out := make([]Env, 0, len(vs))
	for _, v := range vs {
		out = append(out, envOf(v, v.ID == current, used[v.ID]))
	}
	return out, nil
}

// envUse counts the sessions on each version; m.mu is held.
func (m *Manager) envUse() map[string]int {
	used := map[string]int{}
	for _, s := range m.sessions {
		used[s.meta.Env]++
	}
	return used
}

func envOf(v envs.Manifest, current bool, sessions int) Env {
	e := Env{
		ID: v.ID, Created: v.Created, Python: v.Env.Python, Current: current, Sessions: sessions,
		Declared: v.Declared, Present: []Package{}, Missing: []MissingPackage{}, Packages: []Package{},
	}
	for _, p := range v.Present {
		e.Present = append(e.Present, Package{Name: p.Name, Version: p.Version})
	}
	for _, p := range v.Missing {
		e.Missing = append(e.Missing, MissingPackage{Requirement: p.Requirement, Found: p.Found, Reason: p.Reason})
	}
	for _, p := range v.Env.Packages {
		e.Packages = append(e.Packages, Package{Name: p.Name, Version: p.Version})
	}
	sort.Slice(e.Packages, func(i, j int) bool { return pyreq.Normalize(e.Packages[i].Name) < pyreq.Normalize(e.Packages[j].Name) })
	return e
}

// currentEnv is the version new sessions get, or nil before any is
// built; m.mu is held.
func (m *Manager) currentEnv() *Env {
	if m.current.ID == "" {
		return nil
	}
	e := envOf(m.current, true, m.envUse()[m.current.ID])
	return &e
}

// watchAllowList presents the cache again whenever the allow-list
// changes, so a narrower list reaches running sessions without an
// install through the API. It ends when stop is closed.
func (m *Manager) watchAllowList(stop <-chan struct{}) {
	ticker := time.NewTicker(allowListPoll)
	defer ticker.Stop()
	var last *packages.AllowList
	var lastErr string
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		l, err := m.allow.Load()
		if err != nil {
			if err.Error() != lastErr {
				m.log.Error("allow-list unreadable: installs are refused until it is fixed", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if l == last {
			continue
		}
		if p, err := m.cache.Present(); err != nil {
			m.log.Error("present the package cache", "err", err)
		} else {
			last = l
			if len(p.Tampered) > 0 {
				m.log.Error("cached wheels fail their hash check and are withheld", "wheels", p.Tampered)
			}
		}
	}
}

// tailBuffer keeps the last bytes written to it, for an error message.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{limit: limit} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.limit {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.limit:]...)
	}
	return len(p), nil
}

// String is what was kept, as valid UTF-8 and without surrounding white
// space.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(strings.ToValidUTF8(string(t.buf), "\uFFFD"))
}
