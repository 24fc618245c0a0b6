package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
	"created_at", "updated_at", "state_changed_at", "ended_at", "end_reason", "seqs", "version", "room_name"}

var (
	insertCall = `INSERT INTO calls (` + strings.Join(callCols, ", ") + `) VALUES (` + marks(len(callCols)) + `) ON CONFLICT (id) DO NOTHING`
	// updateCall sets every column but id; its arguments are callArgs
	// without the id, then the id and the version the update replaces.
	updateCall  = `UPDATE calls SET ` + strings.Join(callCols[1:], " = ?, ") + ` = ? WHERE id = ? AND version = ?`
	selectCalls = `SELECT ` + strings.Join(callCols[:len(callCols)-1], ", ") + ` FROM calls`
)

// chunk bounds the placeholders in one statement; SQLite allows 32766 and
// PostgreSQL 65535, and long lists gain nothing.
const chunk = 500

// CreateCall stores c and its events unless a call with its id exists, and
// returns the stored call either way. The id is normalised and the stored
// call starts at Version 1; times are kept in UTC to the microsecond.
func (s *SQL) CreateCall(ctx context.Context, c calls.Call, events []calls.Event) (calls.Call, bool, error) {
	id, err := calls.NormalizeID(c.ID)
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call: %w", err)
	}
	c = c.Canonical()
	c.ID = id
	c.Version = 1
	evs, err := ownEvents(id, events)
	if err != nil {
		return calls.Call{}, false, err
	}
	args, err := callArgs(s.d, &c)
	if err != nil {
		return calls.Call{}, false, err
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call %s: begin: %w", id, err)
	}
	defer tx.Rollback()

	// Insert-if-absent in one statement: concurrent creators of one id wait
	// on the primary key, and all but the first insert nothing.
	res, err := tx.ExecContext(ctx, s.d.q(insertCall), args...)
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call %s: %w", id, err)
	}
	if n == 0 {
		// The winner has committed (the conflict waited for it), so this
		// read sees its call; the deferred rollback writes nothing.
		stored, err := s.loadCall(ctx, tx, id, false)
		if err != nil {
			return calls.Call{}, false, err
		}
		return stored, false, nil
	}
	if err := s.writeChildren(ctx, tx, &c, false); err != nil {
		return calls.Call{}, false, err
	}
	if err := s.insertEvents(ctx, tx, evs); err != nil {
		return calls.Call{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return calls.Call{}, false, fmt.Errorf("store: create call %s: commit: %w", id, err)
	}
	setSeqs(events, evs)
	return c, true, nil
}

