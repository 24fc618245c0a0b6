package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/calls/storetest"
)

// postgresEnv names the variable holding a PostgreSQL DSN to test against.
const postgresEnv = "CALLGATE_TEST_POSTGRES"

type sqliteBackend struct{ path string }

func (b sqliteBackend) Open(ctx context.Context) (calls.Store, error) { return OpenSQLite(ctx, b.path) }

func newSQLiteBackend(t *testing.T) storetest.Backend {
	// A directory that does not exist yet: OpenSQLite creates it.
	return sqliteBackend{path: filepath.Join(t.TempDir(), "data", "callgate.db")}
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, newSQLiteBackend)
}

type postgresBackend struct{ dsn string }

func (b postgresBackend) Open(ctx context.Context) (calls.Store, error) {
	return OpenPostgres(ctx, b.dsn)
}

func getenvPostgres() string { return os.Getenv(postgresEnv) }

// postgresDSN returns the DSN to test against, or skips the test.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := getenvPostgres()
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to a DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable", postgresEnv)
	}
	return dsn
}

// newPostgresSchema creates an empty schema, dropped when the test ends, and
// returns a DSN whose connections use it, so tests do not see each other's
// tables.
func newPostgresSchema(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", postgresEnv, err)
	}
	admin := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { admin.Close() })

	b := make([]byte, 6)
	rand.Read(b)
	schema := "cg_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(t.Context(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is done by the time cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN; pgx sends
// parameters it does not know as run-time settings.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", postgresEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func TestPostgres(t *testing.T) {
	dsn := postgresDSN(t)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		return postgresBackend{dsn: newPostgresSchema(t, dsn)}
	})
}

func TestOpenUnknownEngine(t *testing.T) {
	if _, err := Open(t.Context(), "mysql", "x"); err == nil {
		t.Fatal("Open(mysql) succeeded")
	}
}

func TestOpenDispatches(t *testing.T) {
	s, err := Open(t.Context(), EngineSQLite, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatalf("Open(sqlite): %v", err)
	}
	defer s.Close()
	if s.d.name != EngineSQLite {
		t.Errorf("dialect = %s", s.d.name)
	}
}

// appliedMigrations reads schema_migrations.
func appliedMigrations(t *testing.T, db *sql.DB) map[int]int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		out[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMigrationsOnce opens the database twice and checks every migration
// is recorded once and not applied again.
func checkMigrationsOnce(t *testing.T, open func() (*SQL, error)) {
	s, err := open()
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	want, err := migrations(s.d.name)
	if err != nil {
		t.Fatal(err)
	}
	first := appliedMigrations(t, s.w)
	if len(first) != len(want) {
		t.Errorf("after first open %d migrations recorded, want %d", len(first), len(want))
	}
	if _, _, err := s.CreateCall(t.Context(), calls.Call{ID: "kept", Type: calls.TypeVideo, State: calls.StateCreated, Provider: "p"}, nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A re-applied migration would fail on CREATE TABLE or lose the call.
	s, err = open()
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer s.Close()
	second := appliedMigrations(t, s.w)
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("schema_migrations changed on reopen: %v, then %v", first, second)
	}
	if _, err := s.GetCall(t.Context(), "kept"); err != nil {
		t.Errorf("call lost on reopen: %v", err)
	}
}

func TestSQLiteMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	checkMigrationsOnce(t, func() (*SQL, error) { return OpenSQLite(t.Context(), path) })
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenSQLite(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("opened a database whose schema is newer than this build")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v, want one saying the schema is newer", err)
	}
}

func TestPostgresMigrations(t *testing.T) {
	dsn := postgresDSN(t)
	t.Run("reopen", func(t *testing.T) {
		schemaDSN := newPostgresSchema(t, dsn)
		checkMigrationsOnce(t, func() (*SQL, error) { return OpenPostgres(t.Context(), schemaDSN) })
	})
	t.Run("concurrent opens", func(t *testing.T) {
		schemaDSN := newPostgresSchema(t, dsn)
		const n = 6
		stores := make([]*SQL, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = OpenPostgres(t.Context(), schemaDSN) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Errorf("open #%d: %v", i, errs[i])
				continue
			}
			defer stores[i].Close()
		}
		if t.Failed() {
			return
		}
		want, _ := migrations(EnginePostgres)
		if got := appliedMigrations(t, stores[0].w); len(got) != len(want) {
			t.Errorf("%d migrations recorded, want %d", len(got), len(want))
		}
	})
}

