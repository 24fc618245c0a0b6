package main

// The bigstore scenario: POST /v1/calls and GET /v1/calls/{id} against a
// store of ~1,000 calls, then against the same store filled (directly in
// the database, with the gateway stopped) to -bigstore-calls calls, and the
// store's size per call. It fails when a p99 at the large size exceeds
// -bigstore-budget times the p99 at the small one.

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, as the store uses
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, as the store uses

	"github.com/callgate/callgate/calls"
)

// bigSmall is the size of the store the small measurement runs against.
const bigSmall = 1000

// bigPhase is one measurement: create and get at one store size.
type bigPhase struct {
	label       string
	calls       int64 // in the store before the measurement
	create, get result
	fillCalls   int
	fillRows    int64
	fillTook    time.Duration
	size        int64 // bytes on disk before the measurement
	countTook   time.Duration
	tables      []tableSize
}

func (h *harness) sqlitePath() string { return filepath.Join(h.dir, "data", "callgate.db") }

// openStoreDB opens the gateway's database with the drivers the store
// uses: "sqlite" (modernc.org/sqlite) or "pgx" (pgx stdlib).
func (h *harness) openStoreDB(extra ...string) (*sql.DB, error) {
	if h.o.storeKind == "postgres" {
		return sql.Open("pgx", h.pgDSN)
	}
	q := []string{"_pragma=busy_timeout(10000)"}
	for _, p := range extra {
		q = append(q, "_pragma="+p)
	}
	db, err := sql.Open("sqlite", h.sqlitePath()+"?"+strings.Join(q, "&"))
	if err == nil {
		db.SetMaxOpenConns(1)
	}
	return db, err
}

// settle waits until the gateway has created every pending room.
func (h *harness) settle(ctx context.Context) error {
	db, err := h.openStoreDB()
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_jobs`).Scan(&n); err != nil {
			return fmt.Errorf("count room jobs: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d rooms still pending after 2 minutes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timeCountByState times the statement behind the callgate_calls gauge
// (store.CountByState), warm.
func (h *harness) timeCountByState(ctx context.Context) (time.Duration, error) {
	db, err := h.openStoreDB()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var took time.Duration
	for i := range 3 {
		t0 := time.Now()
		rows, err := db.QueryContext(ctx, `SELECT state, COUNT(*) FROM calls GROUP BY state`)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
		}
		rows.Close()
		if i > 0 {
			took = time.Since(t0)
		}
	}
	return took, nil
}

func countCalls(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM calls`).Scan(&n)
	return n, err
}

