package quota

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// noneBackend lays the trees out as the other modes do, on the state
// filesystem, and enforces nothing.
type noneBackend struct{}

// userTree opens the user's disk directory, made if missing, with its
// shared_files and sessions directories, for the directory-based modes.
func userTree(u *user, mode Mode) (*os.File, error) {
	dir, err := openUserDir(u.dir)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if err := notOtherMode(dir, mode); err != nil {
		return nil, err
	}
	disk, err := ensureDir(dir, diskDir, 0o711, rootOwner)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		mode uint32
		o    owner
	}{{sessionsDir, 0o711, rootOwner}, {sharedDir, 0o750, u.owner}} {
		f, err := ensureDir(disk, d.name, d.mode, d.o)
		if err != nil {
			disk.Close()
			return nil, err
		}
		f.Close()
	}
	return disk, nil
}

// notOtherMode refuses a user directory laid out for another mode: in
// loop mode disk/ is the mount point of disk.img, in the directory modes
// (project, none) a plain directory. Using one layout with the other mode
// would split or hide the user's files: a state directory keeps its mode.
func notOtherMode(dir *os.File, mode Mode) error {
	other, marker := ModeLoop, userImage
	if mode == ModeLoop {
		other, marker = ModeProject, projectsFile
	}
	if err := unix.Faccessat(int(dir.Fd()), marker, unix.F_OK, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return fmt.Errorf("%w: %s/%s: the user's disk was laid out in %s mode, not %s", ErrForeign, dir.Name(), marker, other, mode)
	}
	return nil
}

func (b *noneBackend) attachUser(ctx context.Context, u *user) error {
	disk, err := userTree(u, ModeNone)
	if err != nil {
		return err
	}
	return disk.Close()
}

func (b *noneBackend) reserveSession(ctx context.Context, u *user, sid string, l SessionLimits) (SessionDirs, error) {
	disk, err := userTree(u, ModeNone)
	if err != nil {
		return SessionDirs{}, err
	}
	defer disk.Close()
	root, err := openSessionRoot(disk, sid)
	if err != nil {
		return SessionDirs{}, err
	}
	defer root.Close()
	if err := makeSessionLayout(root, u.owner); err != nil {
		return SessionDirs{}, err
	}
	return sessionDirs(u.dir, sid), nil
}

// openSessionRoot makes (or opens) disk/sessions/<sid>.
func openSessionRoot(disk *os.File, sid string) (*os.File, error) {
	sessions, err := openAt(disk, sessionsDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer sessions.Close()
	return ensureDir(sessions, sid, 0o755, rootOwner)
}

// removeSessionTree deletes disk/sessions/<sid> and everything in it.
// The path up to it is root's; beneath, os.RemoveAll opens every
// directory with O_NOFOLLOW, so a planted symlink is removed, not
// followed.
func removeSessionTree(u *user, sid string) error {
	p := sessionDirs(u.dir, sid).Root
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

func (b *noneBackend) releaseSession(ctx context.Context, u *user, sid string) error {
	return removeSessionTree(u, sid)
}

func (b *noneBackend) setUserLimits(ctx context.Context, u *user, l UserLimits) error { return nil }

func (b *noneBackend) usage(u *user) (UserUsage, error) {
	ids, err := b.sessions(u)
	if err != nil {
		return UserUsage{}, err
	}
	uu := UserUsage{Sessions: make(map[string]Usage, len(ids))}
	for _, id := range ids {
		uu.Sessions[id] = Usage{}
	}
	return uu, nil
}

func (b *noneBackend) sessions(u *user) ([]string, error) {
	return listDirSessions(u)
}

// listDirSessions names the session directories of a user's disk.
func listDirSessions(u *user) ([]string, error) {
	dir, err := openUserDir(u.dir)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return sessionNames(dir, diskDir+"/"+sessionsDir, "")
}

func (b *noneBackend) detachUser(ctx context.Context, u *user) error { return nil }
