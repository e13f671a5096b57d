package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/sandbox/packages"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

// designImports are the design's packages the host's Debian python3-*
// packages provide (python-pptx comes from the cache only).
const designImports = "pandas, numpy, openpyxl, reportlab, matplotlib, requests"

func TestSandboxPathsAreThePackagesOnes(t *testing.T) {
	assert.Equal(t, packages.VenvDir, mounts.VenvDir, "the venv the package library plans for is the one mounted")
	assert.Equal(t, packages.WheelsDir, mounts.WheelsDir, "the wheels the package library plans for are the ones mounted")
}

// TestCommandsReopenTheirPipes: pip reads the planned requirements from
// /dev/stdin, which is the command's own pipe opened again by name.
func TestCommandsReopenTheirPipes(t *testing.T) {
	s := startSession(t, "pipes", nil)
	res, err := env.m.Exec(context.Background(), s.ID, ExecRequest{
		Command: Command{Shell: "cat /dev/stdin; echo out > /dev/stdout; echo err > /dev/stderr"},
		Stdin:   "in\n",
	})
	require.NoError(t, err)
	got := asText(res)
	assert.Equal(t, 0, got.ExitCode, got.Stderr)
	assert.Equal(t, "in\nout\n", got.Stdout)
	assert.Equal(t, "err\n", got.Stderr)
}

// stock replaces the allow-list of e with list and adds the wheels to its
// cache (built by the test: pure-Python, offline), then presents them.
// The wheels are added under a list naming them all, as an operator may
// have added them before narrowing the list.
func stock(t *testing.T, e *testEnv, list string, specs ...wheeltest.Spec) {
	t.Helper()
	if len(specs) > 0 {
		src := t.TempDir()
		var files, names []string
		for _, s := range specs {
			files = append(files, wheeltest.Write(t, src, s))
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
		writeAllowList(t, e, strings.Join(names, "\n")+"\n")
		_, err := e.m.cache.Add(files...)
		require.NoError(t, err, "add the wheels to the cache")
	}
	writeAllowList(t, e, list)
	_, err := e.m.cache.Present()
	require.NoError(t, err, "present the cache")
}

// writeAllowList replaces e's allow-list, as an editor saving it would.
func writeAllowList(t *testing.T, e *testEnv, list string) {
	t.Helper()
	path := e.m.layout.AllowedPackages()
	require.NoError(t, os.WriteFile(path+".tmp", []byte(list), 0o644), "write the allow-list")
	require.NoError(t, os.Rename(path+".tmp", path), "replace the allow-list")
}

func TestBaseEnvHasTheDesignsPackages(t *testing.T) {
	requireRoot(t)
	if out, err := exec.Command(env.cfg.Python, "-c", "import "+designImports).CombinedOutput(); err != nil {
		t.Skipf("the host lacks the design's Debian packages (.ci/run installs python3-pandas, python3-numpy, python3-openpyxl, python3-reportlab, python3-matplotlib, python3-requests): %s", out)
	}
	ctx := context.Background()
	s := startSession(t, "office", nil)
	res := run(t, s.ID, "python3 -c 'import "+designImports+"'", 60)
	require.Equal(t, 0, res.ExitCode, "a fresh session imports the design's packages: %s", res.Stderr)

	script := `import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

df = pd.DataFrame({"month": ["Jan", "Feb", "Mar"], "sales": [10, 20, 15]})
df.to_excel("/workspace/report.xlsx", index=False, engine="openpyxl")
plt.plot(df["month"], df["sales"])
plt.savefig("/tmp/chart.png")
c = canvas.Canvas("/workspace/report.pdf", pagesize=A4)
c.drawString(72, 800, "Sales report")
c.drawImage("/tmp/chart.png", 72, 400, width=400, height=300)
c.save()
`
	made, err := env.m.Exec(ctx, s.ID, ExecRequest{
		Command: Command{Argv: []string{"python3", "-"}, Env: map[string]string{"MPLCONFIGDIR": "/tmp/mpl"}},
		Stdin:   script, Timeout: secs(120),
	})
	require.NoError(t, err, "run the report script")
	require.Equal(t, 0, made.ExitCode, "the script writes an .xlsx and a .pdf: %s", made.Stderr)

	del, err := env.m.DeleteSession(ctx, s.ID, true)
	require.NoError(t, err, "delete with keep_files")
	assert.Subset(t, del.Kept, []string{"report.xlsx", "report.pdf"}, "both are kept")
	outputs := env.outputsOf(t, s.UserID)
	for name, magic := range map[string]string{"report.xlsx": "PK", "report.pdf": "%PDF"} {
		data, err := os.ReadFile(filepath.Join(outputs, name))
		require.NoError(t, err, "read the kept %s", name)
		assert.True(t, strings.HasPrefix(string(data), magic), "%s is a real file of its kind", name)
	}

	info := env.m.Info(ctx)
	require.NotNil(t, info.Env, "Info names the base env")
	var present []string
	for _, p := range info.Env.Present {
		present = append(present, p.Name)
	}
	for _, name := range strings.Split(designImports, ", ") {
		assert.Contains(t, strings.ToLower(strings.Join(present, " ")), name, "Info lists %s as present", name)
	}
	for _, m := range info.Env.Missing {
		assert.NotEmpty(t, m.Reason, "a missing package says why: %s", m.Requirement)
	}
}

func TestBaseEnvDirectoriesAreGroupWritable(t *testing.T) {
	requireRoot(t)
	env.m.mu.Lock()
	dir := env.m.envs.Dir(env.m.current.ID)
	env.m.mu.Unlock()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n++
		assert.Equal(t, uint32(env.cfg.SandboxUID), st.Uid, "%s is the sandbox user's", p)
		assert.Equal(t, uint32(env.cfg.SandboxGID), st.Gid, "%s is the sandbox group's", p)
		assert.NotZero(t, fi.Mode().Perm()&0o020, "%s is group-writable", p)
		assert.Zero(t, fi.Mode()&os.ModeSetgid, "%s has no setgid bit", p)
		return nil
	})
	require.NoError(t, err, "walk the base env")
	assert.Greater(t, n, 10, "the venv has directories")
}

