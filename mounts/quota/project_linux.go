package quota

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// projectBackend enforces the limits with the state filesystem's project
// quotas: a project per session (S bytes, F files) and one for the
// user's shared_files (U minus the sessions' reservations). A reservation
// lowers the shared project's limit first and re-reads its usage after,
// so a write racing it cannot make shared_files and the sessions together
// exceed U.
//
// Project quotas bind a file's owner only as long as the owner cannot
// change the file's project id, which FS_IOC_FSSETXATTR lets any owner do
// outside a user namespace: sandboxes must be denied that ioctl (and
// file_setattr(2), Linux 6.17) by seccomp, or run in a user namespace.
// On ext4, CAP_SYS_RESOURCE also passes over limits: the daemon's own
// writes into a session (uploads) must be made without it.
type projectBackend struct {
	ids idAllocator
}

// sessionBaseInodes: a session's root directory and its layout.
const sessionBaseInodes = 1 + sessionLayout

func newProjectBackend(dir string) (*projectBackend, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: project mode needs a directory for its records", ErrInvalid)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrInvalid, dir)
	}
	return &projectBackend{ids: idAllocator{path: filepath.Join(dir, "next-project-id")}}, nil
}

func recordPath(u *user) string { return filepath.Join(u.dir, projectsFile) }

// allocate gives out a project id no file uses yet.
func (b *projectBackend) allocate(fsf *os.File) (uint32, error) {
	return b.ids.next(func(id uint32) bool {
		q, err := getProjectQuota(fsf, id)
		return err == nil && (q.Inodes > 0 || q.Bytes > 0)
	})
}

