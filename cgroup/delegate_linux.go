package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// Leaf is the cgroup, below the delegated unit's, that the daemon itself
// lives in: with controllers enabled for the unit's subtree, the unit's
// own cgroup may hold no process ("no internal processes"). The unit file
// names the same leaf in DelegateSubgroup=, so that systemd starts the
// daemon there directly.
const Leaf = "supervisor"

// Delegated returns the cgroup of the systemd unit this process runs in
// when the unit has Delegate=yes on a unified (v2) hierarchy. Before it
// returns, the process is in the unit's Leaf and cpu, memory and pids are
// enabled for the unit's subtree, so that sessions can be created beneath
// it. ok is false outside such a unit.
func Delegated() (parent string, ok bool, err error) {
	if cgroups.Mode() != cgroups.Unified {
		return "", false, nil
	}
	own, err := ownCgroup()
	if err != nil {
		return "", false, err
	}
	unit := own
	if path.Base(own) == Leaf {
		unit = path.Dir(own)
	}
	dir := filepath.Join(unifiedMountpoint, unit)
	if unit == "/" || !isDelegated(dir) {
		return "", false, nil
	}
	if own == unit {
		leaf := filepath.Join(dir, Leaf)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", false, fmt.Errorf("delegated cgroup %s: %w", unit, err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return "", false, fmt.Errorf("move into %s/%s: %w", unit, Leaf, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory +pids"), 0o644); err != nil {
		return "", false, fmt.Errorf("enable controllers in %s: %w", unit, err)
	}
	return unit, true, nil
}

// ownCgroup reads this process's cgroup on the unified hierarchy.
func ownCgroup() (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no unified cgroup in /proc/self/cgroup")
}

// isDelegated reports whether systemd marked dir as delegated (it sets
// the trusted.delegate extended attribute, or user.delegate for a user
// manager, on the cgroups of Delegate=yes units).
func isDelegated(dir string) bool {
	for _, attr := range []string{"trusted.delegate", "user.delegate"} {
		buf := make([]byte, 8)
		n, err := unix.Getxattr(dir, attr, buf)
		if err == nil && bytes.Equal(buf[:n], []byte("1")) {
			return true
		}
	}
	return false
}
