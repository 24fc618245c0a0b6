package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/callgate/callgate/calls"
)

// seedV1 builds a version-1 database on db, as the previous release left
// it, with calls that exercise everything migration 0002 carries over.
func seedV1(t *testing.T, db *sql.DB, d dialect) {
	t.Helper()
	ctx := t.Context()
	ms, err := migrations(d.name)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, d.q(query), args...); err != nil {
			t.Fatalf("seed: %s: %v", query, err)
		}
	}
	exec(ms[0].sql)
	exec(`CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	exec(`INSERT INTO schema_migrations VALUES (1, ?, 0)`, ms[0].name)

	tm := func(s int) any { return d.timeArg(upgradeBase.Add(time.Duration(s) * time.Second)) }
	insertCall := `INSERT INTO calls (id, type, state, provider, title, created_by, room_name, room, created_at, updated_at,
		state_changed_at, ended_at, end_reason, seqs, version) VALUES (?, 'video', ?, 'lk', 't', 'zoe', ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	exec(insertCall, "live", "active", "r1", `{"name":"r1"}`, tm(0), tm(10), tm(5), nil, "",
		`{"zoe":{"seq":7,"present":true},"mia":{"seq":9,"present":false},"nil":{"seq":0,"present":true}}`, 5)
	exec(insertCall, "pending", "created", "", `{"name":""}`, tm(0), tm(1), tm(0), nil, "", `{}`, 1)
	exec(insertCall, "over", "ended", "", `{"name":""}`, tm(0), tm(2), tm(2), tm(2), "cancelled", `{}`, 2)
	exec(`INSERT INTO call_members VALUES ('live', 0, 'zoe', 'owner'), ('live', 1, 'adam', 'listener')`)
	exec(`INSERT INTO call_participants VALUES ('live', 0, 'zoe', 'Zoë', ?), ('live', 1, 'adam', '', ?)`, tm(3), tm(2))
	exec(`INSERT INTO call_surfaces VALUES ('live', 0, 'slack', 'T1', 'C1', 'm-1'), ('live', 1, 'api', '', '', ''),
		('live', 2, 'stream', '', 'messaging:x', 'm-2')`)
	exec(`INSERT INTO deliveries VALUES ('lk', 'seen', ?)`, tm(0))
}

var upgradeBase = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// checkUpgraded checks what seedV1 wrote survived migration 0002.
func checkUpgraded(t *testing.T, s *SQL) {
	ctx := t.Context()
	c, err := s.GetCall(ctx, "live")
	if err != nil {
		t.Fatalf("GetCall: %v", err)
	}
	wantParts := []calls.Participant{
		{Identity: "adam", JoinedAt: upgradeBase.Add(2 * time.Second)},
		{Identity: "zoe", Name: "Zoë", JoinedAt: upgradeBase.Add(3 * time.Second)},
	}
	if !reflect.DeepEqual(c.Participants, wantParts) {
		t.Errorf("Participants = %+v, want %+v", c.Participants, wantParts)
	}
	wantSeqs := map[string]calls.RosterMark{"zoe": {Seq: 7, Present: true}, "mia": {Seq: 9}}
	if !reflect.DeepEqual(c.Seqs, wantSeqs) {
		t.Errorf("Seqs = %+v, want %+v", c.Seqs, wantSeqs)
	}
	if len(c.Members) != 2 || c.Members[1] != (calls.Member{UserID: "adam", Role: calls.RoleListener}) || c.Guests {
		t.Errorf("Members = %+v, Guests = %v", c.Members, c.Guests)
	}
	next := upgradeBase.Add(10 * time.Second)
	wantSurfaces := []calls.Surface{
		{Chat: "slack", Workspace: "T1", Channel: "C1", Delivery: calls.SurfaceDelivery{Wanted: 5, Shown: 5, MessageRef: "m-1", NextAttemptAt: next}},
		{Chat: "stream", Channel: "messaging:x", Delivery: calls.SurfaceDelivery{Wanted: 5, Shown: 5, MessageRef: "m-2", NextAttemptAt: next}},
	}
	if !reflect.DeepEqual(c.Surfaces, wantSurfaces) {
		t.Errorf("Surfaces = %+v, want %+v", c.Surfaces, wantSurfaces)
	}
	if n, err := s.CountDeliveries(ctx); err != nil || n != (calls.DeliveryCounts{}) {
		t.Errorf("CountDeliveries = %+v, %v; want nothing owed (migrated cards are shown)", n, err)
	}
	jobs, err := s.ClaimRoomJobs(ctx, "w", time.Now(), time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].CallID != "pending" {
		t.Errorf("ClaimRoomJobs = %+v, %v; want the one live call without a room", jobs, err)
	}
	_, err = s.UpdateCall(ctx, "live", &calls.DeliveryMark{Source: "lk", ID: "seen"}, func(*calls.Call) ([]calls.Event, error) { return nil, nil })
	if !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Errorf("a delivery marked before the upgrade: err = %v, want ErrDuplicateDelivery", err)
	}

	// The upgraded call goes on changing.
	up, err := s.UpdateCall(ctx, "live", nil, func(c *calls.Call) ([]calls.Event, error) {
		ev, _ := c.MarkPresence("mia", "Mia", true, 10, upgradeBase.Add(time.Minute))
		return []calls.Event{ev}, nil
	})
	if err != nil {
		t.Fatalf("UpdateCall after upgrade: %v", err)
	}
	if got, _ := s.GetCall(ctx, "live"); !reflect.DeepEqual(got, up) || len(got.Participants) != 3 || got.Surfaces[0].Delivery.Wanted != 6 {
		t.Errorf("after an update: GetCall = %+v, UpdateCall returned %+v", got, up)
	}
	if ds, err := s.ClaimDeliveries(ctx, "w", time.Now(), time.Minute, 10); err != nil || len(ds) != 2 {
		t.Errorf("ClaimDeliveries after an update = %d, %v; want both surfaces", len(ds), err)
	}
}

