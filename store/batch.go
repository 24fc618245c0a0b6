package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callgate/callgate/calls"
)

// Group commit.
//
// On SQLite every write runs on one connection, one transaction after
// another, and under load each request's own transaction is the serial
// section: BEGIN, a handful of statements, COMMIT. The group writer instead
// takes every write queued behind the one in progress and runs them in one
// transaction, each inside a SAVEPOINT so that a failing change (a
// duplicate delivery, a refused state change) rolls back only itself. Every
// caller is answered after the shared COMMIT, so an acknowledged change is
// as durable as before; what is shared is the commit and the locking, and,
// for a busy call, the call as the batch's earlier changes left it (it is
// not read again).
//
// Batches grow with load by themselves: nothing waits for company. A lone
// request runs at once in a batch of one.

// maxBatch bounds the changes in one transaction, so that one batch does
// not hold every caller for long.
const maxBatch = 256

// Group commit wait. A commit writes every page the batch touched, and a
// page touched by many writes is written once: new calls append to the
// same right-hand pages of a dozen b-trees, so a commit of five creates
// writes about as many pages as a commit of fifty. When the writer is busy
// with concurrent writers (its previous batch held several writes and
// ended within groupWaitBusy) and has gathered fewer, it waits up to
// groupWait for as many (at most groupWaitBelow), as PostgreSQL's
// commit_delay does with commit_siblings. A lone write on a quiet gateway,
// and a client that writes one at a time, never wait.
const (
	groupWaitBelow = 16
	groupWaitBusy  = 2 * time.Millisecond
	// defaultGroupWait is the wait SQLite's writer uses.
	defaultGroupWait = 200 * time.Microsecond
)

// writeOp is one write waiting for the group writer.
type writeOp struct {
	ctx  context.Context
	run  func(ctx context.Context, w *txn) error
	err  error
	done chan struct{}
	// apply, when set, is a change to one call that may be applied
	// together with the batch's other applies to that call (ApplyCall).
	apply *applyOp
	// retries counts the times the write was put off to the next batch
	// (see groupWriter.retryable).
	retries int
	// deferrable marks a write that may run with the batch's other
	// deferrable writes, no savepoint of its own, its rows collected and
	// written together (a new call: see groupWriter.tryCreates). It must
	// be safe to run again.
	deferrable bool
}

// maxRetries bounds how often one write is put off to the next batch.
const maxRetries = 3

// groupWriter runs writeOps in shared transactions on db, one batch at a
// time, from its own goroutine.
type groupWriter struct {
	db       *sql.DB
	ops      chan *writeOp
	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	// onCommit runs after a batch commits, before any caller is answered,
	// with its transaction: the calls the batch read or changed as they
	// now are, and the rooms it stored calls with.
	onCommit func(w *txn)
	// onFailure runs when a batch's outcome is unknown or rolled back,
	// with its transaction.
	onFailure func(w *txn)
	stmts     *stmtCache
	// groupWait is how long a small batch waits for company under load,
	// 0 never; busyWithin is how recent the previous batch must be (see
	// defaultGroupWait).
	groupWait, busyWithin time.Duration
	// begin, when set, runs first in each batch's transaction; an error
	// fails the batch.
	begin func(ctx context.Context, w *txn) error
	// coalesce applies groups of applyOps, each group's to one call as
	// one write, setting each op's err; false means it could not (the
	// writer rolls back whatever it wrote) and the ops run group by group,
	// one by one, instead.
	coalesce func(ctx context.Context, w *txn, groups [][]*writeOp) bool
	// flushDeferred writes the rows deferrable writes collected in a
	// deferredWrites (see tryCreates); nil: deferrable writes run as any
	// other.
	flushDeferred func(ctx context.Context, w *txn, d *deferredWrites) error
	// retryable reports an error that a write may not get in a later
	// transaction: on PostgreSQL, a deadlock with another replica's batch
	// (each holds row locks the other wants). The write is rolled back to
	// its savepoint and run again in the next batch, after this one has
	// committed and released its locks. Nil for SQLite.
	retryable func(error) bool

	// waiting counts writes handed to do and not yet taken by the writer;
	// batches and batched count transactions run and writes in them;
	// together counts writes applied together with others to one call;
	// waited counts batches that waited for company (groupWait);
	// statements counts the statements run in batches (round trips, on
	// PostgreSQL).
	waiting, batches, batched, together, waited, statements atomic.Int64
}

