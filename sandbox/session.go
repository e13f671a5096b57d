package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/mounts"
)

// sessionMeta is what survives a daemon restart, in the session's
// directory (root-only, out of the sandbox's reach): enough to adopt or
// rebuild its sandbox.
type sessionMeta struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	CreatedAt time.Time  `json:"created_at"`
	Limits    metaLimits `json:"limits"`
	// Env is the version of the base environment the session started on:
	// its overlay's lower layer for as long as the session lives, across
	// restarts of the daemon and of its sandbox.
	Env string `json:"env"`
	// Agent is the protocol version of the sandbox's PID 1; a daemon
	// adopts only a sandbox whose agent speaks its own (a sandbox from an
	// older version is restarted over the same files).
	Agent int `json:"agent,omitempty"`
	// Deleting is set once a delete has begun, so that a daemon that dies
	// half-way finishes it on its next start.
	Deleting *deleteIntent `json:"deleting,omitempty"`
	// LastActive is when the session's last call ended, written lazily
	// (lifetime_linux.go): the idle timers of a restarted daemon start
	// from it.
	LastActive time.Time `json:"last_active,omitzero"`
	// Expired is set once the session outlived its maximum duration; Done
	// once its sandbox is stopped, its documents kept and its disk given
	// back.
	Expired *expiry `json:"expired,omitempty"`
}

// expiry is a session's expiry: when, why, and what it kept.
type expiry struct {
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	Done    bool      `json:"done,omitempty"`
	Kept    []string  `json:"kept,omitempty"`
	NotKept []NotKept `json:"not_kept,omitempty"`
}

// metaLimits is Limits as session.json stores them.
type metaLimits struct {
	CPUs     float64 `json:"cpus"`
	MemoryMB int64   `json:"memory_mb"`
	Pids     int64   `json:"pids"`
	TmpMB    int64   `json:"tmp_mb"`
}

func (l metaLimits) limits() Limits {
	return Limits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, TmpMB: l.TmpMB}
}

func storedLimits(l Limits) metaLimits {
	return metaLimits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, TmpMB: l.TmpMB}
}

type deleteIntent struct {
	KeepFiles bool `json:"keep_files"`
}

// describe reads only what never changes once the session is live: the
// janitor writes the rest.
func (m *sessionMeta) describe(state State, reason string) Session {
	return Session{
		ID:        m.ID,
		UserID:    m.UserID,
		CreatedAt: m.CreatedAt,
		Limits:    m.Limits.limits(),
		State:     state,
		Reason:    reason,
		Workspace: mounts.WorkspaceDir,
		Env:       m.Env,
	}
}

// writeMeta replaces the session's metadata atomically.
func writeMeta(dir mounts.Session, m sessionMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir.Meta(), data); err != nil {
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

// writeFileAtomic replaces path with data through a temporary file renamed
// over it, so a daemon killed at any point leaves the old or the new
// content. (Not synced: the journal is for daemon crashes, which keep the
// page cache; a host crash restarts every sandbox anyway.) path is in a
// directory only the daemon writes.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
