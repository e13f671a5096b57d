package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/sandbox"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sandboxd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o644), "write config file")
	return p
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	require.NoError(t, c.Validate(), "the compiled-in defaults validate")
	assert.Equal(t, "/var/lib/sandboxd", c.StateDir, "state dir")
	assert.Equal(t, "/run/sandboxd.sock", c.Socket, "socket")
	assert.Equal(t, Limits{CPUs: 0.5, MemoryMB: 512, Pids: 50, TmpMB: 100}, c.Limits.Default, "design's default limits")
	mode, err := c.SocketFileMode()
	require.NoError(t, err, "default socket mode parses")
	assert.Equal(t, os.FileMode(0o660), mode, "socket mode")
}

func TestLoadOverlaysOnlyTheKeysSet(t *testing.T) {
	p := writeConfig(t, `
quota:
  max_sessions: 2
exec:
  timeout_sec: 5
limits:
  default:
    memory_mb: 256
keep_extensions: [".csv"]
`)
	c := Default()
	require.NoError(t, c.Load(p), "load")
	require.NoError(t, c.Validate(), "validate")

	want := Default()
	want.Quota.MaxSessions = 2
	want.Exec.TimeoutSec = 5
	want.Limits.Default.MemoryMB = 256
	want.KeepExtensions = []string{".csv"}
	assert.Equal(t, want, c, "only the keys in the file change; nested siblings keep their defaults")
}

func TestLoadEmptyFileKeepsDefaults(t *testing.T) {
	c := Default()
	require.NoError(t, c.Load(writeConfig(t, "# nothing set\n")), "an empty file loads")
	assert.Equal(t, Default(), c, "an empty file changes nothing")
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // part of the error message
	}{
		{"misspelt key", "quota:\n  max_session: 2\n", "max_session"},
		{"unknown top-level key", "colour: red\n", "colour"},
		{"wrong type", "quota:\n  max_sessions: many\n", "many"},
		{"not a mapping", "- a\n- b\n", "sandboxd.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			err := c.Load(writeConfig(t, tc.yaml))
			require.Error(t, err, "load must fail")
			assert.Contains(t, err.Error(), tc.want, "the error names the problem")
		})
	}
	t.Run("missing file", func(t *testing.T) {
		c := Default()
		err := c.Load(filepath.Join(t.TempDir(), "nope.yaml"))
		require.Error(t, err, "a missing file is an error")
		assert.ErrorIs(t, err, os.ErrNotExist, "the cause is kept")
	})
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero default cpus", func(c *Config) { c.Limits.Default.CPUs = 0 }, false},
		{"negative default memory", func(c *Config) { c.Limits.Default.MemoryMB = -1 }, false},
		{"default pids above max", func(c *Config) { c.Limits.Default.Pids = c.Limits.Max.Pids + 1 }, false},
		{"default tmp equal to max", func(c *Config) { c.Limits.Default.TmpMB = c.Limits.Max.TmpMB }, true},
		{"zero exec timeout", func(c *Config) { c.Exec.TimeoutSec = 0 }, false},
		{"max timeout below timeout", func(c *Config) { c.Exec.MaxTimeoutSec = c.Exec.TimeoutSec - 1 }, false},
		{"zero output limit", func(c *Config) { c.Exec.OutputLimitBytes = 0 }, false},
		{"sandbox uid root", func(c *Config) { c.SandboxUID = 0 }, false},
		{"sandbox gid root", func(c *Config) { c.SandboxGID = 0 }, false},
		{"socket mode not octal", func(c *Config) { c.SocketMode = "rw-rw----" }, false},
		{"socket mode too large", func(c *Config) { c.SocketMode = "1777" }, false},
		{"socket mode 0600", func(c *Config) { c.SocketMode = "0600" }, true},
		{"metrics on TCP", func(c *Config) { c.MetricsListen = "127.0.0.1:9464" }, true},
		{"metrics on all addresses", func(c *Config) { c.MetricsListen = ":9464" }, true},
		{"metrics address without port", func(c *Config) { c.MetricsListen = "127.0.0.1" }, false},
		{"metrics address with empty port", func(c *Config) { c.MetricsListen = "127.0.0.1:" }, false},
		{"no per-session metrics cap", func(c *Config) { c.MetricsPerSessionMax = 0 }, false},
		{"base package not a requirement", func(c *Config) { c.BasePackages = []string{"pandas>=>2"} }, false},
		{"no base packages", func(c *Config) { c.BasePackages = nil }, true},
		{"no ready sandboxes", func(c *Config) { c.ReadySandboxes = 0 }, true},
		{"negative ready sandboxes", func(c *Config) { c.ReadySandboxes = -1 }, false},
		{"too many ready sandboxes", func(c *Config) { c.ReadySandboxes = maxReadySandboxes + 1 }, false},
		{"quota mode project", func(c *Config) { c.Quota.Mode = "project" }, true},
		{"quota mode unknown", func(c *Config) { c.Quota.Mode = "xfs" }, false},
		{"no disk budget", func(c *Config) { c.Quota.MaxWorkspaceSizeMB = 0 }, false},
		{"session disk above the budget", func(c *Config) { c.Quota.SessionDiskMB = c.Quota.MaxWorkspaceSizeMB + 1 }, false},
		{"no files per session", func(c *Config) { c.Files.MaxFilesPerSession = 0 }, false},
		{"negative idle time", func(c *Config) { c.Quota.IdleFreezeAfter = -time.Second }, false},
		{"timers off", func(c *Config) {
			c.Quota.MaxSessionDurationHours, c.Quota.IdleFreezeAfter, c.Quota.IdleDeleteAfter = 0, 0, 0
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			err := c.Validate()
			if tc.ok {
				assert.NoError(t, err, "valid configuration")
			} else {
				assert.Error(t, err, "invalid configuration must be refused")
			}
		})
	}
}