// WriterStats are the group writers' counters since the store opened,
// summed over its writers: how well group commit is sharing commits.
type WriterStats struct {
	// Transactions counts the batches run, each one transaction.
	Transactions int64
	// Writes counts the writes run in them (a request's change, a card's
	// claim or record, ...): Writes/Transactions is the writes per commit.
	Writes int64
	// Statements counts the SQL statements the batches ran (round trips,
	// on PostgreSQL): savepoints included, BEGIN and COMMIT not.
	Statements int64
	// Together counts the writes applied together with others to one
	// call (provider events), with no statement of their own.
	Together int64
	// Waited counts the batches that waited for company (groupWait).
	Waited int64
}

// WriterStats returns the counters of the store's group writers.
func (s *SQL) WriterStats() WriterStats {
	var st WriterStats
	for _, g := range s.groups {
		st.Transactions += g.batches.Load()
		st.Writes += g.batched.Load()
		st.Statements += g.statements.Load()
		st.Together += g.together.Load()
		st.Waited += g.waited.Load()
	}
	return st
}

// errStoreClosed answers a write submitted after Close.
var errStoreClosed = errors.New("store: closed")

// newGroupWriter returns a writer to configure further (begin, groupWait,
// retryable) and then start.
func newGroupWriter(db *sql.DB, stmts *stmtCache, onCommit, onFailure func(*txn),
	coalesce func(context.Context, *txn, [][]*writeOp) bool, flushDeferred func(context.Context, *txn, *deferredWrites) error) *groupWriter {
	return &groupWriter{db: db, ops: make(chan *writeOp), stop: make(chan struct{}), stopped: make(chan struct{}),
		onCommit: onCommit, onFailure: onFailure, stmts: stmts, coalesce: coalesce, flushDeferred: flushDeferred}
}

// start runs the writer's loop, once g is configured.
func (g *groupWriter) start() *groupWriter {
	go g.loop()
	return g
}

// do runs fn in a shared transaction and returns once that transaction has
// committed (nil) or fn's change is known not to be stored (an error). fn
// runs on the writer's goroutine with a context that carries ctx's values
// but not its cancellation: cancelling one request must not interrupt a
// statement of a transaction that others share. A request whose ctx ends
// before its turn is not run.
func (g *groupWriter) do(ctx context.Context, fn func(ctx context.Context, w *txn) error) error {
	return g.submit(&writeOp{ctx: ctx, run: fn, done: make(chan struct{})})
}

func (g *groupWriter) submit(op *writeOp) error {
	ctx := op.ctx
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.ops <- op:
	case <-g.stop:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-op.done
	return op.err
}

// close stops the writer once the batch in progress is answered.
func (g *groupWriter) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.stopped
}

func (g *groupWriter) loop() {
	defer close(g.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	var lastEnd time.Time
	lastSize := 0
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		select {
		case op := <-g.ops:
			batch = append(batch[:0], op)
		case <-g.stop:
			return
		}
		// Everyone who queued while the previous batch ran is a sender
		// blocked on the channel: take them all, up to the bound.
	more:
		for len(batch) < maxBatch {
			select {
			case op := <-g.ops:
				batch = append(batch, op)
			default:
				break more
			}
		}
		// Under concurrent load, a small batch waits a moment for company
		// (see groupWait): the writer has just committed several writes,
		// so more are on their way through HTTP and parsing. It waits
		// until it is as large as that batch was, or groupWait passes.
		// A client that sends one write at a time makes batches of one,
		// and never waits.
		if target := min(lastSize, groupWaitBelow); g.groupWait > 0 && len(batch) < target && time.Since(lastEnd) < g.busyWithin {
			g.waited.Add(1)
			wait.Reset(g.groupWait)
		company:
			for len(batch) < target {
				select {
				case op := <-g.ops:
					batch = append(batch, op)
				case <-wait.C:
					break company
				}
			}
			wait.Stop()
		}
		lastSize = len(batch)
		retry := g.run(batch)
		clear(batch)
		// Writes put off by a deadlock go first in the next batch.
		for len(retry) > 0 {
			batch = append(batch[:0], retry...)
			retry = g.run(batch)
			clear(batch)
		}
		lastEnd = time.Now()
	}
}

