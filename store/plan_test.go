package store

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// growing are the tables that grow with history (a row or more per call,
// event or webhook). A query on a hot path or on a timer must reach them
// through an index, or its cost grows with every call ever made.
var growing = []string{"calls", "call_members", "call_roster", "call_surfaces", "call_events", "deliveries", "ws_event_claims"}

// boundedIndexes are partial indexes holding only rows that are owed work
// (not history): scanning one whole costs what is pending, not what was.
var boundedIndexes = []string{"call_surfaces_due", "call_surfaces_dead"}

// planCase is one statement the gateway runs on a request path or on a
// timer, with arguments of the right types.
type planCase struct {
	name  string
	query string
	args  []any
	// fullScan, when set, says why this statement may read a whole table
	// (or a whole index of it); the test then only reports its plan.
	fullScan string
	// ordered: the statement walks an index (or the table in rowid
	// order) in its ORDER BY order and stops at its LIMIT, which reads
	// LIMIT rows however large the table.
	ordered bool
}

func planCases(d dialect) []planCase {
	now := d.timeArg(time.Now())
	id := calls.NewID()
	search := func(q calls.SearchQuery) (string, []any) {
		query, args, err := searchQuery(d, q)
		if err != nil {
			panic(err)
		}
		return query, args
	}
	pruneEvents, pruneMarks := d.pruneQueries() // Prune's own statements
	historyQ, historyArgs := search(calls.SearchQuery{Limit: 50})
	pageQ, pageArgs := search(calls.SearchQuery{Limit: 50, Cursor: encodeCursor(time.Now(), id)})
	busyQ, busyArgs := search(calls.SearchQuery{UserID: "u1", States: []calls.State{calls.StateAccepted, calls.StateActive}, Limit: 2})
	userQ, userArgs := search(calls.SearchQuery{UserID: "u1", Limit: 50})
	placeQ, placeArgs := search(calls.SearchQuery{Chat: "acme", Channel: "c1", Limit: 50})
	list := func(q calls.ListQuery) (string, []any) { return listQuery(d, q) } // ListCalls' own statement
	ringQ, ringArgs := list(calls.ListQuery{States: []calls.State{calls.StateRinging}, Before: time.Now(), Limit: 500})
	maxQ, maxArgs := list(calls.ListQuery{States: []calls.State{calls.StateCreated, calls.StateRinging, calls.StateAccepted, calls.StateActive}, Before: time.Now(), Limit: 500})
	emptyQ, emptyArgs := list(calls.ListQuery{States: []calls.State{calls.StateCreated, calls.StateAccepted, calls.StateActive}, By: calls.ByEmptySince, Before: time.Now(), Limit: 500})
	quietQ, quietArgs := list(calls.ListQuery{States: []calls.State{calls.StateCreated, calls.StateAccepted, calls.StateActive}, By: calls.ByUpdate, Before: time.Now(), Limit: 80})
	return []planCase{
		// Requests.
		{name: "get call", query: selectCalls + ` WHERE id = ?`, args: []any{id}},
		{name: "call members", query: `SELECT call_id, user_id, role, answer FROM call_members WHERE call_id IN (?) ORDER BY call_id, pos`, args: []any{id}},
		{name: "call roster", query: `SELECT call_id, identity, name, present, seq, seq_present, joined_at FROM call_roster WHERE call_id IN (?) ORDER BY call_id, joined_at, identity`, args: []any{id}},
		{name: "call surfaces", query: `SELECT ` + surfaceCols + ` FROM call_surfaces WHERE call_id IN (?) ORDER BY call_id, pos`, args: []any{id}},
		{name: "call events", query: `SELECT seq, call_id, kind, state, actor, identity, reason, at FROM call_events WHERE call_id = ? AND seq > ? ORDER BY seq`, args: []any{id, 0}},
		{name: "find id by room", query: `SELECT id FROM calls WHERE provider = ? AND room_name = ? ORDER BY created_at DESC, id DESC LIMIT 1`, args: []any{"jitsi", "room"}},
		{name: "find by room", query: selectCalls + ` WHERE provider = ? AND room_name = ? ORDER BY created_at DESC, id DESC LIMIT 1`, args: []any{"jitsi", "room"}},
		{name: "find by surface", query: `SELECT c.id FROM call_surfaces s JOIN calls c ON c.id = s.call_id
		WHERE s.chat = ? AND s.workspace = ? AND s.channel = ? AND c.state NOT IN ('rejected', 'missed', 'ended', 'failed')
		ORDER BY c.created_at DESC, c.id DESC LIMIT 1`, args: []any{"acme", "", "c1"}},
		{name: "delivery mark", query: `INSERT INTO deliveries (source, delivery_id, seen_at) VALUES (?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING`, args: []any{"jitsi", "d1", now}},
		{name: "history, first page", query: historyQ, args: historyArgs, ordered: true},
		{name: "history, a later page", query: pageQ, args: pageArgs},
		{name: "history of a user", query: userQ, args: userArgs},
		{name: "history of a conversation", query: placeQ, args: placeArgs},
		{name: "is the user busy (ring)", query: busyQ, args: busyArgs},
		{name: "ring refused: blocked or busy (in the ring's transaction)", query: ringRefused, args: ringRefusedArgs("u1", "u2", id, true)},
		{name: "events of a user's calls", query: `SELECT e.seq, e.call_id, e.kind, e.state, e.actor, e.identity, e.reason, e.at
		FROM call_events AS e
		WHERE e.seq > ? AND e.call_id IN (SELECT m.call_id FROM call_members AS m WHERE m.user_id = ?)
		ORDER BY e.seq LIMIT ?`, args: []any{0, "u1", 100}},
		{name: "known user", query: `SELECT
		(SELECT COUNT(*) FROM ws_users WHERE user_id = ?) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM call_members WHERE user_id = ? LIMIT 1) AS m)`, args: []any{"u1", "u1"}},

		// Timers and workers.
		{name: "claim deliveries", query: fmt.Sprintf(claimSurfaces, d.skipLocked), args: []any{"w", now, now, now, 10}},
		{name: "claim room jobs", query: fmt.Sprintf(claimRoomJobs, d.skipLocked), args: []any{"w", now, now, now, 10}},
		{name: "timer: ring timeout", query: ringQ, args: ringArgs},
		{name: "timer: max duration", query: maxQ, args: maxArgs},
		{name: "timer: empty room", query: emptyQ, args: emptyArgs},
		{name: "reconciler: quiet calls", query: quietQ, args: quietArgs},
		{name: "prune events", query: pruneEvents, args: []any{now, 1000}, ordered: true},
		{name: "prune delivery marks", query: pruneMarks, args: []any{now, 1000}, ordered: true},
		{name: "ws: last event", query: `SELECT MAX(seq) FROM call_events`},
		{name: "ws: events after", query: `SELECT seq, call_id, kind, state, actor, identity, reason, at FROM call_events WHERE seq > ? ORDER BY seq LIMIT ?`, args: []any{0, 100}},
		{name: "ws: prune event claims", query: `DELETE FROM ws_event_claims WHERE claimed_at < ?`, args: []any{now}},

		// Metrics, read at scrape time.
		{name: "metrics: card deliveries", query: countDeliveries},
		{name: "admin: card deliveries", query: listDeliveries, args: []any{50}},
		{name: "metrics: calls by state", query: `SELECT state, COUNT(*) FROM calls GROUP BY state`,
			fullScan: "callgate_calls counts every call by state, history included: one pass over a covering index of calls per scrape, off the request path"},
	}
}