func (b *projectBackend) attachUser(ctx context.Context, u *user) error {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return err
	}
	if u.limits == KeepBudget && rec.Budget == 0 {
		return fmt.Errorf("%w: no budget for a new disk", ErrInvalid)
	}
	disk, err := userTree(u, ModeProject)
	if err != nil {
		return err
	}
	defer disk.Close()
	shared, err := openAt(disk, sharedDir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer shared.Close()
	if rec.Shared == 0 {
		if rec.Shared, err = b.allocate(disk); err != nil {
			return err
		}
		if err := rec.save(recordPath(u)); err != nil {
			return err
		}
	}
	if err := setProject(shared, rec.Shared); err != nil {
		return err
	}
	// Re-apply every session's limits (idempotent; repairs a quota file
	// that lost them).
	sessions, err := openAt(disk, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer sessions.Close()
	for sid, s := range rec.Sessions {
		if err := b.applySession(disk, sessions, sid, s); err != nil && !errIsNotExist(err) {
			return fmt.Errorf("session %q: %w", sid, err)
		}
	}
	budget := u.limits.Bytes
	if u.limits == KeepBudget {
		budget = rec.Budget
	}
	return b.setBudget(disk, u, rec, budget)
}

// setBudget applies budget: the shared project gets what the sessions do
// not reserve. Below what is used and reserved it fails with
// ErrBelowUsage and the previous limit stays.
func (b *projectBackend) setBudget(fsf *os.File, u *user, rec *projectRecord, budget int64) error {
	if err := b.limitShared(fsf, rec, budget, budget+dirAllowance-rec.reserved()); err != nil {
		return err
	}
	rec.Budget = budget
	return rec.save(recordPath(u))
}

// limitShared sets the shared project's limits for a budget: limit
// bytes (the budget, with the directories' allowance, less the
// reservations), unless shared_files already holds more; re-reading after
// the change catches a write that raced it, and puts the previous limit
// back.
func (b *projectBackend) limitShared(fsf *os.File, rec *projectRecord, budget, limit int64) error {
	q, err := getProjectQuota(fsf, rec.Shared)
	if err != nil {
		return err
	}
	if limit < qifBlockSize || q.Bytes > limit {
		return fmt.Errorf("%w: shared_files holds %d bytes, limit would be %d", ErrBelowUsage, q.Bytes, limit)
	}
	files := sharedFileLimit(budget) + 1 // and the directory itself
	if err := setProjectQuota(fsf, rec.Shared, limit, files); err != nil {
		return err
	}
	after, err := getProjectQuota(fsf, rec.Shared)
	if err != nil {
		return err
	}
	if after.Bytes > limit {
		_ = setProjectQuota(fsf, rec.Shared, q.LimitBytes, q.LimitInodes)
		return fmt.Errorf("%w: shared_files holds %d bytes, limit would be %d", ErrBelowUsage, after.Bytes, limit)
	}
	return nil
}

// applySession sets a session's limits and its root's project.
func (b *projectBackend) applySession(disk, sessions *os.File, sid string, s projectSession) error {
	if err := setProjectQuota(disk, s.ID, s.Bytes, s.Files+sessionBaseInodes); err != nil {
		return err
	}
	root, err := openAt(sessions, sid, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := checkOwned(root, rootOwner); err != nil {
		return err
	}
	return setProject(root, s.ID)
}

func (b *projectBackend) reserveSession(ctx context.Context, u *user, sid string, l SessionLimits) (SessionDirs, error) {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return SessionDirs{}, err
	}
	disk, err := userTree(u, ModeProject)
	if err != nil {
		return SessionDirs{}, err
	}
	defer disk.Close()
	sessions, err := openAt(disk, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return SessionDirs{}, err
	}
	defer sessions.Close()
	// The root first: one that is not the daemon's stops the reservation
	// before anything is taken. It gets its project after (which moves its
	// inode along), the layout last, so that the layout inherits it.
	root, err := openSessionRoot(disk, sid)
	if err != nil {
		return SessionDirs{}, err
	}
	root.Close()
	s, ok := rec.Sessions[sid]
	if !ok {
		if s, err = b.reserve(disk, u, rec, sid, l); err != nil {
			_ = removeAt(sessions, sid, unix.AT_REMOVEDIR)
			return SessionDirs{}, err
		}
	}
	if err := b.applySession(disk, sessions, sid, s); err != nil {
		return SessionDirs{}, err
	}
	root, err = openAt(sessions, sid, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return SessionDirs{}, err
	}
	defer root.Close()
	if err := makeSessionLayout(root, u.owner); err != nil {
		return SessionDirs{}, err
	}
	return sessionDirs(u.dir, sid), nil
}

// reserve takes l from the budget for a new session: the record first
// (so that a crash leaves a reservation recovery can release, never a
// project nobody knows), then the shared limit lowered.
func (b *projectBackend) reserve(disk *os.File, u *user, rec *projectRecord, sid string, l SessionLimits) (projectSession, error) {
	reserved := rec.reserved()
	q, err := getProjectQuota(disk, rec.Shared)
	if err != nil {
		return projectSession{}, err
	}
	if q.Bytes+reserved+l.Bytes > rec.Budget+dirAllowance {
		return projectSession{}, fmt.Errorf("%w: %d bytes reserved and %d in shared_files of %d", ErrNoRoom, reserved, q.Bytes, rec.Budget)
	}
	id, err := b.allocate(disk)
	if err != nil {
		return projectSession{}, err
	}
	s := projectSession{ID: id, Bytes: l.Bytes, Files: l.Files}
	rec.Sessions[sid] = s
	if err := rec.save(recordPath(u)); err != nil {
		return projectSession{}, err
	}
	if err := b.limitShared(disk, rec, rec.Budget, rec.Budget+dirAllowance-reserved-l.Bytes); err != nil {
		delete(rec.Sessions, sid)
		if serr := rec.save(recordPath(u)); serr != nil {
			return projectSession{}, errors.Join(err, serr)
		}
		if errors.Is(err, ErrBelowUsage) {
			err = fmt.Errorf("%w: %w", ErrNoRoom, err)
		}
		return projectSession{}, err
	}
	return s, nil
}

func (b *projectBackend) releaseSession(ctx context.Context, u *user, sid string) error {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return err
	}
	if err := removeSessionTree(u, sid); err != nil {
		return err
	}
	s, ok := rec.Sessions[sid]
	if !ok {
		return nil
	}
	dir, err := openUserDir(u.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := setProjectQuota(dir, s.ID, 0, 0); err != nil {
		return err
	}
	delete(rec.Sessions, sid)
	if err := rec.save(recordPath(u)); err != nil {
		return err
	}
	return b.limitShared(dir, rec, rec.Budget, rec.Budget+dirAllowance-rec.reserved())
}

func (b *projectBackend) setUserLimits(ctx context.Context, u *user, l UserLimits) error {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return err
	}
	dir, err := openUserDir(u.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return b.setBudget(dir, u, rec, l.Bytes)
}

func (b *projectBackend) usage(u *user) (UserUsage, error) {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return UserUsage{}, err
	}
	dir, err := openUserDir(u.dir)
	if err != nil {
		return UserUsage{}, err
	}
	defer dir.Close()
	if rec.Shared == 0 {
		return UserUsage{}, ErrNotAttached
	}
	q, err := getProjectQuota(dir, rec.Shared)
	if err != nil {
		return UserUsage{}, err
	}
	uu := UserUsage{Enforced: true, LimitBytes: rec.Budget, Reserved: rec.reserved(), Sessions: make(map[string]Usage, len(rec.Sessions))}
	uu.Bytes = q.Bytes + uu.Reserved
	uu.Shared = Usage{Bytes: q.Bytes, LimitBytes: q.LimitBytes, Files: max(q.Inodes-1, 0), LimitFiles: max(q.LimitInodes-1, 0)}
	for sid, s := range rec.Sessions {
		sq, err := getProjectQuota(dir, s.ID)
		if err != nil {
			return UserUsage{}, fmt.Errorf("session %q: %w", sid, err)
		}
		uu.Sessions[sid] = Usage{Bytes: sq.Bytes, LimitBytes: s.Bytes, Files: max(sq.Inodes-sessionBaseInodes, 0), LimitFiles: s.Files}
	}
	return uu, nil
}

