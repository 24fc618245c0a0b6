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
// in the caller's slice gets the Seq the log assigned it.
//
// Writes are incremental: a change writes the calls row and only the
// members, roster entries and surfaces that differ from what was stored.
type Store interface {
	// CreateCall stores c (with its members and surfaces) and events unless
	// a call with c.ID exists. It reports whether it created the call and
	// returns the stored call either way; concurrent creates of one id yield
	// exactly one created=true. When c has no room (Room.Name empty) and is
	// not terminal, a room job due at once is stored in the same
	// transaction. Each surface starts with Wanted = 1 (the call's first
	// version) and Shown = 0, due at once.
	//
	// When opts.Mark is not nil it is recorded first, in the same
	// transaction (the replay guard of the signed request that asked for
	// the call, so that a command is one transaction): when it was
	// recorded before, nothing is written and the error wraps
	// ErrDuplicateDelivery. It is recorded whether or not the call existed.
	//
	// When opts.Key is not empty, a stored call with that key counts as
	// the call with c.ID: it is returned with created=false and nothing
	// else is written. Concurrent creates with one key and different ids
	// yield exactly one created=true.
	CreateCall(ctx context.Context, c Call, events []Event, opts CreateOptions) (stored Call, created bool, err error)

	// GetCall returns the call with the (normalised) id, or ErrNotFound.
	GetCall(ctx context.Context, id string) (Call, error)

	// FindByRoom returns the most recently created call at the provider
	// (configured name) whose Room.Name is room, or ErrNotFound.
	FindByRoom(ctx context.Context, provider, room string) (Call, error)

	// UpdateCall runs change on the current call inside a transaction that
	// keeps concurrent updates of the same call apart (every guard change
	// makes runs on the locked, current call), stores the changed call with
	// Version+1 and the events change returns, and returns the call as
	// stored.
	//
	// In the same transaction it: bumps Wanted of every surface of the call
	// to the new version (new surfaces are inserted with Wanted = the new
	// version, Shown = 0, due at once; surfaces are never removed by a
	// change); deletes the call's room job when the call now has a room or
	// is terminal; and, when mark is not nil, records the delivery mark.
	//
	// When mark was recorded before, nothing is written and the error wraps
	// ErrDuplicateDelivery. When change returns an error nothing is written
	// and the error is returned as is. When change returns no events the
	// call is not written (but a mark, if any, is), unless the change
	// advanced a roster mark (Seqs): that is stored as a new version
	// without events.
	UpdateCall(ctx context.Context, id string, mark *DeliveryMark, change func(*Call) ([]Event, error)) (Call, error)

	// FindBySurface returns the newest call that is not terminal and is
	// shown on the surface, or ErrNotFound: what "/call end" in a channel
	// ends.
	FindBySurface(ctx context.Context, key SurfaceKey) (Call, error)

	// LatestOnSurface returns the newest call shown on the surface, in
	// any state, or ErrNotFound.
	LatestOnSurface(ctx context.Context, key SurfaceKey) (Call, error)

	// SearchCalls returns calls matching q, newest first, and the cursor
	// of the next page ("" on the last).
	SearchCalls(ctx context.Context, q SearchQuery) ([]Call, string, error)

	// MarkOnce records a mark on its own and reports whether it was new:
	// the replay guard of signed chat requests. (Webhook deliveries that
	// change a call are marked inside UpdateCall instead.)
	MarkOnce(ctx context.Context, mark DeliveryMark) (fresh bool, err error)

	// ListCalls returns calls in one of q.States whose q.By time is before
	// q.Before (zero means any time; calls without that time are left out),
	// oldest first, at most q.Limit (all when 0).
	ListCalls(ctx context.Context, q ListQuery) ([]Call, error)

	// Events returns the call's stored events in order, those with Seq > after.
	Events(ctx context.Context, callID string, after int64) ([]Event, error)

	// CountByState counts calls per state, for metrics.
	CountByState(ctx context.Context) (map[State]int64, error)

	// ClaimDeliveries leases up to limit surfaces that are due: Wanted >
	// Shown, not dead, NextAttemptAt <= now, and not leased (or the lease
	// expired before now). Several workers and replicas may claim at once;
	// none gets a surface another holds (FOR UPDATE SKIP LOCKED on
	// PostgreSQL).
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)

	// RecordDelivery stores a delivery's outcome and releases the lease.
	// It fails with ErrLeaseLost, writing nothing, when owner no longer
	// holds the lease.
	RecordDelivery(ctx context.Context, o DeliveryOutcome) error

	// RetryDelivery revives a surface: it clears DeadAt, Attempts and
	// LastError and makes it due at now. ErrNotFound when the call has no
	// such surface.
	RetryDelivery(ctx context.Context, callID string, key SurfaceKey, now time.Time) error

	// CountDeliveries counts surfaces owing an update by status, for metrics.
	CountDeliveries(ctx context.Context) (DeliveryCounts, error)

	// ListDeliveries returns up to limit surfaces, across calls, that owe
	// an update (pending or retrying) or are dead: the outbox as the admin
	// page shows it. Dead ones come first (newest death first), then the
	// others soonest due first. Owner and LeaseUntil are not filled in.
	ListDeliveries(ctx context.Context, limit int) ([]Delivery, error)

	// ClaimRoomJobs leases up to limit room jobs due at now, as
	// ClaimDeliveries does for surfaces.
	ClaimRoomJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]RoomJob, error)

	// RescheduleRoomJob records a failed attempt (Attempts+1, LastError,
	// NextAttemptAt) and releases the lease; ErrLeaseLost when owner no
	// longer holds it, ErrNotFound when the job is gone (the room was
	// stored or the call ended meanwhile).
	RescheduleRoomJob(ctx context.Context, o RoomJobOutcome) error

	// CountRoomJobs counts pending room jobs, for metrics.
	CountRoomJobs(ctx context.Context) (int64, error)

	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// ListQuery selects calls for the timers and the reconciler.
