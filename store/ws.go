package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/callgate/callgate/calls"
)

// This file holds what the WebSocket hub (package ws) reads and writes
// beyond the calls.Store contract: the global event log by seq, the event
// log of one user's calls, the users the gateway knows, who is connected
// where, and the claims that make each event's outbound webhook go out
// once across replicas.

// queryRow runs a single-row read, prepared once (readRow): the hub runs
// the same few reads for every ring, and SQLite would parse each again.
func (s *SQL) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return s.readRow(ctx, s.d.q(query), args...).Scan(dest...)
}

// LastEventSeq returns the highest seq in the event log (0 when empty).
func (s *SQL) LastEventSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(seq) FROM call_events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: last event seq: %w", err)
	}
	return seq.Int64, nil
}

// EventsAfter returns events of every call with Seq > after, in seq order,
// at most limit.
func (s *SQL) EventsAfter(ctx context.Context, after int64, limit int) ([]calls.Event, error) {
	rows, err := s.readQuery(ctx, s.d.q(`SELECT seq, call_id, kind, state, actor, identity, reason, at FROM call_events WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	return s.readEvents("events after", rows, err)
}

// UserEvents returns events with Seq > after of the calls userID is a
// member of, in seq order, at most limit.
func (s *SQL) UserEvents(ctx context.Context, userID string, after int64, limit int) ([]calls.Event, error) {
	return s.scanEvents(ctx, "events of a user's calls", s.d.q(`SELECT e.seq, e.call_id, e.kind, e.state, e.actor, e.identity, e.reason, e.at
		FROM call_events AS e
		WHERE e.seq > ? AND e.call_id IN (SELECT m.call_id FROM call_members AS m WHERE m.user_id = ?)
		ORDER BY e.seq LIMIT ?`), after, userID, limit)
}

func (s *SQL) scanEvents(ctx context.Context, what, query string, args ...any) ([]calls.Event, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	return s.readEvents(what, rows, err)
}

func (s *SQL) readEvents(what string, rows *sql.Rows, err error) ([]calls.Event, error) {
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []calls.Event
	for rows.Next() {
		var e calls.Event
		var kind, state string
		if err := rows.Scan(&e.Seq, &e.CallID, &kind, &state, &e.Actor, &e.Identity, &e.Reason, timeCol{&e.At}); err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		e.Kind, e.State = calls.EventKind(kind), calls.State(state)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// WSUser is a user the gateway knows from a connection.
type WSUser struct {
	ID        string
	Name      string
	ImageURL  string
	FirstSeen time.Time
	LastSeen  time.Time
}

// TouchUser records that the user connected at at, with the display name
// and picture the connection gave (empty keeps what was stored).
func (s *SQL) TouchUser(ctx context.Context, u WSUser, at time.Time) error {
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO ws_users (user_id, name, image_url, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET
			name = CASE WHEN excluded.name = '' THEN ws_users.name ELSE excluded.name END,
			image_url = CASE WHEN excluded.image_url = '' THEN ws_users.image_url ELSE excluded.image_url END,
			last_seen = excluded.last_seen`),
		u.ID, u.Name, u.ImageURL, s.d.timeArg(at), s.d.timeArg(at))
	if err != nil {
		return fmt.Errorf("store: touch user: %w", err)
	}
	return nil
}

// User returns the user as known from connections; ok is false when the
// user never connected.
func (s *SQL) User(ctx context.Context, id string) (WSUser, bool, error) {
	u := WSUser{ID: id}
	err := s.queryRow(ctx, `SELECT name, image_url, first_seen, last_seen FROM ws_users WHERE user_id = ?`, []any{id},
		&u.Name, &u.ImageURL, timeCol{&u.FirstSeen}, timeCol{&u.LastSeen})
	if errors.Is(err, sql.ErrNoRows) {
		return WSUser{ID: id}, false, nil
	}
	if err != nil {
		return WSUser{}, false, fmt.Errorf("store: user: %w", err)
	}
	return u, true, nil
}

// KnownUser reports whether the gateway has ever known the user: it has
// connected, or it is (or was) a member of a call.
func (s *SQL) KnownUser(ctx context.Context, id string) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM ws_users WHERE user_id = ?) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM call_members WHERE user_id = ? LIMIT 1) AS m)`, []any{id, id}, &n)
	if err != nil {
		return false, fmt.Errorf("store: known user: %w", err)
	}
	return n > 0, nil
}

// SetPresence records that the users have a socket on replica (until is
// kept for information; liveness comes from the replica's heartbeat).
func (s *SQL) SetPresence(ctx context.Context, replica string, userIDs []string, until time.Time) error {
	if len(userIDs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: presence: %w", err)
	}
	defer tx.Rollback()
	q := s.d.q(`INSERT INTO ws_presence (user_id, replica, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id, replica) DO UPDATE SET expires_at = excluded.expires_at`)
	for _, id := range userIDs {
		if _, err := tx.ExecContext(ctx, q, id, replica, s.d.timeArg(until)); err != nil {
			return fmt.Errorf("store: presence: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: presence: %w", err)
	}
	return nil
}

// DropPresence records that the user has no socket left on replica.
func (s *SQL) DropPresence(ctx context.Context, replica, userID string) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_presence WHERE user_id = ? AND replica = ?`), userID, replica); err != nil {
		return fmt.Errorf("store: drop presence: %w", err)
	}
	return nil
}

