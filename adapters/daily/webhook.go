package daily

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Headers Daily signs its webhooks with.
const (
	SignatureHeader = "X-Webhook-Signature"
	TimestampHeader = "X-Webhook-Timestamp"
)

// ReplayWindow is how far the signed timestamp may lie from now, either
// way: wide enough for clock skew and retries, narrow enough that a
// captured delivery is soon useless.
const ReplayWindow = 5 * time.Minute

// Daily event types callgate understands; every other type is
// acknowledged and ignored.
const (
	eventMeetingStarted    = "meeting.started"
	eventMeetingEnded      = "meeting.ended"
	eventParticipantJoined = "participant.joined"
	eventParticipantLeft   = "participant.left"
	eventRecordingReady    = "recording.ready-to-download"
)

// dailyEvent is the webhook envelope {version, type, id, payload,
// event_ts}.
type dailyEvent struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	EventTS *float64 `json:"event_ts"`
	Payload struct {
		Room      string  `json:"room"`
		RoomName  string  `json:"room_name"`
		UserID    string  `json:"user_id"`
		UserName  string  `json:"user_name"`
		SessionID string  `json:"session_id"`
		StartTS   float64 `json:"start_ts"`
		// Recordings.
		RecordingID string  `json:"recording_id"`
		Duration    float64 `json:"duration"`
		Status      string  `json:"status"`
	} `json:"payload"`
}

// ReceiveWebhook verifies a Daily webhook and turns it into provider
// events. Errors wrap calls.ErrWebhookUnauthenticated or
// calls.ErrWebhookMalformed; types callgate has no use for give no events
// and no error, so Daily does not retry them.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	if err := ctx.Err(); err != nil {
		return calls.ProviderWebhook{}, fmt.Errorf("daily: webhook: %w", err)
	}
	if isVerificationPing(req.Body) {
		// Daily's check when a webhook is created expects a quick 200. It
		// carries nothing, so answering it changes nothing.
		return calls.ProviderWebhook{Events: []calls.ProviderEvent{}}, nil
	}
	if err := p.verify(req); err != nil {
		return calls.ProviderWebhook{}, err
	}
	events, err := parseEvent(req.Body)
	return calls.ProviderWebhook{Events: events}, err
}

// isVerificationPing recognises the endpoint check Daily sends when a
// webhook is created: a JSON object whose only member is "test".
func isVerificationPing(body []byte) bool {
	body = bytes.TrimSpace(body)
	if len(body) > 64 || len(body) == 0 || body[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || len(m) != 1 {
		return false
	}
	_, ok := m["test"]
	return ok
}

// verify checks X-Webhook-Signature against every configured secret and
// the timestamp against the replay window.
func (p *Provider) verify(req calls.WebhookRequest) error {
	if len(p.secrets) == 0 {
		return fmt.Errorf("%w: daily: no webhook hmac secret is configured, so no delivery can be verified", calls.ErrWebhookUnauthenticated)
	}
	sigText := headerValue(req.Header, SignatureHeader)
	if sigText == "" {
		return fmt.Errorf("%w: daily: %s is missing", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	ts := headerValue(req.Header, TimestampHeader)
	if ts == "" {
		return fmt.Errorf("%w: daily: %s is missing", calls.ErrWebhookUnauthenticated, TimestampHeader)
	}
	unix, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil || unix <= 0 {
		return fmt.Errorf("%w: daily: %s %q is not a Unix time", calls.ErrWebhookUnauthenticated, TimestampHeader, ts)
	}
	signedAt := time.Unix(unix, 0)
	if unix > 1e12 {
		// Milliseconds.
		signedAt = time.UnixMilli(unix)
	}
	// Checked before the MAC so stale deliveries are cheap to refuse; a
	// forged fresh timestamp still fails the MAC.
	if d := p.now().Sub(signedAt); d > ReplayWindow || d < -ReplayWindow {
		return fmt.Errorf("%w: daily: %s %s is outside the %s replay window", calls.ErrWebhookUnauthenticated, TimestampHeader, signedAt.UTC().Format(time.RFC3339), ReplayWindow)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sigText))
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: daily: %s is not a base64 HMAC-SHA256", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	for _, key := range p.secrets {
		if hmac.Equal(sig, Sign(key, ts, req.Body)) {
			return nil
		}
	}
	return fmt.Errorf("%w: daily: %s does not match any configured secret", calls.ErrWebhookUnauthenticated, SignatureHeader)
}

// Sign is Daily's webhook MAC: HMAC-SHA256(key, timestamp + "." + body),
// key being the base64-decoded hmac secret.
func Sign(key []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// parseEvent turns a verified body into events.
func parseEvent(body []byte) ([]calls.ProviderEvent, error) {
	var ev dailyEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: daily: body is not a Daily event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: daily: type is missing", calls.ErrWebhookMalformed)
	}
	out := calls.ProviderEvent{DeliveryID: ev.ID, Room: ev.Payload.Room}
	if ev.EventTS != nil && *ev.EventTS > 0 && *ev.EventTS < 1e11 && !math.IsNaN(*ev.EventTS) {
		out.At = unixFloat(*ev.EventTS)
	}
	switch ev.Type {
	case eventMeetingStarted:
		out.Kind = calls.ProviderRoomStarted
	case eventMeetingEnded:
		out.Kind = calls.ProviderRoomEnded
	case eventParticipantJoined, eventParticipantLeft:
		out.Kind = calls.ProviderParticipantJoined
		if ev.Type == eventParticipantLeft {
			out.Kind = calls.ProviderParticipantLeft
		}
		// user_id is the callgate user id from the meeting token; someone
		// without a token only has a session id.
		out.Identity = firstNonEmpty(ev.Payload.UserID, ev.Payload.SessionID)
		if out.Identity == "" {
			return nil, fmt.Errorf("%w: daily: %s has neither user_id nor session_id", calls.ErrWebhookMalformed, ev.Type)
		}
		out.Name = ev.Payload.UserName
		if !out.At.IsZero() {
			out.Seq = out.At.UnixMilli()
		}
	case eventRecordingReady:
		out.Kind = calls.ProviderRecordingReady
		out.Room = ev.Payload.RoomName
		rec := &calls.Recording{Kind: "recording", ProviderID: ev.Payload.RecordingID, At: out.At}
		if ev.Payload.Duration > 0 && ev.Payload.Duration < 1e9 {
			rec.Duration = time.Duration(ev.Payload.Duration * float64(time.Second))
		}
		// Daily gives no URL here: a download link is minted on demand
		// (GET /recordings/{id}/access-link) and expires.
		out.Recording = rec
	default:
		return []calls.ProviderEvent{}, nil
	}
	if out.Room == "" {
		return nil, fmt.Errorf("%w: daily: %s names no room", calls.ErrWebhookMalformed, ev.Type)
	}
	return []calls.ProviderEvent{out}, nil
}

// headerValue reads a header whether or not the map's keys are canonical.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
