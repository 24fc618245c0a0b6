package store

import (
	"context"
	"fmt"
	"time"
)

// Prune statements. Each takes the cutoff time and the batch size.
//
// PostgreSQL finds the oldest rows through indexes on their times. SQLite
// walks the front of each table instead: rows are appended in the order
// they are logged, which is their time order, so the oldest are first.
// Its statements read the first limit rows in log order and delete those
// older than the cutoff; a row logged late with an old time (a provider's
// delayed event) goes once the rows logged before it have. That spares
// every webhook two index writes (migration 0010).
const (
	pruneEventsByTime = `DELETE FROM call_events WHERE seq IN (SELECT seq FROM call_events WHERE at < ? ORDER BY at LIMIT ?)`
	pruneMarksByTime  = `DELETE FROM deliveries WHERE (source, delivery_id) IN (SELECT source, delivery_id FROM deliveries WHERE seen_at < ? ORDER BY seen_at LIMIT ?)`
	pruneEventsInLog  = `DELETE FROM call_events WHERE seq IN (SELECT seq FROM (SELECT seq, at FROM call_events ORDER BY seq LIMIT ?2) WHERE at < ?1)`
	pruneMarksInLog   = `DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM (SELECT rowid, seen_at FROM deliveries ORDER BY rowid LIMIT ?2) WHERE seen_at < ?1)`
)

// pruneQueries returns the dialect's statements for events and marks.
func (d dialect) pruneQueries() (events, marks string) {
	if d.name == EngineSQLite {
		return pruneEventsInLog, pruneMarksInLog
	}
	return pruneEventsByTime, pruneMarksByTime
}

// Prune deletes up to limit call events older than eventsBefore and up to
// limit delivery marks older than marksBefore (calls.Pruner); a zero time
// skips that kind. Each kind is one short transaction, so pruning never
// holds the writer for long.
func (s *SQL) Prune(ctx context.Context, eventsBefore, marksBefore time.Time, limit int) (int64, error) {
	events, marks := s.d.pruneQueries()
	var total int64
	for _, p := range []struct {
		what   string
		before time.Time
		query  string
	}{
		{"events", eventsBefore, events},
		{"delivery marks", marksBefore, marks},
	} {
		if p.before.IsZero() {
			continue
		}
		res, err := s.w.ExecContext(ctx, s.d.q(p.query), s.d.timeArg(p.before), limit)
		if err != nil {
			return total, fmt.Errorf("store: prune %s: %w", p.what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: prune %s: %w", p.what, err)
		}
		total += n
	}
	return total, nil
}
