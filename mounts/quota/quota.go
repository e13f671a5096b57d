package quota

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Mode is the mechanism that enforces the limits on this host.
type Mode string

const (
	// ModeProject: project quotas of the state filesystem.
	ModeProject Mode = "project"
	// ModeLoop: loop-mounted ext4 images.
	ModeLoop Mode = "loop"
	// ModeNone: nothing is enforced.
	ModeNone Mode = "none"
)

// Errors callers map to their own; every error is wrapped with the user
// and the session it concerns.
var (
	// ErrNoRoom: the user's budget cannot hold the reservation (the API's
	// 429). Nothing was reserved.
	ErrNoRoom = errors.New("the user's disk budget cannot hold another session")
	// ErrBelowUsage: a smaller budget than what is already used or
	// reserved. The limits are unchanged.
	ErrBelowUsage = errors.New("the new limit is below what is already used")
	// ErrCannotGrow: the budget is beyond what the user's disk was made
	// for and the disk cannot grow while mounted here (loop mode without
	// CAP_SYS_RESOURCE). The limits are unchanged.
	ErrCannotGrow = errors.New("the user's disk cannot grow online")
	// ErrNotAttached: the user was not attached by AttachUser.
	ErrNotAttached = errors.New("user not attached")
	// ErrForeign: a path holds something the daemon did not put there (a
	// symlink, a file, a directory of another owner, another filesystem);
	// it is left alone.
	ErrForeign = errors.New("not what the daemon made there")
	// ErrInvalid: limits or names that cannot be used.
	ErrInvalid = errors.New("invalid quota request")
)

const (
	mib = 1 << 20

	// MinSessionBytes is the smallest session reservation: an ext4
	// image smaller than this holds little beyond its own metadata.
	MinSessionBytes = 1 * mib
	// MinUserBytes is the smallest user budget.
	MinUserBytes = 1 * mib
	// BytesPerSharedFile sets how many files shared_files may hold: one
	// per 16 KiB of the budget (ext4's default inode ratio), so that no
	// user can exhaust the host's inodes either.
	BytesPerSharedFile = 16 << 10
)

// dirAllowance is room beyond U for the directories the disk is laid
// out with (each session's mount point or root, shared_files' own
// blocks): without it, sessions reserving exactly U/n each would not fit
// n times. shared_files may hold up to this much more than U when no
// session is reserved.
const dirAllowance = 1 * mib

// Owner is the uid and gid a user's sandbox-writable directories belong
// to: the user's own, under which their commands run.
type Owner struct{ UID, GID int }

// UserLimits is a user's budget.
type UserLimits struct {
	// Bytes is U: shared_files and every session's reservation together.
	Bytes int64
}

// SessionLimits is what one session reserves of its user's budget.
type SessionLimits struct {
	// Bytes is S, charged to the user's budget whole for the session's
	// life. The session's filesystem metadata is inside it.
	Bytes int64
	// Files is F, the files and directories the session may make.
	Files int64
}

// KeepBudget, given to AttachUser, keeps the budget the user's disk has:
// what a restarted daemon uses when the user's own limits cannot be read.
var KeepBudget = UserLimits{}

func (l UserLimits) check() error {
	if l.Bytes < MinUserBytes {
		return fmt.Errorf("%w: user budget %d bytes is below the minimum %d", ErrInvalid, l.Bytes, MinUserBytes)
	}
	return nil
}

func (l SessionLimits) check() error {
	switch {
	case l.Bytes < MinSessionBytes:
		return fmt.Errorf("%w: session reservation %d bytes is below the minimum %d", ErrInvalid, l.Bytes, MinSessionBytes)
	case l.Files < 1:
		return fmt.Errorf("%w: session file limit %d must be positive", ErrInvalid, l.Files)
	case l.Files > maxSessionFiles:
		return fmt.Errorf("%w: session file limit %d is above %d", ErrInvalid, l.Files, maxSessionFiles)
	case (l.Files+firstInode+sessionLayout)*inodeSize > l.Bytes/2:
		// The inode table would take most of the image (in project mode
		// the same limits keep the modes alike).
		return fmt.Errorf("%w: %d files need more than half of a %d-byte reservation for their inodes", ErrInvalid, l.Files, l.Bytes)
	}
	return nil
}