// run executes one batch and answers its callers, but for those it puts
// off to the next batch, which it returns.
func (g *groupWriter) run(ops []*writeOp) (retry []*writeOp) {
	defer func() {
		for _, op := range ops {
			if !slices.Contains(retry, op) {
				close(op.done)
			}
		}
	}()
	live := ops[:0:0]
	for _, op := range ops {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	g.batches.Add(1)
	g.batched.Add(int64(len(live)))
	// The transaction belongs to the batch, not to any one request.
	ctx := context.Background()
	units := coalescable(live)
	w, err := g.open(ctx)
	if err != nil {
		for _, op := range live {
			op.err = err
		}
		return
	}
	// A batch of nothing but changes to calls (provider events) is run
	// all together with no savepoint around it: on PostgreSQL a
	// savepoint and its release are two round trips per batch. Should it
	// fail, the whole transaction is rolled back (it holds nothing else,
	// and nothing of it was committed or cached), and the batch runs
	// again in a new one the careful way, each call's group under a
	// savepoint of its own.
	wholeFailed := false
	if g.coalesce != nil && len(live) > 1 && onlyApplies(units) {
		if g.coalesce(ctx, w, applyGroups(units)) {
			g.together.Add(int64(len(live)))
			return g.finish(w, live)
		}
		_ = w.tx.Rollback()
		for _, op := range live {
			op.err = nil
		}
		if w, err = g.open(ctx); err != nil {
			for _, op := range live {
				op.err = err
			}
			return
		}
		wholeFailed = true
	}
	// A batch of one needs no savepoint: its failure rolls back the whole
	// transaction, which holds nothing else.
	solo := len(units) == 1 && len(units[0]) == 1
	// Several new calls are stored together, ahead of the batch's other
	// writes (harmless: none of them waits for another in the batch, see
	// coalescable).
	createsRun := false
	if creates := deferrableOps(live); !solo && g.flushDeferred != nil && len(creates) > 1 {
		if createsRun, err = g.tryCreates(ctx, w, creates); err != nil {
			g.fail(w, live, err)
			return
		}
	}
	appliesRun := false
	for _, unit := range units {
		var err error
		switch {
		case createsRun && unit[0].deferrable:
			continue
		case solo:
			unit[0].err = unit[0].run(context.WithoutCancel(unit[0].ctx), w)
		case unit[0].apply != nil && g.coalesce != nil:
			// Every call's applies run together, at the place of the
			// first (see coalescable).
			if appliesRun {
				continue
			}
			appliesRun = true
			err = g.runApplies(ctx, w, applyGroups(units), wholeFailed)
		default: // a write of its own, or applies to one call with no coalesce
			err = runEach(w, unit)
		}
		if err != nil {
			g.fail(w, live, err)
			return
		}
	}
	return g.finish(w, live)
}

// fail rolls back a transaction that cannot go on, and answers every write
// of the batch with err: nothing of it is stored.
func (g *groupWriter) fail(w *txn, live []*writeOp, err error) {
	_ = w.tx.Rollback()
	g.onFailure(w)
	for _, op := range live {
		op.err = err
	}
}

// deferrableOps returns the batch's deferrable writes, in order.
func deferrableOps(ops []*writeOp) []*writeOp {
	var out []*writeOp
	for _, op := range ops {
		if op.deferrable {
			out = append(out, op)
		}
	}
	return out
}

// tryCreates runs a batch's deferrable writes (new calls) one after
// another under one savepoint, their rows collected and written at the end
// in a few statements for all of them (flushDeferred): a create was some
// eight statements, a savepoint of its own among them, most of them one
// row each. It reports whether they all succeeded. If any fails (a
// replayed mark, a callee who refuses the call, a call found stored, an
// error), nothing they wrote is kept, in the database or in w, and the
// caller runs each on its own, under a savepoint as before, so that each
// gets its own outcome. The error is only for a broken transaction.
func (g *groupWriter) tryCreates(ctx context.Context, w *txn, ops []*writeOp) (bool, error) {
	current, rooms := maps.Clone(w.current), maps.Clone(w.rooms)
	together, err := w.attempt(ctx, func() bool {
		d := &deferredWrites{rows: true, creates: true}
		w.deferred = d
		for _, op := range ops {
			if op.err = op.run(context.WithoutCancel(op.ctx), w); op.err != nil {
				w.deferred = nil
				return false
			}
		}
		w.deferred = nil
		return g.flushDeferred(ctx, w, d) == nil
	})
	if err != nil || !together {
		w.current, w.rooms = current, rooms
		for _, op := range ops {
			op.err = nil
		}
	}
	return together, err
}

// open begins a batch's transaction and runs the begin hook in it.
func (g *groupWriter) open(ctx context.Context) (*txn, error) {
	if g.stmts != nil {
		g.stmts.prepareWanted(ctx)
	}
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	w := &txn{tx: tx, stmts: g.stmts, current: map[string]*calls.Call{}, statements: &g.statements}
	if g.begin != nil {
		if err := g.begin(ctx, w); err != nil {
			_ = tx.Rollback()
			g.onFailure(w)
			return nil, err
		}
	}
	return w, nil
}

// onlyApplies reports whether every unit of a batch is changes to a call.
func onlyApplies(units [][]*writeOp) bool {
	for _, u := range units {
		if u[0].apply == nil {
			return false
		}
	}
	return true
}

// finish commits w with the writes of live that succeeded, and returns
// those put off to the next batch.
func (g *groupWriter) finish(w *txn, live []*writeOp) (retry []*writeOp) {
	tx := w.tx
	var stored []*writeOp
	for _, op := range live {
		switch {
		case op.err == nil:
			stored = append(stored, op)
		case g.retryable != nil && g.retryable(op.err) && op.retries < maxRetries:
			op.retries++
			op.err = nil
			retry = append(retry, op)
		}
	}
	if len(stored) == 0 {
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		// The outcome is unknown; the next change reads the calls afresh.
		g.onFailure(w)
		for _, op := range stored {
			op.err = fmt.Errorf("store: commit: %w", err)
		}
		return
	}
	g.onCommit(w)
	return retry
}

// runApplies applies the batch's changes to calls (ApplyCall), grouped by
// call: all of them under one savepoint when it can, which is what a
// batch of provider webhooks spread over many calls costs (no savepoint
// per call, one statement for all their events). When that fails, what it
// wrote is rolled back and each call's group runs on its own: together
// when it can, one change at a time (each in a savepoint) when it cannot.
// It returns an error only when the transaction is broken.
func (g *groupWriter) runApplies(ctx context.Context, w *txn, groups [][]*writeOp, wholeFailed bool) error {
	if len(groups) == 1 && len(groups[0]) == 1 {
		return runEach(w, groups[0])
	}
	// wholeFailed: the caller ran them all together already, and that
	// failed.
	if !wholeFailed {
		together, err := g.tryTogether(ctx, w, groups)
		if err != nil || together {
			return err
		}
	}
	for _, group := range groups {
		// A group of several, when the whole failed: alone it may not.
		if len(group) > 1 && len(groups) > 1 {
			together, err := g.tryTogether(ctx, w, [][]*writeOp{group})
			if err != nil {
				return err
			}
			if together {
				continue
			}
		}
		if err := runEach(w, group); err != nil {
			return err
		}
	}
	return nil
}

// runEach runs ops one by one, each in a savepoint of its own, setting
// each op's err. It returns an error only when the transaction is broken.
func runEach(w *txn, ops []*writeOp) error {
	for _, op := range ops {
		op.err = w.inSavepoint(context.WithoutCancel(op.ctx), op.run)
		if err := brokenErr(op.err); err != nil {
			return err
		}
	}
	return nil
}

// tryTogether runs coalesce on groups under a savepoint and reports
// whether it succeeded; when it did not, nothing it wrote is kept, in the
// database or in w.current. The error is only for a broken transaction.
func (g *groupWriter) tryTogether(ctx context.Context, w *txn, groups [][]*writeOp) (bool, error) {
	// The calls as the batch held them before, to put back on failure.
	before := make(map[string]*calls.Call, len(groups))
	for _, group := range groups {
		before[group[0].apply.id] = w.current[group[0].apply.id]
	}
	together, err := w.attempt(ctx, func() bool { return g.coalesce(ctx, w, groups) })
	if err != nil {
		return false, err
	}
	if !together {
		for id, c := range before {
			if c == nil {
				delete(w.current, id)
			} else {
				w.current[id] = c
			}
		}
		return false, nil
	}
	for _, group := range groups {
		g.together.Add(int64(len(group)))
	}
	return true, nil
}

// errNotTogether is what attempt's fn reports through inSavepoint.
var errNotTogether = errors.New("store: not together")

// attempt runs fn under a savepoint and reports whether it succeeded; when
// it did not, what fn wrote to the database is rolled back (what it put in
// w is the caller's to put back). The error is only for a broken
// transaction.
func (w *txn) attempt(ctx context.Context, fn func() bool) (bool, error) {
	err := w.inSavepoint(ctx, func(context.Context, *txn) error {
		if !fn() {
			return errNotTogether
		}
		return nil
	})
	if broken := brokenErr(err); broken != nil {
		return false, broken
	}
	return err == nil, nil
}

// applyGroups returns the units of applies (see coalescable), in order.
func applyGroups(units [][]*writeOp) [][]*writeOp {
	var groups [][]*writeOp
	for _, u := range units {
		if u[0].apply != nil {
			groups = append(groups, u)
		}
	}
	return groups
}

// coalescable splits a batch into units run in order: the applies to one
// call form one unit, at the place of the first of them; every other write
// is a unit of its own. (The writer then runs all the apply units at the
// place of the first of them.) Moving an apply ahead of other writes in
// the same transaction is harmless: they commit together, and none of them
// reads what an apply writes but the call's own changes, which keep their
// order.
func coalescable(ops []*writeOp) [][]*writeOp {
	units := make([][]*writeOp, 0, len(ops))
	at := map[string]int{}
	for _, op := range ops {
		if op.apply == nil {
			units = append(units, []*writeOp{op})
			continue
		}
		if i, ok := at[op.apply.id]; ok {
			units[i] = append(units[i], op)
			continue
		}
		at[op.apply.id] = len(units)
		units = append(units, []*writeOp{op})
	}
	return units
}

func brokenErr(err error) error {
	if errors.Is(err, errBatchBroken) {
		return err
	}
	return nil
}

// errBatchBroken marks an error after which the shared transaction cannot
// be used (a savepoint that could not be rolled back to).
var errBatchBroken = errors.New("store: write transaction broken")

// txn is a transaction of the store with prepared statements: the one a
// write runs in, shared with the other writes of its batch, or a
// snapshot read.
type txn struct {
	tx    *sql.Tx
	stmts *stmtCache
	// current holds the calls this transaction has read or changed, as
	// they stand in it: a later change of one of them in the same batch
	// starts from it instead of reading the call again. Only the writes of
	// the batch touch the database while it runs (SQLite's one writer
	// connection), so the copy stays exact until the batch ends. A write
	// records a call here only once it has succeeded.
	current map[string]*calls.Call
	// rooms holds the provider rooms this transaction stored calls with,
	// and the call of each, for the room cache (see roomCache).
	rooms map[roomKey]string
	// surfaced holds the calls whose surfaces this transaction wrote
	// outside a change of the call (see surfacesChanged), each with the
	// call as the transaction held it then (nil when it held none): all of
	// it but the surfaces is still exact.
	surfaced map[string]*calls.Call
	// deferred, when not nil, collects what writes would write, for a few
	// statements at the end (see deferredWrites and SQL.applyTogether).
	deferred *deferredWrites
	// exclusive is true when no connection but this process's writer has
	// committed since the writer's last transaction: the whole calls in
	// the child cache are then exactly what is stored (see beginBatch).
	exclusive bool
	// statements, when not nil, counts the statements run in w.
	statements *atomic.Int64
	// owned holds, by id, the calls in current that no one but this
	// transaction holds: a batch's own copy of a call it changed, made
	// for the change and handed to no caller (applyGroup). The cache
	// keeps such a call without copying it; an entry counts only while
	// current holds that very call.
	owned map[string]*calls.Call
}

// own records c, which only w holds, as the call id now stands in w.
func (w *txn) own(id string, c *calls.Call) {
	if w.owned == nil {
		w.owned = map[string]*calls.Call{}
	}
	w.current[id] = c
	w.owned[id] = c
}

// counted adds a statement to w's count.
func (w *txn) counted() {
	if w.statements != nil {
		w.statements.Add(1)
	}
}

// roomStored notes that c is stored with its room.
func (w *txn) roomStored(c *calls.Call) {
	if c.Room.Name == "" {
		return
	}
	if w.rooms == nil {
		w.rooms = map[roomKey]string{}
	}
	w.rooms[roomKey{c.Provider, c.Room.Name}] = c.ID
}

// surfacesChanged records that the call's surfaces (their delivery state)
// were written outside a change of the call: a later change, in the batch
// or after it, starts from the call as held but reads its surfaces again.
func (w *txn) surfacesChanged(callID string) {
	if w.surfaced == nil {
		w.surfaced = map[string]*calls.Call{}
	}
	if c, ok := w.current[callID]; ok {
		w.surfaced[callID] = c
		delete(w.current, callID)
	} else if _, ok := w.surfaced[callID]; !ok {
		w.surfaced[callID] = nil
	}
}

// inSavepoint runs fn so that an error from it undoes exactly what fn
// wrote, and what fn recorded in changed.
func (w *txn) inSavepoint(ctx context.Context, fn func(ctx context.Context, w *txn) error) error {
	if _, err := w.ExecContext(ctx, `SAVEPOINT write`); err != nil {
		return fmt.Errorf("%w: savepoint: %w", errBatchBroken, err)
	}
	err := fn(ctx, w)
	if err != nil {
		if _, rerr := w.ExecContext(ctx, `ROLLBACK TO write`); rerr != nil {
			return fmt.Errorf("%w: rollback to savepoint: %w (after %w)", errBatchBroken, rerr, err)
		}
	}
	if _, rerr := w.ExecContext(ctx, `RELEASE write`); rerr != nil {
		return fmt.Errorf("%w: release savepoint: %w", errBatchBroken, rerr)
	}
	return err
}

// ExecContext, QueryContext and QueryRowContext run a statement in the
// transaction, prepared once per writer connection when the store keeps
// prepared statements (SQLite, where parsing is a large share of a small
// statement's cost; pgx caches statements by itself).
func (w *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w.counted()
	if st := w.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return w.tx.ExecContext(ctx, query, args...)
}

func (w *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	w.counted()
	if st := w.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return w.tx.QueryContext(ctx, query, args...)
}

func (w *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	w.counted()
	if st := w.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, query, args...)
}