func TestPackageInstalls(t *testing.T) {
	e := isolated(t, nil)
	stock(t, e, "alpha\nbeta<2\neps\ndelta\nneeds-numpy\n",
		wheeltest.Spec{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0"}},
		wheeltest.Spec{Name: "beta", Version: "1.0"},
		wheeltest.Spec{Name: "beta", Version: "2.0"},
		wheeltest.Spec{Name: "gamma", Version: "1.0"},
		wheeltest.Spec{Name: "eps", Version: "1.0"},
		wheeltest.Spec{Name: "delta", Version: "1.0", Requires: []string{"zzz"}},
		wheeltest.Spec{Name: "needs-numpy", Version: "1.0", Requires: []string{"numpy>=1.0"}},
	)
	ctx := context.Background()
	a := e.session(t, "pkg-a", nil)
	b := e.session(t, "pkg-b", nil)
	imports := func(id, modules string) ran {
		t.Helper()
		return e.run(t, id, "python3 -c 'import "+modules+"'", 30)
	}

	t.Run("an allowed package installs offline with its dependency", func(t *testing.T) {
		res, err := e.m.InstallPackages(ctx, a.ID, []string{"alpha"})
		require.NoError(t, err, "install alpha")
		assert.Equal(t, []InstalledPackage{{Name: "alpha", Version: "1.0"}, {Name: "beta", Version: "1.0", RequiredBy: "alpha 1.0"}}, res.Installed)
		assert.Equal(t, a.Env, res.Env, "the result names the session's env")
		require.NotNil(t, res.Pip, "pip ran")
		assert.Equal(t, 0, res.Pip.ExitCode)
		assert.Contains(t, string(res.Pip.Stdout), "Successfully installed", "pip's output is returned")
		out := e.run(t, a.ID, `python3 -c 'import alpha_mod, beta_mod; print(alpha_mod.VERSION, beta_mod.VERSION)'`, 30)
		assert.Equal(t, "1.0 1.0\n", out.Stdout, "both import: %s", out.Stderr)
	})

	t.Run("a refused package is refused naming the allow-list", func(t *testing.T) {
		_, err := e.m.InstallPackages(ctx, a.ID, []string{"gamma"})
		require.ErrorIs(t, err, ErrPackageNotAllowed)
		assert.ErrorContains(t, err, "gamma is not on the package allow-list")
		assert.NotEqual(t, 0, imports(a.ID, "gamma_mod").ExitCode, "nothing was installed")
	})

	t.Run("version specifiers", func(t *testing.T) {
		_, err := e.m.InstallPackages(ctx, b.ID, []string{"beta==2.0"})
		require.ErrorIs(t, err, ErrPackageNotAllowed, "a version the list refuses")
		assert.ErrorContains(t, err, "beta 2.0 is not allowed: the allow-list's line 2 says beta<2")

		res, err := e.m.InstallPackages(ctx, b.ID, []string{"beta>=1,<3"})
		require.NoError(t, err, "a range the list narrows")
		assert.Equal(t, []InstalledPackage{{Name: "beta", Version: "1.0"}}, res.Installed, "the newest version both allow")

		res, err = e.m.InstallPackages(ctx, b.ID, []string{"beta<2"})
		require.NoError(t, err, "what the session has")
		assert.Empty(t, res.Installed, "nothing to install")
		assert.Nil(t, res.Pip, "pip did not run")
		assert.Equal(t, []SatisfiedPackage{{Name: "beta", Version: "1.0", Requirement: "beta<2"}}, res.Satisfied)

		_, err = e.m.InstallPackages(ctx, b.ID, []string{"eps>1"})
		require.ErrorIs(t, err, ErrConflict, "allowed, but not in the cache")
		assert.ErrorContains(t, err, "no wheel in the package cache satisfies it")
	})

	t.Run("dependencies", func(t *testing.T) {
		_, err := e.m.InstallPackages(ctx, b.ID, []string{"delta"})
		require.ErrorIs(t, err, ErrPackageNotAllowed, "a dependency the list refuses refuses the install")
		assert.ErrorContains(t, err, "zzz is not on the package allow-list")
		assert.ErrorContains(t, err, "required by delta 1.0")
		assert.NotEqual(t, 0, imports(b.ID, "delta_mod").ExitCode, "delta was not installed either")

		e.m.mu.Lock()
		_, hostNumpy := e.m.current.Env.Packages["numpy"]
		e.m.mu.Unlock()
		if !hostNumpy {
			t.Skip("the base env has no numpy (python3-numpy) to satisfy a dependency with")
		}
		res, err := e.m.InstallPackages(ctx, b.ID, []string{"needs-numpy"})
		require.NoError(t, err, "a dependency the base env meets is not installed, listed or not")
		assert.Equal(t, []InstalledPackage{{Name: "needs-numpy", Version: "1.0"}}, res.Installed)
		require.Len(t, res.Satisfied, 1)
		assert.Equal(t, "numpy", res.Satisfied[0].Name)
		assert.Equal(t, "needs-numpy 1.0", res.Satisfied[0].RequiredBy)
	})

	t.Run("malformed requirements", func(t *testing.T) {
		for _, reqs := range [][]string{nil, {"not a requirement!"}, {"beta==="}, {"-e ."}} {
			_, err := e.m.InstallPackages(ctx, b.ID, reqs)
			assert.ErrorIs(t, err, ErrInvalid, "%q", reqs)
		}
		_, err := e.m.InstallPackages(ctx, "no-such-session", []string{"eps"})
		assert.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("one session's installs are invisible to another", func(t *testing.T) {
		assert.NotEqual(t, 0, imports(b.ID, "alpha_mod").ExitCode, "b does not see a's alpha")
		pa, err := e.m.ListPackages(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, a.Env, pa.Env)
		assert.Subset(t, pa.Packages, []Package{{Name: "alpha", Version: "1.0"}, {Name: "beta", Version: "1.0"}}, "a has what it installed beyond the base")
		pb, err := e.m.ListPackages(ctx, b.ID)
		require.NoError(t, err)
		assert.NotContains(t, pb.Packages, Package{Name: "alpha", Version: "1.0"}, "b has not")
		assert.NoDirExists(t, filepath.Join(e.m.envs.Dir(a.Env), "lib", "python3", "site-packages", "alpha_mod"), "the base env is untouched")
		upper := e.treesOf(t, a).VenvUpper
		found, _ := filepath.Glob(filepath.Join(upper, "lib", "python3*", "site-packages", "alpha_mod"))
		assert.NotEmpty(t, found, "the install is in a's own layer, which counts against its disk")
	})

	t.Run("pip inside the session", func(t *testing.T) {
		res := e.run(t, b.ID, "pip install gamma", 60)
		assert.Equal(t, 1, res.ExitCode, res.Stdout)
		assert.Contains(t, res.Stderr, "gamma is not on this sandbox's package allow-list", "the pip wrapper names the allow-list")
		res = e.run(t, b.ID, "python3 -m pip install gamma", 60)
		assert.NotEqual(t, 0, res.ExitCode, "pip without the wrapper finds nothing refused")
		assert.Contains(t, res.Stderr, "No matching distribution found for gamma")
		res = e.run(t, b.ID, "pip install eps", 60)
		require.Equal(t, 0, res.ExitCode, "an allowed package installs offline through pip: %s", res.Stderr)
		assert.Equal(t, 0, imports(b.ID, "eps_mod").ExitCode)
		res = e.run(t, b.ID, "pip install --index-url https://pypi.org/simple gamma", 60)
		assert.NotEqual(t, 0, res.ExitCode, "another index does not help: there is no network and no wheel")
	})

	t.Run("a streamed install hands over pip's output", func(t *testing.T) {
		var out strings.Builder
		res, err := e.m.InstallPackagesStream(ctx, a.ID, []string{"eps"}, func(o Output) error {
			out.Write(o.Data)
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, []InstalledPackage{{Name: "eps", Version: "1.0"}}, res.Installed)
		assert.Contains(t, out.String(), "Successfully installed eps-1.0")
		require.NotNil(t, res.Pip)
		assert.Empty(t, res.Pip.Stdout, "the output went to emit")
	})

	t.Run("the wheels are read-only inside and follow the list", func(t *testing.T) {
		res := e.run(t, a.ID, "touch /opt/wheels/x; echo evil >> /opt/wheels/allowed_packages.txt", 10)
		assert.NotEqual(t, 0, res.ExitCode)
		assert.Contains(t, res.Stderr, "Read-only file system")
		ls := e.run(t, a.ID, "ls /opt/wheels", 10)
		assert.Contains(t, ls.Stdout, "eps-1.0-py3-none-any.whl")
		assert.NotContains(t, ls.Stdout, "gamma", "what the list refuses is not shown")
		writeAllowList(t, e, "alpha\nbeta<2\n")
		assert.Eventually(t, func() bool {
			return !strings.Contains(e.run(t, a.ID, "ls /opt/wheels; cat /opt/wheels/allowed_packages.txt", 10).Stdout, "eps")
		}, 4*allowListPoll, 100*time.Millisecond, "a narrower list reaches a running session by itself")
		_, err := e.m.InstallPackages(ctx, b.ID, []string{"delta"})
		assert.ErrorContains(t, err, "delta is not on the package allow-list", "and the API")
	})

	t.Run("a bad allow-list refuses installs naming its line", func(t *testing.T) {
		writeAllowList(t, e, "alpha\nbeta<<2\n")
		_, err := e.m.InstallPackages(ctx, b.ID, []string{"alpha"})
		require.ErrorIs(t, err, ErrUnavailable)
		assert.ErrorContains(t, err, "line 2")
	})
}

// TestHostileSessionProbe: a session that replaces its python answers the
// daemon's probe with garbage, endlessly or not at all; the daemon refuses
// its package calls and serves everyone else.
func TestHostileSessionProbe(t *testing.T) {
	e := isolated(t, nil)
	stock(t, e, "eps\n", wheeltest.Spec{Name: "eps", Version: "1.0"})
	ctx := context.Background()
	hostile := e.session(t, "hostile-probe", nil)
	other := e.session(t, "hostile-probe", nil)
	for _, script := range []string{
		"head -c 6000000 /dev/zero",
		`echo '{"probe": 1, "python": "3", "distributions": [["../../x", "1"], ["eps", "not a version"]]}'`,
		"exit 3",
	} {
		res := e.run(t, hostile.ID, fmt.Sprintf("rm -f /opt/venv/bin/python && printf '#!/bin/sh\\n%%s\\n' %q > /opt/venv/bin/python && chmod +x /opt/venv/bin/python", script), 10)
		require.Equal(t, 0, res.ExitCode, "replace python: %s", res.Stderr)
		_, err := e.m.ListPackages(ctx, hostile.ID)
		if err == nil {
			continue // the lie parsed: it only misleads the session itself
		}
		assert.ErrorIs(t, err, ErrConflict, "%s: refused as the session's own fault", script)
		_, err = e.m.InstallPackages(ctx, hostile.ID, []string{"eps"})
		assert.Error(t, err, "%s: no install on a probe that failed", script)
	}
	res, err := e.m.InstallPackages(ctx, other.ID, []string{"eps"})
	require.NoError(t, err, "another session is served")
	assert.Len(t, res.Installed, 1)
}

func TestEnvVersions(t *testing.T) {
	e := isolated(t, func(c *Config) { c.BasePackages = append(envs.DefaultDeclared(), "alpha") })
	ctx := context.Background()
	e.m.mu.Lock()
	v1 := e.m.current.ID
	e.m.mu.Unlock()
	// Which version a sandbox's /opt/venv is over, told by a file only
	// v1 has (its mount table names its layers by descriptor only).
	require.NoError(t, os.WriteFile(filepath.Join(e.m.envs.Dir(v1), "version-marker"), []byte(v1), 0o644), "mark v1")
	old := e.session(t, "versions", nil)
	require.Equal(t, v1, old.Env, "a session starts on the newest env")

	stock(t, e, "alpha\n", wheeltest.Spec{Name: "alpha", Version: "1.0"})
	require.NoError(t, e.m.BuildBaseEnv(ctx, false), "a build without force keeps the env")
	envList, err := e.m.ListEnvs(ctx)
	require.NoError(t, err)
	require.Len(t, envList, 1, "no new version without force")

	// An older version no session uses, as a daemon that died before
	// collecting it would leave.
	unused, err := e.m.envs.NewBuild(envList[0].Created.Add(-time.Hour))
	require.NoError(t, err)
	manifest, err := envs.NewManifest(unused, envList[0].Created.Add(-time.Hour), nil, envs.Probe{}, nil)
	require.NoError(t, err)
	require.NoError(t, e.m.envs.Commit(manifest))

	require.NoError(t, e.m.BuildBaseEnv(ctx, true), "rebuild")
	assert.NoDirExists(t, e.m.envs.Dir(unused), "a build removes the versions no session uses")
	e.m.mu.Lock()
	v2 := e.m.current.ID
	e.m.mu.Unlock()
	require.NotEqual(t, v1, v2, "a rebuild makes a new version")
	fresh := e.session(t, "versions", nil)
	assert.Equal(t, v2, fresh.Env, "new sessions get the new version")
	assert.Equal(t, 0, e.run(t, fresh.ID, "python3 -c 'import alpha_mod'", 30).ExitCode, "the new version has the declared package from the cache")
	assert.Equal(t, 1, e.run(t, fresh.ID, "test -e /opt/venv/version-marker", 10).ExitCode, "and is not over v1")

	assertOld := func(why string) {
		t.Helper()
		got, err := e.m.GetSession(ctx, old.ID)
		require.NoError(t, err)
		assert.Equal(t, v1, got.Env, why)
		assert.Equal(t, v1, e.run(t, old.ID, "cat /opt/venv/version-marker", 10).Stdout, "%s: its lower layer is its version's", why)
		assert.NotEqual(t, 0, e.run(t, old.ID, "python3 -c 'import alpha_mod'", 30).ExitCode, "%s: the new version's packages do not appear under it", why)
	}
	assertOld("a live session keeps its env across a rebuild")

	envList, err = e.m.ListEnvs(ctx)
	require.NoError(t, err)
	require.Len(t, envList, 2, "both versions are in use")
	assert.Equal(t, []string{v1, v2}, []string{envList[0].ID, envList[1].ID}, "oldest first")
	assert.False(t, envList[0].Current)
	assert.True(t, envList[1].Current)
	assert.Equal(t, 1, envList[0].Sessions)
	assert.Equal(t, 1, envList[1].Sessions)
	assert.Contains(t, envList[1].Present, Package{Name: "alpha", Version: "1.0"})
	assert.Contains(t, envList[1].Packages, Package{Name: "alpha", Version: "1.0"})

	e.restart(t)
	assertOld("an adopted session keeps its env")
	c, err := libcontainer.Load(e.m.layout.Containers(), old.ID)
	require.NoError(t, err)
	require.NoError(t, c.Signal(syscall.SIGKILL), "kill the old session's sandbox")
	e.restart(t)
	assertOld("a session restarted in a new sandbox keeps its env")
	assert.DirExists(t, e.m.envs.Dir(v1), "a version in use is not collected at start")

	_, err = e.m.DeleteSession(ctx, old.ID, false)
	require.NoError(t, err)
	assert.NoDirExists(t, e.m.envs.Dir(v1), "the old version goes with its last session")
	envList, err = e.m.ListEnvs(ctx)
	require.NoError(t, err)
	require.Len(t, envList, 1)
	assert.Equal(t, v2, envList[0].ID)
	assert.DirExists(t, e.m.envs.Dir(v2), "the newest stays")
}
