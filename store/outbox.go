package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callgate/callgate/calls"
)

// dueSurface is the claim condition. It repeats the partial index's
// predicate word for word, which SQLite needs to use the index.
const dueSurface = `shown_version < wanted_version AND dead_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)`

// claimSurfaces leases due surfaces in one statement: the subquery picks
// them (skipping rows a concurrent claim holds, on PostgreSQL), and the
// UPDATE takes the lease and returns them.
const claimSurfaces = `UPDATE call_surfaces SET lease_owner = ?, lease_until = ?
	WHERE (call_id, chat, workspace, channel) IN (
		SELECT call_id, chat, workspace, channel FROM call_surfaces
		WHERE ` + dueSurface + `
		ORDER BY next_attempt_at, call_id, pos LIMIT ?%s)
	RETURNING ` + surfaceCols

// ClaimDeliveries leases up to limit due surfaces to owner until now+lease,
// soonest due first.
func (s *SQL) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]calls.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	until := utcMicro(now.Add(lease))
	at := s.d.timeArg(now)
	if due, err := s.anyDue(ctx, `SELECT 1 FROM call_surfaces WHERE `+dueSurface+` LIMIT 1`, at, at); err != nil || !due {
		return nil, err
	}
	var out []calls.Delivery
	err := s.write(ctx, "", func(ctx context.Context, tx *txn) error {
		out = out[:0]
		err := s.eachRow(ctx, tx, fmt.Sprintf(claimSurfaces, s.d.skipLocked), []any{owner, s.d.timeArg(until), at, at, limit}, func(r *sql.Rows) error {
			id, sf, err := scanSurface(r)
			if err != nil {
				return err
			}
			out = append(out, calls.Delivery{CallID: id, Surface: sf, Owner: owner, LeaseUntil: until})
			return nil
		})
		for _, d := range out {
			tx.surfacesChanged(d.CallID)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	// RETURNING promises no order.
	slices.SortStableFunc(out, func(a, b calls.Delivery) int {
		return a.Surface.Delivery.NextAttemptAt.Compare(b.Surface.Delivery.NextAttemptAt)
	})
	return out, nil
}

const (
	surfaceKey = ` WHERE call_id = ? AND chat = ? AND workspace = ? AND channel = ?`
	// recordDelivered keeps the higher of the shown versions, as a slow
	// worker may record an older version after a newer one was shown.
	recordDelivered = `UPDATE call_surfaces SET
		shown_version = CASE WHEN shown_version > ? THEN shown_version ELSE ? END,
		message_ref = CASE WHEN ? = '' THEN message_ref ELSE ? END,
		attempts = 0, last_error = '', lease_owner = '', lease_until = NULL` + surfaceKey + ` AND lease_owner = ?`
	recordFailed = `UPDATE call_surfaces SET attempts = attempts + ?, last_error = ?, next_attempt_at = ?, dead_at = ?,
		lease_owner = '', lease_until = NULL` + surfaceKey + ` AND lease_owner = ?`
)

// RecordDelivery stores the outcome and releases the lease, or fails with
// ErrLeaseLost when o.Owner does not hold it.
func (s *SQL) RecordDelivery(ctx context.Context, o calls.DeliveryOutcome) error {
	id, err := lookupID(o.CallID)
	if err != nil {
		return err
	}
	key := []any{id, o.Key.Chat, o.Key.Workspace, o.Key.Channel, o.Owner}
	var query string
	var args []any
	if o.Delivered {
		query = recordDelivered
		args = append([]any{o.Version, o.Version, o.MessageRef, o.MessageRef}, key...)
	} else {
		attempts := 1
		if o.Deferred {
			attempts = 0
		}
		var dead *time.Time
		if o.Dead {
			at := o.At
			dead = &at
		}
		query = recordFailed
		args = append([]any{attempts, o.LastError, s.d.timeArg(o.NextAttemptAt), s.d.nullTimeArg(dead)}, key...)
	}
	return s.write(ctx, id, func(ctx context.Context, tx *txn) error {
		res, err := tx.ExecContext(ctx, s.d.q(query), args...)
		if err != nil {
			return fmt.Errorf("store: record delivery to %s of call %s: %w", o.Key, id, err)
		}
		tx.surfacesChanged(id)
		return leaseHeld(res, fmt.Sprintf("delivery to %s of call %s", o.Key, id))
	})
}

// anyDue reports whether query (a SELECT 1 … LIMIT 1 over due work) finds
// a row. Workers wake after every change, and most wake-ups find nothing
// to claim: asking a reader first keeps those from taking the writer,
// which on SQLite is every other write's serial section. The claim itself
// re-checks under the write lock.
func (s *SQL) anyDue(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	switch err := s.readRow(ctx, s.d.q(query), args...).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: look for due work: %w", err)
	}
	return true, nil
}

// leaseHeld turns "no row matched the owner" into ErrLeaseLost.
func leaseHeld(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", what, calls.ErrLeaseLost)
	}
	return nil
}

