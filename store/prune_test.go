package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// testPrune: old events and marks go, in batches; newer ones stay, and a
// pruned mark no longer dedupes (which is why marks_after is at least 1h).
func testPrune(t *testing.T, s *SQL) {
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour).UTC()
	c := calls.Call{ID: "prune-me", Type: calls.TypeVideo, State: calls.StateCreated, Provider: "p",
		CreatedAt: old, UpdatedAt: old, StateChangedAt: old}
	if _, _, err := s.CreateCall(ctx, c, []calls.Event{{Kind: calls.EventCreated, State: calls.StateCreated, At: old}}, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{old, old, time.Now()} {
		mark := &calls.DeliveryMark{Source: "p", ID: string(rune('a' + i)), At: at}
		if _, err := s.UpdateCall(ctx, "prune-me", mark, func(c *calls.Call) ([]calls.Event, error) {
			c.Title = "t" + mark.ID
			return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now().Add(-time.Hour)
	n, err := s.Prune(ctx, cut, cut, 2)
	if err != nil || n != 4 {
		t.Fatalf("first pass pruned %d (%v), want 2 events and 2 marks", n, err)
	}
	if n, err := s.Prune(ctx, cut, cut, 2); err != nil || n != 1 {
		t.Fatalf("second pass pruned %d (%v), want the last old event", n, err)
	}
	evs, err := s.Events(ctx, "prune-me", 0)
	if err != nil || len(evs) != 1 || evs[0].At.Before(cut) {
		t.Fatalf("events after pruning: %+v %v", evs, err)
	}
	_, err = s.UpdateCall(ctx, "prune-me", &calls.DeliveryMark{Source: "p", ID: "c", At: time.Now()}, func(c *calls.Call) ([]calls.Event, error) { return nil, nil })
	if !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Fatalf("the recent mark was pruned: %v", err)
	}
}

func TestPruneSQLite(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testPrune(t, s)
}

func TestPrunePostgres(t *testing.T) {
	s, err := OpenPostgres(t.Context(), newPostgresSchema(t, postgresDSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testPrune(t, s)
}

// SQLite prunes in log order: a pass reads the first limit rows only. A
// row logged late with an old time (a provider's delayed event) stays
// while newer rows are logged before it, and goes once they have gone.
func TestPruneSQLiteWalksTheLogInOrder(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	old := now.Add(-48 * time.Hour)
	c := calls.Call{ID: "late", Type: calls.TypeVideo, State: calls.StateCreated, Provider: "p",
		CreatedAt: now, UpdatedAt: now, StateChangedAt: now}
	// Logged in this order: a new event, then one with an old time.
	if _, _, err := s.CreateCall(ctx, c, []calls.Event{
		{Kind: calls.EventCreated, State: calls.StateCreated, At: now},
		{Kind: calls.EventUpdated, State: calls.StateCreated, At: old},
	}, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cut := now.Add(-time.Hour)
	if n, err := s.Prune(ctx, cut, time.Time{}, 1); err != nil || n != 0 {
		t.Fatalf("a pass of one row over a new front row pruned %d (%v), want 0", n, err)
	}
	if n, err := s.Prune(ctx, cut, time.Time{}, 2); err != nil || n != 1 {
		t.Fatalf("a pass of two rows pruned %d (%v), want the old one behind the new", n, err)
	}
	evs, err := s.Events(ctx, "late", 0)
	if err != nil || len(evs) != 1 || !evs[0].At.Equal(calls.StoredTime(now)) {
		t.Fatalf("left: %+v %v, want only the new event", evs, err)
	}
}
