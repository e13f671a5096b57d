package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// ErrInvalidID is returned for a user or session id outside the safe
// alphabet; callers wrap it into their own sentinel.
var ErrInvalidID = errors.New("invalid id")

// MaxIDLength bounds ids so that paths and cgroup names stay short.
const MaxIDLength = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidateID checks that id is 1..MaxIDLength characters of [A-Za-z0-9_-],
// starting with a letter or digit: such an id can never name a parent
// directory, a hidden file or a path with more than one component.
func ValidateID(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, kind)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%w: %s is longer than %d characters", ErrInvalidID, kind, MaxIDLength)
	case !idPattern.MatchString(id):
		return fmt.Errorf("%w: %s %q may hold only letters, digits, '_' and '-', and must start with a letter or digit", ErrInvalidID, kind, id)
	}
	return nil
}

// Layout is the state tree under one root:
//
//	envs/<version>/, envs/<version>.json  the base environments (venvs
//	                                   sessions overlay, read-only to them)
//	                                   and their manifests
//	allowed_packages.txt               the package allow-list
//	package_cache/                     the wheel cache; its allowed/ is
//	                                   bound into sandboxes at /opt/wheels
//	rootfs/                            the skeleton root every sandbox starts from
//	containers/                        libcontainer's state
//	agents/<id>.sock                   each sandbox's PID 1 listens here
//	identity/<uid>/{passwd,group}      what sandboxes running as uid see in /etc
//	quota/                             the disk quota mechanism's records (mounts/quota)
//	workspaces/user_<id>/user.json     the user's own uid
//	workspaces/user_<id>/quota.json    the user's limits, and their usage the daemon writes
//	workspaces/user_<id>/sessions/<sid>/session.json
//	workspaces/user_<id>/disk/         the user's quota-limited trees (mounts/quota):
//	    shared_files/{data,outputs}/
//	    sessions/<sid>/{files,logs,venv/{upper,work}}
//
// Everything a sandbox can write is under disk/, where package quota
// lays it out and limits it; what the daemon keeps of a user and a
// session (user.json, quota.json, session.json) stays outside, root-only,
// so that a full disk never keeps the daemon from writing it.
type Layout struct {
	Root string
}

func (l Layout) Envs() string            { return filepath.Join(l.Root, "envs") }
func (l Layout) AllowedPackages() string { return filepath.Join(l.Root, "allowed_packages.txt") }
func (l Layout) PackageCache() string    { return filepath.Join(l.Root, "package_cache") }
func (l Layout) System() string          { return filepath.Join(l.Root, "system") }
func (l Layout) Rootfs() string          { return filepath.Join(l.System(), "rootfs") }
func (l Layout) Containers() string      { return filepath.Join(l.Root, "containers") }
func (l Layout) Agents() string          { return filepath.Join(l.Root, "agents") }
func (l Layout) Quota() string           { return filepath.Join(l.Root, "quota") }

// Identity is the directory of the passwd and group files of sandboxes
// whose commands run as uid.
func (l Layout) Identity(uid int) string {
	return filepath.Join(l.System(), "identity", strconv.Itoa(uid))
}
func (l Layout) Workspaces() string { return filepath.Join(l.Root, "workspaces") }

// User returns the directories of one user; the id must be valid.
func (l Layout) User(userID string) User {
	return User{Dir: filepath.Join(l.Workspaces(), "user_"+userID)}
}

// Session returns the daemon's directory of one session; both ids must
// be valid.
func (l Layout) Session(userID, sessionID string) Session {
	return Session{Dir: filepath.Join(l.User(userID).Dir, "sessions", sessionID)}
}

// User is one user's workspace directory.
type User struct{ Dir string }

func (u User) Sessions() string  { return filepath.Join(u.Dir, "sessions") }
func (u User) QuotaFile() string { return filepath.Join(u.Dir, "quota.json") }
func (u User) Record() string    { return filepath.Join(u.Dir, "user.json") }

// Session is the daemon's directory of one session (root-only): its
// session.json. Its trees are the quota mechanism's (under the user's
// disk/).
type Session struct{ Dir string }

func (s Session) Meta() string { return filepath.Join(s.Dir, "session.json") }

// Init creates the daemon-owned part of the tree. Everything is root-only
// except what the sandbox user must reach, which is granted per directory.
func (l Layout) Init() error {
	for _, d := range []string{l.Root, l.Envs(), l.PackageCache(), l.Containers(), l.Workspaces()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
	}
	// Only root may connect to a sandbox's agent, or read the quota
	// records.
	for _, d := range []string{l.Agents(), l.Quota()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
	}
	return nil
}

// Owner is the uid/gid that sandbox processes run as; directories they write
// to are created owned by it.
type Owner struct{ UID, GID int }

// EnsureUser creates the daemon's part of the user's directory if
// missing: the directory itself and sessions/, root-only. The user's disk/
// is the quota mechanism's to make.
func (l Layout) EnsureUser(userID string) (User, error) {
	u := l.User(userID)
	if err := os.MkdirAll(u.Sessions(), 0o700); err != nil {
		return u, fmt.Errorf("user %q: %w", userID, err)
	}
	if err := os.Chmod(u.Dir, 0o700); err != nil {
		return u, fmt.Errorf("user %q: %w", userID, err)
	}
	return u, nil
}

// EnsureShared makes data/ and outputs/ in a user's shared_files, owned
// by o, where missing. shared_files is bound into every session of the
// user, so what is in it may be anything a sandbox made: its entries are
// made through descriptors, following nothing, and whatever already stands
// at a name is left for the code that uses it to judge.
func EnsureShared(sharedFiles string, o Owner) error {
	shared, err := OpenDir(sharedFiles)
	if err != nil {
		return err
	}
	defer shared.Close()
	for _, name := range []string{"data", outputsName} {
		d, err := shared.Mkdir(name, 0o750, o)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		_ = d.Close()
	}
	return nil
}

// CreateSession creates the daemon's directory of a new session; it fails
// with an fs.ErrExist error if the directory already exists.
func (l Layout) CreateSession(userID, sessionID string) (Session, error) {
	s := l.Session(userID, sessionID)
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return s, fmt.Errorf("session %q: %w", sessionID, err)
	}
	return s, nil
}

// MakeSharedMountPoint makes the mount point of shared_files in a
// session's files (/workspace/shared), root's, so that the sandbox cannot
// replace it; one already there is left as it is.
func MakeSharedMountPoint(files string) error {
	d, err := OpenDir(files)
	if err != nil {
		return err
	}
	defer d.Close()
	sub, err := d.Mkdir("shared", 0o755, Owner{})
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return sub.Close()
}