func (h *harness) bigstore() error {
	ctx := context.Background()
	h.noWriterCounts = true
	defer func() { h.noWriterCounts = false }()
	// Both sizes are measured the same way: the gateway stopped, the
	// store filled directly to the size, the gateway restarted, a warm-up,
	// then gets (of filled calls and of calls made over HTTP) and creates.
	var made, filled []string
	phase := func(size int) (bigPhase, error) {
		db, err := h.openStoreDB()
		if err != nil {
			return bigPhase{}, err
		}
		n, err := countCalls(ctx, db)
		db.Close()
		if err != nil {
			return bigPhase{}, fmt.Errorf("count calls: %w", err)
		}
		// Rooms still being created for the last measurement's calls would
		// be created during the next one.
		if err := h.settle(ctx); err != nil {
			return bigPhase{}, err
		}
		fmt.Fprintf(os.Stderr, "bigstore: stopping the gateway to fill the store from %d to %d calls ...\n", n, size)
		h.gw.stop()
		t0 := time.Now()
		ids, rows, err := h.fill(ctx, size-int(n))
		if err != nil {
			return bigPhase{}, fmt.Errorf("fill: %w", err)
		}
		p := bigPhase{fillCalls: len(ids), fillRows: rows, fillTook: time.Since(t0)}
		fmt.Fprintf(os.Stderr, "bigstore: filled %d calls (%d rows) in %s\n", len(ids), rows, p.fillTook.Round(time.Second))
		filled = append(filled, ids...)
		if p.size, p.tables, p.calls, err = h.storeSize(ctx); err != nil {
			return bigPhase{}, fmt.Errorf("store size: %w", err)
		}
		if p.countTook, err = h.timeCountByState(ctx); err != nil {
			return bigPhase{}, err
		}
		if err := h.start(); err != nil {
			return bigPhase{}, err
		}
		p.label = shortCount(p.calls)
		if len(made) == 0 {
			// A few calls made over HTTP, so gets cover both kinds.
			for range 100 {
				if _, id, err := h.createOne(); err == nil && id != "" {
					made = append(made, id)
				}
			}
			if err := h.settle(ctx); err != nil {
				return bigPhase{}, err
			}
		}
		err = h.bigMeasure(&p, &made, filled)
		return p, err
	}
	small, err := phase(bigSmall)
	if err != nil {
		return err
	}
	big, err := phase(h.o.bigCalls)
	if err != nil {
		return err
	}

	ratio := func(a, b result) float64 {
		slices.Sort(a.lat)
		slices.Sort(b.lat)
		return float64(pct(b.lat, 0.99)) / float64(pct(a.lat, 0.99))
	}
	rc, rg := ratio(small.create, big.create), ratio(small.get, big.get)
	var tables []string
	for _, t := range big.tables {
		tables = append(tables, fmt.Sprintf("%s %.0f", t.name, float64(t.bytes)/float64(big.calls)))
	}
	note := fmt.Sprintf("filled %d calls (%d rows) in %s, %.0f rows/s; p99 at %s / at %s calls: create %.2f×, get %.2f× (budget %.2f×); store %.1f MB at %d calls: %.0f bytes per call (%s)",
		big.fillCalls, big.fillRows, big.fillTook.Round(time.Second), float64(big.fillRows)/big.fillTook.Seconds(),
		big.label, small.label, rc, rg, h.o.bigBudget, float64(big.size)/1e6, big.calls, float64(big.size)/float64(big.calls), strings.Join(tables, ", "))
	note += fmt.Sprintf("; the metrics' calls-by-state count (a full index pass, at scrape time) took %s at %s, %s at %s",
		small.countTook.Round(time.Microsecond), small.label, big.countTook.Round(time.Millisecond), big.label)
	big.get.note = note
	h.results = append(h.results, small.get, small.create, big.get, big.create)
	var over []string
	if rc > h.o.bigBudget {
		over = append(over, fmt.Sprintf("create p99 %.2f×", rc))
	}
	if rg > h.o.bigBudget {
		over = append(over, fmt.Sprintf("get p99 %.2f×", rg))
	}
	if len(over) > 0 {
		return fmt.Errorf("at %d calls: %s, budget %.2f×", big.calls, strings.Join(over, ", "), h.o.bigBudget)
	}
	return nil
}

func shortCount(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.3gM", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.3gk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// createOne creates a call as the create scenario does and returns its id.
func (h *harness) createOne() (int, string, error) {
	status, body, err := h.do(h.apiRequest("POST", "/v1/calls", map[string]any{"title": "load", "type": "audio"}))
	if err != nil || status != 201 {
		return status, "", err
	}
	// {"call":{"id":"…", …}}: the id is the first field.
	const key = `"id":"`
	i := strings.Index(string(body), key)
	if i < 0 {
		return status, "", fmt.Errorf("create answer without an id")
	}
	rest := string(body[i+len(key):])
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return status, "", fmt.Errorf("create answer without an id")
	}
	return status, rest[:j], nil
}

// bigMeasure measures gets, then creates, each after a short warm-up.
// Gets alternate between filled calls and calls made over HTTP.
func (h *harness) bigMeasure(p *bigPhase, made *[]string, filled []string) error {
	var mu sync.Mutex
	createFn := func(w, i int) (int, error) {
		s, id, err := h.createOne()
		if id != "" {
			mu.Lock()
			*made = append(*made, id)
			mu.Unlock()
		}
		return s, err
	}
	rngs := make([]*rand.Rand, h.o.concurrency)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	}
	getFn := func(w, i int) (int, error) {
		rng := rngs[w]
		var id string
		if i%2 == 0 {
			id = filled[rng.IntN(len(filled))]
		} else {
			mu.Lock()
			id = (*made)[rng.IntN(len(*made))]
			mu.Unlock()
		}
		s, _, err := h.do(h.apiRequest("GET", "/v1/calls/"+id, nil))
		return s, err
	}
	warm := min(2*time.Second, h.o.duration/2)
	n := h.o.bigRequests
	fmt.Fprintf(os.Stderr, "bigstore: measuring at %s calls ...\n", p.label)
	h.drive("warm-up", n/5, h.o.concurrency, warm, 0, getFn, func(s int) bool { return s == 200 })
	stop := h.profile("bigstore-get-" + p.label)
	p.get = h.drive("bigstore: GET /v1/calls/{id} @"+p.label, n, h.o.concurrency, h.o.duration, 0, getFn, func(s int) bool { return s == 200 })
	stop()
	h.drive("warm-up", n/5, h.o.concurrency, warm, 0, createFn, func(s int) bool { return s == 201 })
	stop = h.profile("bigstore-create-" + p.label)
	p.create = h.drive("bigstore: POST /v1/calls @"+p.label, n, h.o.concurrency, h.o.duration, 0, createFn, func(s int) bool { return s == 201 })
	stop()
	p.create.ratio, p.get.ratio = true, true
	if p.create.errs > 0 || p.get.errs > 0 {
		return fmt.Errorf("at %s calls: %d gets and %d creates failed", p.label, p.get.errs, p.create.errs)
	}
	return nil
}

