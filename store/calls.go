package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// querier is what *sql.DB and *sql.Tx share, so loading code serves both
// locked reads inside a write and plain reads.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// snapshot reads a call and its children as of one moment. SQLite ignores
// the isolation level (a deferred read transaction is a snapshot in WAL
// mode); PostgreSQL needs REPEATABLE READ, as each statement of a READ
// COMMITTED transaction sees the latest commits.
var snapshot = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}

// callCols are the columns of calls in the order callArgs encodes them.
// room_name is written but not read back: room carries the name.
var callCols = []string{"id", "type", "state", "provider", "title", "created_by", "room",
	"created_at", "updated_at", "state_changed_at", "ended_at", "end_reason", "guests", "recordings", "empty_since", "version", "room_name"}

var (
	insertCall  = `INSERT INTO calls (` + strings.Join(callCols, ", ") + `) VALUES (` + marks(len(callCols)) + `) ON CONFLICT (id) DO NOTHING`
	selectCalls = `SELECT ` + strings.Join(callCols[:len(callCols)-1], ", ") + ` FROM calls`
)

// insertKeyedCall is insertCall with a create key: a conflict on the id or
// on the key (calls_create_key) inserts nothing.
var insertKeyedCall = `INSERT INTO calls (` + strings.Join(callCols, ", ") + `, create_key) VALUES (` + marks(len(callCols)+1) + `) ON CONFLICT DO NOTHING`

// errCreateFoundACall ends a batch's creates stored together
// (groupWriter.tryCreates) when one of them finds its call stored: the
// call may be another create's of the same batch, whose children are not
// written yet, so each create runs again on its own.
var errCreateFoundACall = errors.New("store: a create among others found its call stored")

// chunk bounds the placeholders in one statement; SQLite allows 32766 and
// PostgreSQL 65535, and long lists gain nothing.
const chunk = 500

// CreateCall stores c and its events unless a call with its id exists, and
// returns the stored call either way. The id is normalised and the stored
// call starts at Version 1; times are kept in UTC to the microsecond. Its
// surfaces are due at once, and so is its room job when it has no room.
// A mark, when given, is recorded first in the same transaction, and a
// stored call with the create key, when given, counts as the call (see
// calls.Store).
func (s *SQL) CreateCall(ctx context.Context, c calls.Call, events []calls.Event, opts calls.CreateOptions) (calls.Call, bool, error) {
	id, err := calls.NormalizeID(c.ID)
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call: %w", err)
	}
	if len(opts.Key) > calls.MaxIDLength {
		return calls.Call{}, false, fmt.Errorf("store: create call %s: %w: a create key is at most %d bytes", id, calls.ErrInvalidInput, calls.MaxIDLength)
	}
	mark := opts.Mark
	c = storedForm(c)
	c.ID = id
	c.Version = 1
	due := dueAt(c.UpdatedAt)
	for i := range c.Surfaces {
		// A message that already exists and becomes the card keeps its
		// reference (calls.ChatRequest.MessageRef); the rest is new.
		c.Surfaces[i].Delivery = calls.SurfaceDelivery{Wanted: c.Version, NextAttemptAt: due, MessageRef: c.Surfaces[i].Delivery.MessageRef}
	}
	evs, err := ownEvents(id, events)
	if err != nil {
		return calls.Call{}, false, err
	}
	args, err := callArgs(s.d, &c)
	if err != nil {
		return calls.Call{}, false, err
	}

	if opts.Key != "" {
		args = append(args, opts.Key)
	}

	var (
		stored  calls.Call
		created bool
	)
	// The write may run twice (once among a batch's other creates, then on
	// its own should that fail: see groupWriter.tryCreates), so it sets
	// everything it reports on every run.
	err = s.writeDeferrable(ctx, id, func(ctx context.Context, tx *txn) error {
		stored, created = calls.Call{}, false
		if err := s.checkAvailability(ctx, tx); err != nil {
			return err
		}
		if mark != nil {
			if err := s.insertMark(ctx, tx, *mark); err != nil {
				return err
			}
		}
		// Insert-if-absent in one statement: concurrent creators of one id
		// (or one key) wait on the unique index, and all but the first
		// insert nothing.
		query := insertCall
		if opts.Key != "" {
			query = insertKeyedCall
		}
		res, err := tx.ExecContext(ctx, s.d.q(query), args...)
		if err != nil {
			return fmt.Errorf("store: create call %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: create call %s: %w", id, err)
		}
		if n == 0 {
			if tx.deferred.collectingCreates() {
				// The call may be one of this batch's, its children not
				// written yet: this create runs again on its own.
				return errCreateFoundACall
			}
			// The winner has committed (the conflict waited for it), or
			// is earlier in this transaction, so this read sees its call.
			existing := id
			if opts.Key != "" {
				var keyed string
				err := tx.QueryRowContext(ctx, s.d.q(`SELECT id FROM calls WHERE create_key = ?`), opts.Key).Scan(&keyed)
				switch {
				case err == nil:
					existing = keyed
				case !errors.Is(err, sql.ErrNoRows):
					return fmt.Errorf("store: create call %s: find the call with its key: %w", id, err)
				}
			}
			stored, err = s.loadCall(ctx, tx, existing, false)
			return err
		}
		if err := s.writeNewChildren(ctx, tx, &c, due, evs); err != nil {
			return err
		}
		stored, created = c, true
		tx.current[id] = &stored
		tx.roomStored(&stored)
		return nil
	})
	if err != nil {
		return calls.Call{}, false, err
	}
	if created {
		setSeqs(events, evs)
	}
	return stored, created, nil
}

