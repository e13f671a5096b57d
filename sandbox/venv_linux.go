package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
)

const (
	// buildUser names the cgroup group of build sandboxes; the leading
	// underscore keeps it apart from every valid user id.
	buildUser    = "_build"
	buildTimeout = 10 * time.Minute
	// maxStepErrors bounds the stderr of a build step kept for its error.
	maxStepErrors = 64 << 10
)

// defaultAllowedPackages is the allow-list written when the state tree has
// none: the design's packages, with floors lowered to what Debian 12
// ships, since the base env takes them from there.
const defaultAllowedPackages = `# sandboxd's package allow-list: one PEP 440 requirement per line, e.g.
# "pandas>=2.0.0,<3.0.0". Sessions install only packages (and versions)
# listed here, and only from the local package cache (sandboxd packages
# add / fetch). What the base environment already has is never refused.
# A dependency of an allowed package must be listed too, unless the
# environment already has a version it accepts.
#
# The design asks for pandas>=2.0.0, reportlab>=4.0.0, openpyxl>=3.1.0,
# matplotlib>=3.7.0 and requests>=2.31.0; the floors below are those of
# Debian 12's python3-* packages, which the base environment is built
# from, so that a wheel of the version Debian ships may be cached too.
pandas>=1.5.3,<3.0.0
numpy>=1.24.0,<2.0.0
reportlab>=3.6.12
python-pptx>=0.6.21
openpyxl>=3.0.9
matplotlib>=3.6.3
requests>=2.28.1
# python-pptx 1.0 needs typing_extensions>=4.9, newer than Debian 12's.
typing-extensions>=4.9.0
`

// BuildBaseEnv builds a new version of the base environment when there is
// none yet, or always with force: a venv made with the host's python
// (--system-site-packages, so the host's Debian python3-* packages are in
// it), with the pip configuration and wrapper that install from the
// presented cache only, and the declared packages the host lacks
// installed from the cache. Each step runs inside a throwaway sandbox in
// which the new version's directory is mounted at /opt/venv, so every
// path baked into it is the one sessions see. Running sessions keep the
// version they started on; new ones get the new version; versions no
// session uses any more are removed.
func (m *Manager) BuildBaseEnv(ctx context.Context, force bool) error {
	m.envBuild.Lock()
	defer m.envBuild.Unlock()
	if !force {
		if _, err := m.envs.Newest(); err == nil {
			return nil
		}
	}
	if _, err := m.cache.Present(); err != nil {
		// The build goes on: the declared packages the cache would have
		// given are listed as missing, with this reason.
		m.log.Warn("package cache not presented", "err", err)
	}
	now := time.Now()
	id, err := m.envs.NewBuild(now)
	if err != nil {
		return err
	}
	dir := m.envs.BuildDir(id)
	if err := os.Chown(dir, m.envOwner.UID, m.envOwner.GID); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("env %s: %w", id, err)
	}
	manifest, err := m.buildEnv(ctx, id, now)
	if err == nil {
		err = m.envs.Commit(manifest)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	m.mu.Lock()
	m.current = manifest
	m.mu.Unlock()
	var missing []string
	for _, p := range manifest.Missing {
		missing = append(missing, p.Requirement)
	}
	m.log.Info("base env built", "env", id, "path", m.envs.Dir(id), "missing", missing)
	m.collectEnvsLocked()
	return nil
}

