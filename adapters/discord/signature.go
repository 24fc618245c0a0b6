package discord

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/callgate/callgate/calls"
)

// Headers Discord signs interactions with.
const (
	HeaderSignature = "X-Signature-Ed25519"
	HeaderTimestamp = "X-Signature-Timestamp"
)

// maxTimestampLength bounds X-Signature-Timestamp (Unix seconds).
const maxTimestampLength = 12

// Sign returns the X-Signature-Ed25519 value Discord would send for body
// at timestamp ts (the X-Signature-Timestamp value): hex(Ed25519(key,
// ts + body)). Tests and tools use it; Discord signs real interactions.
func Sign(key ed25519.PrivateKey, ts string, body []byte) string {
	msg := make([]byte, 0, len(ts)+len(body))
	msg = append(append(msg, ts...), body...)
	return hex.EncodeToString(ed25519.Sign(key, msg))
}

// VerifySignature checks X-Signature-Ed25519 over X-Signature-Timestamp +
// body against the public keys (any one may match), as Discord signs and
// as discord-interactions' verifyKey checks; it does not look at the
// timestamp's age (Verify does). Errors wrap calls.ErrWebhookUnauthenticated.
func VerifySignature(h http.Header, body []byte, keys ...[]byte) (ts string, sig []byte, err error) {
	sigs, tss := h.Values(HeaderSignature), h.Values(HeaderTimestamp)
	switch {
	case len(sigs) == 0 || sigs[0] == "":
		return "", nil, unauthenticated("missing %s header", HeaderSignature)
	case len(tss) == 0 || tss[0] == "":
		return "", nil, unauthenticated("missing %s header", HeaderTimestamp)
	case len(sigs) > 1 || len(tss) > 1:
		return "", nil, unauthenticated("repeated signature headers")
	}
	ts = tss[0]
	if len(ts) > maxTimestampLength {
		return "", nil, unauthenticated("%s is too long", HeaderTimestamp)
	}
	sig, err = hex.DecodeString(sigs[0])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, unauthenticated("%s must be %d hex digits", HeaderSignature, 2*ed25519.SignatureSize)
	}
	msg := make([]byte, 0, len(ts)+len(body))
	msg = append(append(msg, ts...), body...)
	ok := false
	for _, k := range keys {
		// ed25519.Verify's time depends only on public values (the key,
		// the message and the signature), so trying each key leaks nothing.
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(k), msg, sig) {
			ok = true
		}
	}
	if !ok {
		return "", nil, unauthenticated("signature does not match the application's public key")
	}
	return ts, sig, nil
}

// Verify is VerifySignature plus the bound Discord's libraries leave out:
// the timestamp must be Unix seconds within maxAge of now, either way.
func Verify(h http.Header, body []byte, now time.Time, maxAge time.Duration, keys ...[]byte) (time.Time, []byte, error) {
	ts, sig, err := VerifySignature(h, body, keys...)
	if err != nil {
		return time.Time{}, nil, err
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return time.Time{}, nil, unauthenticated("%s must be Unix seconds", HeaderTimestamp)
	}
	at := time.Unix(unix, 0)
	if age := now.Sub(at); age > maxAge || age < -maxAge {
		return time.Time{}, nil, unauthenticated("timestamp is %s away from the gateway's clock (at most %s allowed)", age.Abs().Truncate(time.Second), maxAge)
	}
	return at, sig, nil
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrWebhookUnauthenticated, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrWebhookMalformed, fmt.Sprintf(format, args...))
}