func (w *txn) stmt(ctx context.Context, query string) *sql.Stmt {
	if w.stmts == nil {
		return nil
	}
	st := w.stmts.get(query)
	if st == nil {
		return nil
	}
	// A transaction's statement from a prepared one reuses what is
	// prepared on the transaction's connection.
	return w.tx.StmtContext(ctx, st)
}

// stmtCache keeps prepared statements by query text, up to a bound: the
// queries of a write are a few fixed shapes, and the odd shape (a long IN
// list) is simply not kept.
//
// A statement is prepared between batches, never during one: SQLite's
// writer pool has one connection, which the batch's transaction holds, so
// preparing on the pool then would wait for itself. A query first seen in
// a batch runs unprepared and is prepared before the next.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

// stmtCacheSize bounds the prepared statements per pool. The fixed shapes
// number about a hundred: each multi-row statement of a batch has a shape
// per row count up to deferredRows (call rows per mask, roster rows,
// surface bumps, events, and a batch's new calls' members, surfaces and
// room jobs); a mixed load of creates and provider events in batches of
// every size prepared 81.
const stmtCacheSize = 256

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// get returns the prepared statement for query, or nil when it is not
// prepared yet (it will be, if there is room).
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m)+len(c.wanted) < stmtCacheSize {
		c.wanted[query] = true
	}
	return nil
}

