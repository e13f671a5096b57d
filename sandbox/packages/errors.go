package packages

import (
	"errors"
	"fmt"
)

var (
	// ErrNotAllowed is matched (errors.Is) by a *NotAllowedError: the
	// allow-list refused a package or version (HTTP 403
	// package_not_allowed).
	ErrNotAllowed = errors.New("not allowed by the package allow-list")
	// ErrUnavailable is matched by an *UnavailableError: the list allows
	// the package, but the cache cannot satisfy the request.
	ErrUnavailable = errors.New("not available in the package cache")
	// ErrBadRequest is wrapped by errors about the requirements a caller
	// passed (syntax, too many, too long).
	ErrBadRequest = errors.New("bad package request")
)

// NotAllowedError says which package (and version, when one was chosen)
// the allow-list refused, and why.
type NotAllowedError struct {
	Name string
	// Version is empty when the project is not listed at all.
	Version string
	// RequiredBy names the package whose dependency this is; empty for
	// a package that was asked for.
	RequiredBy string
	// Reason is the allow-list's own explanation, naming its line.
	Reason string
}

func (e *NotAllowedError) Error() string {
	if e.RequiredBy != "" {
		return fmt.Sprintf("%s (required by %s)", e.Reason, e.RequiredBy)
	}
	return e.Reason
}

// Is makes errors.Is(err, ErrNotAllowed) hold.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// UnavailableError says which requirement the cache cannot satisfy.
type UnavailableError struct {
	Name        string
	Requirement string
	RequiredBy  string
	Reason      string
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Requirement, e.Reason)
	if e.RequiredBy != "" {
		msg += fmt.Sprintf(" (required by %s)", e.RequiredBy)
	}
	return msg
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }
