package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// surfaceCols are read by scanSurface, after the call id.
const surfaceCols = `call_id, chat, workspace, channel, wanted_version, shown_version, message_ref, attempts, next_attempt_at, last_error, dead_at`

// rosterInto is the target of an INSERT of call_roster rows.
const rosterInto = `call_roster (call_id, identity, name, present, seq, seq_present, joined_at)`

// rosterUpsert makes inserting a roster row replace the identity's stored
// row, so one statement serves a join, a leave that keeps a mark, and a
// rejoin.
const rosterUpsert = ` ON CONFLICT (call_id, identity) DO UPDATE SET name = excluded.name, present = excluded.present,
	seq = excluded.seq, seq_present = excluded.seq_present, joined_at = excluded.joined_at`

// loadChildren fills in members, roster and surfaces of cs with one query
// per table (per chunk of calls), not one per call.
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
	in := ` WHERE call_id IN (` + marks(len(ids)) + `) ORDER BY call_id, `

	err := s.eachRow(ctx, q, `SELECT call_id, user_id, role, answer FROM call_members`+in+`pos`, ids, func(r *sql.Rows) error {
		var id, role, answer string
		var m calls.Member
		if err := r.Scan(&id, &m.UserID, &role, &answer); err != nil {
			return err
		}
		m.Role, m.Answer = calls.Role(role), calls.Answer(answer)
		c := byID[id]
		c.Members = append(c.Members, m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read call members: %w", err)
	}
	// Present rows come in roster order; absent rows only carry marks.
	err = s.eachRow(ctx, q, `SELECT call_id, identity, name, present, seq, seq_present, joined_at FROM call_roster`+in+`joined_at, identity`, ids, func(r *sql.Rows) error {
		var id, identity string
		var row rosterRow
		var joined *time.Time
		if err := r.Scan(&id, &identity, &row.name, &row.present, &row.seq, &row.seqPresent, nullTimeCol{&joined}); err != nil {
			return err
		}
		if joined != nil {
			row.joinedAt = *joined
		}
		row.addTo(byID[id], identity)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read call roster: %w", err)
	}
	return s.loadSurfaces(ctx, q, byID, ids)
}

// loadSurfaces fills in the surfaces of the calls in byID, whose ids are
// ids (at most chunk of them), with one query.
func (s *SQL) loadSurfaces(ctx context.Context, q querier, byID map[string]*calls.Call, ids []any) error {
	err := s.eachRow(ctx, q, `SELECT `+surfaceCols+` FROM call_surfaces WHERE call_id IN (`+marks(len(ids))+`) ORDER BY call_id, pos`, ids, func(r *sql.Rows) error {
		id, sf, err := scanSurface(r)
		if err != nil {
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

// scanSurface reads the columns of surfaceCols.
func scanSurface(r rowScanner) (string, calls.Surface, error) {
	var id string
	var sf calls.Surface
	d := &sf.Delivery
	err := r.Scan(&id, &sf.Chat, &sf.Workspace, &sf.Channel, &d.Wanted, &d.Shown, &d.MessageRef,
		&d.Attempts, timeCol{&d.NextAttemptAt}, &d.LastError, nullTimeCol{&d.DeadAt})
	return id, sf, err
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

// rosterRow is what call_roster keeps for one identity: whether it is in
// the call now (with name and join time), and its roster mark.
type rosterRow struct {
	present    bool
	name       string
	joinedAt   time.Time
	seq        int64
	seqPresent bool
}

func (r rosterRow) equal(o rosterRow) bool {
	return r.present == o.present && r.name == o.name && r.joinedAt.Equal(o.joinedAt) &&
		r.seq == o.seq && r.seqPresent == o.seqPresent
}

// addTo puts the row back into the call it was read for.
func (r rosterRow) addTo(c *calls.Call, identity string) {
	if r.present {
		c.Participants = append(c.Participants, calls.Participant{Identity: identity, Name: r.name, JoinedAt: r.joinedAt})
	}
	if r.seq != 0 {
		if c.Seqs == nil {
			c.Seqs = map[string]calls.RosterMark{}
		}
		c.Seqs[identity] = calls.RosterMark{Seq: r.seq, Present: r.seqPresent}
	}
}

// rosterRows is c's roster as call_roster keeps it, by identity. A mark
// with Seq 0 carries nothing (MarkPresence never makes one) and has no row.
func rosterRows(c *calls.Call) map[string]rosterRow {
	out := make(map[string]rosterRow, len(c.Participants)+len(c.Seqs))
	for _, p := range c.Participants {
		out[p.Identity] = rosterRow{present: true, name: p.Name, joinedAt: p.JoinedAt}
	}
	for id, m := range c.Seqs {
		if m.Seq == 0 {
			continue
		}
		r := out[id]
		r.seq, r.seqPresent = m.Seq, m.Present
		out[id] = r
	}
	return out
}

// writeRoster brings call_roster from the rows in from to those in to,
// touching only identities whose row differs: a join or leave in a large
// call writes one row.
func (s *SQL) writeRoster(ctx context.Context, tx *txn, id string, from, to map[string]rosterRow) error {
	var gone []string
	changed := map[string]rosterRow{}
	for identity := range from {
		if _, ok := to[identity]; !ok {
			gone = append(gone, identity)
		}
	}
	for identity, r := range to {
		if old, ok := from[identity]; ok && old.equal(r) {
			continue
		}
		changed[identity] = r
	}
	return s.writeRosterRows(ctx, tx, id, gone, changed)
}

// writeRosterRows deletes the rows of the identities in goneIDs and
// upserts the rows in changed.
func (s *SQL) writeRosterRows(ctx context.Context, tx *txn, id string, goneIDs []string, changed map[string]rosterRow) error {
	gone := make([]any, len(goneIDs))
	for i, g := range goneIDs {
		gone[i] = g
	}
	var upserts [][]any
	for identity, r := range changed {
		var joined any
		if r.present {
			joined = s.d.timeArg(r.joinedAt)
		}
		upserts = append(upserts, []any{id, identity, r.name, r.present, r.seq, r.seqPresent, joined})
	}
	// Sorted so that statements, and the row locks they take, come in a
	// stable order.
	slices.SortFunc(gone, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	slices.SortFunc(upserts, func(a, b []any) int { return strings.Compare(a[1].(string), b[1].(string)) })

	for len(gone) > 0 {
		n := min(len(gone), chunk)
		args := append([]any{id}, gone[:n]...)
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM call_roster WHERE call_id = ? AND identity IN (`+marks(n)+`)`), args...); err != nil {
			return fmt.Errorf("store: write call %s roster: %w", id, err)
		}
		gone = gone[n:]
	}
	if tx.deferred.deferRoster(upserts) {
		return nil
	}
	if err := s.insertRows(ctx, tx, rosterInto, upserts, rosterUpsert); err != nil {
		return fmt.Errorf("store: write call %s roster: %w", id, err)
	}
	return nil
}

// writeMembers replaces the call's members. Callers skip it when the
// members did not change, which is nearly always.
func (s *SQL) writeMembers(ctx context.Context, tx *txn, id string, members []calls.Member, replace bool) error {
	if replace {
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM call_members WHERE call_id = ?`), id); err != nil {
			return fmt.Errorf("store: write call %s members: %w", id, err)
		}
	}
	if err := s.insertRows(ctx, tx, membersInto, s.memberRows(id, 0, members), ""); err != nil {
		return fmt.Errorf("store: write call %s members: %w", id, err)
	}
	return nil
}

// membersInto is the table and columns of a member, as memberRows gives
// them.
const membersInto = `call_members (call_id, pos, user_id, role, answer)`

// memberRows are the rows of members at positions from pos on.
func (s *SQL) memberRows(id string, pos int, members []calls.Member) [][]any {
	rows := make([][]any, len(members))
	for i, m := range members {
		rows[i] = []any{id, pos + i, m.UserID, string(m.Role), string(m.Answer)}
	}
	return rows
}

// insertSurfaces inserts surfaces, with the delivery state they carry, at
// positions from pos on.
func (s *SQL) insertSurfaces(ctx context.Context, tx *txn, id string, pos int, sfs []calls.Surface) error {
	if err := s.insertRows(ctx, tx, surfacesInto, s.surfaceRows(id, pos, sfs), ""); err != nil {
		return fmt.Errorf("store: write call %s surfaces: %w", id, err)
	}
	return nil
}

// surfacesInto is the table and columns of a surface, as surfaceRows gives
// them.
const surfacesInto = `call_surfaces (call_id, chat, workspace, channel, pos, wanted_version, shown_version, message_ref, attempts, next_attempt_at, last_error, dead_at, lease_owner)`

// surfaceRows are the rows of surfaces, with the delivery state they
// carry, at positions from pos on.
func (s *SQL) surfaceRows(id string, pos int, sfs []calls.Surface) [][]any {
	rows := make([][]any, len(sfs))
	for i, sf := range sfs {
		d := sf.Delivery
		rows[i] = []any{id, sf.Chat, sf.Workspace, sf.Channel, pos + i, d.Wanted, d.Shown, d.MessageRef,
			d.Attempts, s.d.timeArg(d.NextAttemptAt), d.LastError, s.d.nullTimeArg(d.DeadAt), ""}
	}
	return rows
}

// insertRows inserts rows of equal width with multi-row VALUES statements,
// each followed by suffix (an ON CONFLICT clause, or nothing).
func (s *SQL) insertRows(ctx context.Context, tx *txn, into string, rows [][]any, suffix string) error {
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
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO `+into+` VALUES `+strings.Join(tuples, ", ")+suffix), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}