// prepare returns the prepared statement for query, preparing it now if
// there is room; nil when there is not, or preparing failed (the plain
// path then reports the error). The caller must hold none of the pool's
// connections: preparing may wait for one.
func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[query]
	full := len(c.m) >= stmtCacheSize
	c.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok {
		st.Close() // another goroutine prepared it meanwhile
		return prev
	}
	c.m[query] = st
	return st
}

// prepareWanted prepares the queries asked for since the last call. A
// query that fails to prepare is left to the plain path, which reports
// its error to the write that runs it.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wanted {
		delete(c.wanted, q)
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}

// write runs fn in the shared transaction of the group writer for key and
// returns once that transaction has committed, or with fn's error and
// nothing of fn's stored.
//
// key names what the write is about (a call id, or "" for work that spans
// calls): writes with one key go to one writer, in order, so that changes
// to one call can be applied together and never wait on each other's row
// locks across writers.
func (s *SQL) write(ctx context.Context, key string, fn func(ctx context.Context, w *txn) error) error {
	return s.writer(key).do(ctx, fn)
}

// writeDeferrable is write for a write that may run with others of its
// kind, its rows collected (see writeOp.deferrable).
func (s *SQL) writeDeferrable(ctx context.Context, key string, fn func(ctx context.Context, w *txn) error) error {
	return s.writer(key).submit(&writeOp{ctx: ctx, run: fn, done: make(chan struct{}), deferrable: true})
}

