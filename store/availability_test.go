package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// TestAvailabilityCheckedInTheWrite: a ring whose context carries an
// AvailabilityCheck is refused by the write itself when a callee blocks
// the caller or is busy in another call, and a refused write stores
// nothing; without a refusal it is stored. Both engines.
func TestAvailabilityCheckedInTheWrite(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			ring := func(ctx context.Context, id, callee string) error {
				c := benchCall(id)
				c.State = calls.StateRinging
				c.CreatedBy = "ada"
				c.Members = []calls.Member{{UserID: "ada", Role: calls.RoleOwner}, {UserID: callee, Role: calls.RoleParticipant}}
				_, _, err := s.CreateCall(ctx, c, nil, calls.CreateOptions{})
				return err
			}
			check := func(callee string) context.Context {
				return calls.WithAvailabilityCheck(ctx, calls.AvailabilityCheck{Caller: "ada", Callees: []string{callee}, Busy: true})
			}

			if err := s.Block(ctx, "bob", "ada", time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := ring(check("bob"), "ring-bob", "bob"); !errors.Is(err, calls.ErrUnavailable) {
				t.Fatalf("ring to a user who blocks the caller: %v, want ErrUnavailable", err)
			}
			if _, err := s.GetCall(ctx, "ring-bob"); !errors.Is(err, calls.ErrNotFound) {
				t.Errorf("the refused ring was stored: %v", err)
			}

			// Carol is busy: she created a call under way.
			busy := benchCall("carols")
			busy.State, busy.CreatedBy = calls.StateActive, "carol"
			busy.Members = []calls.Member{{UserID: "carol", Role: calls.RoleOwner}}
			if _, _, err := s.CreateCall(ctx, busy, nil, calls.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := ring(check("carol"), "ring-carol", "carol"); !errors.Is(err, calls.ErrUnavailable) {
				t.Fatalf("ring to a busy user: %v, want ErrUnavailable", err)
			}
			// The same check guards an invitation (UpdateCall).
			if err := ring(ctx, "open", "dan"); err != nil {
				t.Fatal(err)
			}
			_, err := s.UpdateCall(check("carol"), "open", nil, func(c *calls.Call) ([]calls.Event, error) {
				c.Members = append(c.Members, calls.Member{UserID: "carol", Role: calls.RoleParticipant})
				return []calls.Event{{Kind: calls.EventUpdated, At: time.Now()}}, nil
			})
			if !errors.Is(err, calls.ErrUnavailable) {
				t.Fatalf("invitation of a busy user: %v, want ErrUnavailable", err)
			}
			if c, _ := s.GetCall(ctx, "open"); len(c.Members) != 2 || c.Version != 1 {
				t.Errorf("the refused invitation changed the call: %d members, version %d", len(c.Members), c.Version)
			}

			if err := ring(check("erin"), "ring-erin", "erin"); err != nil {
				t.Fatalf("ring to an available user: %v", err)
			}
		})
	}
}
