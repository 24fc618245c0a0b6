package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/callgate/callgate/calls"
)

// deferredWrites collects what the changes of a batch's applies write,
// while applyTogether runs them, so that each kind of row goes out in a
// statement per deferredRows rows rather than one (or more) per call: over
// two hundred busy calls, the call row, roster row and surface bump of
// each event were three statements of about 9 µs each under SQLite, and
// three round trips to PostgreSQL.
type deferredWrites struct {
	rows     bool // collect call rows, roster rows and surface bumps too (several calls)
	events   []calls.Event
	callRows map[uint8][][]any // per mask of changed indexed columns: id, version it replaces, the SET values
	roster   [][]any           // call_roster rows to upsert
	bumps    [][]any           // call id, the version its surfaces want

	// creates is set while a batch's new calls are stored together
	// (groupWriter.tryCreates): their members, surfaces, room jobs and
	// events are collected too, and each call's events get the numbers
	// the log gives them (eventsBack).
	creates                     bool
	members, surfaces, roomJobs [][]any
	eventsBack                  []deferredEvents
}

// deferredEvents is where events collected for flush came from: the
// caller's slice, and where they start in deferredWrites.events.
type deferredEvents struct {
	dst   []calls.Event
	start int
}

// collectingCreates reports whether new calls' children are kept for
// flush (d may be nil).
func (d *deferredWrites) collectingCreates() bool { return d != nil && d.creates }

// eventsFor keeps evs for flush, which numbers evs itself once the log
// has.
func (d *deferredWrites) eventsFor(evs []calls.Event) {
	d.eventsBack = append(d.eventsBack, deferredEvents{dst: evs, start: len(d.events)})
	d.events = append(d.events, evs...)
}

// deferredRows bounds the rows of one deferred statement, so that each
// statement shape (one per row count) is prepared once.
const deferredRows = 16

// collecting reports whether rows are kept for flush (d may be nil: no
// batch of applies is running).
func (d *deferredWrites) collecting() bool { return d != nil && d.rows }

// deferCallRow keeps a call row's update for flush, when rows are
// collected. args are updateCallQueries[mask]'s arguments.
func (d *deferredWrites) deferCallRow(mask uint8, args []any) bool {
	if !d.collecting() {
		return false
	}
	if d.callRows == nil {
		d.callRows = map[uint8][][]any{}
	}
	d.callRows[mask] = append(d.callRows[mask], args)
	return true
}

// deferRoster keeps roster upserts for flush, when rows are collected.
func (d *deferredWrites) deferRoster(upserts [][]any) bool {
	if !d.collecting() {
		return false
	}
	d.roster = append(d.roster, upserts...)
	return true
}

// deferBump keeps a call's surface bump for flush, when rows are collected.
func (d *deferredWrites) deferBump(id string, version int64) bool {
	if !d.collecting() {
		return false
	}
	d.bumps = append(d.bumps, []any{id, version})
	return true
}

// pgCallTypes are the PostgreSQL types of the columns of calls (see the
// migrations): a VALUES list there types its columns from its first row,
// and a bare parameter has no type of its own, so each is cast. SQLite
// takes the values as they are bound.
var pgCallTypes = map[string]string{
	"id": "text", "type": "text", "state": "text", "provider": "text", "title": "text",
	"created_by": "text", "room": "jsonb", "created_at": "timestamptz", "updated_at": "timestamptz",
	"state_changed_at": "timestamptz", "ended_at": "timestamptz", "end_reason": "text",
	"guests": "boolean", "recordings": "jsonb", "empty_since": "timestamptz", "version": "bigint",
	"room_name": "text",
}

// param is a placeholder for a value of the calls column col, cast on
// PostgreSQL.
func (d dialect) param(col string) string {
	if d.name == EnginePostgres {
		return "?::" + pgCallTypes[col]
	}
	return "?"
}

// updateCallsFrom returns, for a mask of changed indexed columns and n
// rows, the UPDATE that sets what updateCallQueries[mask] sets for n calls
// at once from a VALUES list of (id, version replaced, the values), and
// checks each call's version as that statement does. (Both engines name
// a VALUES list's columns column1, column2, ….)
func updateCallsFrom(d dialect, mask uint8, n int) string {
	cols := callRowColumns(mask)
	set := make([]string, len(cols))
	params := []string{d.param("id"), d.param("version")}
	for i, c := range cols {
		set[i] = fmt.Sprintf("%s = v.column%d", c, i+3)
		params = append(params, d.param(c))
	}
	row := `(` + strings.Join(params, ", ") + `)`
	return `UPDATE calls SET ` + strings.Join(set, ", ") + ` FROM (VALUES ` +
		strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") +
		`) AS v WHERE calls.id = v.column1 AND calls.version = v.column2`
}

