package store

import (
	"context"
	"fmt"
	"time"
)

// Prune deletes up to limit call events older than eventsBefore and up to
// limit delivery marks older than marksBefore (calls.Pruner); a zero time
// skips that kind. Each kind is one short transaction, so pruning never
// holds the writer for long.
func (s *SQL) Prune(ctx context.Context, eventsBefore, marksBefore time.Time, limit int) (int64, error) {
	var total int64
	for _, p := range []struct {
		what   string
		before time.Time
		query  string
	}{
		{"events", eventsBefore, `DELETE FROM call_events WHERE seq IN (SELECT seq FROM call_events WHERE at < ? ORDER BY at LIMIT ?)`},
		{"delivery marks", marksBefore, `DELETE FROM deliveries WHERE (source, delivery_id) IN (SELECT source, delivery_id FROM deliveries WHERE seen_at < ? ORDER BY seen_at LIMIT ?)`},
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
