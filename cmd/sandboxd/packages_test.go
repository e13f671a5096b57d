package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/client"
	"github.com/sandboxd/sandboxd/sandbox/packages/wheeltest"
)

// sandboxdCLI runs `sandboxd ARGS...` on the suite's state, beside the
// running daemon, and returns its exit status and output.
func sandboxdCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, append([]string{"--state-dir", suite.state, "--config", suite.config}, args...)...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, "run sandboxd %q", args)
	return 0, string(out)
}

// TestPackagesThroughTheDaemon: wheels the test builds are added to the
// cache by `sandboxd packages add` beside the running daemon; an allowed
// one installs offline into a session through the API, a refused one is
// refused by the cache, the API and pip inside, naming the allow-list.
func TestPackagesThroughTheDaemon(t *testing.T) {
	setup(t)
	ctx := context.Background()
	list := filepath.Join(suite.state, "allowed_packages.txt")
	before, err := os.ReadFile(list)
	require.NoError(t, err, "the daemon wrote the default allow-list")
	t.Cleanup(func() { _ = os.WriteFile(list, before, 0o644) })
	require.NoError(t, os.WriteFile(list, append(before, "sbxd-ok>=1.0\nsbxd-dep\n"...), 0o644), "allow the test's packages")

	src := t.TempDir()
	ok := wheeltest.Write(t, src, wheeltest.Spec{Name: "sbxd-ok", Version: "1.0", Requires: []string{"sbxd-dep"}})
	dep := wheeltest.Write(t, src, wheeltest.Spec{Name: "sbxd-dep", Version: "2.0"})
	refused := wheeltest.Write(t, src, wheeltest.Spec{Name: "sbxd-refused", Version: "1.0"})

	code, out := sandboxdCLI(t, "packages", "add", ok, dep)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "added sbxd-ok 1.0")
	code, out = sandboxdCLI(t, "packages", "add", refused)
	assert.Equal(t, 1, code, "the cache refuses what the list refuses: %s", out)
	assert.Contains(t, out, "sbxd-refused is not on the package allow-list")
	code, out = sandboxdCLI(t, "packages", "ls")
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `sbxd-ok\s+1\.0\s+yes`, out, "listed, and shown to sessions")
	assert.NotContains(t, out, "sbxd-refused")

	s := createSession(t, "packager", "pkg1")
	c := client.New(suite.socket)
	res, err := c.InstallPackages(ctx, s.ID, []string{"sbxd-ok>=1"})
	require.NoError(t, err, "install an allowed package through the API")
	assert.Equal(t, []api.InstalledPackage{{Name: "sbxd-ok", Version: "1.0"}, {Name: "sbxd-dep", Version: "2.0", RequiredBy: "sbxd-ok 1.0"}}, res.Installed)
	got := execIn(t, s.ID, `python3 -c 'import sbxd_ok_mod, sbxd_dep_mod; print(sbxd_ok_mod.VERSION, sbxd_dep_mod.VERSION)'`, 30)
	assert.Equal(t, "1.0 2.0\n", got.Stdout, "installed offline into the session: %s", got.Stderr)

	status, data := call(t, http.MethodPost, "/v1/sessions/"+s.ID+"/packages", `{"requirements":["sbxd-refused"]}`)
	assert.Equal(t, http.StatusForbidden, status)
	var e api.Error
	require.NoError(t, json.Unmarshal(data, &e), "an envelope: %s", data)
	assert.Equal(t, api.CodePackageNotAllowed, e.Code)
	assert.Contains(t, e.Message, "sbxd-refused is not on the package allow-list")

	status, data = call(t, http.MethodPost, "/v1/sessions/"+s.ID+"/packages", `{"requirements":["sbxd-ok=="]}`)
	assert.Equal(t, http.StatusBadRequest, status, "a malformed requirement: %s", data)

	pip := execIn(t, s.ID, "pip install sbxd-refused", 60)
	assert.Equal(t, 1, pip.ExitCode, pip.Stdout)
	assert.Contains(t, pip.Stderr, "sbxd-refused is not on this sandbox's package allow-list", "pip inside names the allow-list")

	var streamed strings.Builder
	res, err = c.InstallPackagesStream(ctx, s.ID, []string{"sbxd-dep==2.0"}, func(ev api.ExecEvent) error {
		streamed.WriteString(ev.Data)
		return nil
	})
	require.NoError(t, err, "a streamed install")
	assert.Empty(t, res.Installed, "already there")
	assert.Len(t, res.Satisfied, 1)

	pkgs, err := c.ListPackages(ctx, s.ID)
	require.NoError(t, err)
	assert.Subset(t, pkgs.Packages, []api.Package{{Name: "sbxd-ok", Version: "1.0"}, {Name: "sbxd-dep", Version: "2.0"}})
	other := createSession(t, "packager", "pkg2")
	pkgs, err = c.ListPackages(ctx, other.ID)
	require.NoError(t, err)
	assert.NotContains(t, pkgs.Packages, api.Package{Name: "sbxd-ok", Version: "1.0"}, "another session has none of it")

	envs, err := c.ListEnvs(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, envs)
	current := envs[len(envs)-1]
	assert.True(t, current.Current)
	assert.Equal(t, pkgs.Env, current.ID, "sessions run on the current env")
	info, err := c.Info(ctx)
	require.NoError(t, err)
	require.NotNil(t, info.Env, "GET /v1 names the env")
	assert.Equal(t, current.ID, info.Env.ID)
}

// TestPackagesFetch: fetch runs pip on the host (here from a directory,
// as no index is reachable) and adds what it got.
func TestPackagesFetch(t *testing.T) {
	setup(t)
	wheeltest.HostPython(t)
	list := filepath.Join(suite.state, "allowed_packages.txt")
	before, err := os.ReadFile(list)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.WriteFile(list, before, 0o644) })
	require.NoError(t, os.WriteFile(list, append(before, "sbxd-fetched\n"...), 0o644))
	links := t.TempDir()
	wheeltest.Write(t, links, wheeltest.Spec{Name: "sbxd-fetched", Version: "3.0"})
	reqs := filepath.Join(t.TempDir(), "requirements.txt")
	require.NoError(t, os.WriteFile(reqs, []byte("sbxd-fetched\n"), 0o644))

	code, out := sandboxdCLI(t, "packages", "fetch", "-r", reqs, "--find-links", links)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "added sbxd-fetched 3.0")
	code, out = sandboxdCLI(t, "packages", "fetch")
	assert.Equal(t, 1, code, "fetch needs -r: %s", out)
}
