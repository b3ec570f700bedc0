package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrorCode classifies a plugin error so the hub can act on it without
// parsing strings.
type ErrorCode int

const (
	CodeUnknown      ErrorCode = iota // untyped; the hub retries it
	CodeRetryable                     // transient: retry, after RetryAfter if set
	CodePermanent                     // will fail again: do not retry
	CodeNotFound                      // the record or recipient does not exist
	CodeUnauthorized                  // credentials rejected; a person must act
	CodeRateLimited                   // slow down: retry after RetryAfter
	CodeInvalid                       // the request itself is wrong
	CodeConflict                      // compare-and-set lost, or a duplicate
)

var codeNames = map[ErrorCode]string{
	CodeUnknown: "unknown", CodeRetryable: "retryable", CodePermanent: "permanent",
	CodeNotFound: "not_found", CodeUnauthorized: "unauthorized",
	CodeRateLimited: "rate_limited", CodeInvalid: "invalid", CodeConflict: "conflict",
}

func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is the typed error that crosses the plugin boundary.
type Error struct {
	Code         ErrorCode
	Message      string
	RetryAfter   time.Duration // zero: the hub's own backoff decides
	Reason       string        // machine-readable sub-reason, e.g. "window_closed"
	ProviderCode string        // the provider's own error code, for logs
	Err          error         // the cause, on the side that created it
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	s := e.Code.String() + ": " + msg
	if e.ProviderCode != "" {
		s += " (provider code " + e.ProviderCode + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotRunning is wrapped by the host's errors for calls it did not make
// because the plugin process was not running (starting, restarting after
// a crash, crash-looping, refused). The plugin never saw the request, so
// a retry costs the message none of its attempts.
var ErrNotRunning = errors.New("plugin not running")

// ErrPluginDied is wrapped by the host's errors for calls that failed
// because the plugin process died while they were in flight. A call made
// alone (see Isolate) that fails with it is what killed the process.
var ErrPluginDied = errors.New("the plugin process died during the call")

type isolateKey struct{}

// Isolate marks ctx so that a host makes the plugin calls under it alone:
// no other call to the same plugin process in flight meanwhile. The hub
// retries a message this way after a plugin died during its call, to tell
// the message that kills the plugin from those that were only there.
func Isolate(ctx context.Context) context.Context {
	return context.WithValue(ctx, isolateKey{}, true)
}

// Isolated reports whether ctx was marked by Isolate.
func Isolated(ctx context.Context) bool {
	v, _ := ctx.Value(isolateKey{}).(bool)
	return v
}

// WithReason sets a machine-readable sub-reason and returns e.
func (e *Error) WithReason(reason string) *Error { e.Reason = reason; return e }

// WithProviderCode records the provider's own error code and returns e.
func (e *Error) WithProviderCode(code string) *Error { e.ProviderCode = code; return e }

func newError(code ErrorCode, err error, after time.Duration) *Error {
	e := &Error{Code: code, Err: err, RetryAfter: after}
	if err != nil {
		e.Message = err.Error()
	}
	return e
}

// Retryable marks err as transient; after may be zero.
func Retryable(err error, after time.Duration) *Error { return newError(CodeRetryable, err, after) }

// RateLimited marks err as a rate limit; after is when to try again.
func RateLimited(err error, after time.Duration) *Error {
	return newError(CodeRateLimited, err, after)
}

// Permanent marks err as one that will not go away by retrying.
func Permanent(err error) *Error { return newError(CodePermanent, err, 0) }

// NotFound marks err as a missing record or recipient.
func NotFound(err error) *Error { return newError(CodeNotFound, err, 0) }

// Unauthorized marks err as rejected credentials.
func Unauthorized(err error) *Error { return newError(CodeUnauthorized, err, 0) }

// Invalid marks err as a malformed request.
func Invalid(err error) *Error { return newError(CodeInvalid, err, 0) }

// Conflict marks err as a lost compare-and-set or a duplicate.
func Conflict(err error) *Error { return newError(CodeConflict, err, 0) }

// Errorf builds a typed error from a format.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return newError(code, fmt.Errorf(format, args...), 0)
}

// Sentinels match any typed error of their code through errors.Is, also
// after the error crossed the wire and was rebuilt on the other side.
var (
	// ErrNotFound: a missing record, recipient or key.
	ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
	// ErrConflict: a compare-and-set lost because the version moved.
	ErrConflict = &Error{Code: CodeConflict, Message: "version conflict"}
	// ErrUnauthorized: credentials rejected.
	ErrUnauthorized = &Error{Code: CodeUnauthorized, Message: "unauthorized"}
	// ErrPermanent: anything not worth retrying.
	ErrPermanent = &Error{Code: CodePermanent, Message: "permanent"}
)

// Is makes a sentinel (an *Error with no cause) match every error of its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Err == nil && t.Code == e.Code && t != e
}

// CodeOf returns the code of a typed error anywhere in err's chain.
// Context cancellation is permanent for that call; a deadline is retryable.
func CodeOf(err error) ErrorCode {
	if err == nil {
		return CodeUnknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeRetryable
	}
	return CodeUnknown
}

// IsRetryable reports whether the hub should try err again.
func IsRetryable(err error) bool {
	switch CodeOf(err) {
	case CodeUnknown, CodeRetryable, CodeRateLimited:
		return !errors.Is(err, context.Canceled)
	}
	return false
}

// RetryAfterOf returns the retry-after hint of err, or zero.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ReasonOf returns the sub-reason of a typed error, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