// ---- the fill ----

// bigBatch is the calls one fill transaction writes.
const bigBatch = 5000

// fillLive is how many filled calls are live (active, two people in the
// room); the rest are history: ended, missed or rejected.
const fillLive = 1000

// bigRows are one batch's rows, per table, in the column order of
// bigTables.
type bigRows [6][][]any

var bigTables = [6]struct{ name, cols string }{
	{"calls", "id, type, state, provider, title, created_by, room_name, room, created_at, updated_at, state_changed_at, ended_at, end_reason, version, guests, recordings, empty_since"},
	{"call_members", "call_id, pos, user_id, role, answer"},
	{"call_roster", "call_id, identity, name, present, seq, seq_present, joined_at"},
	{"call_surfaces", "call_id, chat, workspace, channel, pos, wanted_version, shown_version, message_ref, attempts, next_attempt_at, last_error, dead_at, lease_owner, lease_until"},
	{"call_events", "call_id, kind, state, actor, identity, reason, at"},
	{"deliveries", "source, delivery_id, seen_at"},
}

// fillGen makes what the gateway itself would have stored for n calls:
// members (the owner and two invitees), a roster of two people with their
// marks, a card in a chat conversation shown at the call's version, the
// event log, and the webhook delivery marks the retention keeps (those of
// the last 7 days: retention.marks_after's default).
type fillGen struct {
	pg    bool
	now   time.Time
	rng   *rand.Rand
	users int
	convs int
}

func (g *fillGen) t(us int64) any {
	if g.pg {
		return time.UnixMicro(us).UTC()
	}
	return us
}

func (g *fillGen) tp(us int64, ok bool) any {
	if !ok {
		return nil
	}
	return g.t(us)
}