// remember caches the calls a committed transaction left as they are
// (those whose surfaces it wrote afterwards, with their surfaces marked
// stale), and drops the rooms whose call it may have changed.
func (s *SQL) remember(w *txn) {
	for id, c := range w.current {
		if w.owned[id] == c {
			s.children.adopt(c)
		} else {
			s.children.put(c)
		}
	}
	for id, c := range w.surfaced {
		if _, ok := w.current[id]; ok {
			continue
		}
		if c != nil {
			// Its members and roster are what is stored; its surfaces
			// are read again by the next change.
			s.children.putCall(c, true)
		} else {
			s.children.dropCall(id)
		}
	}
	s.rooms.stored(w.rooms)
}

// forget drops the cached children of calls whose stored state is unknown,
// and the rooms whose call may have changed. The writer's connection may
// be in doubt too: the next batch trusts no whole call (see beginBatch).
func (s *SQL) forget(w *txn) {
	for id := range w.current {
		s.children.drop(id)
	}
	for id := range w.surfaced {
		s.children.dropCall(id)
	}
	s.rooms.stored(w.rooms)
	s.dataVersion.Store(0)
}

// beginBatch runs first in each of the SQLite writer's transactions. It
// asks SQLite whether any other connection has committed since the
// writer's previous transaction (PRAGMA data_version changes exactly
// then, and not for the connection's own commits). If none has, every
// whole call in the child cache is what is stored, and the batch's
// writes start from it without reading the call: the writer is this
// process's only path to calls and surfaces. If one has (another process
// on the same file, a tool), every whole call is forgotten first.
func (s *SQL) beginBatch(ctx context.Context, w *txn) error {
	var v int64
	if err := w.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return fmt.Errorf("store: data version: %w", err)
	}
	// 0 means unknown: SQLite's data_version starts at 1.
	if s.dataVersion.Swap(v) != v {
		s.children.dropCalls()
	}
	w.exclusive = true
	return nil
}

// readRow and readQuery run a query on the reader pool, prepared once when
// the store keeps prepared statements (SQLite: the hub's per-ring reads,
// webhooks' room lookups and the workers' due checks parse the same few
// queries all day).
func (s *SQL) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

func (s *SQL) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, query, args...)
}

func (s *SQL) readStmt(ctx context.Context, query string) *sql.Stmt {
	if s.reads == nil {
		return nil
	}
	return s.reads.prepare(ctx, query)
}

// readTx begins a snapshot read whose statements are prepared like
// readRow's. Statements are prepared before the transaction takes its
// connection, so preparing never waits for a connection this goroutine
// holds.
func (s *SQL) readTx(ctx context.Context) (*txn, error) {
	if s.reads != nil {
		s.reads.prepareWanted(ctx)
	}
	tx, err := s.r.BeginTx(ctx, snapshot)
	if err != nil {
		return nil, err
	}
	return &txn{tx: tx, stmts: s.reads}, nil
}

// writer returns the group writer for key.
func (s *SQL) writer(key string) *groupWriter {
	if len(s.groups) == 1 {
		return s.groups[0]
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return s.groups[h.Sum32()%uint32(len(s.groups))]
}