func TestValidateMakesPathsAbsolute(t *testing.T) {
	c := Default()
	c.StateDir, c.Socket = "var/state", "var/run/sandboxd.sock"
	require.NoError(t, c.Validate(), "validate")
	wd, err := os.Getwd()
	require.NoError(t, err, "getwd")
	assert.Equal(t, filepath.Join(wd, "var/state"), c.StateDir, "state dir is absolute")
	assert.Equal(t, filepath.Join(wd, "var/run/sandboxd.sock"), c.Socket, "socket is absolute")
}

func TestSandboxConfig(t *testing.T) {
	c := Default()
	c.Exec.TimeoutSec = 1.5
	c.Quota.MaxSessions = 3
	sc := c.Sandbox("/usr/sbin/sandboxd", "1.2.3")
	assert.Equal(t, "/usr/sbin/sandboxd", sc.Helper, "helper")
	assert.Equal(t, "1.2.3", sc.Version, "version")
	assert.Equal(t, 1500*time.Millisecond, sc.ExecTimeout, "fractional seconds convert")
	assert.Equal(t, 600*time.Second, sc.MaxExecTimeout, "max exec timeout")
	assert.Equal(t, 3, sc.MaxSessionsPerUser, "max sessions per user")
	assert.Equal(t, int64(1024), sc.MaxWorkspaceMB, "workspace quota")
	assert.Equal(t, 24*time.Hour, sc.MaxSessionDuration, "maximum duration")
	assert.Equal(t, 10*time.Minute, sc.IdleFreezeAfter, "idle freeze")
	assert.Equal(t, 24*time.Hour, sc.IdleDeleteAfter, "idle delete")
	assert.Equal(t, "", sc.QuotaMode, "auto is the sandbox's empty mode")
	assert.Equal(t, int64(1<<20), sc.OutputLimit, "output limit")
	assert.Equal(t, sandbox.Limits{CPUs: 0.5, MemoryMB: 512, Pids: 50, TmpMB: 100}, sc.DefaultLimits, "default limits")
	assert.Equal(t, sandbox.Limits{CPUs: 2, MemoryMB: 4096, Pids: 1024, TmpMB: 1024}, sc.MaxLimits, "max limits")
	assert.Equal(t, c.StateDir, sc.StateDir, "state dir")
	assert.Equal(t, c.CgroupParent, sc.CgroupParent, "cgroup parent")
	assert.Equal(t, []string{"pandas", "numpy", "reportlab", "python-pptx", "openpyxl", "matplotlib", "requests"}, sc.BasePackages, "the design's packages")
	assert.Equal(t, 1, sc.ReadySandboxes, "ready sandboxes")
}

// The file the package installs states the defaults; it must stay equal
// to them.
func TestShippedConfigIsTheDefault(t *testing.T) {
	c := Default()
	require.NoError(t, c.Load("../../../../packaging/config.yaml"), "load packaging/config.yaml")
	want := Default()
	want.SocketGroup = "sandboxd" // the package's group; the default is none
	assert.Equal(t, want, c, "packaging/config.yaml equals the compiled-in defaults")
}