// GetCall returns the call with the id, normalised first, or an error
// wrapping calls.ErrNotFound.
func (s *SQL) GetCall(ctx context.Context, id string) (calls.Call, error) {
	nid, err := lookupID(id)
	if err != nil {
		return calls.Call{}, err
	}
	tx, err := s.r.BeginTx(ctx, snapshot)
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: get call %s: begin: %w", nid, err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	return s.loadCall(ctx, tx, nid, false)
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

// UpdateCall runs change on a copy of the call while holding the call's
// row (PostgreSQL) or the database's write lock (SQLite), then stores the
// result with Version+1 and the events change returned. An error from
// change is returned as is, and nothing is written; so is nothing when
// change returns no events. change must not call the store to write: it
// would wait for the lock its own caller holds.
func (s *SQL) UpdateCall(ctx context.Context, id string, change func(*calls.Call) ([]calls.Event, error)) (calls.Call, error) {
	nid, err := lookupID(id)
	if err != nil {
		return calls.Call{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: update call %s: begin: %w", nid, err)
	}
	defer tx.Rollback()

	cur, err := s.loadCall(ctx, tx, nid, true)
	if err != nil {
		return calls.Call{}, err
	}
	next := cur.Clone()
	events, err := change(&next)
	if err != nil {
		return calls.Call{}, err
	}
	if len(events) == 0 {
		return cur, nil
	}
	if next.ID != cur.ID {
		return calls.Call{}, fmt.Errorf("store: update call %s: %w: change altered the call id to %q", nid, calls.ErrInvalidInput, next.ID)
	}
	next = next.Canonical()
	next.Version = cur.Version + 1
	evs, err := ownEvents(nid, events)
	if err != nil {
		return calls.Call{}, err
	}
	args, err := callArgs(s.d, &next)
	if err != nil {
		return calls.Call{}, err
	}
	// The version check cannot fail while the row is locked; it is there so
	// that a mistake in locking shows up as an error, not a lost update.
	res, err := tx.ExecContext(ctx, s.d.q(updateCall), append(args[1:], nid, cur.Version)...)
	if err != nil {
		return calls.Call{}, fmt.Errorf("store: update call %s: %w", nid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return calls.Call{}, fmt.Errorf("store: update call %s: %w", nid, err)
	} else if n != 1 {
		return calls.Call{}, fmt.Errorf("store: update call %s: version %d changed underneath the update", nid, cur.Version)
	}
	if err := s.writeChildren(ctx, tx, &next, true); err != nil {
		return calls.Call{}, err
	}
	if err := s.insertEvents(ctx, tx, evs); err != nil {
		return calls.Call{}, err
	}
	if err := tx.Commit(); err != nil {
		return calls.Call{}, fmt.Errorf("store: update call %s: commit: %w", nid, err)
	}
	setSeqs(events, evs)
	return next, nil
}

// ListCalls returns calls in one of states (none when states is empty)
// whose StateChangedAt is before `before` (any time when zero), oldest
// first and then by id, at most limit of them (all when limit <= 0).
func (s *SQL) ListCalls(ctx context.Context, states []calls.State, before time.Time, limit int) ([]calls.Call, error) {
	if len(states) == 0 {
		return nil, nil
	}
	var (
		where []string
		args  []any
	)
	where = append(where, `state IN (`+marks(len(states))+`)`)
	for _, st := range states {
		args = append(args, string(st))
	}
	if !before.IsZero() {
		where = append(where, `state_changed_at < ?`)
		args = append(args, s.d.timeArg(before))
	}
	query := selectCalls + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY state_changed_at, id`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}

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

// MarkDelivery records the delivery and reports whether it was new. The
// primary key decides between concurrent marks of one delivery.
func (s *SQL) MarkDelivery(ctx context.Context, source, deliveryID string, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO deliveries (source, delivery_id, seen_at) VALUES (?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING`),
		source, deliveryID, s.d.timeArg(at))
	if err != nil {
		return false, fmt.Errorf("store: mark delivery from %s: %w", source, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: mark delivery from %s: %w", source, err)
	}
	return n == 1, nil
}

// ForgetDelivery removes the delivery's mark so a retry of it counts as
// new; forgetting a delivery never marked is not an error.
func (s *SQL) ForgetDelivery(ctx context.Context, source, deliveryID string) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM deliveries WHERE source = ? AND delivery_id = ?`), source, deliveryID); err != nil {
		return fmt.Errorf("store: forget delivery from %s: %w", source, err)
	}
	return nil
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

// loadChildren fills in members, participants and surfaces of cs with one
// query per table (per chunk of calls), not one per call.
func (s *SQL) loadChildren(ctx context.Context, q querier, cs []*calls.Call) error {
	for len(cs) > 0 {
		n := min(len(cs), chunk)
		if err := s.loadChildrenChunk(ctx, q, cs[:n]); err != nil {
			return err
		}
		cs = cs[n:]
	}
	return nil
}

func (s *SQL) loadChildrenChunk(ctx context.Context, q querier, cs []*calls.Call) error {
	byID := make(map[string]*calls.Call, len(cs))
	ids := make([]any, len(cs))
	for i, c := range cs {
		byID[c.ID] = c
		ids[i] = c.ID
	}
	in := ` WHERE call_id IN (` + marks(len(ids)) + `) ORDER BY call_id, pos`

	err := s.eachRow(ctx, q, `SELECT call_id, user_id, role FROM call_members`+in, ids, func(r *sql.Rows) error {
		var id, role string
		var m calls.Member
		if err := r.Scan(&id, &m.UserID, &role); err != nil {
			return err
		}
		m.Role = calls.Role(role)
		c := byID[id]
		c.Members = append(c.Members, m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read call members: %w", err)
	}
	err = s.eachRow(ctx, q, `SELECT call_id, identity, name, joined_at FROM call_participants`+in, ids, func(r *sql.Rows) error {
		var id string
		var p calls.Participant
		if err := r.Scan(&id, &p.Identity, &p.Name, timeCol{&p.JoinedAt}); err != nil {
			return err
		}
		c := byID[id]
		c.Participants = append(c.Participants, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read call participants: %w", err)
	}
	err = s.eachRow(ctx, q, `SELECT call_id, platform, workspace, channel, message_id FROM call_surfaces`+in, ids, func(r *sql.Rows) error {
		var id string
		var sf calls.Surface
		if err := r.Scan(&id, &sf.Platform, &sf.Workspace, &sf.Channel, &sf.MessageID); err != nil {
			return err
		}
		c := byID[id]
		c.Surfaces = append(c.Surfaces, sf)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read call surfaces: %w", err)
	}
	return nil
}

func (s *SQL) eachRow(ctx context.Context, q querier, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// writeChildren stores c's members, participants and surfaces, replacing
// those stored before when replace is set. Replacing whole lists is simpler
// than diffing them and keeps their order exact; the lists are short.
func (s *SQL) writeChildren(ctx context.Context, tx *sql.Tx, c *calls.Call, replace bool) error {
	if replace {
		for _, table := range []string{"call_members", "call_participants", "call_surfaces"} {
			if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM `+table+` WHERE call_id = ?`), c.ID); err != nil {
				return fmt.Errorf("store: write call %s: clear %s: %w", c.ID, table, err)
			}
		}
	}
	members := make([][]any, len(c.Members))
	for i, m := range c.Members {
		members[i] = []any{c.ID, i, m.UserID, string(m.Role)}
	}
	if err := s.insertRows(ctx, tx, `call_members (call_id, pos, user_id, role)`, members); err != nil {
		return fmt.Errorf("store: write call %s members: %w", c.ID, err)
	}
	parts := make([][]any, len(c.Participants))
	for i, p := range c.Participants {
		parts[i] = []any{c.ID, i, p.Identity, p.Name, s.d.timeArg(p.JoinedAt)}
	}
	if err := s.insertRows(ctx, tx, `call_participants (call_id, pos, identity, name, joined_at)`, parts); err != nil {
		return fmt.Errorf("store: write call %s participants: %w", c.ID, err)
	}
	surfaces := make([][]any, len(c.Surfaces))
	for i, sf := range c.Surfaces {
		surfaces[i] = []any{c.ID, i, sf.Platform, sf.Workspace, sf.Channel, sf.MessageID}
	}
	if err := s.insertRows(ctx, tx, `call_surfaces (call_id, pos, platform, workspace, channel, message_id)`, surfaces); err != nil {
		return fmt.Errorf("store: write call %s surfaces: %w", c.ID, err)
	}
	return nil
}