func (g *fillGen) add(b *bigRows, id string, live bool) {
	r := g.rng
	now := g.now.UnixMicro()
	const minute = int64(60e6)
	// History spans 29 days, inside retention.events_after (720h), so the
	// pruner has no backlog; live calls started in the last 30 minutes.
	created := now - 10*minute - r.Int64N(29*24*60*minute)
	if live {
		created = now - 2*minute - r.Int64N(28*minute)
	}
	u := r.IntN(g.users)
	u1 := (u + 1 + r.IntN(g.users/2)) % g.users
	u2 := (u1 + 1 + r.IntN(g.users/2-1)) % g.users
	owner, guest1, guest2 := fmt.Sprintf("user-%d", u), fmt.Sprintf("user-%d", u1), fmt.Sprintf("user-%d", u2)
	room := id + "-" + calls.RandomString(10)
	roomJSON := fmt.Sprintf(`{"name":%q,"url":"https://meet.jit.si/%s"}`, room, room)
	typ := "video"
	if r.IntN(3) == 0 {
		typ = "audio"
	}
	var (
		state, reason string
		ended         int64
		endedOK       bool
		evs           [][3]string // kind, state, identity/reason
	)
	ringAt, joinA, joinB := created+2e6, created+20e6, created+35e6
	leaveA := joinA + minute + r.Int64N(40*minute)
	leaveB := leaveA - r.Int64N(30e6)
	evs = append(evs, [3]string{"created", "created", ""}, [3]string{"updated", "created", "room_created"})
	switch p := r.IntN(100); {
	case live:
		state = "active"
		evs = append(evs, [3]string{"active", "active", ""}, [3]string{"joined", "active", owner}, [3]string{"joined", "active", guest1})
	case p < 92:
		state, reason, ended, endedOK = "ended", "room_finished", leaveA+5e6, true
		evs = append(evs, [3]string{"active", "active", ""}, [3]string{"joined", "active", owner}, [3]string{"joined", "active", guest1},
			[3]string{"left", "active", guest1}, [3]string{"left", "active", owner}, [3]string{"ended", "ended", "room_finished"})
	case p < 97:
		state, reason, ended, endedOK = "missed", "ring_timeout", ringAt+120e6, true
		evs = append(evs, [3]string{"ringing", "ringing", ""}, [3]string{"missed", "missed", "ring_timeout"})
	default:
		state, reason, ended, endedOK = "rejected", "declined", ringAt+8e6, true
		evs = append(evs, [3]string{"ringing", "ringing", ""}, [3]string{"rejected", "rejected", "declined"})
	}
	version := int64(len(evs))
	updated := created + 1000
	if endedOK {
		updated = ended
	} else {
		updated = joinB
	}
	b[0] = append(b[0], []any{id, typ, state, "jitsi", fmt.Sprintf("Call %d", r.IntN(1e6)), owner, room, roomJSON,
		g.t(created), g.t(updated), g.t(updated), g.tp(ended, endedOK), reason, version, r.IntN(10) == 0, "[]", nil})
	a1, a2 := "accepted", ""
	if state == "rejected" {
		a1 = "declined"
	}
	b[1] = append(b[1], []any{id, 0, owner, "owner", "accepted"}, []any{id, 1, guest1, "participant", a1}, []any{id, 2, guest2, "participant", a2})
	if state == "ended" || live {
		for _, p := range []struct {
			who      string
			in, left int64
		}{{owner, joinA, leaveA}, {guest1, joinB, leaveB}} {
			if live {
				b[2] = append(b[2], []any{id, p.who, strings.ToUpper(p.who), true, p.in / 1000, true, g.t(p.in)})
			} else {
				b[2] = append(b[2], []any{id, p.who, "", false, p.left / 1000, false, nil})
			}
		}
	}
	conv := fmt.Sprintf("conv-%d", r.IntN(g.convs))
	b[3] = append(b[3], []any{id, "acme", "", conv, 0, version, version, "m-" + id, 0, g.t(updated), "", nil, "", nil})
	at := created
	for _, e := range evs {
		identity, why := "", ""
		switch e[0] {
		case "joined", "left":
			identity = e[2]
		default:
			why = e[2]
		}
		b[4] = append(b[4], []any{id, e[0], e[1], "", identity, why, g.t(at)})
		at += 1 + r.Int64N(minute)
	}
	// Marks of the provider's webhooks (two joins, two leaves), kept for
	// 7 days.
	if marks := now - 168*60*minute + 60*minute; created > marks && (state == "ended" || live) {
		n := 4
		if live {
			n = 2
		}
		for k := range n {
			b[5] = append(b[5], []any{"jitsi", calls.RandomString(24), g.t(created + int64(k+1)*10e6)})
		}
	}
}

