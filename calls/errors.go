package calls

import "errors"

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

	// ErrWebhookUnauthenticated and ErrWebhookMalformed are returned by
	// provider adapters when a status webhook fails verification or cannot be
	// parsed; the webhook intake maps them to 401 and 400.
	ErrWebhookUnauthenticated = errors.New("webhook not authenticated")
	ErrWebhookMalformed       = errors.New("malformed webhook")
	ErrWebhooksUnsupported    = errors.New("provider sends no status webhooks")
)
