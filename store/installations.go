package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/callgate/callgate/calls"
)

var _ calls.InstallationStore = (*SQL)(nil)

// PutInstallation stores or replaces the workspace's installation.
func (s *SQL) PutInstallation(ctx context.Context, in calls.Installation) error {
	data, err := json.Marshal(in.Data)
	if err != nil {
		return fmt.Errorf("store: installation %s/%s: %w", in.Chat, in.Workspace, err)
	}
	if in.Data == nil {
		data = []byte("{}")
	}
	_, err = s.w.ExecContext(ctx, s.d.q(`INSERT INTO installations (chat, workspace, secret, data, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (chat, workspace) DO UPDATE SET secret = excluded.secret, data = excluded.data, updated_at = excluded.updated_at`),
		in.Chat, in.Workspace, in.Secret, string(data), s.d.timeArg(in.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: put installation %s/%s: %w", in.Chat, in.Workspace, err)
	}
	return nil
}

// GetInstallation returns the workspace's installation or ErrNotFound.
func (s *SQL) GetInstallation(ctx context.Context, chat, workspace string) (calls.Installation, error) {
	in := calls.Installation{Chat: chat, Workspace: workspace}
	var data []byte
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT secret, data, updated_at FROM installations WHERE chat = ? AND workspace = ?`), chat, workspace).
		Scan(&in.Secret, &data, timeCol{&in.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return calls.Installation{}, fmt.Errorf("store: no installation of %s in %s: %w", chat, workspace, calls.ErrNotFound)
	}
	if err != nil {
		return calls.Installation{}, fmt.Errorf("store: get installation %s/%s: %w", chat, workspace, err)
	}
	if err := json.Unmarshal(data, &in.Data); err != nil {
		return calls.Installation{}, fmt.Errorf("store: installation %s/%s: %w", chat, workspace, err)
	}
	return in, nil
}

// DeleteInstallation removes the workspace's installation, if any.
func (s *SQL) DeleteInstallation(ctx context.Context, chat, workspace string) error {
	if _, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM installations WHERE chat = ? AND workspace = ?`), chat, workspace); err != nil {
		return fmt.Errorf("store: delete installation %s/%s: %w", chat, workspace, err)
	}
	return nil
}
