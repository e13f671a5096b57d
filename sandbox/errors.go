package sandbox

import "errors"

// The kinds of failure a Manager reports. Errors wrap one of them with
// their context (fmt.Errorf("%w: session %q", ErrNotFound, id)); callers
// test the kind with errors.Is. The HTTP layer maps each to a status and a
// wire code in one table.
var (
	ErrInvalid  = errors.New("invalid argument")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict: the request contradicts the current state (an edit's
	// text occurs another number of times, a directory is not empty).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: a path leads outside its root, or names a file that is
	// never touched (a hard link, a device, a FIFO).
	ErrForbidden = errors.New("permission denied")
	ErrTooLarge  = errors.New("too large")
	// ErrNotText: a text operation met binary or invalid UTF-8 content.
	ErrNotText = errors.New("not text")
	// ErrQuota: a user's or session's quota is used up.
	ErrQuota = errors.New("quota exceeded")
	// ErrPidsLimit: the session has no process left to start a command
	// with.
	ErrPidsLimit = errors.New("pids limit reached")
	// ErrPackageNotAllowed: the package allow-list refused a package, or
	// a version of one, that an install asked for or needed.
	ErrPackageNotAllowed = errors.New("package not allowed")
	// ErrUnavailable: the session or daemon cannot serve the request now.
	ErrUnavailable = errors.New("unavailable")
	// ErrExpired: the session outlived its user's
	// max_session_duration_hours; it was stopped and serves nothing but
	// describe and delete.
	ErrExpired = errors.New("session expired")
	// ErrInvalidQuota: the user's quota.json cannot be read or used; the
	// error names the file and what is wrong with it.
	ErrInvalidQuota = errors.New("invalid quota.json")
)