func TestSQLiteConcurrentOpens(t *testing.T) {
	// Separate handles on one file stand in for separate processes.
	path := filepath.Join(t.TempDir(), "c.db")
	const n = 4
	stores := make([]*SQL, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenSQLite(t.Context(), path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open #%d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	// Writers on different handles serialise through the file lock.
	for i := range n {
		wg.Go(func() {
			c := calls.Call{ID: fmt.Sprintf("h%d", i), Type: calls.TypeVideo, State: calls.StateCreated, Provider: "p"}
			if _, _, err := stores[i].CreateCall(t.Context(), c, nil, calls.CreateOptions{}); err != nil {
				t.Errorf("create on handle %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	counts, err := stores[0].CountByState(t.Context())
	if err != nil || counts[calls.StateCreated] != n {
		t.Errorf("CountByState = %v, %v; want %d created", counts, err, n)
	}
}

func TestSQLiteRejectsQuestionMarkPath(t *testing.T) {
	if s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "a?b.db")); err == nil {
		s.Close()
		t.Fatal("opened a path containing '?'")
	}
}

func TestRebind(t *testing.T) {
	got := postgresDialect.q(`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`)
	if want := `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`; got != want {
		t.Errorf("q = %s, want %s", got, want)
	}
	if got := sqliteDialect.q(`x = ?`); got != `x = ?` {
		t.Errorf("sqlite q = %s", got)
	}
}

func benchStore(b *testing.B) *SQL {
	b.Helper()
	s, err := OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchCall(id string) calls.Call {
	now := time.Now()
	return calls.Call{
		ID: id, Type: calls.TypeVideo, State: calls.StateCreated, Provider: "livekit", Title: "bench",
		CreatedBy: "u1", Room: calls.Room{Name: "room-" + id}, CreatedAt: now, UpdatedAt: now, StateChangedAt: now,
		Members:  []calls.Member{{UserID: "u1", Role: calls.RoleOwner}, {UserID: "u2", Role: calls.RoleParticipant}},
		Surfaces: []calls.Surface{{Chat: "slack", Channel: "C1"}},
	}
}

func BenchmarkCreateCall(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	i := 0
	for b.Loop() {
		c := benchCall(fmt.Sprintf("bench-%d", i))
		i++
		if _, _, err := s.CreateCall(ctx, c, []calls.Event{{Kind: calls.EventCreated, State: c.State, At: c.CreatedAt}}, calls.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateCall(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	if _, _, err := s.CreateCall(ctx, benchCall("bench"), nil, calls.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		_, err := s.UpdateCall(ctx, "bench", nil, func(c *calls.Call) ([]calls.Event, error) {
			// Joins and leaves alternate, so every update changes the roster.
			ev, ok := c.MarkPresence("p", "", i%2 == 1, int64(i), time.Now())
			if !ok {
				return nil, fmt.Errorf("roster unchanged at %d", i)
			}
			return []calls.Event{ev}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinLargeRoster joins and leaves one person in calls of
// different sizes. Writes are O(1) per change (see
// TestSQLiteJoinWritesConstantRows); what grows with the roster is reading
// the call, which every change does.
func BenchmarkJoinLargeRoster(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := benchStore(b)
			ctx := b.Context()
			if _, _, err := s.CreateCall(ctx, rosterCall("big", n), nil, calls.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			i := int64(1)
			for b.Loop() {
				i++
				_, err := s.UpdateCall(ctx, "big", nil, func(c *calls.Call) ([]calls.Event, error) {
					ev, ok := c.MarkPresence("newcomer", "", i%2 == 0, i, time.Now())
					if !ok {
						return nil, fmt.Errorf("roster unchanged at %d", i)
					}
					return []calls.Event{ev}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Commits never copy the WAL into the database file (that stalled the
// commit that crossed 1,000 pages); a background checkpointer does, so the
// file still receives what was written and the WAL does not grow forever.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ck.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	// The migrations went to the WAL; within a few ticks the checkpointer
	// has copied them into the file.
	deadline := time.Now().Add(5 * checkpointEvery)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 64<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes after %v: nothing was checkpointed", fi.Size(), 5*checkpointEvery)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