// writeNewChildren writes a new call's members, roster, surfaces, room job
// (when it needs a room, due at due) and events: each in a statement of
// its own, or, among a batch's creates (groupWriter.tryCreates), kept for
// a few statements for all of them (SQL.flush).
func (s *SQL) writeNewChildren(ctx context.Context, tx *txn, c *calls.Call, due time.Time, evs []calls.Event) error {
	if err := s.writeRoster(ctx, tx, c.ID, nil, rosterRows(c)); err != nil { // deferred by itself
		return err
	}
	if d := tx.deferred; d.collectingCreates() {
		d.members = append(d.members, s.memberRows(c.ID, 0, c.Members)...)
		d.surfaces = append(d.surfaces, s.surfaceRows(c.ID, 0, c.Surfaces)...)
		if c.NeedsRoom() {
			d.roomJobs = append(d.roomJobs, s.roomJobRow(c.ID, due))
		}
		d.eventsFor(evs)
		return nil
	}
	if err := s.writeMembers(ctx, tx, c.ID, c.Members, false); err != nil {
		return err
	}
	if err := s.insertSurfaces(ctx, tx, c.ID, 0, c.Surfaces); err != nil {
		return err
	}
	if c.NeedsRoom() {
		if err := s.insertRoomJob(ctx, tx, c.ID, due); err != nil {
			return err
		}
	}
	return s.insertEvents(ctx, tx, evs)
}

// GetCall returns the call with the id, normalised first, or an error
// wrapping calls.ErrNotFound.
func (s *SQL) GetCall(ctx context.Context, id string) (calls.Call, error) {
	nid, err := lookupID(id)
	if err != nil {
		return calls.Call{}, err
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: get call %s: begin: %w", nid, err)
	}
	defer tx.tx.Rollback() // read-only: nothing to commit
	// The outbox reads a busy call for every card edit: its roster comes
	// from the cache when the snapshot's version is the cached one. The
	// caller gets its own copy.
	c, shared, err := s.loadCached(ctx, tx, nid, "")
	if err != nil || !shared {
		return c, err
	}
	return c.Clone(), nil
}

// FindBySurface returns the newest call that is not over and is shown on
// the surface, or an error wrapping calls.ErrNotFound.
func (s *SQL) FindBySurface(ctx context.Context, key calls.SurfaceKey) (calls.Call, error) {
	return s.onSurface(ctx, key, true)
}

// LatestOnSurface returns the newest call shown on the surface in any
// state, or an error wrapping calls.ErrNotFound.
func (s *SQL) LatestOnSurface(ctx context.Context, key calls.SurfaceKey) (calls.Call, error) {
	return s.onSurface(ctx, key, false)
}

func (s *SQL) onSurface(ctx context.Context, key calls.SurfaceKey, liveOnly bool) (calls.Call, error) {
	live := ""
	if liveOnly {
		live = ` AND c.state NOT IN ('rejected', 'missed', 'ended', 'failed')`
	}
	// Every slash command asks this, usually of a conversation without a
	// call: a prepared lookup of the id, and the call read (with GetCall's
	// cache) only when there is one.
	var id string
	err := s.readRow(ctx, s.d.q(`SELECT c.id FROM call_surfaces s JOIN calls c ON c.id = s.call_id
		WHERE s.chat = ? AND s.workspace = ? AND s.channel = ?`+live+`
		ORDER BY c.created_at DESC, c.id DESC LIMIT 1`), key.Chat, key.Workspace, key.Channel).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return calls.Call{}, fmt.Errorf("store: no call on %s: %w", key, calls.ErrNotFound)
	}
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: find call by surface: %w", err)
	}
	c, err := s.GetCall(ctx, id)
	if err != nil {
		return calls.Call{}, err
	}
	if liveOnly && c.State.Terminal() {
		// It ended between the lookup and the read.
		return calls.Call{}, fmt.Errorf("store: no call on %s: %w", key, calls.ErrNotFound)
	}
	return c, nil
}

// FindByRoom returns the newest call at the provider whose room is named
// room, or an error wrapping calls.ErrNotFound.
func (s *SQL) FindByRoom(ctx context.Context, provider, room string) (calls.Call, error) {
	tx, err := s.r.BeginTx(ctx, snapshot)
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: find call by room: begin: %w", err)
	}
	defer tx.Rollback()
	// id breaks ties between calls created in the same microsecond, so the
	// answer does not depend on the query plan.
	row := tx.QueryRowContext(ctx, s.d.q(selectCalls+` WHERE provider = ? AND room_name = ? ORDER BY created_at DESC, id DESC LIMIT 1`), provider, room)
	c, err := scanCall(row)
	if errors.Is(err, sql.ErrNoRows) {
		return calls.Call{}, fmt.Errorf("store: no call in room %q at provider %q: %w", room, provider, calls.ErrNotFound)
	}
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: find call by room: %w", err)
	}
	if err := s.loadChildren(ctx, tx, []*calls.Call{&c}); err != nil {
		return calls.Call{}, err
	}
	return c, nil
}

// FindIDByRoom returns the id of the call FindByRoom returns, reading
// only the index (calls.RoomIndex).
func (s *SQL) FindIDByRoom(ctx context.Context, provider, room string) (string, error) {
	var gen uint64
	key := roomKey{provider, room}
	if s.rooms != nil {
		id, g, ok := s.rooms.get(key)
		if ok {
			return id, nil
		}
		gen = g
	}
	var id string
	err := s.readRow(ctx, s.d.q(`SELECT id FROM calls WHERE provider = ? AND room_name = ? ORDER BY created_at DESC, id DESC LIMIT 1`), provider, room).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: no call in room %q at provider %q: %w", room, provider, calls.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: find call by room: %w", err)
	}
	if s.rooms != nil {
		s.rooms.put(key, id, gen)
	}
	return id, nil
}

