package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/mounts"
	"github.com/sandboxd/sandboxd/mounts/quota"
)

// Disk limits are the kernel's, through package quota: each user's disk
// holds MaxWorkspaceMB (U); each live session reserves SessionDiskMB (S)
// of it, with at most MaxFilesPerSession (F) files, for all its trees
// (files, logs, venv layer); shared_files gets the rest. A write past a
// limit fails at once with ENOSPC or EDQUOT, inside the sandbox as through
// the files API, and usage is read from the mechanism, never from a walk
// of the user's tree.

// userDisk is a user's attached disk.
type userDisk struct {
	dirs quota.UserDirs
	// mu serialises the daemon's writes of the user's quota.json and
	// guards what follows.
	mu sync.Mutex
	// budgetMB is the budget last asked of the mechanism.
	budgetMB int64
	// written is the last "current" written (UpdatedAt zero), so that
	// unchanged figures are not rewritten.
	written quotaCurrent
}

// quotaMode decides the mechanism and records it in the state directory:
// a user laid out in one mode is refused by another (the image-based loop
// mode and the directory-based project and none modes cannot read each
// other's layout), so the recorded mode holds unless the configuration
// names another of the same layout, or no user exists yet.
func (m *Manager) quotaMode(ctx context.Context) (quota.Mode, error) {
	path := filepath.Join(m.layout.Quota(), "mode")
	want := quota.Mode(m.cfg.QuotaMode)
	switch want {
	case "", quota.ModeProject, quota.ModeLoop, quota.ModeNone:
	default:
		return "", fmt.Errorf("quota mode %q: want project, loop or none (or empty to detect it)", want)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("quota mode: %w", err)
	}
	recorded := quota.Mode(strings.TrimSpace(string(data)))
	switch {
	case recorded != "" && (want == "" || want == recorded):
		return recorded, nil
	case recorded != "" && (recorded == quota.ModeLoop) != (want == quota.ModeLoop):
		users, err := filepath.Glob(filepath.Join(m.layout.Workspaces(), "user_*"))
		if err != nil {
			return "", err
		}
		if len(users) > 0 {
			return "", fmt.Errorf("the state directory %s was laid out in quota mode %s, which %s cannot take over with %d users in it", m.layout.Root, recorded, want, len(users))
		}
	}
	mode := want
	if mode == "" {
		r := quota.Detect(ctx, m.layout.Root)
		mode = r.Mode
		m.log.Info("disk quota mode detected", "mode", mode, "detail", r.String())
	}
	if err := writeFileAtomic(path, []byte(string(mode)+"\n")); err != nil {
		return "", fmt.Errorf("record quota mode: %w", err)
	}
	if mode == quota.ModeNone {
		m.log.Warn("disk limits are NOT enforced (quota mode none): see sandboxd doctor")
	}
	return mode, nil
}

// userLimits reads the user's limits: the defaults, overridden by their
// quota.json.
func (m *Manager) userLimits(userID string) (UserLimits, error) {
	l, err := readUserLimits(m.layout.User(userID).QuotaFile(), m.cfg.defaultUserLimits())
	if err != nil {
		return UserLimits{}, fmt.Errorf("user %q: %w", userID, err)
	}
	return l, nil
}