func TestSQLiteUpgradeFrom1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	seedV1(t, db, sqliteDialect)
	db.Close()
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("open a version-1 database: %v", err)
	}
	defer s.Close()
	checkUpgraded(t, s)
}

func TestPostgresUpgradeFrom1(t *testing.T) {
	dsn := newPostgresSchema(t, postgresDSN(t))
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	seedV1(t, db, postgresDialect)
	db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatalf("open a version-1 database: %v", err)
	}
	defer s.Close()
	checkUpgraded(t, s)
}

// Migration 0007 adds each member's answer and fills it in for members
// who accepted before it (their accepted events), so an upgraded gateway
// still tells a second device "already accepted".
func TestUpgradeFrom6FillsMemberAnswers(t *testing.T) {
	check := func(t *testing.T, open func() (*SQL, error), raw func() *sql.DB) {
		ctx := t.Context()
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		now := calls.StoredTime(time.Now())
		c := calls.Call{ID: "up7", Type: calls.TypeVideo, State: calls.StateAccepted, Provider: "lk", CreatedBy: "zoe",
			CreatedAt: now, UpdatedAt: now, StateChangedAt: now,
			Members: []calls.Member{{UserID: "zoe", Role: calls.RoleOwner}, {UserID: "adam", Role: calls.RoleParticipant}, {UserID: "bea", Role: calls.RoleParticipant}}}
		evs := []calls.Event{{Kind: calls.EventAccepted, CallID: "up7", State: calls.StateAccepted, Actor: "adam", At: now}}
		if _, _, err := s.CreateCall(ctx, c, evs, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		db := raw()
		for _, q := range []string{`ALTER TABLE call_members DROP COLUMN answer`, `DELETE FROM schema_migrations WHERE version = 7`} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("back to version 6: %s: %v", q, err)
			}
		}
		db.Close()
		if s, err = open(); err != nil {
			t.Fatalf("upgrade from 6: %v", err)
		}
		defer s.Close()
		got, err := s.GetCall(ctx, "up7")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]calls.Answer{"zoe": "", "adam": calls.AnswerAccepted, "bea": ""}
		for _, m := range got.Members {
			if m.Answer != want[m.UserID] {
				t.Errorf("%s answered %q after the upgrade, want %q", m.UserID, m.Answer, want[m.UserID])
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v6.db")
		check(t, func() (*SQL, error) { return OpenSQLite(t.Context(), path) }, func() *sql.DB {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			return db
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := newPostgresSchema(t, postgresDSN(t))
		check(t, func() (*SQL, error) { return OpenPostgres(t.Context(), dsn) }, func() *sql.DB {
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			return stdlib.OpenDB(*cfg)
		})
	})
}
