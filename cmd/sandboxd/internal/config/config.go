// Package config is sandboxd's configuration: the compiled-in defaults, the
// YAML file that overrides them, and their translation into what the
// sandbox manager and the API server take.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sandboxd/sandboxd/sandbox"
	"github.com/sandboxd/sandboxd/sandbox/packages/envs"
	"github.com/sandboxd/sandboxd/sandbox/packages/pyreq"
)

// Config mirrors the YAML file; every field has a default.
type Config struct {
	StateDir     string `yaml:"state_dir"`
	Socket       string `yaml:"socket"`
	SocketMode   string `yaml:"socket_mode"`
	SocketGroup  string `yaml:"socket_group"`
	CgroupParent string `yaml:"cgroup_parent"`
	SandboxUID   int    `yaml:"sandbox_uid"`
	// UserUIDs are the uids users get, one each.
	UserUIDs struct {
		First int `yaml:"first"`
		Count int `yaml:"count"`
	} `yaml:"user_uids"`
	SandboxGID int    `yaml:"sandbox_gid"`
	Python     string `yaml:"python"`
	// BasePackages are the requirements the base environment is built to
	// have (from the host's python3-* packages, else the package cache).
	BasePackages []string `yaml:"base_packages"`
	LogLevel     string   `yaml:"log_level"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"`

	Limits struct {
		Default Limits `yaml:"default"`
		Max     Limits `yaml:"max"`
	} `yaml:"limits"`

	// ReadySandboxes are kept started ahead of need, so that a new
	// session gets one at once.
	ReadySandboxes int `yaml:"ready_sandboxes"`

	// Quota is every user's limits but files.max_files_per_session; a
	// user's quota.json overrides each.
	Quota struct {
		// Mode is the disk-limit mechanism: auto (what the state
		// directory was laid out with, or the best the host has),
		// project, loop or none.
		Mode                    string        `yaml:"mode"`
		MaxSessions             int           `yaml:"max_sessions"`
		MaxWorkspaceSizeMB      int64         `yaml:"max_workspace_size_mb"`
		SessionDiskMB           int64         `yaml:"session_disk_mb"`
		MaxSessionDurationHours float64       `yaml:"max_session_duration_hours"`
		IdleFreezeAfter         time.Duration `yaml:"idle_freeze_after"`
		IdleDeleteAfter         time.Duration `yaml:"idle_delete_after"`
	} `yaml:"quota"`

	Exec struct {
		TimeoutSec       float64 `yaml:"timeout_sec"`
		MaxTimeoutSec    float64 `yaml:"max_timeout_sec"`
		OutputLimitBytes int64   `yaml:"output_limit_bytes"`
	} `yaml:"exec"`

	Files struct {
		MaxFileBytes       int64 `yaml:"max_file_bytes"`
		MaxFilesPerSession int   `yaml:"max_files_per_session"`
		MaxListEntries     int   `yaml:"max_list_entries"`
	} `yaml:"files"`

	Processes struct {
		MaxPerSession    int   `yaml:"max_per_session"`
		BufferBytes      int   `yaml:"buffer_bytes"`
		BufferTotalBytes int64 `yaml:"buffer_total_bytes"`
	} `yaml:"processes"`

	KeepExtensions []string `yaml:"keep_extensions"`

	// MetricsListen is a TCP address (host:port) serving GET /metrics too;
	// empty, the metrics are on the socket only.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsPerSession exports each session's CPU and memory with user
	// and session labels, for at most MetricsPerSessionMax sessions.
	MetricsPerSession    bool `yaml:"metrics_per_session"`
	MetricsPerSessionMax int  `yaml:"metrics_per_session_max"`
}

// maxReadySandboxes bounds ready_sandboxes: each is a running sandbox
// that no session uses yet.
const maxReadySandboxes = 16

// Limits are a session's resource limits as the file writes them.
type Limits struct {
	CPUs     float64 `yaml:"cpus"`
	MemoryMB int64   `yaml:"memory_mb"`
	Pids     int64   `yaml:"pids"`
	TmpMB    int64   `yaml:"tmp_mb"`
}

func (l Limits) sandbox() sandbox.Limits {
	return sandbox.Limits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, TmpMB: l.TmpMB}
}

