package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/sandboxd/sandboxd/mounts"
)

// Before disk quotas a user's trees lay beside the daemon's records:
// user_<id>/shared_files/ and user_<id>/sessions/<sid>/{files,logs,venv}.
// Now they are on the user's disk, so at start what is found in the old
// places is copied there (charged to the user's limits like any write),
// then removed. Copying follows nothing (mounts.Dir.CopyTree) and can be
// redone: a daemon killed half-way copies again on its next start. What
// a copy leaves out (FIFOs, sockets, devices, multiply-linked files) is
// logged, and the old tree is kept aside, root-only, so nothing is lost.

// legacyShared is the old place of the user's shared files.
func (m *Manager) legacyShared(userID string) string {
	return filepath.Join(m.layout.User(userID).Dir, "shared_files")
}

// laidOutBeforeQuotas tells whether the session at dir still has its trees
// in their old place.
func laidOutBeforeQuotas(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "files"))
	return err == nil
}

// beforeQuotas is the name the old trees are kept under when a copy left
// something out.
const beforeQuotas = "before-disk-quotas"

// migrateShared copies the user's shared files from their old place onto
// the user's disk.
func (m *Manager) migrateShared(userID string, d *userDisk) error {
	old := m.legacyShared(userID)
	if _, err := os.Lstat(old); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	parent, err := mounts.OpenDir(filepath.Dir(old))
	if err != nil {
		return err
	}
	defer parent.Close()
	skipped, err := copyTree(parent, "shared_files", d.dirs.SharedFiles)
	if err != nil {
		return fmt.Errorf("user %q: copy the shared files from before disk quotas: %w", userID, err)
	}
	if err := m.retire(parent, filepath.Dir(old), []string{"shared_files"}, skipped, "shared_files."+beforeQuotas); err != nil {
		return fmt.Errorf("user %q: %w", userID, err)
	}
	m.log.Info("the user's shared files moved onto their disk", "user", userID, "left_out", len(skipped))
	return nil
}

// migrateSession copies the session's files and venv layer from their
// old place into its reserved trees; its logs (of processes that did not
// outlive the old daemon) and the overlay's work directory go.
func (m *Manager) migrateSession(s *session) error {
	if !laidOutBeforeQuotas(s.dir.Dir) {
		return nil
	}
	dir, err := mounts.OpenDir(s.dir.Dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	// The old files held the mount point of shared_files; the new have
	// their own.
	skipped, err := copyTree(dir, "files", s.trees.Files, "shared")
	if err != nil {
		return fmt.Errorf("copy the workspace from before disk quotas: %w", err)
	}
	more, err := copyTree(dir, "venv/upper", s.trees.VenvUpper)
	if err != nil {
		return fmt.Errorf("copy the venv layer from before disk quotas: %w", err)
	}
	skipped = append(skipped, more...)
	// files last: it marks the session as not yet moved, so a start cut
	// short here retires the rest next time.
	if err := m.retire(dir, s.dir.Dir, []string{"venv", "logs", "files"}, skipped, beforeQuotas); err != nil {
		return err
	}
	m.log.Info("the session's trees moved onto its user's disk", "session", s.meta.ID, "user", s.meta.UserID, "left_out", len(skipped))
	return nil
}

// copyTree copies the tree at rel ("a/b") beneath parent (absent:
// nothing) into the directory dst, leaving out except at its top.
func copyTree(parent *mounts.Dir, rel, dst string, except ...string) ([]mounts.Skipped, error) {
	src := parent
	for _, name := range strings.Split(rel, "/") {
		next, err := src.OpenDir(name)
		if src != parent {
			src.Close()
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		src = next
	}
	defer src.Close()
	to, err := mounts.OpenDir(dst)
	if err != nil {
		return nil, err
	}
	defer to.Close()
	return src.CopyTree(to, except...)
}

// retire removes the old trees names of dir (at dirPath) once copied; if the copy
// left something out, it keeps them under aside instead, root-only, and
// logs what.
func (m *Manager) retire(dir *mounts.Dir, dirPath string, names []string, skipped []mounts.Skipped, aside string) error {
	if len(skipped) == 0 {
		for _, name := range names {
			if err := dir.RemoveAll(name); err != nil {
				return fmt.Errorf("remove the copied %s: %w", name, err)
			}
		}
		return nil
	}
	keep, err := dir.Mkdir(aside, 0o700, mounts.Owner{})
	if errors.Is(err, fs.ErrExist) {
		keep, err = dir.OpenDir(aside)
	}
	if err != nil {
		return fmt.Errorf("keep what was not copied: %w", err)
	}
	defer keep.Close()
	for _, name := range names {
		err := dir.Move(name, keep, name)
		if errors.Is(err, fs.ErrExist) {
			err = dir.RemoveAll(name) // kept by an earlier, interrupted run
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keep what was not copied: %w", err)
		}
	}
	for _, s := range skipped {
		m.log.Warn("left out of a tree moved onto the user's disk; kept aside", "entry", s.Name, "reason", s.Reason, "kept_in", filepath.Join(dirPath, aside))
	}
	return nil
}

// removeOldSystemDirs removes the skeleton root and the identity files an
// older daemon kept in the state directory itself; they are in the system
// file system now (mounts.Layout.MountSystem). The identity files are
// bound by inode, so a sandbox keeps them; the skeleton root is what an
// adopted sandbox of that daemon's still runs on (its /bin links), so it
// is kept until none is.
func (m *Manager) removeOldSystemDirs(adopted map[string]*libcontainer.Container) {
	old := map[string]bool{"identity": true, "rootfs": true}
	for _, c := range adopted {
		if c.Config().Rootfs == filepath.Join(m.layout.Root, "rootfs") {
			old["rootfs"] = false
		}
	}
	for name, remove := range old {
		if !remove {
			continue
		}
		if err := os.RemoveAll(filepath.Join(m.layout.Root, name)); err != nil {
			m.log.Warn("remove an older daemon's directory", "dir", name, "err", err)
		}
	}
}