// buildEnv runs envs.Build in a build sandbox, then makes the venv's
// directories group-writable for the sandbox group (no setgid bit), so
// that a session's overlay can copy up and replace what it holds.
func (m *Manager) buildEnv(ctx context.Context, id string, now time.Time) (envs.Manifest, error) {
	boxID := "env-build-" + newID(8)
	spec := boxSpec{
		id:         boxID,
		hostname:   "env-build",
		rootfs:     m.layout.Rootfs(),
		cgroupPath: m.cg.SessionPath(buildUser, boxID),
		limits:     m.cfg.MaxLimits,
		swap:       m.swap,
		mounts:     mounts.BuildMounts(m.layout.Identity(m.envOwner.UID), m.envs.BuildDir(id), m.cache.PresentedDir(), m.cfg.MaxLimits.TmpMB*mib),
	}
	c, err := m.startContainer(spec)
	if err != nil {
		return envs.Manifest{}, fmt.Errorf("env %s: %w", id, err)
	}
	defer func() {
		if err := m.destroyContainer(c); err != nil {
			m.log.Warn("destroy build sandbox", "err", err)
		}
		m.awaitUserCgroupRemoved(buildUser)
	}()
	st, err := c.State()
	if err != nil {
		return envs.Manifest{}, fmt.Errorf("env %s: %w", id, err)
	}
	if err := m.cg.PrepareSession(spec.cgroupPath, st.InitProcessPid); err != nil {
		return envs.Manifest{}, fmt.Errorf("env %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	var tails sync.WaitGroup
	defer tails.Wait() // the build's cgroups, before the sandbox's destruction
	run := stepRunner(&agentExecutor{socket: m.agentSocket(boxID), owner: m.envOwner, cg: m.cg, session: spec.cgroupPath, tails: &tails})
	cfg := envs.BuildConfig{Python: m.cfg.Python, VenvDir: packages.VenvDir, WheelsDir: packages.WheelsDir, Declared: m.cfg.BasePackages}
	manifest, err := envs.Build(ctx, cfg, run, m.cache, id, now)
	if err != nil {
		return envs.Manifest{}, err
	}
	if _, err := run(ctx, groupWritableStep(m.cfg.Python)); err != nil {
		return envs.Manifest{}, fmt.Errorf("env build %s: %w", id, err)
	}
	return manifest, nil
}

// stepRunner runs build steps through exec as the sandbox user: stdout
// (bounded as a probe's) is the step's answer, stderr goes into the error
// of a step that fails.
func stepRunner(exec Executor) envs.Runner {
	return func(ctx context.Context, s envs.Step) ([]byte, error) {
		stdout, stderr := newCappedBuffer(envs.MaxProbeOutput), newCappedBuffer(maxStepErrors)
		l := launch{
			Args:   s.Args,
			Env:    []string{"PATH=" + sandboxPath, "HOME=/tmp", "LANG=C.UTF-8"},
			Cwd:    "/tmp",
			Stdout: stdout,
			Stderr: stderr,
		}
		if s.Stdin != nil {
			l.Stdin = bytes.NewReader(s.Stdin)
		}
		exit, err := exec.Exec(ctx, l)
		out, _ := stdout.Result()
		if err != nil {
			return out, fmt.Errorf("step %s: %w", s.Name, err)
		}
		if exit.Code != 0 || exit.Cancelled {
			text, _ := stderr.Result()
			return out, fmt.Errorf("step %s: %s exited with %d: %s", s.Name, s.Args[0], exit.Code, bytes.TrimSpace(text))
		}
		return out, nil
	}
}

// groupWritableScript adds group write to every directory of the venv
// (os.walk follows no symlink) and clears setgid, which the sandbox user
// may do to what it owns.
const groupWritableScript = `import os, stat, sys
for d, _, _ in os.walk(sys.argv[1]):
    mode = stat.S_IMODE(os.lstat(d).st_mode)
    os.chmod(d, (mode | stat.S_IRWXG) & ~stat.S_ISGID)
`

func groupWritableStep(python string) envs.Step {
	return envs.Step{Name: "permissions", Args: []string{python, "-I", "-c", groupWritableScript, packages.VenvDir}}
}

// collectEnvs removes the versions of the base environment that are not
// the newest and that no session uses (being created, live or broken).
// It skips when a build runs: the build collects when it ends.
func (m *Manager) collectEnvs() {
	if !m.envBuild.TryLock() {
		return
	}
	defer m.envBuild.Unlock()
	m.collectEnvsLocked()
}

// collectEnvsLocked is collectEnvs for a caller holding envBuild.
func (m *Manager) collectEnvsLocked() {
	m.mu.Lock()
	inUse := map[string]bool{}
	for _, s := range m.sessions {
		inUse[s.meta.Env] = true
	}
	m.mu.Unlock()
	removed, err := m.envs.GC(inUse)
	for _, id := range removed {
		m.log.Info("unused base env removed", "env", id)
	}
	if err != nil {
		m.log.Warn("remove unused base envs", "err", err)
	}
	if !inUse[""] {
		legacy := m.envDir("")
		if _, err := os.Lstat(legacy); err == nil {
			if err := os.RemoveAll(legacy); err != nil {
				m.log.Warn("remove the legacy base env", "err", err)
			} else {
				m.log.Info("unused legacy base env removed", "path", legacy)
			}
		}
	}
}

// legacyEnv is the one base environment of daemons from before versioned
// environments; their sessions (no env in session.json) keep it as their
// lower layer for life, and it goes with the last of them.
const legacyEnv = "base"

// envDir is the directory of base environment version id; "" is the
// legacy one.
func (m *Manager) envDir(id string) string {
	if id == "" {
		return filepath.Join(m.layout.Envs(), legacyEnv)
	}
	return m.envs.Dir(id)
}

// loadEnvs takes the newest version as the one new sessions get; with
// none built yet, sessions cannot be created until one is. A manifest
// that cannot be read is logged, and the readable versions serve.
func (m *Manager) loadEnvs() {
	vs, err := m.envs.Versions()
	if err != nil {
		m.log.Warn("base envs", "err", err)
	}
	if len(vs) == 0 {
		return
	}
	m.mu.Lock()
	m.current = vs[len(vs)-1]
	m.mu.Unlock()
}

func writeIfMissing(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
