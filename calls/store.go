package calls

import (
	"context"
	"time"
)

// Store keeps calls durably. Implementations live in package store (SQLite
// and PostgreSQL) and pass the same contract suite, storetest.Run.
//
// Every method that changes a call also appends the events describing the
// change to the call's event log in the same transaction, so a change and
// its events are never stored apart. When the change is stored, each event
// in the caller's slice gets the Seq the log assigned it, so subscribers
// that receive it can later resume with Events(after).
type Store interface {
	// CreateCall stores c (with its members and surfaces) and events unless a
	// call with c.ID exists. It reports whether it created the call and
	// returns the stored call either way; concurrent creates of one id yield
	// exactly one created=true.
	CreateCall(ctx context.Context, c Call, events []Event) (stored Call, created bool, err error)

	// GetCall returns the call with the (normalised) id, or ErrNotFound.
	GetCall(ctx context.Context, id string) (Call, error)

	// FindByRoom returns the most recently created call at the provider
	// (configured name) whose Room.Name is room, or ErrNotFound. Provider
	// webhooks name rooms, not calls.
	FindByRoom(ctx context.Context, provider, room string) (Call, error)

	// UpdateCall runs change on the current call inside a transaction that
	// keeps concurrent updates of the same call apart, stores the changed
	// call with Version+1 and the events change returns, and returns the
	// call as stored. When change returns an error nothing is written and
	// the error is returned as is; when it returns no events and no error,
	// nothing is written either (the change was a no-op).
	UpdateCall(ctx context.Context, id string, change func(*Call) ([]Event, error)) (Call, error)

	// ListCalls returns calls in one of states whose StateChangedAt is
	// before `before` (zero means any time), oldest first, at most limit.
	ListCalls(ctx context.Context, states []State, before time.Time, limit int) ([]Call, error)

	// Events returns the call's stored events in order, those with Seq > after.
	Events(ctx context.Context, callID string, after int64) ([]Event, error)

	// CountByState counts calls per state, for metrics.
	CountByState(ctx context.Context) (map[State]int64, error)

	// MarkDelivery records that a webhook delivery id from a provider was
	// seen, and reports whether it was new. It is how repeated deliveries
	// (providers retry) are applied once.
	MarkDelivery(ctx context.Context, source, deliveryID string, at time.Time) (fresh bool, err error)

	// ForgetDelivery removes a delivery mark, so a delivery that was marked
	// but could not be applied is applied when the provider retries it.
	ForgetDelivery(ctx context.Context, source, deliveryID string) error

	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}
