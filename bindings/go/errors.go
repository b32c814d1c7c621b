package streamhub

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"time"
)

// Code is a libstreamhub error code (sh_err_t).  The values are those of
// include/streamhub/error.h, which are stable and append-only.  A Code is
// itself an error, so that the sentinel values below work with errors.Is.
type Code int

// The codes of error.h.
const (
	CodeNoMemory        Code = C.SH_ENOMEM
	CodeInvalid         Code = C.SH_EINVAL
	CodeNotFound        Code = C.SH_ENOTFOUND
	CodeConflict        Code = C.SH_ECONFLICT
	CodeForbidden       Code = C.SH_EFORBIDDEN
	CodeUnauthenticated Code = C.SH_EUNAUTHENTICATED
	CodeRateLimited     Code = C.SH_ERATELIMITED
	CodeStore           Code = C.SH_ESTORE
	CodeBus             Code = C.SH_EBUS
	CodeIO              Code = C.SH_EIO
	CodeTooBig          Code = C.SH_ETOOBIG
	CodeBusy            Code = C.SH_EBUSY
	CodeCanceled        Code = C.SH_ECANCELED
	CodeInternal        Code = C.SH_EINTERNAL
	CodeNotSupported    Code = C.SH_ENOTSUP
	CodeTimedOut        Code = C.SH_ETIMEDOUT
	CodeBanned          Code = C.SH_EBANNED
	CodeTimedOutUser    Code = C.SH_ETIMEDOUT_USER
	CodeFollowersOnly   Code = C.SH_EFOLLOWERSONLY
	CodeSlowMode        Code = C.SH_ESLOWMODE
	CodeTooLong         Code = C.SH_ETOOLONG
	CodeBadUTF8         Code = C.SH_EBADUTF8
	CodeBlockedTerm     Code = C.SH_EBLOCKEDTERM
	CodeEmpty           Code = C.SH_EEMPTY
)

// Sentinel errors for errors.Is.  Every error this package returns for a
// failed C call is an *Error (or a *RateLimitedError wrapping one) whose
// Code matches exactly one of these.
var (
	ErrNoMemory        error = CodeNoMemory
	ErrInvalid         error = CodeInvalid
	ErrNotFound        error = CodeNotFound
	ErrConflict        error = CodeConflict
	ErrForbidden       error = CodeForbidden
	ErrUnauthenticated error = CodeUnauthenticated
	ErrRateLimited     error = CodeRateLimited
	ErrStore           error = CodeStore
	ErrBus             error = CodeBus
	ErrIO              error = CodeIO
	ErrTooBig          error = CodeTooBig
	ErrBusy            error = CodeBusy
	// ErrCanceled: the hub is closing or closed.
	ErrCanceled     error = CodeCanceled
	ErrInternal     error = CodeInternal
	ErrNotSupported error = CodeNotSupported
	ErrTimedOut     error = CodeTimedOut
	// Chat refusals (sh_chat_send), one per check.
	ErrBanned        error = CodeBanned
	ErrTimedOutUser  error = CodeTimedOutUser
	ErrFollowersOnly error = CodeFollowersOnly
	ErrSlowMode      error = CodeSlowMode
	ErrTooLong       error = CodeTooLong
	ErrBadUTF8       error = CodeBadUTF8
	ErrBlockedTerm   error = CodeBlockedTerm
	ErrEmpty         error = CodeEmpty
)

// Name is the stable symbolic name of the code, e.g. "SH_ENOTFOUND".
func (c Code) Name() string { return C.GoString(C.sh_err_name(C.sh_err_t(c))) }

// Error is the library's English description of the code.
func (c Code) Error() string { return C.GoString(C.sh_strerror(C.sh_err_t(c))) }

// Error is a failed call of libstreamhub.
type Error struct {
	Op      string // the Go method, e.g. "Register"
	Code    Code   // the sh_err_t
	Name    string // the code's symbolic name, e.g. "SH_ECONFLICT"
	Message string // the call's error buffer, or the code's description
	// RetryAfter is set for refusals that say when to retry
	// (CodeRateLimited, CodeSlowMode, CodeTimedOutUser); else 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("streamhub: %s (%s)", e.Message, e.Name)
	}
	return fmt.Sprintf("streamhub: %s: %s (%s)", e.Op, e.Message, e.Name)
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// Unwrap gives the Code, so that errors.As(err, &code) works too.
func (e *Error) Unwrap() error { return e.Code }

// RateLimitedError is returned for CodeRateLimited: errors.As(err, &rl)
// gives the time to wait.  It wraps the *Error, so errors.Is(err,
// ErrRateLimited) and errors.As into *Error work as well.
type RateLimitedError struct {
	Err        *Error
	RetryAfter time.Duration // how long to wait before the next attempt
}

func (e *RateLimitedError) Error() string { return e.Err.Error() }

// Unwrap gives the *Error.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// newError builds the error of a failed call: rc the sh_err_t, msg the
// error buffer's text ("" when the call has none or left it empty).
func newError(op string, rc C.sh_err_t, msg string) error {
	c := Code(rc)
	if msg == "" {
		msg = c.Error()
	}
	e := &Error{Op: op, Code: c, Name: c.Name(), Message: msg}
	if c == CodeRateLimited {
		return &RateLimitedError{Err: e}
	}
	return e
}

// newRetryError is newError for calls that report a retry delay.
func newRetryError(op string, rc C.sh_err_t, msg string,
	retryMs int64) error {
	err := newError(op, rc, msg)
	d := time.Duration(retryMs) * time.Millisecond
	switch e := err.(type) {
	case *RateLimitedError:
		e.Err.RetryAfter = d
		e.RetryAfter = d
	case *Error:
		e.RetryAfter = d
	}
	return err
}

// errClosed is the error of a call on a closed Hub.
func errClosed(op string) error {
	return &Error{Op: op, Code: CodeCanceled, Name: CodeCanceled.Name(),
		Message: "hub is closed"}
}
