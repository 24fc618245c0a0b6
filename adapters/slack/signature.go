package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Slack's request headers.
const (
	HeaderSignature   = "X-Slack-Signature"
	HeaderTimestamp   = "X-Slack-Request-Timestamp"
	HeaderRetryNum    = "X-Slack-Retry-Num"
	HeaderRetryReason = "X-Slack-Retry-Reason"
)

// MaxSkew is Slack's replay window: a request whose timestamp is further
// than this from now, either way, is refused.
const MaxSkew = 5 * time.Minute

// Sign returns the X-Slack-Signature of a body sent at timestamp (Unix
// seconds, as written in X-Slack-Request-Timestamp):
//
//	"v0=" + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body))
func Sign(secret []byte, timestamp string, body []byte) string {
	return "v0=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v0:"))
	m.Write([]byte(ts))
	m.Write([]byte{':'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a request as slack-go's SecretsVerifier does, with the
// caller's clock: X-Slack-Signature must be the v0 HMAC of one of the
// secrets (compared in constant time, every secret tried), and
// X-Slack-Request-Timestamp within MaxSkew of now. Errors wrap
// calls.ErrWebhookUnauthenticated and never hold a secret.
func Verify(h http.Header, body []byte, now time.Time, secrets ...[]byte) error {
	tsValues := h.Values(HeaderTimestamp)
	if len(tsValues) != 1 || tsValues[0] == "" {
		return unauthenticated("want exactly one %s header", HeaderTimestamp)
	}
	ts := tsValues[0]
	if len(ts) > 12 || strings.TrimLeft(ts, "0123456789") != "" {
		return unauthenticated("%s must be Unix seconds", HeaderTimestamp)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthenticated("%s must be Unix seconds", HeaderTimestamp)
	}
	sigValues := h.Values(HeaderSignature)
	if len(sigValues) != 1 {
		return unauthenticated("want exactly one %s header", HeaderSignature)
	}
	hexSig, ok := strings.CutPrefix(sigValues[0], "v0=")
	if !ok {
		return unauthenticated("%s is not a v0 signature", HeaderSignature)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return unauthenticated("%s must be v0= and 64 hex digits", HeaderSignature)
	}
	if len(secrets) == 0 {
		return unauthenticated("no signing secret to verify with")
	}
	match := false
	for _, secret := range secrets {
		// Every secret is tried, so the time taken does not tell which
		// one matched.
		if hmac.Equal(sig, mac(secret, ts, body)) {
			match = true
		}
	}
	if !match {
		return unauthenticated("signature does not match")
	}
	skew := now.Sub(time.Unix(unix, 0))
	if skew > MaxSkew || skew < -MaxSkew {
		return unauthenticated("timestamp is %s away from the gateway's clock (at most %s allowed)", skew.Abs().Truncate(time.Second), MaxSkew)
	}
	return nil
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: slack: %s", calls.ErrWebhookUnauthenticated, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: slack: %s", calls.ErrWebhookMalformed, fmt.Sprintf(format, args...))
}
