package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup2"
	occgroups "github.com/opencontainers/cgroups"
)

const unifiedMountpoint = "/sys/fs/cgroup"

// Mode names the host's cgroup layout.
type Mode string

const (
	ModeV1     Mode = "v1"
	ModeHybrid Mode = "hybrid"
	ModeV2     Mode = "v2"
)

// ErrUnavailable means the host has no usable cgroup hierarchy.
var ErrUnavailable = errors.New("cgroups unavailable")

// Manager knows the daemon's parent cgroup and the hierarchies it spans.
type Manager struct {
	mode   Mode
	parent string
	// dirs are the parent's directory in every hierarchy it exists in.
	roots []string
}

// New returns a Manager for the absolute cgroup path parent (such as
// "/sandboxd"). A relative path would nest under the daemon's own cgroup,
// which belongs to whoever started it, so it is refused.
func New(parent string) (*Manager, error) {
	if !path.IsAbs(parent) || path.Clean(parent) != parent || parent == "/" {
		return nil, fmt.Errorf("cgroup parent %q must be an absolute, clean path below /", parent)
	}
	m := &Manager{parent: parent}
	switch cgroups.Mode() {
	case cgroups.Unified:
		m.mode = ModeV2
	case cgroups.Hybrid:
		m.mode = ModeHybrid
	case cgroups.Legacy:
		m.mode = ModeV1
	default:
		return nil, ErrUnavailable
	}
	roots, err := hierarchyRoots(m.mode)
	if err != nil {
		return nil, err
	}
	m.roots = roots
	return m, nil
}

// hierarchyRoots lists the mountpoints of every cgroup hierarchy that
// libcontainer places a container in.
func hierarchyRoots(mode Mode) ([]string, error) {
	if mode == ModeV2 {
		return []string{unifiedMountpoint}, nil
	}
	mounts, err := occgroups.GetCgroupMounts(false)
	if err != nil {
		return nil, fmt.Errorf("list cgroup v1 mounts: %w", err)
	}
	var roots []string
	for _, mnt := range mounts {
		if mnt.Root != "/" {
			// A hierarchy mounted from a sub-tree (nested container) maps
			// paths differently; libcontainer uses the same rule.
			continue
		}
		if !slices.Contains(roots, mnt.Mountpoint) {
			roots = append(roots, mnt.Mountpoint)
		}
	}
	if mode == ModeHybrid {
		roots = append(roots, filepath.Join(unifiedMountpoint, "unified"))
	}
	if len(roots) == 0 {
		return nil, ErrUnavailable
	}
	return roots, nil
}

// Mode is the host's cgroup mode.
func (m *Manager) Mode() Mode { return m.mode }

// Parent is the absolute cgroup path every session lives under.
func (m *Manager) Parent() string { return m.parent }

// UserPath is the cgroup grouping one user's sessions.
func (m *Manager) UserPath(userID string) string {
	return path.Join(m.parent, "user_"+userID)
}

// SessionPath is the cgroup of one session.
func (m *Manager) SessionPath(userID, sessionID string) string {
	return path.Join(m.UserPath(userID), sessionID)
}

// Controllers lists the resource controllers sessions are limited by.
func (m *Manager) Controllers() ([]string, error) {
	want := []string{"cpu", "memory", "pids"}
	var have []string
	if m.mode == ModeV2 {
		data, err := os.ReadFile(filepath.Join(unifiedMountpoint, "cgroup.controllers"))
		if err != nil {
			return nil, fmt.Errorf("read controllers: %w", err)
		}
		have = strings.Fields(string(data))
	} else {
		for _, r := range m.roots {
			have = append(have, strings.Split(filepath.Base(r), ",")...)
		}
	}
	var out []string
	for _, c := range want {
		if slices.Contains(have, c) {
			out = append(out, c)
		}
	}
	if len(out) != len(want) {
		return out, fmt.Errorf("cgroup controllers %v available, need %v", out, want)
	}
	return out, nil
}

// OOMKills returns how many processes the kernel's OOM killer has killed in
// the session cgroup at path since it was created.
func (m *Manager) OOMKills(cgPath string) (uint64, error) {
	if m.mode == ModeV2 {
		cg, err := cgroup2.Load(cgPath)
		if err != nil {
			return 0, fmt.Errorf("load cgroup %s: %w", cgPath, err)
		}
		st, err := cg.Stat()
		if err != nil {
			return 0, fmt.Errorf("stat cgroup %s: %w", cgPath, err)
		}
		if st.MemoryEvents == nil {
			return 0, nil
		}
		return st.MemoryEvents.OomKill, nil
	}
	// v1: memory.oom_control's oom_kill line (kernel 4.13 and later).
	data, err := os.ReadFile(filepath.Join(m.controllerDir("memory", cgPath), "memory.oom_control"))
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("cgroup %s: memory.oom_control has no oom_kill count", cgPath)
}

