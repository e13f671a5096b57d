package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sandboxd/sandboxd/mounts"
)

// trashDir is the directory, in each user's directory beside sessions/,
// where a deleted session's directory waits for its removal. A rename
// there is instant whatever the tree holds (the same file system), so a
// delete need not wait for the removal of a large workspace or venv; the
// daemon removes it in the background, and a daemon that dies first
// removes it on its next start. No sandbox sees it.
const trashDir = "trash"

// discardSessionDir moves the session's directory into the user's trash
// and removes it there in the background. Where it cannot be moved there,
// it is removed at once. Neither follows anything the sandbox planted.
func (m *Manager) discardSessionDir(userID, id string) error {
	sessions, err := mounts.OpenDir(m.layout.User(userID).Sessions())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("session %q: %w", id, err)
	}
	defer sessions.Close()
	dir := filepath.Join(m.layout.User(userID).Dir, trashDir)
	trash, err := openTrash(dir)
	if err == nil {
		name := id + "." + newID(4)
		err = sessions.Move(id, trash, name)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			m.cleanup.Go(func() {
				defer trash.Close()
				m.removeTrash(trash, dir, name)
			})
			return nil
		}
		_ = trash.Close()
	}
	m.log.Warn("session directory removed in place: it cannot go to the trash", "session", id, "user", userID, "err", err)
	if err := sessions.RemoveAll(id); err != nil {
		return fmt.Errorf("session %q: remove directory: %w", id, err)
	}
	return nil
}

// openTrash opens a user's trash, making it if need be.
func openTrash(dir string) (*mounts.Dir, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return mounts.OpenDir(dir)
}

// removeTrash removes the entry name of a trash; a missing one (a
// replayed delete found none to move) is no error.
func (m *Manager) removeTrash(trash *mounts.Dir, dir, name string) {
	if err := trash.RemoveAll(name); err != nil {
		m.log.Error("remove a deleted session's directory", "dir", filepath.Join(dir, name), "err", err)
	}
}

// emptyTrashes removes, in the background, what a previous daemon left in
// the users' trashes.
func (m *Manager) emptyTrashes() {
	dirs, err := filepath.Glob(filepath.Join(m.layout.Workspaces(), "user_*", trashDir))
	if err != nil || len(dirs) == 0 {
		return
	}
	m.cleanup.Go(func() {
		for _, dir := range dirs {
			trash, err := mounts.OpenDir(dir)
			if err != nil {
				m.log.Error("open a trash", "dir", dir, "err", err)
				continue
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				m.log.Error("list a trash", "dir", dir, "err", err)
			}
			for _, e := range entries {
				m.removeTrash(trash, dir, e.Name())
			}
			_ = trash.Close()
		}
	})
}
