package jitsi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// SignatureHeader is the header JaaS signs its webhooks in.
const SignatureHeader = "X-Jaas-Signature"

// ReplayWindow is how far the signed timestamp may lie from now, either way.
// JaaS signs the delivery time, so retries carry a fresh timestamp; five
// minutes absorbs clock skew and slow delivery while making a captured
// request useless soon after.
const ReplayWindow = 5 * time.Minute

// JaaS event types callgate understands; every other type is acknowledged and
// ignored.
const (
	eventRoomCreated       = "ROOM_CREATED"
	eventRoomDestroyed     = "ROOM_DESTROYED"
	eventParticipantJoined = "PARTICIPANT_JOINED"
	eventParticipantLeft   = "PARTICIPANT_LEFT"
)

// disconnectSwitchRoom is the PARTICIPANT_LEFT reason JaaS gives when someone
// moves between the main room and a breakout room: they are still in the call.
const disconnectSwitchRoom = "switch_room"

// jaasEvent is the JaaS webhook body
// (https://developer.8x8.com/jaas/docs/webhooks-payload). Only the fields
// callgate uses are decoded, so a new or retyped field (data.moderator is
// documented as boolean or string) cannot make a delivery fail.
type jaasEvent struct {
	IdempotencyKey string `json:"idempotencyKey"`
	EventType      string `json:"eventType"`
	Timestamp      int64  `json:"timestamp"` // Unix milliseconds
	FQN            string `json:"fqn"`       // "<AppID>/<room name>"
	Data           struct {
		// ID is context.user.id from the JWT the person joined with: for
		// tokens callgate minted, the chat user id.
		ID string `json:"id"`
		// ParticipantID identifies the connection; the only identity a
		// guest without a token has.
		ParticipantID    string   `json:"participantId"`
		Name             string   `json:"name"`
		IsBreakout       flexBool `json:"isBreakout"`
		DisconnectReason string   `json:"disconnectReason"`
	} `json:"data"`
}