// maxSessionFiles keeps -N and the inode table of a session reasonable.
const maxSessionFiles = 1 << 24

// The ext4 geometry of the images.
const (
	blockSize  = 4096
	inodeSize  = 256
	inodeRatio = BytesPerSharedFile
	// firstInode: ext4 reserves inodes 1-10, and lost+found is 11.
	firstInode = 11
)

// Usage is what is used of a limit. Files counts files and directories.
type Usage struct {
	Bytes, LimitBytes int64
	Files, LimitFiles int64
}

// UserUsage is a user's usage.
type UserUsage struct {
	// Enforced is false in ModeNone: the figures are then zero.
	Enforced bool
	// Bytes is what is taken of the budget: the sessions' reservations
	// plus shared_files. LimitBytes is the budget.
	Bytes, LimitBytes int64
	// Reserved is the sum of the live sessions' reservations.
	Reserved int64
	// Shared is shared_files: its bytes, and its limit, which is the
	// budget minus the reservations.
	Shared Usage
	// Sessions is each reserved session's own usage: bytes written and
	// files made in its tree, against what its reservation can hold.
	Sessions map[string]Usage
}

// UserDirs is where a user's trees live once attached.
type UserDirs struct {
	// Disk holds the user's quota-limited trees.
	Disk string
	// SharedFiles is the user's shared files (the sandbox's
	// /workspace/shared), owned by the user's Owner.
	SharedFiles string
}

// SessionDirs is where a session's writable trees live once reserved.
// Files, Logs and VenvUpper belong to the user's Owner, like the
// directories mounts.Layout.CreateSession makes; VenvWork is root's.
type SessionDirs struct {
	Root      string
	Files     string
	Logs      string
	VenvUpper string
	VenvWork  string
}

// Names inside a user's directory and disk.
const (
	diskDir       = "disk"
	userImage     = "disk.img"
	projectsFile  = "projects.json"
	imagesDir     = "images"
	sessionsDir   = "sessions"
	sharedDir     = "shared_files"
	ballastFile   = ".reserve"
	imageSuffix   = ".img"
	tmpPrefix     = ".tmp-"
	sessionFiles  = "files"
	sessionLogs   = "logs"
	sessionVenv   = "venv"
	venvUpper     = "upper"
	venvWork      = "work"
	sessionLayout = 5 // files, logs, venv, venv/upper, venv/work
)

func userDirs(dir string) UserDirs {
	disk := filepath.Join(dir, diskDir)
	return UserDirs{Disk: disk, SharedFiles: filepath.Join(disk, sharedDir)}
}

func sessionDirs(dir, sessionID string) SessionDirs {
	root := filepath.Join(dir, diskDir, sessionsDir, sessionID)
	return SessionDirs{
		Root:      root,
		Files:     filepath.Join(root, sessionFiles),
		Logs:      filepath.Join(root, sessionLogs),
		VenvUpper: filepath.Join(root, sessionVenv, venvUpper),
		VenvWork:  filepath.Join(root, sessionVenv, venvWork),
	}
}

// checkName refuses an id that is not one plain path component. Callers
// validate ids more strictly; this keeps the package safe on its own.
func checkName(kind, id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 255 ||
		strings.ContainsAny(id, "/\x00") || strings.HasPrefix(id, tmpPrefix) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("%w: %s %q is not a plain name", ErrInvalid, kind, id)
	}
	return nil
}

// sharedFileLimit is the file limit of shared_files for a budget.
func sharedFileLimit(budget int64) int64 {
	return max(budget/BytesPerSharedFile, 1024)
}