// attachUser makes the user's directory and disk ready with a budget of
// budgetMB (0: the one the disk has) and returns the disk. It is
// idempotent, and does nothing on a user attached with that budget: every
// create calls it, so that a changed budget applies. A budget the disk
// cannot take (below usage; beyond what it can grow to) is logged, the
// user keeps the one the disk had, and it is tried again when it changes.
func (m *Manager) attachUser(ctx context.Context, userID string, o mounts.Owner, budgetMB int64) (*userDisk, error) {
	u, err := m.layout.EnsureUser(userID)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	d := m.disks[userID]
	m.mu.Unlock()
	if d != nil {
		d.mu.Lock()
		same := d.budgetMB == budgetMB || budgetMB == 0
		d.mu.Unlock()
		if same {
			return d, nil
		}
	}
	dirs, err := m.quota.AttachUser(ctx, userID, u.Dir, quota.Owner(o), quota.UserLimits{Bytes: budgetMB * mib})
	switch {
	case errors.Is(err, quota.ErrBelowUsage), errors.Is(err, quota.ErrCannotGrow):
		m.log.Warn("the user's disk budget is unchanged", "user", userID, "max_workspace_size_mb", budgetMB, "err", err)
	case errors.Is(err, quota.ErrInvalid):
		return nil, fmt.Errorf("%w: user %q: %w", ErrInvalidQuota, userID, err)
	case err != nil:
		return nil, fmt.Errorf("user %q: disk: %w", userID, err)
	}
	if err := mounts.EnsureShared(dirs.SharedFiles, o); err != nil {
		return nil, fmt.Errorf("user %q: shared files: %w", userID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if d = m.disks[userID]; d == nil {
		d = &userDisk{dirs: dirs}
		m.disks[userID] = d
	}
	d.mu.Lock()
	d.budgetMB = budgetMB
	d.mu.Unlock()
	return d, nil
}

// disk returns the user's attached disk, or an error saying the user has
// none (not seen since the start, or their disk could not be attached).
func (m *Manager) disk(userID string) (*userDisk, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.disks[userID]
	if d == nil {
		return nil, fmt.Errorf("%w: user %q has no disk attached", ErrNotFound, userID)
	}
	return d, nil
}

// daemonInodes are the inodes of a session's disk that are not the
// session's doing: the mount point of shared_files in its files, and the
// work directory overlayfs makes in its venv's.
const daemonInodes = 2

// reserveTrees reserves the session's share of its user's disk and gives
// it its trees (idempotent: a session already reserved gets its own back,
// mounted). l is the user's limits.
func (m *Manager) reserveTrees(ctx context.Context, s *session, l UserLimits) error {
	dirs, err := m.quota.ReserveSession(ctx, s.meta.UserID, s.meta.ID,
		quota.SessionLimits{Bytes: l.SessionDiskMB * mib, Files: l.MaxFilesPerSession + daemonInodes})
	switch {
	case errors.Is(err, quota.ErrNoRoom):
		return fmt.Errorf("%w: user %q: max_workspace_size_mb %d MiB cannot hold another session of session_disk_mb %d MiB: %w",
			ErrQuota, s.meta.UserID, l.MaxWorkspaceMB, l.SessionDiskMB, err)
	case errors.Is(err, quota.ErrInvalid):
		return fmt.Errorf("%w: user %q: %w", ErrInvalidQuota, s.meta.UserID, err)
	case err != nil:
		return fmt.Errorf("session %q: disk: %w", s.meta.ID, err)
	}
	if err := mounts.MakeSharedMountPoint(dirs.Files); err != nil {
		return fmt.Errorf("session %q: %w", s.meta.ID, err)
	}
	s.trees = dirs
	s.disk = l
	return nil
}

// releaseTrees gives the session's reservation back and deletes its trees;
// the sandbox must be stopped. Releasing nothing is no error.
func (m *Manager) releaseTrees(ctx context.Context, s *session) error {
	err := m.quota.ReleaseSession(ctx, s.meta.UserID, s.meta.ID)
	if errors.Is(err, quota.ErrNotAttached) {
		return nil // nothing of the user's is mounted or recorded here
	}
	if err != nil {
		return fmt.Errorf("session %q: release its disk: %w", s.meta.ID, err)
	}
	s.trees = quota.SessionDirs{}
	return nil
}

// reserved reports whether the session holds a reservation: a delete or
// an expiry replayed after the release has no trees left to keep files
// from.
func (m *Manager) reserved(userID, sessionID string) bool {
	ids, err := m.quota.Sessions(userID)
	return err == nil && slices.Contains(ids, sessionID)
}

// attachUsers attaches the disk of every user with a uid, at start:
// before recovery reserves their sessions; shared files from before disk
// quotas are moved onto it.
func (m *Manager) attachUsers(ctx context.Context) {
	m.mu.Lock()
	owners := make(map[string]mounts.Owner, len(m.userUIDs))
	for id, uid := range m.userUIDs {
		owners[id] = mounts.Owner{UID: uid, GID: uid}
	}
	m.mu.Unlock()
	for id, o := range owners {
		var budget int64
		if l, err := m.userLimits(id); err == nil {
			budget = l.MaxWorkspaceMB
		} else {
			m.log.Error("the user's quota.json is not usable; their disk keeps its budget", "user", id, "err", err)
		}
		d, err := m.attachUser(ctx, id, o, budget)
		if err != nil {
			m.log.Error("the user's disk cannot be attached: their sessions are not served", "user", id, "err", err)
			continue
		}
		if err := m.migrateShared(id, d); err != nil {
			m.log.Error("the user's shared files from before disk quotas stay where they were; tried again at the next start", "user", id, "err", err)
		}
	}
}

// releaseOrphans releases the reservations no session claims: creates
// that died between the reservation and session.json (their directory was
// removed by scanSessions).
func (m *Manager) releaseOrphans(ctx context.Context) {
	m.mu.Lock()
	users := make([]string, 0, len(m.disks))
	for id := range m.disks {
		users = append(users, id)
	}
	claimed := map[string]bool{}
	for id, s := range m.sessions {
		if s.meta.Expired == nil || !s.meta.Expired.Done {
			claimed[s.meta.UserID+"/"+id] = true
		}
	}
	m.mu.Unlock()
	for _, userID := range users {
		ids, err := m.quota.Sessions(userID)
		if err != nil {
			m.log.Error("list the user's reserved sessions", "user", userID, "err", err)
			continue
		}
		for _, id := range ids {
			if claimed[userID+"/"+id] {
				continue
			}
			m.log.Info("releasing the disk of a session that does not exist", "session", id, "user", userID)
			if err := m.quota.ReleaseSession(ctx, userID, id); err != nil {
				m.log.Error("release an orphaned reservation", "session", id, "user", userID, "err", err)
			}
		}
	}
}

// userUsage is the user's disk usage from the mechanism.
func (m *Manager) userUsage(userID string) (UserUsage, error) {
	u, err := m.quota.Usage(userID)
	if err != nil {
		return UserUsage{}, fmt.Errorf("user %q: disk usage: %w", userID, err)
	}
	out := UserUsage{
		QuotaMode:     string(m.quota.Mode()),
		Enforced:      u.Enforced,
		ReservedBytes: u.Reserved,
		LimitBytes:    u.LimitBytes,
		UsedBytes:     u.Shared.Bytes,
		Files:         u.Shared.Files,
		Shared:        DiskUsage(u.Shared),
		Sessions:      make(map[string]DiskUsage, len(u.Sessions)),
	}
	for id, su := range u.Sessions {
		su.Files, su.LimitFiles = max(su.Files-daemonInodes, 0), max(su.LimitFiles-daemonInodes, 0)
		out.Sessions[id] = DiskUsage(su)
		out.UsedBytes += su.Bytes
		out.Files += su.Files
	}
	return out, nil
}

// writeCurrent rewrites the "current" object of the user's quota.json
// with their usage, if it changed. A quota.json the daemon cannot parse is
// left as the operator wrote it.
func (m *Manager) writeCurrent(userID string) error {
	d, err := m.disk(userID)
	if err != nil {
		return err
	}
	u, err := m.userUsage(userID)
	if err != nil {
		return err
	}
	m.mu.Lock()
	n := 0
	for _, s := range m.sessions {
		if s.meta.UserID == userID && s.phase != phaseCreating && s.phase != phaseExpired {
			n++
		}
	}
	m.mu.Unlock()
	cur := currentOf(u, n, time.Now())
	d.mu.Lock()
	defer d.mu.Unlock()
	cmp := cur
	cmp.UpdatedAt = time.Time{}
	if cmp == d.written {
		return nil
	}
	path := m.layout.User(userID).QuotaFile()
	// The operator may replace the file meanwhile: what is renamed over it
	// is built from the version still there, looked at again just before.
	for range 3 {
		before, data, err := readVersion(path)
		if err != nil {
			return fmt.Errorf("user %q: %w", userID, err)
		}
		out, err := withCurrent(data, cur)
		if err != nil {
			return fmt.Errorf("%w: user %q: %s: %w", ErrInvalidQuota, userID, path, err)
		}
		tmp := path + ".tmp"
		if err := writeFileAtomic(tmp, out); err != nil {
			return fmt.Errorf("user %q: write %s: %w", userID, tmp, err)
		}
		if after, _, err := readVersion(path); err != nil || after != before {
			_ = os.Remove(tmp)
			continue
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("user %q: write %s: %w", userID, path, err)
		}
		d.written = cmp
		return nil
	}
	return fmt.Errorf("user %q: %s keeps changing", userID, path)
}

// fileVersion tells one content of a file from another.
type fileVersion struct {
	exists     bool
	dev, ino   uint64
	size, nsec int64
}

// readVersion reads path (nil when it does not exist) and its version.
func readVersion(path string) (fileVersion, []byte, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); errors.Is(err, unix.ENOENT) {
		return fileVersion{}, nil, nil
	} else if err != nil {
		return fileVersion{}, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fileVersion{}, nil, err
	}
	return fileVersion{true, st.Dev, st.Ino, st.Size, st.Mtim.Nano()}, data, nil
}

// noteCurrent writes the user's "current" after a create or a delete;
// a failure only delays it to the janitor's next pass.
func (m *Manager) noteCurrent(userID string) {
	if err := m.writeCurrent(userID); err != nil {
		m.log.Warn("update the user's quota.json current usage", "user", userID, "err", err)
	}
}

// diskFull names the limit a write into root ran into, for the files API's
// ErrQuota errors.
func (m *Manager) diskFull(s *session, root Root, err error) error {
	if root == RootShared {
		return fmt.Errorf("%w: user %q: shared_files is full (max_workspace_size_mb %d MiB, less what the live sessions reserve): %w",
			ErrQuota, s.meta.UserID, s.disk.MaxWorkspaceMB, err)
	}
	return fmt.Errorf("%w: session %q: its disk is full (session_disk_mb %d MiB, max_files_per_session %d): %w",
		ErrQuota, s.meta.ID, s.disk.SessionDiskMB, s.disk.MaxFilesPerSession, err)
}