var sqliteScan = regexp.MustCompile(`^SCAN (\w+)(?: AS \w+)?(?: USING (?:COVERING )?INDEX (\w+))?`)

// TestQueryPlansSQLite asks SQLite how it runs each hot or periodic
// statement and fails when one reads a growing table whole.
func TestQueryPlansSQLite(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "callgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range planCases(s.d) {
		t.Run(tc.name, func(t *testing.T) {
			plan := explainSQLite(t, s, tc.query, tc.args)
			sorts := strings.Contains(strings.Join(plan, "\n"), "TEMP B-TREE")
			var bad []string
			for _, step := range plan {
				m := sqliteScan.FindStringSubmatch(step)
				if m == nil || !isGrowing(m[1]) || slices.Contains(boundedIndexes, m[2]) || (tc.ordered && !sorts) {
					continue
				}
				bad = append(bad, step)
			}
			switch {
			case tc.fullScan != "":
				t.Logf("full scan allowed (%s):\n  %s", tc.fullScan, strings.Join(plan, "\n  "))
			case len(bad) > 0:
				t.Errorf("reads a growing table whole: %s\nplan:\n  %s\nquery: %s", strings.Join(bad, "; "), strings.Join(plan, "\n  "), tc.query)
			}
		})
	}
}

func explainSQLite(t *testing.T, s *SQL, query string, args []any) []string {
	t.Helper()
	// The writer: statements that write need a connection that may.
	rows, err := s.w.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, query)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

var pgSeqScan = regexp.MustCompile(`Seq Scan on (\w+)`)

// TestQueryPlansPostgres is the same check on PostgreSQL. The planner
// prefers a sequential scan of a small table, so statistics of a large
// one are faked: the tables are analysed empty and sequential scans are
// priced out (enable_seqscan off), which leaves a Seq Scan only where no
// index can serve.
func TestQueryPlansPostgres(t *testing.T) {
	dsn := newPostgresSchema(t, postgresDSN(t))
	s, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range planCases(s.d) {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := conn.QueryContext(ctx, `EXPLAIN `+s.d.q(tc.query), tc.args...)
			if err != nil {
				t.Fatalf("explain: %v\n%s", err, tc.query)
			}
			var plan, bad []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
				if m := pgSeqScan.FindStringSubmatch(line); m != nil && isGrowing(m[1]) {
					bad = append(bad, strings.TrimSpace(line))
				}
			}
			rows.Close()
			switch {
			case tc.fullScan != "":
				t.Logf("full scan allowed (%s):\n%s", tc.fullScan, strings.Join(plan, "\n"))
			case len(bad) > 0:
				t.Errorf("reads a growing table whole: %s\nplan:\n%s\nquery: %s", strings.Join(bad, "; "), strings.Join(plan, "\n"), tc.query)
			}
		})
	}
}

func isGrowing(table string) bool { return slices.Contains(growing, table) }
