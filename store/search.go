package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// maxSearch bounds one page of the call history.
const maxSearch = 200

// SearchCalls returns calls matching q, newest first (created_at, then id,
// descending), a page at a time. The cursor is the last call's position
// (keyset pagination): pages stay stable while new calls arrive, and a page
// costs the same however deep it is.
func (s *SQL) SearchCalls(ctx context.Context, q calls.SearchQuery) ([]calls.Call, string, error) {
	limit := q.Limit
	if limit <= 0 || limit > maxSearch {
		limit = maxSearch
	}
	query, args, err := searchQuery(s.d, q)
	if err != nil {
		return nil, "", err
	}

	tx, err := s.r.BeginTx(ctx, snapshot)
	if err != nil {
		return nil, "", fmt.Errorf("store: search calls: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: search calls: %w", err)
	}
	var out []calls.Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("store: search calls: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: search calls: %w", err)
	}
	rows.Close()
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	ptrs := make([]*calls.Call, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := s.loadChildren(ctx, tx, ptrs); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// searchQuery is SearchCalls' statement, with ? placeholders, and its
// arguments.
func searchQuery(d dialect, q calls.SearchQuery) (string, []any, error) {
	limit := q.Limit
	if limit <= 0 || limit > maxSearch {
		limit = maxSearch
	}
	var (
		where []string
		args  []any
	)
	if q.Chat != "" || q.Workspace != "" || q.Channel != "" {
		// The calls shown in the place (call_surfaces_place), not a walk
		// over every call checking each.
		var cond []string
		for _, f := range []struct{ col, v string }{{"s.chat", q.Chat}, {"s.workspace", q.Workspace}, {"s.channel", q.Channel}} {
			if f.v != "" {
				cond = append(cond, f.col+" = ?")
				args = append(args, f.v)
			}
		}
		where = append(where, `calls.id IN (SELECT s.call_id FROM call_surfaces s WHERE `+strings.Join(cond, " AND ")+`)`)
	}
	if q.UserID != "" {
		// The user's calls through calls_created_by and call_members_user.
		where = append(where, `calls.id IN (SELECT c.id FROM calls c WHERE c.created_by = ? UNION SELECT m.call_id FROM call_members m WHERE m.user_id = ?)`)
		args = append(args, q.UserID, q.UserID)
	}
	if len(q.States) > 0 {
		where = append(where, `calls.state IN (`+marks(len(q.States))+`)`)
		for _, st := range q.States {
			args = append(args, string(st))
		}
	}
	if !q.Since.IsZero() {
		where = append(where, `calls.created_at >= ?`)
		args = append(args, d.timeArg(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, `calls.created_at < ?`)
		args = append(args, d.timeArg(q.Until))
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return "", nil, fmt.Errorf("store: search calls: %w: %w", calls.ErrInvalidInput, err)
		}
		// A row value, so the page starts with a seek into calls_created
		// rather than a walk from the newest call.
		where = append(where, `(calls.created_at, calls.id) < (?, ?)`)
		args = append(args, d.timeArg(at), id)
	}
	query := selectCalls
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY calls.created_at DESC, calls.id DESC LIMIT ?`
	args = append(args, limit+1)

	return query, args, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("cursor is not one this API gave")
	}
	us, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", fmt.Errorf("cursor is not one this API gave")
	}
	if _, err := calls.NormalizeID(id); err != nil {
		return time.Time{}, "", fmt.Errorf("cursor is not one this API gave")
	}
	return time.UnixMicro(n).UTC(), id, nil
}