// UpdateCall runs change on a copy of the call while holding the call's
// row (PostgreSQL) or the database's write lock (SQLite), then stores the
// result with Version+1 and the events change returned, writing only what
// differs from the call as loaded. An error from change is returned as is,
// and nothing is written; when change returns no events only the mark is.
// change must not call the store to write: it would wait for the lock its
// own caller holds.
func (s *SQL) UpdateCall(ctx context.Context, id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) (calls.Call, error) {
	nid, err := lookupID(id)
	if err != nil {
		return calls.Call{}, err
	}
	var u update
	err = s.write(ctx, nid, func(ctx context.Context, tx *txn) error {
		return s.updateOne(ctx, tx, nid, mark, change, &u)
	})
	if err != nil {
		return calls.Call{}, err
	}
	if len(u.stored) > 0 {
		setSeqs(u.events, u.stored)
	}
	// The call is shared with the batch only until it commits: after that
	// it is the caller's.
	return u.result, nil
}

// update is what one UpdateCall did: the call it left, the events change
// returned, and those events as stored.
type update struct {
	result         calls.Call
	events, stored []calls.Event
}

// updateOne is UpdateCall's write, in tx.
func (s *SQL) updateOne(ctx context.Context, tx *txn, nid string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error), u *update) error {
	if err := s.checkAvailability(ctx, tx); err != nil {
		return err
	}
	// The mark goes first: a concurrent redelivery waits here on the mark's
	// key, and finds it taken once this transaction commits.
	if mark != nil {
		if err := s.insertMark(ctx, tx, *mark); err != nil {
			return err
		}
	}
	// cur may share the child cache's slices or an earlier change's result
	// in this batch: it is only read, and a Clone goes to change.
	cur, err := s.loadForUpdate(ctx, tx, nid)
	if err != nil {
		return err
	}
	next := cur.Clone()
	if u.events, err = change(&next); err != nil {
		return err
	}
	if len(u.events) == 0 && !marksMoved(&cur, &next) {
		tx.current[nid] = &cur
		u.result = cur.Clone()
		return nil
	}
	if next.ID != cur.ID {
		return fmt.Errorf("store: update call %s: %w: change altered the call id to %q", nid, calls.ErrInvalidInput, next.ID)
	}
	next = ownStoredForm(next)
	next.Version = cur.Version + 1
	if u.stored, err = ownEvents(nid, u.events); err != nil {
		return err
	}
	if err := s.writeCall(ctx, tx, &cur, &next, u.stored); err != nil {
		return err
	}
	tx.current[nid] = &next
	u.result = next
	return nil
}

// writeCall stores next over cur (the call as loaded, at its version) with
// the events.
func (s *SQL) writeCall(ctx context.Context, tx *txn, cur, next *calls.Call, evs []calls.Event) error {
	if err := s.writeCallRow(ctx, tx, cur, next); err != nil {
		return err
	}
	if err := s.writeChanges(ctx, tx, cur, next); err != nil {
		return err
	}
	return s.insertEvents(ctx, tx, evs)
}

// ApplyCall is UpdateCall without the call returned (calls.CallApplier).
// On SQLite, the changes to one call that queue together behind the writer
// are applied to one copy of it: one read, one roster copy and diff, one
// write of the call row and of each touched roster row, for all of them.
// Each keeps its own mark and events, and the version grows by one per
// change that returned events, as if they had been stored one by one.
func (s *SQL) ApplyCall(ctx context.Context, id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) error {
	nid, err := lookupID(id)
	if err != nil {
		return err
	}
	run := func(ctx context.Context, tx *txn) error {
		return s.updateOne(ctx, tx, nid, mark, change, &update{})
	}
	return s.writer(nid).submit(&writeOp{ctx: ctx, run: run, done: make(chan struct{}),
		apply: &applyOp{id: nid, mark: mark, change: change}})
}

var _ calls.CallApplier = (*SQL)(nil)

// marksMoved reports whether a change that returned no events still
// advanced a roster mark: a "joined" with a newer sequence number for
// someone already in the call changes nobody's presence, but a "left"
// older than it, arriving next, must then be ignored. Such a change is
// stored (a new version, no event) so the mark outlives the request. Only
// changes without events pay for the comparison.
func marksMoved(cur, next *calls.Call) bool {
	if len(cur.Seqs) != len(next.Seqs) {
		return true
	}
	for id, m := range next.Seqs {
		if old, ok := cur.Seqs[id]; !ok || old != m {
			return true
		}
	}
	return false
}

// applyOp is one ApplyCall waiting in the group writer.
type applyOp struct {
	id     string
	mark   *calls.DeliveryMark
	change func(*calls.Call) ([]calls.Event, error)
}

// applyTogether is the group writer's coalesce: it applies each group of
// ApplyCalls (each group's to one call) with applyGroup, and writes what
// they changed at the end, each kind of row in as few statements as it
// fits (see deferredWrites).
func (s *SQL) applyTogether(ctx context.Context, tx *txn, groups [][]*writeOp) bool {
	// Marks go first, as in UpdateCall, all in as few statements as they
	// fit: a change whose mark is not among those recorded now is a
	// redelivery and is skipped.
	fresh, err := s.insertMarks(ctx, tx, groups)
	if err != nil {
		return false
	}
	if err := s.lockCalls(ctx, tx, groups); err != nil {
		return false
	}
	// Rows are collected when there are several calls to share the
	// statements: one call's rows are written as its change makes them.
	d := &deferredWrites{rows: len(groups) > 1}
	tx.deferred = d
	defer func() { tx.deferred = nil }()
	for _, ops := range groups {
		if !s.applyGroup(ctx, tx, ops, fresh) {
			return false
		}
	}
	tx.deferred = nil
	return s.flush(ctx, tx, d) == nil
}

