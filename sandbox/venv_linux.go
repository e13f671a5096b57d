package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
)

const (
	// baseEnvStamp marks a finished base venv; a directory without it is
	// a build that did not complete.
	baseEnvStamp = ".sandboxd-complete"
	// buildUser names the cgroup group of build sandboxes; the leading
	// underscore keeps it apart from every valid user id.
	buildUser    = "_build"
	buildTimeout = 10 * time.Minute
)

// defaultAllowedPackages is the design's allow-list, written when the state
// tree has none.
const defaultAllowedPackages = `# One requirement per line; installs of anything else are refused.
pandas>=2.0.0,<3.0.0
numpy>=1.24.0,<2.0.0
reportlab>=4.0.0
python-pptx>=0.6.0
openpyxl>=3.1.0
matplotlib>=3.7.0
requests>=2.31.0
`

func (m *Manager) baseEnvReady() bool {
	_, err := os.Stat(filepath.Join(m.layout.BaseEnv(), baseEnvStamp))
	return err == nil
}

// BuildBaseEnv makes the shared venv (python3 -m venv
// --system-site-packages) inside a throwaway sandbox in which the venv's
// directory is mounted at /opt/venv, so every path baked into it is the
// one sessions see. An existing venv is kept unless force is set; a
// replaced one is renamed aside, not removed, because running sessions
// still overlay it.
func (m *Manager) BuildBaseEnv(ctx context.Context, force bool) error {
	if m.baseEnvReady() && !force {
		return nil
	}
	if err := writeIfMissing(m.layout.AllowedPackages(), defaultAllowedPackages); err != nil {
		return err
	}
	building := m.layout.BaseEnv() + ".build"
	if err := os.RemoveAll(building); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if err := os.Mkdir(building, 0o755); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if err := os.Chown(building, m.envOwner.UID, m.envOwner.GID); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if err := m.runBuild(ctx, building); err != nil {
		_ = os.RemoveAll(building)
		return err
	}
	if err := os.WriteFile(filepath.Join(building, baseEnvStamp), nil, 0o644); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if _, err := os.Stat(m.layout.BaseEnv()); err == nil {
		aside := m.layout.BaseEnv() + ".old-" + time.Now().UTC().Format("20060102T150405")
		if err := os.Rename(m.layout.BaseEnv(), aside); err != nil {
			return fmt.Errorf("base env: %w", err)
		}
		m.log.Info("previous base env kept for running sessions", "path", aside)
	}
	if err := os.Rename(building, m.layout.BaseEnv()); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	m.log.Info("base env built", "path", m.layout.BaseEnv())
	return nil
}

func (m *Manager) runBuild(ctx context.Context, venv string) error {
	id := "env-build-" + newID(8)
	spec := boxSpec{
		id:         id,
		hostname:   "env-build",
		rootfs:     m.layout.Rootfs(),
		cgroupPath: m.cg.SessionPath(buildUser, id),
		limits:     m.cfg.MaxLimits,
		swap:       m.swap,
		mounts:     mounts.BuildMounts(m.layout.Identity(m.envOwner.UID), m.cfg.Helper, venv, m.cfg.MaxLimits.TmpMB*mib),
	}
	c, err := m.startContainer(spec)
	if err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	defer func() {
		if err := m.destroyContainer(c); err != nil {
			m.log.Warn("destroy build sandbox", "err", err)
		}
		_ = m.cg.RemoveUser(buildUser)
	}()
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	out := newCappedBuffer(64 << 10)
	st, err := c.State()
	if err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if err := m.cg.PrepareSession(spec.cgroupPath, st.InitProcessPid); err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	var tails sync.WaitGroup
	defer tails.Wait() // the build's cgroup, before the sandbox's destruction
	exec := &agentExecutor{socket: m.agentSocket(id), owner: m.envOwner, cg: m.cg, session: spec.cgroupPath, tails: &tails}
	// Group-writable (the users' shared group, not setgid): a session's
	// pip writes its own overlay layer, which needs write permission on
	// the base's directories as its own uid.
	exit, err := exec.Exec(ctx, launch{
		Args: []string{"/bin/sh", "-c", `"$0" -m venv --system-site-packages "$1" && chmod -R g+w "$1"`,
			m.cfg.Python, mounts.VenvDir},
		Env:    []string{"PATH=" + sandboxPath, "HOME=/tmp", "LANG=C.UTF-8"},
		Cwd:    "/tmp",
		Stdout: out,
		Stderr: out,
	})
	if err != nil {
		return fmt.Errorf("base env: %w", err)
	}
	if exit.Code != 0 {
		text, _ := out.Result()
		return fmt.Errorf("base env: %s -m venv exited with %d: %s", m.cfg.Python, exit.Code, text)
	}
	return nil
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