// bumpSurfaces makes one call's surfaces want its version (arguments: the
// version, the call id, the version).
const bumpSurfaces = `UPDATE call_surfaces SET wanted_version = ? WHERE call_id = ? AND wanted_version < ?`

// bumpSurfacesFrom returns, at index n for n = 1..deferredRows, the UPDATE
// that makes the surfaces of n calls want each call's version.
func bumpSurfacesFrom(d dialect) []string {
	return multiRowQueries(`UPDATE call_surfaces SET wanted_version = v.column2 FROM (VALUES `,
		`(`+d.param("id")+`, `+d.param("version")+`)`,
		`) AS v WHERE call_surfaces.call_id = v.column1 AND call_surfaces.wanted_version < v.column2`, deferredRows)
}

// Each engine's bumps, built once.
var (
	bumpSurfacesFromSQLite   = bumpSurfacesFrom(sqliteDialect)
	bumpSurfacesFromPostgres = bumpSurfacesFrom(postgresDialect)
)

// flush writes what was deferred: call rows (failing when a call is not
// at the version the change started from, as writeCallRow does), roster
// rows, surface bumps, new calls' members, surfaces and room jobs, then
// events in the order given, numbering new calls' events where they came
// from (eventsFor). tx.deferred must be nil.
func (s *SQL) flush(ctx context.Context, tx *txn, d *deferredWrites) error {
	masks := make([]uint8, 0, len(d.callRows))
	for m := range d.callRows {
		masks = append(masks, m)
	}
	slices.Sort(masks)
	for _, m := range masks {
		for part := range slices.Chunk(d.callRows[m], deferredRows) {
			query := updateCallsFrom(s.d, m, len(part))
			args := make([]any, 0, len(part)*len(part[0]))
			if len(part) == 1 {
				// One row: the plain update by key is cheaper than a join.
				query = updateCallQueries[m]
				args = append(append(args, part[0][2:]...), part[0][0], part[0][1])
			} else {
				for _, r := range part {
					args = append(args, r...)
				}
			}
			res, err := tx.ExecContext(ctx, s.d.q(query), args...)
			if err != nil {
				return fmt.Errorf("store: update %d calls: %w", len(part), err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store: update %d calls: %w", len(part), err)
			} else if n != int64(len(part)) {
				return fmt.Errorf("store: update %d calls: %d were at the version their change started from", len(part), n)
			}
		}
	}
	for part := range slices.Chunk(d.roster, deferredRows) {
		if err := s.insertRows(ctx, tx, rosterInto, part, rosterUpsert); err != nil {
			return fmt.Errorf("store: write the roster of %d rows: %w", len(part), err)
		}
	}
	bumps := bumpSurfacesFromSQLite
	if s.d.name == EnginePostgres {
		bumps = bumpSurfacesFromPostgres
	}
	for part := range slices.Chunk(d.bumps, deferredRows) {
		query := bumps[len(part)]
		args := make([]any, 0, 3*len(part))
		if len(part) == 1 {
			query = bumpSurfaces
			args = append(args, part[0][1], part[0][0], part[0][1])
		} else {
			for _, b := range part {
				args = append(args, b...)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.q(query), args...); err != nil {
			return fmt.Errorf("store: bump the surfaces of %d calls: %w", len(part), err)
		}
	}
	for _, t := range []struct {
		what, into, suffix string
		rows               [][]any
	}{
		{"members", membersInto, "", d.members},
		{"surfaces", surfacesInto, "", d.surfaces},
		{"room jobs", roomJobsInto, ` ON CONFLICT (call_id) DO NOTHING`, d.roomJobs},
	} {
		for part := range slices.Chunk(t.rows, deferredRows) {
			if err := s.insertRows(ctx, tx, t.into, part, t.suffix); err != nil {
				return fmt.Errorf("store: write %d %s of new calls: %w", len(part), t.what, err)
			}
		}
	}
	if err := s.insertEvents(ctx, tx, d.events); err != nil {
		return err
	}
	for _, b := range d.eventsBack {
		for i := range b.dst {
			b.dst[i].Seq = d.events[b.start+i].Seq
		}
	}
	return nil
}
