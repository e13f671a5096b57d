package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sandboxd/sandboxd/mounts"
)

// Every user has a uid of their own, from Config.UserUIDs, recorded in
// their directory's user.json: two users' commands never share a uid, so
// never a kernel keyring, a process they can signal or a file's ownership.
// Their group is their uid; the one group they share, Config.SandboxGID,
// only lets them write the shared environment's directories, which reach
// each session only through its own overlay layer.

// userRecord is a user's user.json.
type userRecord struct {
	UID int `json:"uid"`
}

// UIDRange is a range of uids and gids given to users, one each.
type UIDRange struct {
	First, Count int
}

func (r UIDRange) contains(id int) bool { return id >= r.First && id < r.First+r.Count }

// loadUsers reads every user's record at start. A user directory without
// one is from a version that ran every session as the shared uid: the user
// gets a uid of their own and their files are handed over to it (what the
// shared uid owns in shared_files and in each session's files and
// environment layer; the sessions' sandboxes, older too, are restarted by
// recovery). The record is written last, so a daemon killed half-way
// migrates again.
func (m *Manager) loadUsers() error {
	dirs, err := filepath.Glob(filepath.Join(m.layout.Workspaces(), "user_*"))
	if err != nil {
		return err
	}
	var legacy []string
	for _, dir := range dirs {
		userID := strings.TrimPrefix(filepath.Base(dir), "user_")
		if validateID("user", userID) != nil {
			continue
		}
		data, err := os.ReadFile(m.layout.User(userID).Record())
		if errors.Is(err, fs.ErrNotExist) {
			legacy = append(legacy, userID)
			continue
		}
		var rec userRecord
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err == nil && (!m.cfg.UserUIDs.contains(rec.UID) || m.uidTaken[rec.UID]) {
			err = fmt.Errorf("uid %d is outside the users' range or taken twice", rec.UID)
		}
		if err != nil {
			// Its sessions will not be restored (no uid to run them as):
			// recovery marks them broken, nothing is touched.
			m.log.Error("user record unreadable; the user's sessions are not served", "user", userID, "err", err)
			continue
		}
		m.userUIDs[userID] = rec.UID
		m.uidTaken[rec.UID] = true
	}
	for _, userID := range legacy {
		if _, err := m.userOwner(userID); err != nil {
			m.log.Error("migrate a user to a uid of their own", "user", userID, "err", err)
		}
	}
	return nil
}

// userOwner is the uid and gid the user's commands and files have; a new
// user gets the lowest free uid of the range, recorded before first use.
func (m *Manager) userOwner(userID string) (mounts.Owner, error) {
	m.mu.Lock()
	uid, ok := m.userUIDs[userID]
	if ok {
		m.mu.Unlock()
		return mounts.Owner{UID: uid, GID: uid}, nil
	}
	r := m.cfg.UserUIDs
	for uid = r.First; uid < r.First+r.Count && m.uidTaken[uid]; uid++ {
	}
	if uid >= r.First+r.Count {
		m.mu.Unlock()
		return mounts.Owner{}, fmt.Errorf("%w: no uid left for user %q (users' range %d+%d is used up)", ErrUnavailable, userID, r.First, r.Count)
	}
	// Taken now, so that no other user gets it while the record is
	// written outside the lock.
	m.uidTaken[uid] = true
	m.mu.Unlock()
	o := mounts.Owner{UID: uid, GID: uid}
	if err := m.adoptUser(userID, o); err != nil {
		m.mu.Lock()
		delete(m.uidTaken, uid)
		m.mu.Unlock()
		return mounts.Owner{}, err
	}
	m.mu.Lock()
	m.userUIDs[userID] = uid
	m.mu.Unlock()
	m.log.Info("user has a uid of their own", "user", userID, "uid", uid)
	return o, nil
}

// adoptUser hands what the shared uid owns in the user's trees over to o
// (nothing, for a new user) and records o. The trees are looked for
// where the layout before disk quotas had them (a user without a record
// is most likely from then) and in the user's disk (quota.UserDirs and
// SessionDirs; mounted, in loop mode, if the daemon was only restarted).
func (m *Manager) adoptUser(userID string, o mounts.Owner) error {
	u := m.layout.User(userID)
	if err := os.MkdirAll(u.Dir, 0o700); err != nil {
		return fmt.Errorf("user %q: %w", userID, err)
	}
	shared := mounts.Owner{UID: m.cfg.SandboxUID, GID: m.cfg.SandboxGID}
	var trees []string
	for _, root := range []string{u.Dir, filepath.Join(u.Dir, "disk")} {
		trees = append(trees, filepath.Join(root, "shared_files"))
		sessions, err := os.ReadDir(filepath.Join(root, "sessions"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("user %q: %w", userID, err)
		}
		for _, e := range sessions {
			s := filepath.Join(root, "sessions", e.Name())
			trees = append(trees, filepath.Join(s, "files"), filepath.Join(s, "logs"), filepath.Join(s, "venv", "upper"))
		}
	}
	for _, tree := range trees {
		if err := chownTree(tree, shared, o); err != nil {
			return fmt.Errorf("user %q: hand %s over to uid %d: %w", userID, tree, o.UID, err)
		}
	}
	data, err := json.Marshal(userRecord{UID: o.UID})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(u.Record(), data); err != nil {
		return fmt.Errorf("user %q: record uid: %w", userID, err)
	}
	return nil
}

// chownTree hands what from owns in the tree at dir (itself included) over
// to to, following nothing; a missing tree has nothing to hand over.
func chownTree(dir string, from, to mounts.Owner) error {
	parent, err := mounts.OpenDir(filepath.Dir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	d, err := parent.OpenDir(filepath.Base(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	return d.ChownTree(from, to)
}
