package agora

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Headers NCS signs its callbacks in: hex HMAC-SHA256 and, the older one,
// hex HMAC-SHA1, both keyed with the project's NCS secret over the raw body.
const (
	SignatureV2Header = "Agora-Signature-V2"
	SignatureV1Header = "Agora-Signature"
)

// ReplayWindow is how far a callback's notifyMs (signed, as part of the
// body) may lie from now, either way. Agora sets notifyMs when it sends and
// again when it resends, so a genuine delivery is always fresh; a captured
// one is useless after the window.
const ReplayWindow = 5 * time.Minute

// productRTC is NCS's productId of real-time communication (channel
// events); other products (cloud recording, media push, …) reuse small event
// numbers for other things and give no events here.
const productRTC = 1

// NCS channel event types (RTC product).
const (
	eventChannelCreate   = 101
	eventChannelDestroy  = 102
	eventBroadcasterJoin = 103
	eventBroadcasterQuit = 104
	eventAudienceJoin    = 105
	eventAudienceQuit    = 106
	eventCommJoin        = 107
	eventCommQuit        = 108
)

// ncsNotice is an NCS callback body. Numbers whose type varies by product or
// that may exceed float precision are json.Number.
type ncsNotice struct {
	NoticeID  string          `json:"noticeId"`
	ProductID json.Number     `json:"productId"`
	EventType json.Number     `json:"eventType"`
	NotifyMs  json.Number     `json:"notifyMs"`
	SID       string          `json:"sid"`
	Payload   json.RawMessage `json:"payload"`
}

// channelPayload is the payload of channel events 101–108.
type channelPayload struct {
	ChannelName string      `json:"channelName"`
	UID         json.Number `json:"uid"`
	ClientSeq   json.Number `json:"clientSeq"`
	TS          json.Number `json:"ts"` // Unix seconds of the event
}

// WebhookProvider is a Provider that also verifies and parses NCS webhooks.
type WebhookProvider struct {
	*Provider
}

// ReceiveWebhook verifies an NCS callback and turns it into provider events.
// Errors wrap calls.ErrWebhookUnauthenticated or calls.ErrWebhookMalformed;
// events callgate has no use for give no events and no error, so Agora stops
// resending them.
func (w *WebhookProvider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	events, err := w.parseWebhook(ctx, req)
	return calls.ProviderWebhook{Events: events}, err
}

func (p *Provider) parseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("agora: webhook: %w", err)
	}
	if err := p.verify(req); err != nil {
		return nil, err
	}

	var n ncsNotice
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("%w: agora: body is not an NCS notice: %w", calls.ErrWebhookMalformed, err)
	}
	// The signed body's notifyMs is the replay guard.
	notify, err := n.NotifyMs.Int64()
	if err != nil || notify <= 0 {
		return nil, fmt.Errorf("%w: agora: notice has no notifyMs to check its freshness", calls.ErrWebhookUnauthenticated)
	}
	sent := time.UnixMilli(notify)
	if d := p.now().Sub(sent); d > ReplayWindow || d < -ReplayWindow {
		return nil, fmt.Errorf("%w: agora: notifyMs %s is outside the %s replay window", calls.ErrWebhookUnauthenticated, sent.UTC().Format(time.RFC3339), ReplayWindow)
	}
	if n.EventType == "" {
		return nil, fmt.Errorf("%w: agora: eventType is missing", calls.ErrWebhookMalformed)
	}
	product, err1 := n.ProductID.Int64()
	event, err2 := n.EventType.Int64()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: agora: productId and eventType must be integers", calls.ErrWebhookMalformed)
	}
	if product != productRTC {
		return []calls.ProviderEvent{}, nil
	}

	var kind calls.ProviderEventKind
	switch event {
	case eventChannelCreate:
		kind = calls.ProviderRoomStarted
	case eventChannelDestroy:
		kind = calls.ProviderRoomEnded
	case eventBroadcasterJoin, eventAudienceJoin, eventCommJoin:
		kind = calls.ProviderParticipantJoined
	case eventBroadcasterQuit, eventAudienceQuit, eventCommQuit:
		kind = calls.ProviderParticipantLeft
	default:
		return []calls.ProviderEvent{}, nil
	}

	var pl channelPayload
	pdec := json.NewDecoder(bytes.NewReader(n.Payload))
	pdec.UseNumber()
	if len(n.Payload) == 0 || pdec.Decode(&pl) != nil {
		return nil, fmt.Errorf("%w: agora: event %d has no channel payload", calls.ErrWebhookMalformed, event)
	}
	if pl.ChannelName == "" {
		return nil, fmt.Errorf("%w: agora: event %d has no payload.channelName", calls.ErrWebhookMalformed, event)
	}
	out := calls.ProviderEvent{
		DeliveryID: n.NoticeID,
		Kind:       kind,
		Room:       pl.ChannelName,
		At:         sent.UTC(),
	}
	// ts is when the event happened; notifyMs when this copy was sent.
	if ts, err := pl.TS.Int64(); err == nil && ts > 0 {
		out.At = time.Unix(ts, 0).UTC()
	}
	if kind == calls.ProviderParticipantJoined || kind == calls.ProviderParticipantLeft {
		uid, err := strconv.ParseUint(pl.UID.String(), 10, 32)
		if err != nil || uid == 0 {
			return nil, fmt.Errorf("%w: agora: event %d has no valid payload.uid", calls.ErrWebhookMalformed, event)
		}
		out.Identity = strconv.FormatUint(uid, 10)
		// clientSeq orders one uid's joins and leaves; Agora says to order by
		// it rather than by arrival. Absent, the event applies unordered.
		if pl.ClientSeq != "" {
			seq, err := pl.ClientSeq.Int64()
			if err != nil || seq < 0 {
				return nil, fmt.Errorf("%w: agora: event %d has an invalid payload.clientSeq", calls.ErrWebhookMalformed, event)
			}
			out.Seq = seq
		}
	}
	return []calls.ProviderEvent{out}, nil
}

// verify checks the NCS signature against every configured secret.
// Agora-Signature-V2 (HMAC-SHA256) is used when present; only without it does
// the older Agora-Signature (HMAC-SHA1) count, for apps whose callbacks carry
// just that one. A present but wrong V2 is not rescued by a V1.
func (p *Provider) verify(req calls.WebhookRequest) error {
	if len(p.ncs) == 0 {
		return fmt.Errorf("%w: agora: no ncs_secret is configured, so no callback can be verified", calls.ErrWebhookUnauthenticated)
	}
	header, newHash, size := SignatureV2Header, sha256.New, sha256.Size
	got := headerValue(req.Header, header)
	if got == "" {
		header, newHash, size = SignatureV1Header, sha1.New, sha1.Size
		got = headerValue(req.Header, header)
	}
	if got == "" {
		return fmt.Errorf("%w: agora: neither %s nor %s header is present", calls.ErrWebhookUnauthenticated, SignatureV2Header, SignatureV1Header)
	}
	sig, err := hex.DecodeString(strings.TrimSpace(got))
	if err != nil || len(sig) != size {
		return fmt.Errorf("%w: agora: %s is not a hex HMAC", calls.ErrWebhookUnauthenticated, header)
	}
	for _, secret := range p.ncs {
		if hmac.Equal(sig, mac(newHash, secret, req.Body)) {
			return nil
		}
	}
	return fmt.Errorf("%w: agora: %s does not match any configured secret", calls.ErrWebhookUnauthenticated, header)
}

func mac(h func() hash.Hash, key, body []byte) []byte {
	m := hmac.New(h, key)
	m.Write(body)
	return m.Sum(nil)
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
