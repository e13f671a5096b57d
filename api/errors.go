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
	CodeAlreadyExists   = "already_exists"
	CodeTooLarge        = "too_large"
	CodeQuotaExceeded   = "quota_exceeded"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Sentinel errors. The daemon wraps them with context (fmt.Errorf("session
// %q: %w", id, api.ErrNotFound)); the server maps each to its HTTP status in
// one table.
var (
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument, Message: "invalid argument"}
	ErrNotFound        = &Error{Code: CodeNotFound, Message: "not found"}
	ErrAlreadyExists   = &Error{Code: CodeAlreadyExists, Message: "already exists"}
	ErrTooLarge        = &Error{Code: CodeTooLarge, Message: "too large"}
	ErrQuotaExceeded   = &Error{Code: CodeQuotaExceeded, Message: "quota exceeded"}
	ErrUnavailable     = &Error{Code: CodeUnavailable, Message: "unavailable"}
	ErrInternal        = &Error{Code: CodeInternal, Message: "internal error"}
)
