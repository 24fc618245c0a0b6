package streamchat

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/callgate/callgate/calls"
)

// Webhook headers Stream sends.
const (
	HeaderSignature = "X-Signature"
	HeaderWebhookID = "X-Webhook-Id"
	HeaderAPIKey    = "X-Api-Key"
)

// MaxBodyBytes bounds a (decompressed) request body.
const MaxBodyBytes = 1 << 20

// Sign is the X-Signature of a body: lowercase hex HMAC-SHA256 of the raw,
// uncompressed body under the API secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Gunzip returns body inflated when it starts with the gzip magic bytes
// (1f 8b), as Stream's SDKs detect it, and body itself otherwise. At most
// MaxBodyBytes are inflated.
func Gunzip(body []byte) ([]byte, error) {
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: the gzip body is corrupt", calls.ErrWebhookMalformed)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: the gzip body is corrupt", calls.ErrWebhookMalformed)
	}
	if len(out) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: the body inflates to more than %d bytes", calls.ErrWebhookMalformed, MaxBodyBytes)
	}
	return out, nil
}

// VerifyWebhook checks X-Signature against the uncompressed body under
// each secret (constant time, every comparison made) and returns the
// uncompressed body. Errors wrap calls.ErrWebhookUnauthenticated (or
// calls.ErrWebhookMalformed for a corrupt gzip body) and hold no secret.
func VerifyWebhook(h http.Header, body []byte, secrets ...[]byte) ([]byte, error) {
	values := h.Values(HeaderSignature)
	if len(values) == 0 || values[0] == "" {
		return nil, fmt.Errorf("%w: missing %s header", calls.ErrWebhookUnauthenticated, HeaderSignature)
	}
	if len(values) > 1 {
		return nil, fmt.Errorf("%w: more than one %s header", calls.ErrWebhookUnauthenticated, HeaderSignature)
	}
	sig, err := hex.DecodeString(strings.TrimSpace(values[0]))
	if err != nil || len(sig) != sha256.Size {
		return nil, fmt.Errorf("%w: %s must be 64 hex digits", calls.ErrWebhookUnauthenticated, HeaderSignature)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret to verify with", calls.ErrWebhookUnauthenticated)
	}
	plain, err := Gunzip(body)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, secret := range secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(plain)
		if hmac.Equal(sig, m.Sum(nil)) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: signature does not match", calls.ErrWebhookUnauthenticated)
	}
	return plain, nil
}
