package envs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

// hostRunner runs build steps on the host instead of in a sandbox, with
// an environment free of the caller's PIP_* settings, recording their
// names.
func hostRunner(home string, names *[]string) Runner {
	return func(ctx context.Context, s Step) ([]byte, error) {
		*names = append(*names, s.Name)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
		cmd.Env = wheeltest.CleanEnv(home)
		cmd.Stdin = bytes.NewReader(s.Stdin)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s%s", s.Name, err, stdout.String(), stderr.String())
		}
		return stdout.Bytes(), nil
	}
}

// run runs a command in the test venv and returns its exit code and
// combined output.
func run(t *testing.T, home string, stdin []byte, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = wheeltest.CleanEnv(home)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, "running %v", args)
	return 0, string(out)
}

// TestBuildAndInstallOffline builds a real venv from the host's python
// (steps run on the host, the venv at a temporary path instead of
// /opt/venv, the presented cache at its own path instead of /opt/wheels),
// then installs into it offline: what the list allows installs, through
// the shim, plain pip and the planned command; what it refuses does not,
// with the allow-list named; a wheel tampered with after planning is
// refused by pip's hash check.
func TestBuildAndInstallOffline(t *testing.T) {
	python := wheeltest.HostPython(t)
	if testing.Short() {
		t.Skip("builds a venv with pip (seconds)")
	}
	state := t.TempDir()
	home := filepath.Join(state, "home")
	require.NoError(t, os.Mkdir(home, 0o755))
	listPath := filepath.Join(state, "allowed_packages.txt")
	require.NoError(t, os.WriteFile(listPath, []byte("alpha\nbeta\neps\nzeta\ntheta\ngamma\n"), 0o644))
	cache, err := packages.Open(filepath.Join(state, "package_cache"), packages.NewAllowFile(listPath))
	require.NoError(t, err)
	src := t.TempDir()
	var files []string
	for _, w := range []wheeltest.Spec{
		{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0"}},
		{Name: "beta", Version: "1.0"},
		{Name: "beta", Version: "2.0"},
		{Name: "gamma", Version: "1.0"},
		{Name: "eps", Version: "1.0"},
		{Name: "zeta", Version: "1.0"},
		{Name: "theta", Version: "1.0"},
	} {
		files = append(files, wheeltest.Write(t, src, w))
	}
	_, err = cache.Add(files...)
	require.NoError(t, err)
	// Narrowed after the fact: the cache holds gamma and beta 2.0, which
	// sessions must not get.
	require.NoError(t, os.WriteFile(listPath, []byte("alpha\nbeta<2\neps\nzeta\ntheta\npython-pptx\n"), 0o644))
	presented, err := cache.Present()
	require.NoError(t, err)

	venv := filepath.Join(state, "venv")
	cfg := BuildConfig{Python: python, VenvDir: venv, WheelsDir: presented.Dir,
		Declared: []string{"numpy", "alpha", "gamma", "python-pptx"}}
	var steps []string
	m, err := Build(context.Background(), cfg, hostRunner(home, &steps), cache, "20250301T120000Z-0a1b2c3d", t0)
	require.NoError(t, err)
	assert.Equal(t, []string{"venv", "probe", "files", "install", "probe"}, steps)

	present := map[string]string{}
	for _, p := range m.Present {
		present[p.Name] = p.Version
	}
	assert.Equal(t, "1.0", present["alpha"], "a declared package the host lacks comes from the cache")
	if _, err := exec.Command(python, "-c", "import numpy").CombinedOutput(); err == nil {
		assert.Contains(t, present, "numpy", "the host's Debian numpy is seen through --system-site-packages")
	}
	assert.Equal(t, "1.0", m.Env.Packages["beta"].Version, "alpha's dependency came along")
	missing := map[string]string{}
	for _, ms := range m.Missing {
		missing[ms.Requirement] = ms.Reason
	}
	assert.Contains(t, missing["gamma"], "gamma is not on the package allow-list")
	assert.Contains(t, missing["python-pptx"], "no wheel in the package cache")

	conf, err := os.ReadFile(filepath.Join(venv, "pip.conf"))
	require.NoError(t, err)
	assert.Equal(t, string(packages.PipConf(presented.Dir)), string(conf))
	pip := filepath.Join(venv, "bin", "pip")
	vpython := filepath.Join(venv, "bin", "python")

	t.Run("the shim names the allow-list", func(t *testing.T) {
		code, out := run(t, home, nil, pip, "install", "gamma")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "gamma is not on this sandbox's package allow-list")
		assert.Contains(t, out, "Allowed packages: alpha, beta, eps, python-pptx, theta, zeta")

		code, out = run(t, home, nil, pip, "install", "-q", "beta==2.0")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "beta 2.0 is not allowed by this sandbox's package allow-list (it says beta<2)")

		if _, ok := m.Env.Packages["numpy"]; ok {
			code, out = run(t, home, nil, pip, "install", "numpy")
			assert.Equal(t, 0, code, "what the base has is left to pip, which says so: %s", out)
			assert.Contains(t, out, "Requirement already satisfied: numpy")
		}
	})

	t.Run("pip without the shim finds nothing refused", func(t *testing.T) {
		code, out := run(t, home, nil, vpython, "-m", "pip", "install", "gamma")
		assert.NotEqual(t, 0, code, out)
		assert.Contains(t, out, "No matching distribution found for gamma")
		code, out = run(t, home, nil, vpython, "-m", "pip", "install", "beta==2.0")
		assert.NotEqual(t, 0, code, out)
		assert.Contains(t, out, "No matching distribution found for beta==2.0")
	})

	t.Run("an allowed package installs through the shim, offline", func(t *testing.T) {
		code, out := run(t, home, nil, pip, "install", "eps")
		require.Equal(t, 0, code, out)
		code, out = run(t, home, nil, vpython, "-c", "import eps_mod; print(eps_mod.VERSION)")
		require.Equal(t, 0, code, out)
		assert.Equal(t, "1.0\n", out)
	})

	probeVenv := func(t *testing.T) Probe {
		t.Helper()
		args := ProbeArgs(vpython)
		code, out := run(t, home, nil, args...)
		require.Equal(t, 0, code, out)
		p, err := ParseProbe([]byte(out))
		require.NoError(t, err)
		return p
	}

	t.Run("a planned install runs with hashes, offline", func(t *testing.T) {
		plan, err := cache.Plan([]string{"zeta"}, probeVenv(t).Installed())
		require.NoError(t, err)
		code, out := run(t, home, plan.Requirements(), plan.Command(vpython, presented.Dir)...)
		require.Equal(t, 0, code, out)
		after := probeVenv(t)
		assert.Equal(t, "1.0", after.Packages["zeta"].Version)
		assert.Contains(t, after.Beyond(m.Env), Package{Name: "zeta", Version: "1.0"}, "the install shows beyond the base")
	})

	t.Run("a wheel tampered with after planning is refused by pip", func(t *testing.T) {
		plan, err := cache.Plan([]string{"theta"}, probeVenv(t).Installed())
		require.NoError(t, err)
		cached := filepath.Join(cache.Dir(), "wheels", "theta-1.0-py3-none-any.whl")
		other := wheeltest.Write(t, t.TempDir(), wheeltest.Spec{Name: "theta", Version: "1.0", Requires: []string{"evil"}})
		data, err := os.ReadFile(other)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(cached, 0o644))
		require.NoError(t, os.WriteFile(cached, data, 0o644)) // the presented hard link sees it too
		code, out := run(t, home, plan.Requirements(), plan.Command(vpython, presented.Dir)...)
		assert.NotEqual(t, 0, code, out)
		assert.Contains(t, strings.ToLower(out), "do not match the hashes")
		assert.NotContains(t, probeVenv(t).Packages, "theta")
	})
}
