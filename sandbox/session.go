package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/mounts"
)

// sessionMeta is what survives a daemon restart, in the session's
// directory: enough to adopt or rebuild its sandbox.
type sessionMeta struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	CreatedAt time.Time  `json:"created_at"`
	Limits    api.Limits `json:"limits"`
	// Deleting is set once a delete has begun, so that a daemon that dies
	// half-way finishes it on its next start.
	Deleting *deleteIntent `json:"deleting,omitempty"`
}

type deleteIntent struct {
	KeepFiles bool `json:"keep_files"`
}

func (m sessionMeta) api(status string) api.Session {
	return api.Session{
		ID:        m.ID,
		UserID:    m.UserID,
		CreatedAt: m.CreatedAt,
		Limits:    m.Limits,
		Status:    status,
		Workspace: mounts.WorkspaceDir,
	}
}

// writeMeta replaces the session's metadata atomically.
func writeMeta(dir mounts.Session, m sessionMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := dir.Meta() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("session %q: write metadata: %w", m.ID, err)
	}
	if err := os.Rename(tmp, dir.Meta()); err != nil {
		return fmt.Errorf("session %q: write metadata: %w", m.ID, err)
	}
	return nil
}

func readMeta(dir mounts.Session) (sessionMeta, error) {
	var m sessionMeta
	data, err := os.ReadFile(dir.Meta())
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: %w", dir.Meta(), err)
	}
	return m, nil
}

// dirSize sums the apparent sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total, err
}