// fill writes n calls into the stopped gateway's store and returns the
// ids written (sorted) and the rows.
func (h *harness) fill(ctx context.Context, n int) ([]string, int64, error) {
	if n <= 0 {
		return nil, 0, nil
	}
	// Random ids, inserted in key order: the same keys a gateway mints,
	// without paying for random B-tree inserts during the fill.
	seen := make(map[string]struct{}, n)
	ids := make([]string, 0, n)
	for len(ids) < n {
		id := calls.NewID()
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	seen = nil
	slices.Sort(ids)
	live := make(map[int]bool, fillLive)
	rng := rand.New(rand.NewPCG(1, 2))
	for len(live) < min(fillLive, n/100) {
		live[rng.IntN(n)] = true
	}
	batches := make(chan *bigRows, 2)
	go func() {
		defer close(batches)
		g := &fillGen{pg: h.o.storeKind == "postgres", now: time.Now(), rng: rng, users: 50_000, convs: 20_000}
		for lo := 0; lo < n; lo += bigBatch {
			b := new(bigRows)
			for i := lo; i < min(lo+bigBatch, n); i++ {
				g.add(b, ids[i], live[i])
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	var rows int64
	var err error
	if h.o.storeKind == "postgres" {
		rows, err = h.fillPostgres(ctx, batches)
	} else {
		rows, err = h.fillSQLite(ctx, batches)
	}
	for range batches { // drain on error
	}
	return ids, rows, err
}

func (h *harness) fillSQLite(ctx context.Context, batches <-chan *bigRows) (int64, error) {
	// The gateway is stopped: no journal, no fsync, a large page cache.
	// The file goes back to WAL afterwards.
	db, err := h.openStoreDB("synchronous(OFF)", "cache_size(-4000000)", "foreign_keys(0)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode=OFF`); err != nil {
		return 0, err
	}
	var rows int64
	for b := range batches {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return rows, err
		}
		// Statements are prepared on the transaction: the pool has one
		// connection, which the transaction holds.
		stmts := map[string]*sql.Stmt{}
		for t, rs := range b {
			for len(rs) > 0 {
				width := len(rs[0])
				k := min(len(rs), 30000/width, 1000)
				q := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", bigTables[t].name, bigTables[t].cols,
					strings.TrimSuffix(strings.Repeat("("+marks(width)+"),", k), ","))
				st, ok := stmts[q]
				if !ok {
					if st, err = tx.PrepareContext(ctx, q); err != nil {
						tx.Rollback()
						return rows, err
					}
					stmts[q] = st
				}
				args := make([]any, 0, k*width)
				for _, r := range rs[:k] {
					args = append(args, r...)
				}
				if _, err := st.ExecContext(ctx, args...); err != nil {
					tx.Rollback()
					return rows, fmt.Errorf("insert into %s: %w", bigTables[t].name, err)
				}
				rows += int64(k)
				rs = rs[k:]
			}
		}
		if err := tx.Commit(); err != nil {
			return rows, err
		}
	}
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
		return rows, err
	}
	return rows, nil
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func (h *harness) fillPostgres(ctx context.Context, batches <-chan *bigRows) (int64, error) {
	conn, err := pgx.Connect(ctx, h.pgDSN)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		return 0, err
	}
	var rows int64
	for b := range batches {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return rows, err
		}
		for t, rs := range b {
			cols := strings.Split(bigTables[t].cols, ", ")
			k, err := tx.CopyFrom(ctx, pgx.Identifier{bigTables[t].name}, cols, pgx.CopyFromRows(rs))
			if err != nil {
				tx.Rollback(ctx)
				return rows, fmt.Errorf("copy into %s: %w", bigTables[t].name, err)
			}
			rows += k
		}
		if err := tx.Commit(ctx); err != nil {
			return rows, err
		}
	}
	// A long-lived database has been vacuumed and analysed by autovacuum;
	// do it now rather than in the middle of the measurement.
	fmt.Fprintln(os.Stderr, "bigstore: VACUUM ANALYZE ...")
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return rows, err
	}
	return rows, nil
}

type tableSize struct {
	name  string
	bytes int64
}

// storeSize returns the store's size on disk (SQLite: database and WAL
// files after a checkpoint; PostgreSQL: pg_total_relation_size of the
// schema's tables), its largest tables, and the calls in it.
func (h *harness) storeSize(ctx context.Context) (int64, []tableSize, int64, error) {
	db, err := h.openStoreDB()
	if err != nil {
		return 0, nil, 0, err
	}
	defer db.Close()
	total, err := countCalls(ctx, db)
	if err != nil {
		return 0, nil, 0, err
	}
	var query string
	var size int64
	if h.o.storeKind == "postgres" {
		query = `SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 2 DESC`
	} else {
		if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return 0, nil, 0, err
		}
		for _, f := range []string{"", "-wal"} {
			if fi, err := os.Stat(h.sqlitePath() + f); err == nil {
				size += fi.Size()
			}
		}
		// Tables with their indexes (dbstat: one row per b-tree).
		query = `SELECT coalesce(i.tbl_name, s.name), SUM(s.pgsize) FROM dbstat s LEFT JOIN sqlite_schema i ON i.name = s.name
			GROUP BY 1 ORDER BY 2 DESC`
	}
	var tables []tableSize
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		if h.o.storeKind == "postgres" {
			return 0, nil, 0, err
		}
		return size, nil, total, nil // no dbstat: the total is enough
	}
	defer rows.Close()
	for rows.Next() {
		var t tableSize
		if err := rows.Scan(&t.name, &t.bytes); err != nil {
			return 0, nil, 0, err
		}
		if h.o.storeKind == "postgres" {
			size += t.bytes
		}
		if t.bytes > 0 && len(tables) < 6 {
			tables = append(tables, t)
		}
	}
	return size, tables, total, rows.Err()
}
