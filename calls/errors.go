package calls

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers test with errors.Is. Each API maps them to a status code; the
// wrapped message says what exactly was wrong and is safe to show (it never
// carries a secret).
var (
	ErrInvalidID         = errors.New("invalid call id")
	ErrInvalidInput      = errors.New("invalid input")
	ErrNotFound          = errors.New("call not found")
	ErrInvalidTransition = errors.New("invalid state transition")
	ErrCallEnded         = errors.New("call has ended")
	ErrForbidden         = errors.New("forbidden")
	ErrUnknownProvider   = errors.New("unknown provider")
	ErrProvider          = errors.New("provider request failed")
	// ErrRoomNotReady means the provider room is still being created; the
	// request can be repeated shortly (APIs answer 503 with Retry-After).
	ErrRoomNotReady = errors.New("the call's room is still being prepared")

	// ErrDuplicateDelivery is returned by Store.UpdateCall when the
	// delivery mark was recorded before: the webhook was applied already.
	ErrDuplicateDelivery = errors.New("delivery already applied")
	// ErrLeaseLost is returned when a worker records the outcome of work
	// whose lease another worker has taken over.
	ErrLeaseLost = errors.New("lease lost")

	// ErrWebhookUnauthenticated and ErrWebhookMalformed are returned by
	// adapters when an inbound webhook fails verification or cannot be
	// parsed; the intake maps them to 401 and 400.
	ErrWebhookUnauthenticated = errors.New("webhook not authenticated")
	ErrWebhookMalformed       = errors.New("malformed webhook")
)

// TemporaryError is a failure worth retrying: a network error, a 5xx, a
// 429. RetryAfter is what the remote asked for (zero when it said nothing).
// Adapters return it; workers read it with errors.As.
type TemporaryError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *TemporaryError) Error() string { return "temporary: " + e.Err.Error() }
func (e *TemporaryError) Unwrap() error { return e.Err }

// PermanentError is a failure that repeating will not fix: bad
// credentials, a 4xx. Reason is written for an admin ("the provider refused
// the API key (401)") and is safe to store and show; Err may hold the
// remote's own text and is only logged.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}
func (e *PermanentError) Unwrap() error { return e.Err }

// Temporary wraps err as a TemporaryError.
func Temporary(err error, retryAfter time.Duration) error {
	return &TemporaryError{Err: err, RetryAfter: retryAfter}
}

// Permanent wraps err as a PermanentError with an admin-readable reason.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// Permanentf builds a PermanentError whose reason is the formatted text.
func Permanentf(format string, args ...any) error {
	return &PermanentError{Reason: fmt.Sprintf(format, args...)}
}