func (b *projectBackend) sessions(u *user) ([]string, error) {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return nil, err
	}
	ids, err := listDirSessions(u)
	if err != nil {
		return nil, err
	}
	for sid := range rec.Sessions {
		found := false
		for _, id := range ids {
			found = found || id == sid
		}
		if !found {
			ids = append(ids, sid)
		}
	}
	return ids, nil
}

// detachUser lifts the user's limits: the user is being removed, and a
// later AttachUser sets them again.
func (b *projectBackend) detachUser(ctx context.Context, u *user) error {
	rec, err := loadRecord(recordPath(u))
	if err != nil {
		return err
	}
	dir, err := openUserDir(u.dir)
	if errIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	var errs []error
	for _, s := range rec.Sessions {
		errs = append(errs, setProjectQuota(dir, s.ID, 0, 0))
	}
	if rec.Shared != 0 {
		errs = append(errs, setProjectQuota(dir, rec.Shared, 0, 0))
	}
	return errors.Join(errs...)
}

// probeProject checks that dir's filesystem enforces project quotas and
// that the package can use them there: set a project on a scratch
// directory, set and read back limits, see the directory counted.
func probeProject(ctx context.Context, dir string) error {
	d, err := openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := quotactlFd(nil, 0, 0, nil); errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("the kernel lacks quotactl_fd (Linux 5.14): %w", err)
	}
	flags, err := projectQuotaState(d)
	if err != nil {
		return fmt.Errorf("%s has no project quotas (ext4 needs the prjquota mount option, XFS pquota): %w", fsName(dir), err)
	}
	if flags&fsQuotaPDQAcct == 0 || flags&fsQuotaPDQEnfd == 0 {
		return fmt.Errorf("%s counts project quotas but does not enforce them (flags %#x)", fsName(dir), flags)
	}
	scratch, cleanup, err := probeDir(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := openDir(scratch)
	if err != nil {
		return err
	}
	defer s.Close()
	sf, err := openAt(s, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer sf.Close()
	if err := setProject(sf, probeProjectID); err != nil {
		return err
	}
	defer setProjectQuota(d, probeProjectID, 0, 0) //nolint:errcheck // best effort: the probe's limits
	if err := setProjectQuota(d, probeProjectID, mib, 16); err != nil {
		return err
	}
	q, err := getProjectQuota(d, probeProjectID)
	if err != nil {
		return err
	}
	if q.LimitBytes != mib || q.LimitInodes != 16 || q.Inodes < 1 {
		return fmt.Errorf("project %d reads back limits %d bytes, %d inodes and %d inodes used: not what was set", probeProjectID, q.LimitBytes, q.LimitInodes, q.Inodes)
	}
	return nil
}
