package store

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// engines opens a fresh store per engine available.
func engines(t *testing.T) map[string]func(t *testing.T) *SQL {
	out := map[string]func(t *testing.T) *SQL{
		EngineSQLite: func(t *testing.T) *SQL {
			s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "i.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if dsn := getenvPostgres(); dsn != "" {
		out[EnginePostgres] = func(t *testing.T) *SQL {
			s, err := OpenPostgres(t.Context(), newPostgresSchema(t, dsn))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	return out
}

// rosterCall is a live call with n participants, each with a roster mark.
func rosterCall(id string, n int) calls.Call {
	c := benchCall(id)
	c.State = calls.StateActive
	c.Surfaces = append(c.Surfaces, calls.Surface{Chat: "discord", Channel: "9"})
	c.Seqs = map[string]calls.RosterMark{}
	for i := range n {
		p := fmt.Sprintf("p%04d", i)
		c.Participants = append(c.Participants, calls.Participant{Identity: p, JoinedAt: c.CreatedAt.Add(time.Duration(i) * time.Millisecond)})
		c.Seqs[p] = calls.RosterMark{Seq: 1, Present: true}
	}
	return c
}

func join(identity string, seq int64) func(*calls.Call) ([]calls.Event, error) {
	return func(c *calls.Call) ([]calls.Event, error) {
		ev, ok := c.MarkPresence(identity, "", true, seq, time.Now())
		if !ok {
			return nil, fmt.Errorf("%s not joined", identity)
		}
		return []calls.Event{ev}, nil
	}
}

// physical returns each row's physical address by key: SQLite's rowid, or
// PostgreSQL's ctid, which changes whenever a row is written.
func physical(t *testing.T, s *SQL, table, key string) map[string]string {
	t.Helper()
	addr := "CAST(rowid AS TEXT)"
	if s.d.name == EnginePostgres {
		addr = "ctid::text"
	}
	rows, err := s.w.QueryContext(t.Context(), `SELECT `+key+`, `+addr+` FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, a string
		if err := rows.Scan(&k, &a); err != nil {
			t.Fatal(err)
		}
		out[k] = a
	}
	return out
}

// TestJoinRewritesNoOtherRows checks a join writes the joining identity's
// roster row and leaves every other roster row and every member row where
// it was. Surfaces are updated in place (their wanted version moves), so on
// SQLite their rowid stays; PostgreSQL gives an updated row a new ctid.
func TestJoinRewritesNoOtherRows(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			if _, _, err := s.CreateCall(t.Context(), rosterCall("big", 50), nil, calls.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			roster := physical(t, s, "call_roster", "identity")
			members := physical(t, s, "call_members", "user_id")
			surfaces := physical(t, s, "call_surfaces", "chat")
			if _, err := s.UpdateCall(t.Context(), "big", nil, join("newcomer", 1)); err != nil {
				t.Fatal(err)
			}
			after := physical(t, s, "call_roster", "identity")
			if _, ok := after["newcomer"]; !ok || len(after) != len(roster)+1 {
				t.Fatalf("roster rows after a join: %d, want %d with newcomer", len(after), len(roster)+1)
			}
			delete(after, "newcomer")
			if !maps.Equal(after, roster) {
				t.Errorf("a join rewrote other roster rows")
			}
			if got := physical(t, s, "call_members", "user_id"); !maps.Equal(got, members) {
				t.Errorf("a join rewrote the members: %v, then %v", members, got)
			}
			if got := physical(t, s, "call_surfaces", "chat"); name == EngineSQLite && !maps.Equal(got, surfaces) {
				t.Errorf("a join deleted and re-inserted surfaces: %v, then %v", surfaces, got)
			}
			if c, err := s.GetCall(t.Context(), "big"); err != nil || len(c.Participants) != 51 {
				t.Errorf("GetCall: %d participants, %v", len(c.Participants), err)
			}
		})
	}
}

// TestSQLiteJoinWritesConstantRows counts the rows a join writes with
// SQLite's total_changes() on the single writer connection: the calls row,
// one roster row, one event and the surfaces' wanted version, whatever the
// size of the roster.
func TestSQLiteJoinWritesConstantRows(t *testing.T) {
	for _, n := range []int{10, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := engines(t)[EngineSQLite](t)
			c := rosterCall("big", n)
			if _, _, err := s.CreateCall(t.Context(), c, nil, calls.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			changes := func() int64 {
				var v int64
				if err := s.w.QueryRowContext(t.Context(), `SELECT total_changes()`).Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			before := changes()
			if _, err := s.UpdateCall(t.Context(), "big", nil, join("newcomer", 1)); err != nil {
				t.Fatal(err)
			}
			want := int64(3 + len(c.Surfaces))
			if got := changes() - before; got != want {
				t.Errorf("a join in a call of %d wrote %d rows, want %d", n, got, want)
			}
		})
	}
}

// TestSQLiteClaimUsesDueIndexes checks the claim queries find due work
// through their indexes rather than scanning every surface and job.
func TestSQLiteClaimUsesDueIndexes(t *testing.T) {
	s := engines(t)[EngineSQLite](t)
	for query, index := range map[string]string{claimSurfaces: "call_surfaces_due", claimRoomJobs: "room_jobs_due"} {
		rows, err := s.w.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+fmt.Sprintf(query, ""), "w", 0, 0, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "\n"), index) {
			t.Errorf("plan does not use %s:\n%s", index, strings.Join(plan, "\n"))
		}
	}
}

// TestCallRowUpdateSetsOnlyChangedIndexedColumns: SQLite rewrites every
// index with a column in an UPDATE's SET list, so a call-row write names
// the indexed columns only when they change. indexedCallCols must hold
// every column an index of calls has, or a write would skip none of it and
// cost as before; each engine's schema is asked. id and create_key are
// written once, by the create, and no update sets them.
func TestCallRowUpdateSetsOnlyChangedIndexedColumns(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			q := `SELECT il.name, ii.name FROM pragma_index_list('calls') il, pragma_index_info(il.name) ii`
			if name == EnginePostgres {
				q = `SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
					JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey) WHERE t.relname = 'calls' AND t.relnamespace = to_regnamespace(current_schema())`
			}
			rows, err := s.r.QueryContext(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			seen := 0
			for rows.Next() {
				var index, col string
				if err := rows.Scan(&index, &col); err != nil {
					t.Fatal(err)
				}
				seen++
				if col != "id" && col != "create_key" && !slices.Contains(indexedCallCols[:], col) {
					t.Errorf("index %s holds %s, which indexedCallCols lacks", index, col)
				}
			}
			if err := rows.Err(); err != nil || seen == 0 {
				t.Fatalf("read the indexes of calls: %v, %d columns", err, seen)
			}
		})
	}
	cur := rosterCall("narrow", 1)
	next := cur.Clone()
	next.Title = "renamed"
	if m := indexedChanges(&cur, &next); m != 0 || strings.Contains(updateCallQueries[m], "state_changed_at") || !strings.Contains(updateCallQueries[m], "title = ?") {
		t.Fatalf("a title change: mask %b, %s", m, updateCallQueries[m])
	}
	next.State = calls.StateEnded
	next.UpdatedAt = next.UpdatedAt.Add(time.Second)
	m := indexedChanges(&cur, &next)
	if q := updateCallQueries[m]; !strings.Contains(q, "state = ?") || !strings.Contains(q, "updated_at = ?") || strings.Contains(q, "created_by") {
		t.Fatalf("an end: mask %b, %s", m, q)
	}
	if args, _ := callArgs(sqliteDialect, &next); len(callRowArgs(args, m))+2 != strings.Count(updateCallQueries[m], "?") {
		t.Fatalf("arguments do not match the query's placeholders")
	}
}