// lockCalls reads and locks, for a batch's applies to several calls, the
// calls the transaction does not hold yet, in a few statements for all of
// them: their rows (locked, in id order, so that batches of two replicas
// that share calls take their locks in the same order), then the
// surfaces of those whose members and roster the child cache holds at
// the row's version, and the children of the others (loadChildren). Each
// call was two round trips or more on PostgreSQL (loadCached). A call
// missing from the table is left to loadForUpdate, which says so.
// SQLite's writer holds whole calls already (exclusive), and reads cost
// it no round trip: it is left out.
//
// The calls go into tx.current as read. Should the batch's applies fail,
// what they read goes with what they wrote: the savepoint around them
// (tryTogether) takes the calls out of tx.current again, or the whole
// transaction is dropped (groupWriter.run); either way a row lock taken
// since is released.
func (s *SQL) lockCalls(ctx context.Context, tx *txn, groups [][]*writeOp) error {
	if tx.exclusive || s.d.forUpdate == "" || len(groups) < 2 || len(groups) > chunk {
		return nil
	}
	var ids []any
	for _, ops := range groups {
		id := ops[0].apply.id
		if _, held := tx.current[id]; held {
			continue
		}
		if _, stale := tx.surfaced[id]; stale {
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) < 2 {
		return nil
	}
	slices.SortFunc(ids, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	cached := map[string]*calls.Call{}
	var cachedIDs []any
	var uncached []*calls.Call
	err := s.eachRow(ctx, tx, selectCalls+` WHERE id IN (`+marks(len(ids))+`) ORDER BY id`+s.d.forUpdate, ids, func(r *sql.Rows) error {
		c, err := scanCall(r)
		if err != nil {
			return err
		}
		if e, ok := s.children.get(c.ID, c.Version); ok {
			c.Members, c.Participants, c.Seqs = e.members, e.participants, e.seqs
			cached[c.ID] = &c
			cachedIDs = append(cachedIDs, c.ID)
		} else {
			uncached = append(uncached, &c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: lock %d calls: %w", len(ids), err)
	}
	if len(cachedIDs) > 0 {
		if err := s.loadSurfaces(ctx, tx, cached, cachedIDs); err != nil {
			return err
		}
	}
	if err := s.loadChildren(ctx, tx, uncached); err != nil {
		return err
	}
	for _, c := range cached {
		tx.current[c.ID] = c
	}
	for _, c := range uncached {
		tx.current[c.ID] = c
	}
	return nil
}

// markKey names a delivery mark.
type markKey struct{ source, id string }

// markRows bounds the marks one INSERT records; each statement shape (one
// per row count up to this) is prepared once.
const markRows = 16

// insertMarksQueries holds, for n = 1..markRows, the INSERT of n marks
// that returns the ones it recorded (a mark recorded before, or twice in
// the statement, is recorded once).
var insertMarksQueries = multiRowQueries(`INSERT INTO deliveries (source, delivery_id, seen_at) VALUES `, `(?, ?, ?)`,
	` ON CONFLICT (source, delivery_id) DO NOTHING RETURNING source, delivery_id`, markRows)

// multiRowQueries returns, at index n for n = 1..most, head, then n
// copies of row separated by commas, then tail.
func multiRowQueries(head, row, tail string, most int) []string {
	qs := make([]string, most+1)
	for n := 1; n <= most; n++ {
		qs[n] = head + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + tail
	}
	return qs
}

// insertMarks records the marks of the ops in groups and returns those it
// recorded now: a mark missing from the result was recorded before, by an
// earlier delivery.
func (s *SQL) insertMarks(ctx context.Context, tx *txn, groups [][]*writeOp) (map[markKey]bool, error) {
	var marks []*calls.DeliveryMark
	for _, ops := range groups {
		for _, op := range ops {
			if op.apply.mark != nil {
				marks = append(marks, op.apply.mark)
			}
		}
	}
	fresh := make(map[markKey]bool, len(marks))
	args := make([]any, 0, 3*min(len(marks), markRows))
	for part := range slices.Chunk(marks, markRows) {
		args = args[:0]
		for _, m := range part {
			args = append(args, m.Source, m.ID, s.d.timeArg(m.At))
		}
		err := s.eachRow(ctx, tx, insertMarksQueries[len(part)], args, func(r *sql.Rows) error {
			var k markKey
			if err := r.Scan(&k.source, &k.id); err != nil {
				return err
			}
			fresh[k] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store: mark %d deliveries: %w", len(part), err)
		}
	}
	return fresh, nil
}

// applyGroup applies the ApplyCalls of one call in order to one copy of
// it. A change whose mark is not in fresh (insertMarks) is a redelivery:
// it fails with ErrDuplicateDelivery alone, and nothing of it is written.
// A mark in fresh is taken by the first change that carries it. Any other
// failure, a change's error included, returns false: the copy may hold
// part of that change, so the writer rolls back and runs the changes one
// by one, each on a copy of its own.
func (s *SQL) applyGroup(ctx context.Context, tx *txn, ops []*writeOp, fresh map[markKey]bool) bool {
	id := ops[0].apply.id
	cur, err := s.loadForUpdate(ctx, tx, id)
	if err != nil {
		return false
	}
	next := cur.Clone()
	var evs []calls.Event
	changed := int64(0)
	for _, op := range ops {
		a := op.apply
		if a.mark != nil {
			k := markKey{a.mark.Source, a.mark.ID}
			if !fresh[k] {
				op.err = fmt.Errorf("store: delivery %s from %s: %w", a.mark.ID, a.mark.Source, calls.ErrDuplicateDelivery)
				continue
			}
			delete(fresh, k)
		}
		events, err := a.change(&next)
		if err != nil || next.ID != cur.ID {
			return false
		}
		own, err := ownEvents(id, events)
		if err != nil {
			return false
		}
		if len(own) > 0 {
			changed++
			evs = append(evs, own...)
		}
		op.err = nil
	}
	if changed == 0 {
		if !marksMoved(&cur, &next) {
			tx.current[id] = &cur
			return true
		}
		changed = 1
	}
	next = ownStoredForm(next)
	next.Version = cur.Version + changed
	if err := s.writeCall(ctx, tx, &cur, &next, evs); err != nil {
		return false
	}
	// next is this batch's own copy: the changes (ApplyCall's) keep
	// nothing of it, and no caller gets it.
	tx.own(id, &next)
	return true
}

// indexedCallCols are the columns of calls that indexes hold (see the
// migrations), in a fixed order: bit i of an indexedChanges mask is
// indexedCallCols[i].
var indexedCallCols = [...]string{"state", "provider", "room_name", "created_at", "created_by", "state_changed_at", "empty_since"}

// indexedChanges reports which indexed columns differ between cur and next.
func indexedChanges(cur, next *calls.Call) uint8 {
	var m uint8
	for i, changed := range [len(indexedCallCols)]bool{
		cur.State != next.State,
		cur.Provider != next.Provider,
		cur.Room.Name != next.Room.Name,
		!cur.CreatedAt.Equal(next.CreatedAt),
		cur.CreatedBy != next.CreatedBy,
		!cur.StateChangedAt.Equal(next.StateChangedAt),
		!sameTime(cur.EmptySince, next.EmptySince),
	} {
		if changed {
			m |= 1 << i
		}
	}
	return m
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// callColBits is, for each of callCols, its bit in an indexedChanges mask,
// or -1 for a column no index holds.
var callColBits = func() []int {
	bits := make([]int, len(callCols))
	for i, col := range callCols {
		bits[i] = slices.Index(indexedCallCols[:], col)
	}
	return bits
}()

// updateCallQueries holds, for each mask of changed indexed columns, the
// UPDATE that sets every column but id except the indexed columns that
// did not change. SQLite rewrites the entry of every index with a column
// in the SET list, changed or not: setting all columns made each write
// of a call row touch its seven index pages (seven WAL frames where one
// would do). Arguments: callRowArgs, then the id and the version replaced.
var updateCallQueries = func() (qs [1 << len(indexedCallCols)]string) {
	for mask := range qs {
		cols := callRowColumns(uint8(mask))
		qs[mask] = `UPDATE calls SET ` + strings.Join(cols, " = ?, ") + ` = ? WHERE id = ? AND version = ?`
	}
	return qs
}()

// callRowColumns are the columns an update of a call row sets, in
// callCols order: all but the id, less the indexed columns that mask
// leaves unchanged.
func callRowColumns(mask uint8) []string {
	var cols []string
	for i, bit := range callColBits[1:] {
		if bit >= 0 && mask&(1<<bit) == 0 {
			continue
		}
		cols = append(cols, callCols[i+1])
	}
	return cols
}

// callRowArgs is args (callArgs, in callCols order) without the id and the
// indexed columns that mask leaves unchanged, as updateCallQueries[mask]
// takes them.
func callRowArgs(args []any, mask uint8) []any {
	out := make([]any, 0, len(args)+1)
	for i, bit := range callColBits[1:] {
		if bit >= 0 && mask&(1<<bit) == 0 {
			continue
		}
		out = append(out, args[i+1])
	}
	return out
}

// roomOrderBits are the columns that decide which call is a room's newest
// (FindIDByRoom): only a write that changes one of them can move it.
var roomOrderBits = uint8(1<<slices.Index(indexedCallCols[:], "provider") | 1<<slices.Index(indexedCallCols[:], "room_name") | 1<<slices.Index(indexedCallCols[:], "created_at"))

// writeCallRow stores next's calls row over cur's, which is at cur.Version.
func (s *SQL) writeCallRow(ctx context.Context, tx *txn, cur, next *calls.Call) error {
	args, err := callArgs(s.d, next)
	if err != nil {
		return err
	}
	mask := indexedChanges(cur, next)
	if mask&roomOrderBits != 0 {
		tx.roomStored(next)
	}
	if tx.deferred.deferCallRow(mask, append([]any{next.ID, cur.Version}, callRowArgs(args, mask)...)) {
		return nil
	}
	// The version check cannot fail while the row is locked; it is there so
	// that a mistake in locking shows up as an error, not a lost update.
	res, err := tx.ExecContext(ctx, s.d.q(updateCallQueries[mask]), append(callRowArgs(args, mask), next.ID, cur.Version)...)
	if err != nil {
		return fmt.Errorf("store: update call %s: %w", next.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: update call %s: %w", next.ID, err)
	} else if n != 1 {
		return fmt.Errorf("store: update call %s: version %d changed underneath the update", next.ID, cur.Version)
	}
	return nil
}

// writeChanges writes the children that differ between cur (as loaded)
// and next (as changed, at its new version), and sets next's surfaces to
// what is stored for them.
func (s *SQL) writeChanges(ctx context.Context, tx *txn, cur, next *calls.Call) error {
	if !slices.Equal(cur.Members, next.Members) {
		if err := s.writeMembers(ctx, tx, next.ID, next.Members, true); err != nil {
			return err
		}
	}
	gone, upserts := rosterChanges(cur, next)
	if err := s.writeRosterRows(ctx, tx, next.ID, gone, upserts); err != nil {
		return err
	}
	if err := s.writeSurfaces(ctx, tx, cur, next); err != nil {
		return err
	}
	return s.syncRoomJob(ctx, tx, cur, next)
}

// writeSurfaces inserts the surfaces next has and cur lacks, and makes
// every surface of the call want next's version. A change never removes a
// surface, so next's surfaces become cur's followed by the new ones.
func (s *SQL) writeSurfaces(ctx context.Context, tx *txn, cur, next *calls.Call) error {
	due := dueAt(next.UpdatedAt)
	var added []calls.Surface
	for _, sf := range next.Surfaces {
		if !cur.HasSurface(sf.Key()) {
			sf.Delivery = calls.SurfaceDelivery{Wanted: next.Version, NextAttemptAt: due, MessageRef: sf.Delivery.MessageRef}
			added = append(added, sf)
		}
	}
	if len(added) > 0 {
		var pos int
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COALESCE(MAX(pos) + 1, 0) FROM call_surfaces WHERE call_id = ?`), next.ID).Scan(&pos); err != nil {
			return fmt.Errorf("store: write call %s surfaces: %w", next.ID, err)
		}
		if err := s.insertSurfaces(ctx, tx, next.ID, pos, added); err != nil {
			return err
		}
	}
	if len(cur.Surfaces) > 0 && !tx.deferred.deferBump(next.ID, next.Version) {
		if _, err := tx.ExecContext(ctx, s.d.q(bumpSurfaces), next.Version, next.ID, next.Version); err != nil {
			return fmt.Errorf("store: write call %s surfaces: %w", next.ID, err)
		}
	}
	sfs := make([]calls.Surface, 0, len(cur.Surfaces)+len(added))
	for _, sf := range cur.Surfaces {
		sf.Delivery.Wanted = max(sf.Delivery.Wanted, next.Version)
		sfs = append(sfs, sf)
	}
	next.Surfaces = append(sfs, added...)
	if len(next.Surfaces) == 0 {
		next.Surfaces = nil
	}
	return nil
}

// listQuery is ListCalls' statement for q, with its arguments.
func listQuery(d dialect, q calls.ListQuery) (string, []any) {
	// The column comes from this fixed set, never from input.
	col := "state_changed_at"
	switch q.By {
	case calls.ByUpdate:
		col = "updated_at"
	case calls.ByEmptySince:
		col = "empty_since"
	}
	var (
		where []string
		args  []any
	)
	where = append(where, `state IN (`+marks(len(q.States))+`)`)
	for _, st := range q.States {
		args = append(args, string(st))
	}
	if col == "empty_since" {
		where = append(where, `empty_since IS NOT NULL`)
	}
	if !q.Before.IsZero() {
		where = append(where, col+` < ?`)
		args = append(args, d.timeArg(q.Before))
	}
	query := selectCalls + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + col + `, id`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return query, args
}

// ListCalls returns calls in one of states (none when states is empty)
// whose StateChangedAt is before `before` (any time when zero), oldest
// first and then by id, at most limit of them (all when limit <= 0).
func (s *SQL) ListCalls(ctx context.Context, q calls.ListQuery) ([]calls.Call, error) {
	if len(q.States) == 0 {
		return nil, nil
	}
	query, args := listQuery(s.d, q)

	tx, err := s.r.BeginTx(ctx, snapshot)
	if err != nil {
		return nil, fmt.Errorf("store: list calls: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	var out []calls.Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list calls: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	rows.Close()
	ptrs := make([]*calls.Call, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := s.loadChildren(ctx, tx, ptrs); err != nil {
		return nil, err
	}
	return out, nil
}

// Events returns the call's events with Seq > after, in order. A call
// without events, or without a record at all, has none.
func (s *SQL) Events(ctx context.Context, callID string, after int64) ([]calls.Event, error) {
	nid, err := lookupID(callID)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT seq, call_id, kind, state, actor, identity, reason, at FROM call_events WHERE call_id = ? AND seq > ? ORDER BY seq`), nid, after)
	if err != nil {
		return nil, fmt.Errorf("store: events of call %s: %w", nid, err)
	}
	defer rows.Close()
	var out []calls.Event
	for rows.Next() {
		var e calls.Event
		var kind, state string
		if err := rows.Scan(&e.Seq, &e.CallID, &kind, &state, &e.Actor, &e.Identity, &e.Reason, timeCol{&e.At}); err != nil {
			return nil, fmt.Errorf("store: events of call %s: %w", nid, err)
		}
		e.Kind, e.State = calls.EventKind(kind), calls.State(state)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: events of call %s: %w", nid, err)
	}
	return out, nil
}

// CountByState counts calls per state; states without calls are absent.
func (s *SQL) CountByState(ctx context.Context) (map[calls.State]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM calls GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: count calls by state: %w", err)
	}
	defer rows.Close()
	out := map[calls.State]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: count calls by state: %w", err)
		}
		out[calls.State(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count calls by state: %w", err)
	}
	return out, nil
}

// loadCall reads one call with its children, locking its row until the
// transaction ends when lock is set.
func (s *SQL) loadCall(ctx context.Context, q querier, id string, lock bool) (calls.Call, error) {
	query := selectCalls + ` WHERE id = ?`
	if lock {
		query += s.d.forUpdate
	}
	c, err := scanCall(q.QueryRowContext(ctx, s.d.q(query), id))
	if errors.Is(err, sql.ErrNoRows) {
		return calls.Call{}, fmt.Errorf("store: call %s: %w", id, calls.ErrNotFound)
	}
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: read call %s: %w", id, err)
	}
	if err := s.loadChildren(ctx, q, []*calls.Call{&c}); err != nil {
		return calls.Call{}, err
	}
	return c, nil
}

// insertEvents appends events to the log, the database assigning
// increasing sequence numbers in the order given, and records each
// assigned number in evs. In a batch's applies (tx.deferred) they are
// kept for one append at the end.
func (s *SQL) insertEvents(ctx context.Context, tx *txn, evs []calls.Event) error {
	if tx.deferred != nil {
		tx.deferred.events = append(tx.deferred.events, evs...)
		return nil
	}
	if s.d.name == EngineSQLite {
		return s.appendEventsSQLite(ctx, tx, evs)
	}
	return s.appendEventsPostgres(ctx, tx, evs)
}

// insertEventsPostgres holds the INSERT of n events, n = 1..eventRows,
// returning the numbers the log gave them.
var insertEventsPostgres = multiRowQueries(`INSERT INTO call_events (call_id, kind, state, actor, identity, reason, at) VALUES `,
	`(?, ?, ?, ?, ?, ?, ?)`, ` RETURNING seq`, eventRows)

// appendEventsPostgres is insertEvents on PostgreSQL: up to eventRows
// events per statement, a round trip each. The identity column draws its
// numbers row by row in the order of the VALUES list, so sorted, the
// numbers returned belong to the events in the order given (RETURNING
// itself promises no order). Another writer's rows may take numbers in
// between: they increase, they need not be consecutive.
func (s *SQL) appendEventsPostgres(ctx context.Context, tx *txn, evs []calls.Event) error {
	args := make([]any, 0, 7*min(len(evs), eventRows))
	seqs := make([]int64, 0, min(len(evs), eventRows))
	for part := range slices.Chunk(evs, eventRows) {
		args, seqs = s.eventArgs(args[:0], part), seqs[:0]
		err := s.eachRow(ctx, tx, insertEventsPostgres[len(part)], args, func(r *sql.Rows) error {
			var seq int64
			if err := r.Scan(&seq); err != nil {
				return err
			}
			seqs = append(seqs, seq)
			return nil
		})
		if err == nil && len(seqs) != len(part) {
			err = fmt.Errorf("%d numbers returned", len(seqs))
		}
		if err != nil {
			return fmt.Errorf("store: append %d events of call %s: %w", len(part), part[0].CallID, err)
		}
		slices.Sort(seqs)
		for i := range part {
			part[i].Seq = seqs[i]
		}
	}
	return nil
}

// eventRows bounds the events one INSERT appends: a busy call's changes
// applied together bring dozens, and each statement shape (one per row
// count up to this) is prepared once.
const eventRows = 16

// eventArgs appends the values of evs, in the column order of the
// event INSERTs, to args.
func (s *SQL) eventArgs(args []any, evs []calls.Event) []any {
	for _, e := range evs {
		args = append(args, e.CallID, string(e.Kind), string(e.State), e.Actor, e.Identity, e.Reason, s.d.timeArg(e.At))
	}
	return args
}

// insertEventsSQLite holds the INSERT for n events, n = 1..eventRows.
var insertEventsSQLite = multiRowQueries(`INSERT INTO call_events (call_id, kind, state, actor, identity, reason, at) VALUES `,
	`(?, ?, ?, ?, ?, ?, ?)`, ``, eventRows)

// appendEventsSQLite is insertEvents on SQLite: up to eventRows events per
// statement. The log's seq is an AUTOINCREMENT rowid and the writer holds
// the database's write lock, so one statement's rows get consecutive
// numbers in the order given, the last of them the connection's last
// insert rowid: no RETURNING rows to read back.
func (s *SQL) appendEventsSQLite(ctx context.Context, tx *txn, evs []calls.Event) error {
	args := make([]any, 0, 7*min(len(evs), eventRows))
	for part := range slices.Chunk(evs, eventRows) {
		args = s.eventArgs(args[:0], part)
		res, err := tx.ExecContext(ctx, insertEventsSQLite[len(part)], args...)
		if err != nil {
			return fmt.Errorf("store: append %d events of call %s: %w", len(part), part[0].CallID, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("store: append %d events of call %s: %w", len(part), part[0].CallID, err)
		}
		for i := range part {
			part[i].Seq = last - int64(len(part)-1-i)
		}
	}
	return nil
}

// setSeqs copies the sequence numbers the log assigned back to the caller's
// events, once the transaction has committed.
func setSeqs(dst, stored []calls.Event) {
	for i := range dst {
		dst[i].Seq = stored[i].Seq
	}
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// scanCall reads the columns of selectCalls.
func scanCall(r rowScanner) (calls.Call, error) {
	var (
		c          calls.Call
		typ, state string
		room, recs []byte
	)
	err := r.Scan(&c.ID, &typ, &state, &c.Provider, &c.Title, &c.CreatedBy, &room,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, timeCol{&c.StateChangedAt}, nullTimeCol{&c.EndedAt},
		&c.EndReason, &c.Guests, &recs, nullTimeCol{&c.EmptySince}, &c.Version)
	if err != nil {
		return calls.Call{}, err
	}
	c.Type, c.State = calls.Type(typ), calls.State(state)
	if err := json.Unmarshal(room, &c.Room); err != nil {
		return calls.Call{}, fmt.Errorf("call %s: decode room: %w", c.ID, err)
	}
	if len(c.Room.Data) == 0 {
		c.Room.Data = nil
	}
	if err := json.Unmarshal(recs, &c.Recordings); err != nil {
		return calls.Call{}, fmt.Errorf("call %s: decode recordings: %w", c.ID, err)
	}
	if len(c.Recordings) == 0 {
		c.Recordings = nil
	}
	return c, nil
}

// callArgs encodes c in callCols order.
func callArgs(d dialect, c *calls.Call) ([]any, error) {
	room, err := json.Marshal(c.Room)
	if err != nil {
		return nil, fmt.Errorf("store: call %s: encode room: %w", c.ID, err)
	}
	recs := []byte("[]")
	if len(c.Recordings) > 0 {
		if recs, err = json.Marshal(c.Recordings); err != nil {
			return nil, fmt.Errorf("store: call %s: encode recordings: %w", c.ID, err)
		}
	}
	// JSON goes in as text: a TEXT column in SQLite, and PostgreSQL parses
	// text into JSONB.
	return []any{c.ID, string(c.Type), string(c.State), c.Provider, c.Title, c.CreatedBy, string(room),
		d.timeArg(c.CreatedAt), d.timeArg(c.UpdatedAt), d.timeArg(c.StateChangedAt), d.nullTimeArg(c.EndedAt),
		c.EndReason, c.Guests, string(recs), d.nullTimeArg(c.EmptySince), c.Version, c.Room.Name}, nil
}

// ownEvents copies events for storing with the call id: an event without a
// call id belongs to the call it is stored with, one naming another call is
// a mistake.
func ownEvents(id string, events []calls.Event) ([]calls.Event, error) {
	out := make([]calls.Event, len(events))
	for i, e := range events {
		if e.CallID == "" {
			e.CallID = id
		} else if nid, err := calls.NormalizeID(e.CallID); err != nil || nid != id {
			return nil, fmt.Errorf("store: call %s: %w: event %d names call %q", id, calls.ErrInvalidInput, i, e.CallID)
		}
		e.CallID = id
		e.Seq = 0
		e.At = utcMicro(e.At)
		out[i] = e
	}
	return out, nil
}

// lookupID normalises an id to look a call up by. No call can have an id
// that does not normalise, so such an id is simply not found.
func lookupID(id string) (string, error) {
	nid, err := calls.NormalizeID(id)
	if err != nil {
		return "", fmt.Errorf("store: call %q: %w (%w)", id, calls.ErrNotFound, err)
	}
	return nid, nil
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// storedForm is c as the store keeps and returns it: canonical, the roster
// in (JoinedAt, Identity) order as it is read back, marks with Seq 0 (which
// carry nothing) dropped, and surfaces once per key without delivery state,
// which the store owns (but for an adopted message reference).
func storedForm(c calls.Call) calls.Call {
	return ownStoredForm(c.Clone())
}

// ownStoredForm is storedForm of a call the caller owns (a Clone): it is
// changed in place rather than copied again, as copying a busy call's
// roster and marks is most of what a change to it costs.
func ownStoredForm(c calls.Call) calls.Call {
	c.Canonicalize()
	// The roster is nearly always in order already (MarkPresence keeps
	// it so); checking is cheaper than sorting.
	if !slices.IsSortedFunc(c.Participants, compareParticipant) {
		slices.SortStableFunc(c.Participants, compareParticipant)
	}
	for id, m := range c.Seqs {
		if m.Seq == 0 {
			delete(c.Seqs, id)
		}
	}
	if len(c.Seqs) == 0 {
		c.Seqs = nil
	}
	var sfs []calls.Surface
	seen := map[calls.SurfaceKey]bool{}
	for _, sf := range c.Surfaces {
		if seen[sf.Key()] {
			continue
		}
		seen[sf.Key()] = true
		// The store owns delivery state; only a message that already
		// exists and becomes the card (ChatRequest.MessageRef) comes in.
		sf.Delivery = calls.SurfaceDelivery{MessageRef: sf.Delivery.MessageRef}
		sfs = append(sfs, sf)
	}
	c.Surfaces = sfs
	return c
}

// dueAt is when work caused by a change at t is first due: at t, or now if
// t is in the future, so "due at once" holds whatever clock the caller used.
func dueAt(t time.Time) time.Time {
	if now := time.Now(); t.After(now) {
		t = now
	}
	return utcMicro(t)
}

// syncRoomJob keeps a room job exactly while the call needs a room: the
// transaction that stores the room or ends the call removes it.
func (s *SQL) syncRoomJob(ctx context.Context, tx *txn, cur, next *calls.Call) error {
	switch had, wants := cur.NeedsRoom(), next.NeedsRoom(); {
	case had && !wants:
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM room_jobs WHERE call_id = ?`), next.ID); err != nil {
			return fmt.Errorf("store: update call %s: remove room job: %w", next.ID, err)
		}
	case wants && !had:
		// A change that drops the room (not something the domain does
		// today) must not leave the call without a job.
		return s.insertRoomJob(ctx, tx, next.ID, dueAt(next.UpdatedAt))
	}
	return nil
}

// roomJobsInto is the table and columns of a room job, as roomJobRow
// gives them.
const roomJobsInto = `room_jobs (call_id, attempts, created_at, next_attempt_at, last_error, lease_owner)`

// roomJobRow is the row of a new room job due at due.
func (s *SQL) roomJobRow(id string, due time.Time) []any {
	return []any{id, 0, s.d.timeArg(due), s.d.timeArg(due), "", ""}
}

// insertRoomJob stores a room job due at due, unless the call has one.
func (s *SQL) insertRoomJob(ctx context.Context, tx *txn, id string, due time.Time) error {
	err := s.insertRows(ctx, tx, roomJobsInto, [][]any{s.roomJobRow(id, due)}, ` ON CONFLICT (call_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("store: call %s: store room job: %w", id, err)
	}
	return nil
}

// insertMark records a delivery mark, failing with ErrDuplicateDelivery
// when it is recorded already. The primary key decides between concurrent
// marks of one delivery: the second waits for the first to commit.
func (s *SQL) insertMark(ctx context.Context, tx *txn, m calls.DeliveryMark) error {
	res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO deliveries (source, delivery_id, seen_at) VALUES (?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING`),
		m.Source, m.ID, s.d.timeArg(m.At))
	if err != nil {
		return fmt.Errorf("store: mark delivery %s from %s: %w", m.ID, m.Source, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: mark delivery %s from %s: %w", m.ID, m.Source, err)
	}
	if n == 0 {
		return fmt.Errorf("store: delivery %s from %s: %w", m.ID, m.Source, calls.ErrDuplicateDelivery)
	}
	return nil
}

// MarkOnce records a mark in a transaction of its own and reports whether
// it was new.
func (s *SQL) MarkOnce(ctx context.Context, m calls.DeliveryMark) (bool, error) {
	err := s.write(ctx, m.Source+"/"+m.ID, func(ctx context.Context, tx *txn) error {
		return s.insertMark(ctx, tx, m)
	})
	if errors.Is(err, calls.ErrDuplicateDelivery) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
