package api

import (
	"errors"
	"fmt"
)

// Error is the error envelope every failed request answers with. The same
// type is what the Go client returns, so callers test the kind of failure
// with errors.Is against the sentinels below.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Status is the HTTP status the error came with (client side only).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	}
	return e.Message
}

// Is reports whether target is an *Error with the same code, so that a
// decoded client error matches its sentinel.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Error codes, one per kind of failure.
const (
	CodeInvalidArgument = "invalid_argument"
	CodeNotFound        = "not_found"
	CodePermission      = "permission_denied"
	CodeConflict        = "conflict"
	CodeAlreadyExists   = "already_exists"
	CodeTooLarge        = "too_large"
	CodeQuotaExceeded   = "quota_exceeded"
	CodePidsLimit       = "pids_limit"
	CodeUnsupported     = "unsupported_content"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
	// CodeExpired: the session outlived its user's
	// max_session_duration_hours (HTTP 410).
	CodeExpired = "expired"
	// CodeInvalidQuota: the user's quota.json cannot be used (HTTP 400).
	CodeInvalidQuota = "invalid_quota"
)

// Sentinel errors, one per code. The Go client's errors match them with
// errors.Is; the server wraps them for failures of its own (a body that does
// not decode).
var (
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument, Message: "invalid argument"}
	ErrNotFound        = &Error{Code: CodeNotFound, Message: "not found"}
	// ErrPermission: the path leaves its root, or the file may not be
	// touched (a hard link, a device, a FIFO).
	ErrPermission = &Error{Code: CodePermission, Message: "permission denied"}
	// ErrConflict: the request contradicts the current state (an edit's
	// text occurs another number of times, a directory is not empty).
	ErrConflict      = &Error{Code: CodeConflict, Message: "conflict"}
	ErrAlreadyExists = &Error{Code: CodeAlreadyExists, Message: "already exists"}
	ErrTooLarge      = &Error{Code: CodeTooLarge, Message: "too large"}
	ErrQuotaExceeded = &Error{Code: CodeQuotaExceeded, Message: "quota exceeded"}
	// ErrPidsLimit: the session's processes are all in use; a command
	// could not be started.
	ErrPidsLimit = &Error{Code: CodePidsLimit, Message: "pids limit reached"}
	// ErrUnsupported: the content is not what the route serves (binary or
	// invalid UTF-8 for a text route).
	ErrUnsupported = &Error{Code: CodeUnsupported, Message: "unsupported content"}
	ErrUnavailable = &Error{Code: CodeUnavailable, Message: "unavailable"}
	ErrInternal    = &Error{Code: CodeInternal, Message: "internal error"}
	// ErrExpired: the session was stopped at its maximum duration; it can
	// be described and deleted, nothing else.
	ErrExpired = &Error{Code: CodeExpired, Message: "session expired"}
	// ErrInvalidQuota: the user's quota.json is malformed or its limits
	// cannot be used; the message names the file's error.
	ErrInvalidQuota = &Error{Code: CodeInvalidQuota, Message: "invalid quota.json"}
)