// ReplicaAlive records that replica is alive until until: its presence
// rows count until then.
func (s *SQL) ReplicaAlive(ctx context.Context, replica string, until time.Time) error {
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO ws_replicas (replica, expires_at) VALUES (?, ?)
		ON CONFLICT (replica) DO UPDATE SET expires_at = excluded.expires_at`), replica, s.d.timeArg(until))
	if err != nil {
		return fmt.Errorf("store: replica heartbeat: %w", err)
	}
	return nil
}

// Online reports whether the user has a socket on a live replica at now.
func (s *SQL) Online(ctx context.Context, userID string, now time.Time) (bool, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM ws_presence AS p JOIN ws_replicas AS r ON r.replica = p.replica
		WHERE p.user_id = ? AND r.expires_at > ?`, []any{userID, s.d.timeArg(now)}, &n); err != nil {
		return false, fmt.Errorf("store: online: %w", err)
	}
	return n > 0, nil
}

// ClaimEvent reports whether this caller is the first to claim the event
// (for sending it to the outbound webhooks once across replicas).
func (s *SQL) ClaimEvent(ctx context.Context, seq int64, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO ws_event_claims (seq, claimed_at) VALUES (?, ?) ON CONFLICT (seq) DO NOTHING`), seq, s.d.timeArg(at))
	if err != nil {
		return false, fmt.Errorf("store: claim event: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim event: %w", err)
	}
	return n == 1, nil
}

// PruneWS forgets event claims, dead deliveries and presence rows older
// than before.
func (s *SQL) PruneWS(ctx context.Context, before time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_event_claims WHERE claimed_at < ?`), s.d.timeArg(before)); err != nil {
		return fmt.Errorf("store: prune event claims: %w", err)
	}
	// Dead deliveries stay a day for people to look at.
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_deliveries WHERE dead_at < ?`), s.d.timeArg(before)); err != nil {
		return fmt.Errorf("store: prune dead deliveries: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_presence WHERE replica IN (SELECT replica FROM ws_replicas WHERE expires_at < ?)`), s.d.timeArg(before)); err != nil {
		return fmt.Errorf("store: prune presence: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_replicas WHERE expires_at < ?`), s.d.timeArg(before)); err != nil {
		return fmt.Errorf("store: prune replicas: %w", err)
	}
	return nil
}

// InLiveCall reports whether the user is in a call under way (accepted or
// active) other than except: its creator, or a member who accepted. It is
// what "busy" means to a ring.
func (s *SQL) InLiveCall(ctx context.Context, userID, except string) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM call_members AS m JOIN calls AS c ON c.id = m.call_id
		WHERE m.user_id = ? AND c.state IN ('accepted', 'active') AND c.id <> ?
			AND (m.answer = 'accepted' OR c.created_by = m.user_id) LIMIT 1) AS b`, []any{userID, except}, &n)
	if err != nil {
		return false, fmt.Errorf("store: in live call: %w", err)
	}
	return n > 0, nil
}

// Block records that user blocks other; blocking again changes nothing.
func (s *SQL) Block(ctx context.Context, user, other string, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO ws_blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id, blocked_id) DO NOTHING`), user, other, s.d.timeArg(at)); err != nil {
		return fmt.Errorf("store: block: %w", err)
	}
	return nil
}

// Unblock forgets that user blocks other (if they did).
func (s *SQL) Unblock(ctx context.Context, user, other string) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM ws_blocks WHERE user_id = ? AND blocked_id = ?`), user, other); err != nil {
		return fmt.Errorf("store: unblock: %w", err)
	}
	return nil
}

// MaxBlocks bounds the list Blocks returns.
const MaxBlocks = 1000

// Blocks lists whom user blocks, in the order they were blocked.
func (s *SQL) Blocks(ctx context.Context, user string) ([]string, error) {
	out := []string{}
	err := s.eachRow(ctx, s.r, `SELECT blocked_id FROM ws_blocks WHERE user_id = ? ORDER BY created_at, blocked_id LIMIT ?`,
		[]any{user, MaxBlocks}, func(r *sql.Rows) error {
			var id string
			if err := r.Scan(&id); err != nil {
				return err
			}
			out = append(out, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("store: blocks: %w", err)
	}
	return out, nil
}

// ringRefused counts the reasons callee may not be rung by caller: a block,
// and (busy counting) a call under way other than except.
const ringRefused = `SELECT
		(SELECT COUNT(*) FROM ws_blocks WHERE user_id = ? AND blocked_id = ?) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM call_members AS m JOIN calls AS c ON c.id = m.call_id
			WHERE ? = 1 AND m.user_id = ? AND c.state IN ('accepted', 'active') AND c.id <> ?
				AND (m.answer = 'accepted' OR c.created_by = m.user_id) LIMIT 1) AS b)`

func ringRefusedArgs(caller, callee, except string, busy bool) []any {
	busyArg := 0
	if busy {
		busyArg = 1
	}
	return []any{callee, caller, busyArg, callee, except}
}

// checkAvailability runs the AvailabilityCheck the write's context carries,
// if any, in the write's transaction: it fails with calls.ErrUnavailable
// when a callee refuses the caller.
func (s *SQL) checkAvailability(ctx context.Context, tx *txn) error {
	chk, ok := calls.AvailabilityCheckFrom(ctx)
	if !ok {
		return nil
	}
	for _, callee := range chk.Callees {
		var n int
		if err := tx.QueryRowContext(ctx, s.d.q(ringRefused), ringRefusedArgs(chk.Caller, callee, chk.Except, chk.Busy)...).Scan(&n); err != nil {
			return fmt.Errorf("store: check availability: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("store: %w", calls.ErrUnavailable)
		}
	}
	return nil
}
