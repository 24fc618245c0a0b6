package calls

import (
	"crypto/sha256"
	"encoding/hex"
)

// hashKey shortens a surface key to 16 hex characters for delivery ids: the
// key may hold characters a header or URL would need to escape.
func hashKey(k SurfaceKey) string {
	sum := sha256.Sum256([]byte(k.Chat + "\x00" + k.Workspace + "\x00" + k.Channel))
	return hex.EncodeToString(sum[:8])
}
