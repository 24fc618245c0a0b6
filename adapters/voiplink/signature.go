package voiplink

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

// Headers of both directions.
const (
	// HeaderTimestamp is the signing time in Unix seconds.
	HeaderTimestamp = "X-Callgate-Timestamp"
	// HeaderSignature is one or more "v1=<hex>" values, comma-separated.
	HeaderSignature = "X-Callgate-Signature"
	// HeaderDelivery identifies a delivery; it is the same on every retry.
	HeaderDelivery = "X-Callgate-Delivery"
	// HeaderVersion is the call version a callback shows.
	HeaderVersion = "X-Callgate-Version"
)

// signatureScheme prefixes a signature value; other schemes are ignored, so
// a future scheme can be added beside it.
const signatureScheme = "v1="

// maxSignatures bounds the work one request can cause.
const maxSignatures = 8

// Sign returns the X-Callgate-Signature value for a body sent at ts:
//
//	"v1=" + hex(HMAC-SHA256(secret, "<ts in Unix seconds>" + "." + body))
//
// The X-Callgate-Timestamp header must carry the same Unix seconds.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return signatureScheme + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signed request's X-Callgate-Timestamp and
// X-Callgate-Signature headers against its raw body: one of the v1
// signatures must be the HMAC of one of the secrets (compared in constant
// time), and the timestamp must lie within maxSkew of now, either way
// (maxSkew <= 0 means DefaultMaxSkew). Errors wrap
// calls.ErrWebhookUnauthenticated and never contain a secret.
//
// An app verifies callgate's callbacks with it exactly as the gateway
// verifies the app's commands:
//
//	err := voiplink.Verify(r.Header, body, time.Now(), 5*time.Minute, []byte(secret))
func Verify(h http.Header, body []byte, now time.Time, maxSkew time.Duration, secrets ...[]byte) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	tsValues := h.Values(HeaderTimestamp)
	if len(tsValues) == 0 || tsValues[0] == "" {
		return unauthenticated("missing %s header", HeaderTimestamp)
	}
	if len(tsValues) > 1 {
		return unauthenticated("more than one %s header", HeaderTimestamp)
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
	if len(sigValues) == 0 {
		return unauthenticated("missing %s header", HeaderSignature)
	}
	var sigs [][]byte
	for _, line := range sigValues {
		for v := range strings.SplitSeq(line, ",") {
			v = strings.TrimSpace(v)
			hexSig, ok := strings.CutPrefix(v, signatureScheme)
			if !ok {
				continue // another scheme: ignored
			}
			if len(sigs) == maxSignatures {
				return unauthenticated("more than %d signatures", maxSignatures)
			}
			sig, err := hex.DecodeString(hexSig)
			if err != nil || len(sig) != sha256.Size {
				return unauthenticated("%s: a v1 signature must be 64 hex digits", HeaderSignature)
			}
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return unauthenticated("%s has no v1 signature", HeaderSignature)
	}
	if len(secrets) == 0 {
		return unauthenticated("no secret to verify with")
	}
	ok := false
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, sig := range sigs {
			// Every comparison runs, so the time taken does not tell which
			// secret or signature matched.
			if hmac.Equal(sig, want) {
				ok = true
			}
		}
	}
	if !ok {
		return unauthenticated("signature does not match")
	}
	skew := now.Sub(time.Unix(unix, 0))
	if skew > maxSkew || skew < -maxSkew {
		return unauthenticated("timestamp is %s away from the gateway's clock (at most %s allowed)", skew.Abs().Truncate(time.Second), maxSkew)
	}
	return nil
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrWebhookUnauthenticated, fmt.Sprintf(format, args...))
}
