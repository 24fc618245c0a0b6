package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// eachEngine runs test on SQLite and, when configured, PostgreSQL.
func eachEngine(t *testing.T, test func(t *testing.T, s *SQL)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "d.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := OpenPostgres(t.Context(), newPostgresSchema(t, postgresDSN(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
}

// The hub's outbound deliveries: stored once per event claim, leased to
// one replica at a time, rescheduled on failure, taken over when a lease
// runs out, deleted when delivered, counted when dead.
func TestWSDeliveries(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *SQL) {
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Millisecond)
		d := WSDelivery{ID: "event-7", URL: "https://a.example/hook", Body: []byte(`{"n":7}`), CreatedAt: now, NextAttemptAt: now}
		other := d
		other.URL = "https://b.example/hook"

		claimed, err := s.ClaimEventDeliveries(ctx, 7, now, []WSDelivery{d, other})
		if err != nil || !claimed {
			t.Fatalf("first claim: %v %v", claimed, err)
		}
		// A second replica routing the same event stores nothing more.
		if claimed, err := s.ClaimEventDeliveries(ctx, 7, now, []WSDelivery{d, other}); err != nil || claimed {
			t.Fatalf("second claim: %v %v", claimed, err)
		}
		if c, err := s.CountWSDeliveries(ctx); err != nil || c != (WSDeliveryCounts{Pending: 2}) {
			t.Fatalf("counts %+v %v", c, err)
		}

		got, err := s.ClaimWSDeliveries(ctx, "r1", now, time.Minute, 10)
		if err != nil || len(got) != 2 || string(got[0].Body) != `{"n":7}` || got[0].ID != "event-7" {
			t.Fatalf("r1 claim: %+v %v", got, err)
		}
		if again, err := s.ClaimWSDeliveries(ctx, "r2", now, time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("leased deliveries claimed again: %+v %v", again, err)
		}
		if err := s.FinishWSDelivery(ctx, WSDeliveryOutcome{ID: d.ID, URL: d.URL, Owner: "r2", Delivered: true}); !errors.Is(err, calls.ErrLeaseLost) {
			t.Fatalf("finish without the lease: %v", err)
		}
		// a fails and is due in a minute; b's holder dies.
		if err := s.FinishWSDelivery(ctx, WSDeliveryOutcome{ID: d.ID, URL: d.URL, Owner: "r1", LastError: "status 500", NextAttemptAt: now.Add(time.Minute), At: now}); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.CountWSDeliveries(ctx); c != (WSDeliveryCounts{Pending: 1, Retrying: 1}) {
			t.Fatalf("counts after a failure %+v", c)
		}
		later := now.Add(2 * time.Minute)
		got, err = s.ClaimWSDeliveries(ctx, "r2", later, time.Minute, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("r2 takes both over once due and unleased: %+v %v", got, err)
		}
		for _, g := range got {
			if g.URL == d.URL && (g.Attempts != 1 || g.LastError != "status 500") {
				t.Fatalf("attempts not kept: %+v", g)
			}
		}
		if err := s.FinishWSDelivery(ctx, WSDeliveryOutcome{ID: d.ID, URL: d.URL, Owner: "r2", Delivered: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishWSDelivery(ctx, WSDeliveryOutcome{ID: other.ID, URL: other.URL, Owner: "r2", LastError: "status 410", NextAttemptAt: later, Dead: true, At: later}); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.CountWSDeliveries(ctx); c != (WSDeliveryCounts{Dead: 1}) {
			t.Fatalf("counts at the end %+v", c)
		}
		if got, _ := s.ClaimWSDeliveries(ctx, "r3", later.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("a dead or delivered delivery was claimed: %+v", got)
		}
		// Push requests are stored once per id and URL, with their expiry.
		p := WSDelivery{ID: "push-c-bob", URL: "https://push.example", Body: []byte(`{}`), CreatedAt: now, NextAttemptAt: now, ExpiresAt: now.Add(2 * time.Minute)}
		for range 2 {
			if err := s.AddWSDeliveries(ctx, []WSDelivery{p}); err != nil {
				t.Fatal(err)
			}
		}
		if c, _ := s.CountWSDeliveries(ctx); c.Pending != 1 {
			t.Fatalf("push stored twice: %+v", c)
		}
		got, err = s.ClaimWSDeliveries(ctx, "r1", later, time.Minute, 10)
		if err != nil || len(got) != 1 || !got[0].ExpiresAt.Equal(p.ExpiresAt) {
			t.Fatalf("push claimed: %+v %v", got, err)
		}
		// Expired: deleted unsent.
		if err := s.FinishWSDelivery(ctx, WSDeliveryOutcome{ID: p.ID, URL: p.URL, Owner: "r1", Expired: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddWSDeliveries(ctx, []WSDelivery{p}); err != nil {
			t.Fatal(err)
		}
		// Dead rows are pruned after a day; live ones stay.
		if err := s.PruneWS(ctx, later.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.CountWSDeliveries(ctx); c != (WSDeliveryCounts{Pending: 1}) {
			t.Fatalf("after pruning %+v", c)
		}
	})
}
