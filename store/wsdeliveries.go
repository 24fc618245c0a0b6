package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// WSDelivery is one outbound request of the WebSocket hub: a push to wake
// a phone, or a call event for a webhook. ID is its idempotency key, the
// same on every attempt; (ID, URL) is the row's key.
type WSDelivery struct {
	ID            string
	URL           string
	Body          []byte
	CreatedAt     time.Time
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	// ExpiresAt, when set, is when the request stops being worth sending.
	ExpiresAt time.Time
	// Owner and LeaseUntil are set on a claimed delivery.
	Owner      string
	LeaseUntil time.Time
}

// WSDeliveryOutcome is the result of one attempt of a claimed delivery.
type WSDeliveryOutcome struct {
	ID, URL, Owner string
	Delivered      bool
	// Expired deliveries are deleted unsent, like delivered ones.
	Expired bool
	// For a failed attempt: the error, when to try again, and whether the
	// delivery is given up (dead) at At.
	LastError     string
	NextAttemptAt time.Time
	Dead          bool
	At            time.Time
}

// WSDeliveryCounts counts deliveries not yet made: never tried, failed at
// least once, and given up.
type WSDeliveryCounts struct{ Pending, Retrying, Dead int64 }

const insertWSDelivery = `INSERT INTO ws_deliveries (id, url, body, created_at, next_attempt_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (id, url) DO NOTHING`

func (s *SQL) insertWSDeliveries(ctx context.Context, tx *sql.Tx, ds []WSDelivery) error {
	q := s.d.q(insertWSDelivery)
	for _, d := range ds {
		var expires *time.Time
		if !d.ExpiresAt.IsZero() {
			expires = &d.ExpiresAt
		}
		if _, err := tx.ExecContext(ctx, q, d.ID, d.URL, string(d.Body), s.d.timeArg(d.CreatedAt), s.d.timeArg(d.NextAttemptAt), s.d.nullTimeArg(expires)); err != nil {
			return err
		}
	}
	return nil
}

// ClaimEventDeliveries claims the event for the outbound webhooks like
// ClaimEvent and, when this caller is the first, stores its deliveries in
// the same transaction: an event is either unclaimed or claimed with its
// deliveries stored, never claimed and lost.
func (s *SQL) ClaimEventDeliveries(ctx context.Context, seq int64, at time.Time, ds []WSDelivery) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: claim event deliveries: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO ws_event_claims (seq, claimed_at) VALUES (?, ?) ON CONFLICT (seq) DO NOTHING`), seq, s.d.timeArg(at))
	if err != nil {
		return false, fmt.Errorf("store: claim event deliveries: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	if err := s.insertWSDeliveries(ctx, tx, ds); err != nil {
		return false, fmt.Errorf("store: claim event deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: claim event deliveries: %w", err)
	}
	return true, nil
}

// AddWSDeliveries stores deliveries; one already stored (same ID and URL)
// is left as it is.
func (s *SQL) AddWSDeliveries(ctx context.Context, ds []WSDelivery) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	defer tx.Rollback()
	if err := s.insertWSDeliveries(ctx, tx, ds); err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	return nil
}

// claimWSDeliveries is claimSurfaces for the hub's deliveries.
const claimWSDeliveries = `UPDATE ws_deliveries SET lease_owner = ?, lease_until = ?
	WHERE (id, url) IN (
		SELECT id, url FROM ws_deliveries
		WHERE dead_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
		ORDER BY next_attempt_at, id, url LIMIT ?%s)
	RETURNING id, url, body, created_at, attempts, next_attempt_at, last_error, expires_at`

// ClaimWSDeliveries leases up to limit due deliveries to owner until
// now+lease, soonest due first. A delivery whose holder died is due again
// when its lease runs out.
func (s *SQL) ClaimWSDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]WSDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	until := utcMicro(now.Add(lease))
	at := s.d.timeArg(now)
	rows, err := s.w.QueryContext(ctx, s.d.q(fmt.Sprintf(claimWSDeliveries, s.d.skipLocked)), owner, s.d.timeArg(until), at, at, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim ws deliveries: %w", err)
	}
	defer rows.Close()
	var out []WSDelivery
	for rows.Next() {
		d := WSDelivery{Owner: owner, LeaseUntil: until}
		var body string
		var expires *time.Time
		if err := rows.Scan(&d.ID, &d.URL, &body, timeCol{&d.CreatedAt}, &d.Attempts, timeCol{&d.NextAttemptAt}, &d.LastError, nullTimeCol{&expires}); err != nil {
			return nil, fmt.Errorf("store: claim ws deliveries: %w", err)
		}
		d.Body = []byte(body)
		if expires != nil {
			d.ExpiresAt = *expires
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim ws deliveries: %w", err)
	}
	// RETURNING promises no order.
	slices.SortStableFunc(out, func(a, b WSDelivery) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	return out, nil
}

// FinishWSDelivery records an attempt: a delivered request is deleted, a
// failed one is rescheduled (or marked dead) and its lease released. It
// fails with calls.ErrLeaseLost when o.Owner no longer holds the lease.
func (s *SQL) FinishWSDelivery(ctx context.Context, o WSDeliveryOutcome) error {
	const key = ` WHERE id = ? AND url = ? AND lease_owner = ?`
	var res sql.Result
	var err error
	if o.Delivered || o.Expired {
		res, err = s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_deliveries`+key), o.ID, o.URL, o.Owner)
	} else {
		var dead *time.Time
		if o.Dead {
			at := o.At
			dead = &at
		}
		res, err = s.w.ExecContext(ctx, s.d.q(`UPDATE ws_deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, dead_at = ?,
			lease_owner = '', lease_until = NULL`+key),
			o.LastError, s.d.timeArg(o.NextAttemptAt), s.d.nullTimeArg(dead), o.ID, o.URL, o.Owner)
	}
	if err != nil {
		return fmt.Errorf("store: finish delivery %s: %w", o.ID, err)
	}
	return leaseHeld(res, "delivery "+o.ID)
}

// CountWSDeliveries counts the hub's deliveries not yet made.
func (s *SQL) CountWSDeliveries(ctx context.Context) (WSDeliveryCounts, error) {
	var c WSDeliveryCounts
	err := s.r.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN dead_at IS NULL AND attempts = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN dead_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0)
		FROM ws_deliveries`).Scan(&c.Pending, &c.Retrying, &c.Dead)
	if err != nil {
		return WSDeliveryCounts{}, fmt.Errorf("store: count ws deliveries: %w", err)
	}
	return c, nil
}