// RetryDelivery revives the surface and makes it due at now.
func (s *SQL) RetryDelivery(ctx context.Context, callID string, key calls.SurfaceKey, now time.Time) error {
	id, err := lookupID(callID)
	if err != nil {
		return err
	}
	return s.write(ctx, id, func(ctx context.Context, tx *txn) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE call_surfaces SET dead_at = NULL, attempts = 0, last_error = '', next_attempt_at = ?`+surfaceKey),
			s.d.timeArg(now), id, key.Chat, key.Workspace, key.Channel)
		if err != nil {
			return fmt.Errorf("store: retry delivery to %s of call %s: %w", key, id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: retry delivery to %s of call %s: %w", key, id, err)
		}
		if n == 0 {
			return fmt.Errorf("store: call %s has no surface %s: %w", id, key, calls.ErrNotFound)
		}
		tx.surfacesChanged(id)
		return nil
	})
}

// countDeliveries and listDeliveries read the surfaces owing an update
// (call_surfaces_due) and the dead ones (call_surfaces_dead) through their
// partial indexes, never the delivered history.
const (
	owed            = `shown_version < wanted_version AND dead_at IS NULL`
	countDeliveries = `SELECT
		(SELECT COUNT(*) FROM call_surfaces WHERE ` + owed + ` AND attempts = 0),
		(SELECT COUNT(*) FROM call_surfaces WHERE ` + owed + ` AND attempts > 0),
		(SELECT COUNT(*) FROM call_surfaces WHERE dead_at IS NOT NULL)`
	listDeliveries = `SELECT ` + surfaceCols + ` FROM (
		SELECT ` + surfaceCols + `, pos, 0 AS live FROM call_surfaces WHERE dead_at IS NOT NULL
		UNION ALL
		SELECT ` + surfaceCols + `, pos, 1 AS live FROM call_surfaces WHERE ` + owed + `) AS d
		ORDER BY live, dead_at DESC, next_attempt_at, call_id, pos LIMIT ?`
)

// CountDeliveries counts surfaces owing an update, and dead ones.
func (s *SQL) CountDeliveries(ctx context.Context) (calls.DeliveryCounts, error) {
	var c calls.DeliveryCounts
	err := s.r.QueryRowContext(ctx, countDeliveries).Scan(&c.Pending, &c.Retrying, &c.Dead)
	if err != nil {
		return calls.DeliveryCounts{}, fmt.Errorf("store: count deliveries: %w", err)
	}
	return c, nil
}

// ListDeliveries lists surfaces owing an update or dead, dead first.
func (s *SQL) ListDeliveries(ctx context.Context, limit int) ([]calls.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []calls.Delivery
	err := s.eachRow(ctx, s.r, listDeliveries, []any{limit}, func(r *sql.Rows) error {
		id, sf, err := scanSurface(r)
		if err != nil {
			return err
		}
		out = append(out, calls.Delivery{CallID: id, Surface: sf})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list deliveries: %w", err)
	}
	return out, nil
}

// dueRoomJob is the claim condition of room jobs.
const dueRoomJob = `next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)`

// claimRoomJobs is claimSurfaces for room jobs.
const claimRoomJobs = `UPDATE room_jobs SET lease_owner = ?, lease_until = ?
	WHERE call_id IN (
		SELECT call_id FROM room_jobs
		WHERE ` + dueRoomJob + `
		ORDER BY next_attempt_at, call_id LIMIT ?%s)
	RETURNING call_id, attempts, created_at, next_attempt_at, last_error`

// ClaimRoomJobs leases up to limit due room jobs to owner until now+lease,
// soonest due first.
func (s *SQL) ClaimRoomJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]calls.RoomJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	until := utcMicro(now.Add(lease))
	at := s.d.timeArg(now)
	if due, err := s.anyDue(ctx, `SELECT 1 FROM room_jobs WHERE `+dueRoomJob+` LIMIT 1`, at, at); err != nil || !due {
		return nil, err
	}
	var out []calls.RoomJob
	err := s.write(ctx, "", func(ctx context.Context, tx *txn) error {
		out = out[:0]
		return s.eachRow(ctx, tx, fmt.Sprintf(claimRoomJobs, s.d.skipLocked), []any{owner, s.d.timeArg(until), at, at, limit}, func(r *sql.Rows) error {
			j := calls.RoomJob{Owner: owner, LeaseUntil: until}
			if err := r.Scan(&j.CallID, &j.Attempts, timeCol{&j.CreatedAt}, timeCol{&j.NextAttemptAt}, &j.LastError); err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim room jobs: %w", err)
	}
	slices.SortStableFunc(out, func(a, b calls.RoomJob) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	return out, nil
}

// RescheduleRoomJob records a failed attempt and releases the lease.
func (s *SQL) RescheduleRoomJob(ctx context.Context, o calls.RoomJobOutcome) error {
	id, err := lookupID(o.CallID)
	if err != nil {
		return err
	}
	err = s.write(ctx, id, func(ctx context.Context, tx *txn) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE room_jobs SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
		lease_owner = '', lease_until = NULL WHERE call_id = ? AND lease_owner = ?`),
			o.LastError, s.d.timeArg(o.NextAttemptAt), id, o.Owner)
		if err != nil {
			return fmt.Errorf("store: reschedule room job of call %s: %w", id, err)
		}
		return leaseHeld(res, "reschedule room job of call "+id)
	})
	if !errors.Is(err, calls.ErrLeaseLost) {
		return err
	}
	// Nothing matched: tell a job that is gone (its work is done) from one
	// another worker holds.
	var one int
	switch err := s.r.QueryRowContext(ctx, s.d.q(`SELECT 1 FROM room_jobs WHERE call_id = ?`), id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: room job of call %s: %w", id, calls.ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: reschedule room job of call %s: %w", id, err)
	}
	return fmt.Errorf("store: room job of call %s: %w", id, calls.ErrLeaseLost)
}

// CountRoomJobs counts room jobs not yet done.
func (s *SQL) CountRoomJobs(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_jobs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count room jobs: %w", err)
	}
	return n, nil
}