type ListQuery struct {
	States []State
	Before time.Time
	// By names the time compared with Before; default ByStateChange.
	By    TimeField
	Limit int
}

// TimeField is a time a call keeps, for ListQuery.
type TimeField string

const (
	ByStateChange TimeField = "state_changed_at"
	ByUpdate      TimeField = "updated_at"
	ByEmptySince  TimeField = "empty_since"
)

// SearchQuery filters the call history. Empty fields do not filter.
type SearchQuery struct {
	// Chat, Workspace and Channel select calls shown on matching surfaces.
	Chat, Workspace, Channel string
	// UserID selects calls the user created or is a member of.
	UserID string
	States []State
	// Since and Until bound CreatedAt: Since <= CreatedAt < Until.
	Since, Until time.Time
	Limit        int
	// Cursor continues a previous search (its next cursor).
	Cursor string
}

// RoomIndex is implemented by stores that can name the call in a provider
// room without reading the call. Provider webhooks use it on the hot path:
// the event is applied by UpdateCall, which reads the call anyway.
type RoomIndex interface {
	// FindIDByRoom returns the id of the call FindByRoom would return, or
	// ErrNotFound.
	FindIDByRoom(ctx context.Context, provider, room string) (string, error)
}

// CallApplier is implemented by stores that can apply a change without
// returning the call it leaves. Such a change can share its work with
// other changes to the same call that arrive together (one read, one copy
// of the roster, one write of the call row for all of them, each still
// with its own mark and events, each acknowledged only once stored), which
// is what keeps a storm of provider events on one busy call from costing a
// roster copy each.
//
// ApplyCall follows UpdateCall's rules, and two more: change may be run
// more than once (its earlier runs discarded), so it must not keep state
// between runs; and it must not keep c, or anything c holds, once it has
// returned: the store keeps the changed call itself, without a copy.
type CallApplier interface {
	ApplyCall(ctx context.Context, id string, mark *DeliveryMark, change func(*Call) ([]Event, error)) error
}

// Pruner is implemented by stores that can delete old rows that only grow:
// call events and webhook delivery marks. The timers call it when a
// retention is configured.
type Pruner interface {
	// Prune deletes up to limit call events older than eventsBefore and up
	// to limit delivery marks older than marksBefore (a zero time deletes
	// none of that kind) and returns how many rows went.
	Prune(ctx context.Context, eventsBefore, marksBefore time.Time, limit int) (int64, error)
}

// CreateOptions are what Store.CreateCall records beside the call.
type CreateOptions struct {
	// Mark is the replay mark of the signed request that asks for the
	// call, or nil.
	Mark *DeliveryMark
	// Key, when not empty, names the call a request means to create
	// independently of its id: a chat command's call is keyed by the
	// platform's delivery id, or by its conversation and the call before,
	// so that a repeated or concurrent command finds one call. The id
	// itself stays a NewID, which grows with time: every table about a
	// call is keyed by its id, and ids derived from a hash would land each
	// new call on a random page of each of them (BENCHMARKS.md, "Keys of
	// their own for chat calls"). At most MaxIDLength bytes.
	Key string
}