// Default is the configuration of an installed daemon; the design's
// container limits (0.5 CPU, 512 MiB, 50 pids, 100 MiB /tmp, 30 s) are the
// per-session defaults.
func Default() Config {
	var c Config
	c.StateDir = "/var/lib/sandboxd"
	c.Socket = "/run/sandboxd.sock"
	c.SocketMode = "0660"
	c.CgroupParent = "/sandboxd"
	c.SandboxUID, c.SandboxGID = 10000, 10000
	c.UserUIDs.First, c.UserUIDs.Count = 100000, 100000
	c.Python = "/usr/bin/python3"
	c.BasePackages = envs.DefaultDeclared()
	c.LogLevel = "info"
	c.MaxBodyBytes = 8 << 20
	c.Limits.Default = Limits{CPUs: 0.5, MemoryMB: 512, Pids: 50, TmpMB: 100}
	c.Limits.Max = Limits{CPUs: 2, MemoryMB: 4096, Pids: 1024, TmpMB: 1024}
	c.ReadySandboxes = 1
	c.Quota.Mode = "auto"
	c.Quota.MaxSessions = 10
	c.Quota.MaxWorkspaceSizeMB = 1024
	c.Quota.MaxSessionDurationHours = 24
	c.Quota.IdleFreezeAfter = 10 * time.Minute
	c.Quota.IdleDeleteAfter = 24 * time.Hour
	c.Exec.TimeoutSec = 30
	c.Exec.MaxTimeoutSec = 600
	c.Exec.OutputLimitBytes = 1 << 20
	c.Files.MaxFileBytes = 100 << 20
	c.Files.MaxFilesPerSession = 10000
	c.Files.MaxListEntries = 100000
	c.Processes.MaxPerSession = 8
	c.Processes.BufferBytes = 1 << 20
	c.Processes.BufferTotalBytes = 256 << 20
	c.KeepExtensions = []string{".pdf", ".xlsx", ".pptx", ".docx"}
	c.MetricsPerSessionMax = 500
	return c
}

// Load overlays the YAML file at path on c. Unknown keys are errors, so a
// misspelt setting is not silently ignored.
func (c *Config) Load(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Validate checks the values that cannot be caught later with a clear
// message, and makes the paths absolute.
func (c *Config) Validate() error {
	var err error
	if c.StateDir, err = filepath.Abs(c.StateDir); err != nil {
		return err
	}
	if c.Socket, err = filepath.Abs(c.Socket); err != nil {
		return err
	}
	if _, err := c.SocketFileMode(); err != nil {
		return err
	}
	d, m := c.Limits.Default, c.Limits.Max
	switch {
	case d.CPUs <= 0 || d.MemoryMB <= 0 || d.Pids <= 0 || d.TmpMB <= 0:
		return errors.New("config: limits.default must all be positive")
	case d.CPUs > m.CPUs || d.MemoryMB > m.MemoryMB || d.Pids > m.Pids || d.TmpMB > m.TmpMB:
		return errors.New("config: limits.default must not exceed limits.max")
	case c.ReadySandboxes < 0 || c.ReadySandboxes > maxReadySandboxes:
		return fmt.Errorf("config: ready_sandboxes must be 0 to %d", maxReadySandboxes)
	case c.Exec.TimeoutSec <= 0 || c.Exec.MaxTimeoutSec < c.Exec.TimeoutSec:
		return errors.New("config: exec.timeout_sec must be positive and at most exec.max_timeout_sec")
	case c.Exec.OutputLimitBytes <= 0:
		return errors.New("config: exec.output_limit_bytes must be positive")
	case c.Files.MaxFileBytes <= 0 || c.Files.MaxListEntries <= 0 || c.Files.MaxFilesPerSession <= 0:
		return errors.New("config: files.max_file_bytes, files.max_list_entries and files.max_files_per_session must be positive")
	case c.Quota.Mode != "auto" && c.Quota.Mode != "project" && c.Quota.Mode != "loop" && c.Quota.Mode != "none":
		return fmt.Errorf("config: quota.mode %q: want auto, project, loop or none", c.Quota.Mode)
	case c.Quota.MaxSessions < 0 || c.Quota.MaxWorkspaceSizeMB <= 0 || c.Quota.SessionDiskMB < 0 || c.Quota.SessionDiskMB > c.Quota.MaxWorkspaceSizeMB:
		return errors.New("config: quota.max_sessions must not be negative, quota.max_workspace_size_mb must be positive, quota.session_disk_mb between 0 (max_workspace_size_mb/max_sessions) and max_workspace_size_mb")
	case c.Quota.MaxSessionDurationHours < 0 || c.Quota.IdleFreezeAfter < 0 || c.Quota.IdleDeleteAfter < 0:
		return errors.New("config: quota.max_session_duration_hours, quota.idle_freeze_after and quota.idle_delete_after must not be negative (0 is never)")
	case c.Processes.MaxPerSession <= 0 || c.Processes.BufferBytes < 1024 || c.Processes.BufferTotalBytes < int64(c.Processes.BufferBytes):
		return errors.New("config: processes.max_per_session must be positive, processes.buffer_bytes at least 1024 and processes.buffer_total_bytes at least buffer_bytes")
	case c.UserUIDs.First <= 0 || c.UserUIDs.Count <= 0 || c.UserUIDs.First > 1<<31-1-c.UserUIDs.Count:
		return errors.New("config: user_uids must be a positive range of uids")
	case c.SandboxUID >= c.UserUIDs.First && c.SandboxUID < c.UserUIDs.First+c.UserUIDs.Count,
		c.SandboxGID >= c.UserUIDs.First && c.SandboxGID < c.UserUIDs.First+c.UserUIDs.Count:
		return errors.New("config: sandbox_uid and sandbox_gid must lie outside user_uids")
	case c.SandboxUID <= 0 || c.SandboxGID <= 0:
		return errors.New("config: sandbox_uid and sandbox_gid must not be root")
	case c.MetricsPerSessionMax <= 0:
		return errors.New("config: metrics_per_session_max must be positive")
	}
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil || port == "" {
			return fmt.Errorf("config: metrics_listen %q is not a host:port address", c.MetricsListen)
		}
	}
	for _, r := range c.BasePackages {
		if _, err := pyreq.ParseRequirement(r); err != nil {
			return fmt.Errorf("config: base_packages: %w", err)
		}
	}
	return nil
}

