package calls

import (
	"context"
	"errors"
)

// ErrUnavailable is returned by a store write that an AvailabilityCheck
// refused: a callee blocks the caller, or is busy in another call.
var ErrUnavailable = errors.New("user not available")

// AvailabilityCheck is the guard a ring must pass: none of Callees has
// blocked Caller and, when Busy, none of them is in a call under way other
// than Except (as its creator or a member who accepted). A store that
// supports it (the SQL store does) evaluates it inside the transaction that
// creates the ring or adds the invitee, so a block or another call that
// commits at the same moment cannot slip between the check and the ring;
// a refused write stores nothing and fails with ErrUnavailable.
type AvailabilityCheck struct {
	Caller  string
	Callees []string
	Except  string
	Busy    bool
}

type availabilityKey struct{}

// WithAvailabilityCheck returns ctx carrying check for the store write made
// with it. It travels in the context because it belongs to the one write
// (CreateCall for a ring, UpdateCall for an invitation) that the service
// makes on the caller's behalf, not to the service's API.
func WithAvailabilityCheck(ctx context.Context, check AvailabilityCheck) context.Context {
	return context.WithValue(ctx, availabilityKey{}, check)
}

// AvailabilityCheckFrom returns the check WithAvailabilityCheck put in
// ctx, if any.
func AvailabilityCheckFrom(ctx context.Context) (AvailabilityCheck, bool) {
	c, ok := ctx.Value(availabilityKey{}).(AvailabilityCheck)
	return c, ok
}
