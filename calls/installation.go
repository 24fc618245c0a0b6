package calls

import (
	"context"
	"time"
)

// Installation is a chat platform app installed in one workspace (a Slack
// team, say): what the adapter needs to act there. Secret is sealed by the
// adapter (encrypted with a key from the YAML) before it is stored; the
// store keeps bytes it cannot read.
type Installation struct {
	Chat      string
	Workspace string
	Secret    []byte
	// Data holds facts that are not secret (bot user id, team name).
	Data      map[string]string
	UpdatedAt time.Time
}

// InstallationStore keeps installations. Get returns ErrNotFound for a
// workspace without one; Delete of a missing one is not an error.
type InstallationStore interface {
	PutInstallation(ctx context.Context, in Installation) error
	GetInstallation(ctx context.Context, chat, workspace string) (Installation, error)
	DeleteInstallation(ctx context.Context, chat, workspace string) error
}