// insertRows inserts rows of equal width with multi-row VALUES statements.
func (s *SQL) insertRows(ctx context.Context, tx *sql.Tx, into string, rows [][]any) error {
	for len(rows) > 0 {
		width := len(rows[0])
		n := min(len(rows), chunk/width)
		tuple := `(` + marks(width) + `)`
		tuples := make([]string, n)
		args := make([]any, 0, n*width)
		for i, r := range rows[:n] {
			tuples[i] = tuple
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO `+into+` VALUES `+strings.Join(tuples, ", ")), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// insertEvents appends events to the log, one statement each so the
// database assigns increasing sequence numbers in the order given, and
// records each assigned number in evs.
func (s *SQL) insertEvents(ctx context.Context, tx *sql.Tx, evs []calls.Event) error {
	for i, e := range evs {
		err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO call_events (call_id, kind, state, actor, identity, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`),
			e.CallID, string(e.Kind), string(e.State), e.Actor, e.Identity, e.Reason, s.d.timeArg(e.At)).Scan(&evs[i].Seq)
		if err != nil {
			return fmt.Errorf("store: append %s event of call %s: %w", e.Kind, e.CallID, err)
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
		room, seqs []byte
	)
	err := r.Scan(&c.ID, &typ, &state, &c.Provider, &c.Title, &c.CreatedBy, &room,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, timeCol{&c.StateChangedAt}, nullTimeCol{&c.EndedAt},
		&c.EndReason, &seqs, &c.Version)
	if err != nil {
		return calls.Call{}, err
	}
	c.Type, c.State = calls.Type(typ), calls.State(state)
	if err := json.Unmarshal(room, &c.Room); err != nil {
		return calls.Call{}, fmt.Errorf("call %s: decode room: %w", c.ID, err)
	}
	if err := json.Unmarshal(seqs, &c.Seqs); err != nil {
		return calls.Call{}, fmt.Errorf("call %s: decode roster marks: %w", c.ID, err)
	}
	if len(c.Room.Data) == 0 {
		c.Room.Data = nil
	}
	if len(c.Seqs) == 0 {
		c.Seqs = nil
	}
	return c, nil
}

// callArgs encodes c in callCols order.
func callArgs(d dialect, c *calls.Call) ([]any, error) {
	room, err := json.Marshal(c.Room)
	if err != nil {
		return nil, fmt.Errorf("store: call %s: encode room: %w", c.ID, err)
	}
	seqs := c.Seqs
	if seqs == nil {
		seqs = map[string]calls.RosterMark{}
	}
	marksJSON, err := json.Marshal(seqs)
	if err != nil {
		return nil, fmt.Errorf("store: call %s: encode roster marks: %w", c.ID, err)
	}
	// JSON goes in as text: a TEXT column in SQLite, and PostgreSQL parses
	// text into JSONB.
	return []any{c.ID, string(c.Type), string(c.State), c.Provider, c.Title, c.CreatedBy, string(room),
		d.timeArg(c.CreatedAt), d.timeArg(c.UpdatedAt), d.timeArg(c.StateChangedAt), d.nullTimeArg(c.EndedAt),
		c.EndReason, string(marksJSON), c.Version, c.Room.Name}, nil
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
