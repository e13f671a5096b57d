package cgroup

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup2"
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
	own, err := cgroup2.NestedGroupPath("")
	if err != nil {
		return "", false, fmt.Errorf("own cgroup: %w", err)
	}
	unit := own
	if path.Base(own) == Leaf {
		unit = path.Dir(own)
	}
	if unit == "/" || !isDelegated(filepath.Join(unifiedMountpoint, unit)) {
		return "", false, nil
	}
	cg, err := cgroup2.Load(unit)
	if err != nil {
		return "", false, fmt.Errorf("delegated cgroup %s: %w", unit, err)
	}
	leaf, err := cg.NewChild(Leaf, nil)
	if err != nil {
		return "", false, fmt.Errorf("delegated cgroup %s: %w", unit, err)
	}
	if own == unit {
		if err := leaf.AddProc(uint64(os.Getpid())); err != nil {
			return "", false, fmt.Errorf("move into %s/%s: %w", unit, Leaf, err)
		}
	}
	// This writes the unit's cgroup.subtree_control, and its ancestors',
	// where systemd enabled the same for a Delegate=yes unit already.
	if err := leaf.ToggleControllers(sessionControllers(), cgroup2.Enable); err != nil {
		return "", false, fmt.Errorf("enable controllers in %s: %w", unit, err)
	}
	return unit, true, nil
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