// flexBool accepts true/false and "true"/"false": JaaS documents some flags
// as "boolean or string".
type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	switch string(bytes.TrimSpace(raw)) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`, "null", `""`:
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", raw)
	}
	return nil
}

// ReceiveWebhook verifies a JaaS webhook and turns it into provider events.
// Verification comes first: nothing in an unauthenticated body is parsed.
// Errors wrap calls.ErrWebhookUnauthenticated or calls.ErrWebhookMalformed.
// Event types callgate has no use for give no events and no error, so JaaS
// stops retrying them.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	events, err := p.parseWebhook(ctx, req)
	return calls.ProviderWebhook{Events: events}, err
}

func (p *Provider) parseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jitsi: webhook: %w", err)
	}
	signedAt, err := p.verify(req)
	if err != nil {
		return nil, err
	}

	var ev jaasEvent
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		return nil, fmt.Errorf("%w: jitsi: body is not a JaaS event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.EventType == "" {
		return nil, fmt.Errorf("%w: jitsi: eventType is missing", calls.ErrWebhookMalformed)
	}
	if ev.FQN == "" {
		return nil, fmt.Errorf("%w: jitsi: fqn is missing", calls.ErrWebhookMalformed)
	}
	_, room, ok := strings.Cut(ev.FQN, "/")
	if !ok || room == "" {
		return nil, fmt.Errorf("%w: jitsi: fqn %q is not \"<appId>/<room>\"", calls.ErrWebhookMalformed, ev.FQN)
	}

	out := calls.ProviderEvent{
		DeliveryID: ev.IdempotencyKey,
		Room:       room,
	}
	// The body's timestamp is when the event happened and, per the docs, the
	// source of truth for ordering since deliveries may arrive out of order;
	// it orders joins and leaves. Without one, fall back to the signing time
	// and leave Seq at 0 ("no order").
	if ev.Timestamp > 0 {
		out.Seq = ev.Timestamp
		out.At = time.UnixMilli(ev.Timestamp).UTC()
	} else {
		out.At = signedAt.UTC()
	}

	switch ev.EventType {
	case eventRoomCreated, eventRoomDestroyed:
		// A breakout room opening or closing says nothing about the call.
		if ev.Data.IsBreakout {
			return []calls.ProviderEvent{}, nil
		}
		out.Kind = calls.ProviderRoomStarted
		if ev.EventType == eventRoomDestroyed {
			out.Kind = calls.ProviderRoomEnded
		}
	case eventParticipantJoined, eventParticipantLeft:
		// Moving to or from a breakout room is a leave in one room and a
		// join in another; the person never left the call.
		if ev.EventType == eventParticipantLeft && ev.Data.DisconnectReason == disconnectSwitchRoom {
			return []calls.ProviderEvent{}, nil
		}
		out.Kind = calls.ProviderParticipantJoined
		if ev.EventType == eventParticipantLeft {
			out.Kind = calls.ProviderParticipantLeft
		}
		// The JWT user id ties the participant to a call member; a guest
		// without a token only has the connection id.
		out.Identity = ev.Data.ID
		if out.Identity == "" {
			out.Identity = ev.Data.ParticipantID
		}
		if out.Identity == "" {
			return nil, fmt.Errorf("%w: jitsi: %s has neither data.id nor data.participantId", calls.ErrWebhookMalformed, ev.EventType)
		}
		out.Name = ev.Data.Name
	default:
		return []calls.ProviderEvent{}, nil
	}
	return []calls.ProviderEvent{out}, nil
}

// verify checks X-Jaas-Signature as documented at
// https://developer.8x8.com/jaas/docs/webhooks-signatures: the header is a
// comma-separated list of "prefix=value" elements, t is the Unix time in
// seconds, and each v1 is base64(HMAC-SHA256(secret, t + "." + raw body)).
// It returns the signed time.
func (p *Provider) verify(req calls.WebhookRequest) (time.Time, error) {
	if len(p.webhook) == 0 {
		return time.Time{}, fmt.Errorf("%w: jitsi: no webhook secret is configured, so no delivery can be verified", calls.ErrWebhookUnauthenticated)
	}
	header := headerValue(req.Header, SignatureHeader)
	if header == "" {
		return time.Time{}, fmt.Errorf("%w: jitsi: %s header is missing", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}

	var ts string
	var sigs [][]byte
	for _, el := range strings.Split(header, ",") {
		el = strings.TrimSpace(el)
		if el == "" {
			continue
		}
		// Cut at the first "=": base64 values end in "=" padding.
		prefix, value, ok := strings.Cut(el, "=")
		if !ok {
			return time.Time{}, fmt.Errorf("%w: jitsi: %s element %q is not prefix=value", calls.ErrWebhookUnauthenticated, SignatureHeader, el)
		}
		switch prefix {
		case "t":
			if ts != "" {
				return time.Time{}, fmt.Errorf("%w: jitsi: %s has more than one timestamp", calls.ErrWebhookUnauthenticated, SignatureHeader)
			}
			ts = value
		case "v1":
			sig, err := base64.StdEncoding.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				// One garbled signature does not spoil a valid one next to it.
				continue
			}
			sigs = append(sigs, sig)
		default:
			// Other schemes (v0, future ones) are ignored, as the docs ask,
			// so a downgraded signature never counts.
		}
	}
	if ts == "" {
		return time.Time{}, fmt.Errorf("%w: jitsi: %s has no t= timestamp", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: jitsi: %s timestamp %q is not a Unix time", calls.ErrWebhookUnauthenticated, SignatureHeader, ts)
	}
	if len(sigs) == 0 {
		return time.Time{}, fmt.Errorf("%w: jitsi: %s has no valid v1 signature", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}

	// Checked before the MAC so stale deliveries are cheap to turn away;
	// the timestamp only becomes trustworthy once the MAC matches, and a
	// forged fresh timestamp fails the MAC below.
	signedAt := time.Unix(unix, 0)
	if d := p.now().Sub(signedAt); d > ReplayWindow || d < -ReplayWindow {
		return time.Time{}, fmt.Errorf("%w: jitsi: signature timestamp %s is outside the %s replay window", calls.ErrWebhookUnauthenticated, signedAt.UTC().Format(time.RFC3339), ReplayWindow)
	}

	for _, secret := range p.webhook {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(req.Body)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return signedAt, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%w: jitsi: %s does not match any configured secret", calls.ErrWebhookUnauthenticated, SignatureHeader)
}

// headerValue reads a header whether or not the map's keys are canonical:
// WebhookRequest.Header may be built by hand rather than by net/http.
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