// Leftovers lists the session cgroups (as absolute cgroup paths) found under
// the parent in any hierarchy.
func (m *Manager) Leftovers() ([]string, error) {
	var found []string
	for _, r := range m.roots {
		users, err := os.ReadDir(filepath.Join(r, m.parent))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r, err)
		}
		for _, u := range users {
			if !u.IsDir() || !strings.HasPrefix(u.Name(), "user_") {
				continue
			}
			sessions, err := os.ReadDir(filepath.Join(r, m.parent, u.Name()))
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", u.Name(), err)
			}
			for _, s := range sessions {
				p := path.Join(m.parent, u.Name(), s.Name())
				if s.IsDir() && !slices.Contains(found, p) {
					found = append(found, p)
				}
			}
		}
	}
	return found, nil
}

// Remove kills every process left in the cgroup at cgPath (which must lie
// under the parent) and removes it from every hierarchy.
func (m *Manager) Remove(cgPath string) error {
	if !strings.HasPrefix(cgPath, m.parent+"/") {
		return fmt.Errorf("cgroup %s is not under %s", cgPath, m.parent)
	}
	var errs []error
	dirs := m.Dirs(cgPath)
	for _, dir := range dirs {
		pids, err := occgroups.GetAllPids(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %d in %s: %w", pid, cgPath, err))
			}
		}
	}
	for _, dir := range dirs {
		if err := occgroups.RemovePath(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", cgPath, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveUser removes the user's parent cgroup from every hierarchy if no
// session is left in it; a busy parent is not an error.
func (m *Manager) RemoveUser(userID string) error {
	var errs []error
	for _, dir := range m.Dirs(m.UserPath(userID)) {
		err := syscall.Rmdir(dir)
		if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, fmt.Errorf("remove user cgroup %s: %w", userID, err))
		}
	}
	return errors.Join(errs...)
}

// controllerDir is the directory of cgPath in the hierarchy holding
// controller (v1), or in the unified hierarchy (v2).
func (m *Manager) controllerDir(controller, cgPath string) string {
	if m.mode == ModeV2 {
		return filepath.Join(unifiedMountpoint, cgPath)
	}
	for _, r := range m.roots {
		if slices.Contains(strings.Split(filepath.Base(r), ","), controller) {
			return filepath.Join(r, cgPath)
		}
	}
	return filepath.Join(unifiedMountpoint, controller, cgPath)
}

// Dirs lists the directories of cgPath in every hierarchy.
func (m *Manager) Dirs(cgPath string) []string {
	dirs := make([]string, 0, len(m.roots))
	for _, r := range m.roots {
		dirs = append(dirs, filepath.Join(r, cgPath))
	}
	return dirs
}

// Pids lists the processes in the cgroup at cgPath and below it.
func (m *Manager) Pids(cgPath string) ([]int, error) {
	pids, err := occgroups.GetAllPids(m.controllerDir("pids", cgPath))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	return pids, nil
}

// CPUUsage is the CPU time the cgroup at cgPath has used.
func (m *Manager) CPUUsage(cgPath string) (time.Duration, error) {
	if m.mode == ModeV2 {
		cg, err := cgroup2.Load(cgPath)
		if err != nil {
			return 0, fmt.Errorf("load cgroup %s: %w", cgPath, err)
		}
		st, err := cg.Stat()
		if err != nil || st.CPU == nil {
			return 0, fmt.Errorf("stat cgroup %s: %w", cgPath, err)
		}
		return time.Duration(st.CPU.UsageUsec) * time.Microsecond, nil
	}
	data, err := os.ReadFile(filepath.Join(m.controllerDir("cpuacct", cgPath), "cpuacct.usage"))
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: cpuacct.usage: %w", cgPath, err)
	}
	return time.Duration(ns), nil
}

// RemoveParent removes the whole parent tree from every hierarchy, killing
// what is left in it. It is for tearing a daemon's tree down for good (a
// test's, or a purge), never for a daemon that still serves.
func (m *Manager) RemoveParent() error {
	leftovers, err := m.Leftovers()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range leftovers {
		errs = append(errs, m.Remove(p))
	}
	for _, dir := range m.Dirs(m.parent) {
		errs = append(errs, occgroups.RemovePath(dir))
	}
	return errors.Join(errs...)
}