// SocketFileMode parses socket_mode ("0660").
func (c *Config) SocketFileMode() (os.FileMode, error) {
	v, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("config: socket_mode %q is not an octal file mode", c.SocketMode)
	}
	return os.FileMode(v), nil
}

// Sandbox is the manager's part of the configuration.
func (c *Config) Sandbox(helper, version string) sandbox.Config {
	return sandbox.Config{
		StateDir:                c.StateDir,
		CgroupParent:            c.CgroupParent,
		Helper:                  helper,
		SandboxUID:              c.SandboxUID,
		UserUIDs:                sandbox.UIDRange{First: c.UserUIDs.First, Count: c.UserUIDs.Count},
		SandboxGID:              c.SandboxGID,
		Python:                  c.Python,
		BasePackages:            c.BasePackages,
		DefaultLimits:           c.Limits.Default.sandbox(),
		MaxLimits:               c.Limits.Max.sandbox(),
		ReadySandboxes:          c.ReadySandboxes,
		MaxSessionsPerUser:      c.Quota.MaxSessions,
		MaxWorkspaceMB:          c.Quota.MaxWorkspaceSizeMB,
		SessionDiskMB:           c.Quota.SessionDiskMB,
		MaxSessionDuration:      time.Duration(c.Quota.MaxSessionDurationHours * float64(time.Hour)),
		IdleFreezeAfter:         c.Quota.IdleFreezeAfter,
		IdleDeleteAfter:         c.Quota.IdleDeleteAfter,
		QuotaMode:               quotaMode(c.Quota.Mode),
		ExecTimeout:             seconds(c.Exec.TimeoutSec),
		MaxExecTimeout:          seconds(c.Exec.MaxTimeoutSec),
		OutputLimit:             c.Exec.OutputLimitBytes,
		MaxFileBytes:            c.Files.MaxFileBytes,
		MaxFilesPerSession:      c.Files.MaxFilesPerSession,
		MaxListEntries:          c.Files.MaxListEntries,
		MaxProcessesPerSession:  c.Processes.MaxPerSession,
		ProcessBufferBytes:      c.Processes.BufferBytes,
		ProcessBufferTotalBytes: c.Processes.BufferTotalBytes,
		KeepExtensions:          c.KeepExtensions,
		Version:                 version,
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// quotaMode is quota.mode as sandbox.Config takes it: auto is "".
func quotaMode(m string) string {
	if m == "auto" {
		return ""
	}
	return m
}
