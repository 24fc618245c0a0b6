package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

var _ calls.RingPreferences = (*SQL)(nil)

// SetRingOptOut records or forgets that a chat user does not want to be
// rung by name.
func (s *SQL) SetRingOptOut(ctx context.Context, chat, userID string, out bool, at time.Time) error {
	var err error
	if out {
		_, err = s.w.ExecContext(ctx, s.d.q(`INSERT INTO ring_optouts (chat, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT (chat, user_id) DO NOTHING`),
			chat, userID, s.d.timeArg(at))
	} else {
		_, err = s.w.ExecContext(ctx, s.d.q(`DELETE FROM ring_optouts WHERE chat = ? AND user_id = ?`), chat, userID)
	}
	if err != nil {
		return fmt.Errorf("store: ring preference of %s/%s: %w", chat, userID, err)
	}
	return nil
}

// RingOptOuts returns which of the users of chat opted out of being rung.
func (s *SQL) RingOptOuts(ctx context.Context, chat string, userIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(userIDs) == 0 {
		return out, nil
	}
	args := []any{chat}
	for _, u := range userIDs {
		args = append(args, u)
	}
	query := `SELECT user_id FROM ring_optouts WHERE chat = ? AND user_id IN (?` + strings.Repeat(", ?", len(userIDs)-1) + `)`
	rows, err := s.r.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: ring preferences of %s: %w", chat, err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: ring preferences of %s: %w", chat, err)
		}
		out[u] = true
	}
	return out, rows.Err()
}
