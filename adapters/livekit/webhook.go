package livekit

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/callgate/callgate/calls"
)

// AuthHeader carries a webhook's signature: the raw JWT, no "Bearer ".
const AuthHeader = "Authorization"

// tokenLeeway is the clock skew allowed on the webhook JWT's exp and nbf,
// as protocol's auth verifier allows.
const tokenLeeway = time.Minute

// LiveKit webhook event names callgate understands; every other one is
// acknowledged and ignored.
const (
	eventRoomStarted       = "room_started"
	eventRoomFinished      = "room_finished"
	eventParticipantJoined = "participant_joined"
	eventParticipantLeft   = "participant_left"
	eventParticipantAbort  = "participant_connection_aborted"
	eventEgressEnded       = "egress_ended"
)

// webhookClaims is the webhook JWT: registered claims plus LiveKit's
// grants, of which sha256 is used.
type webhookClaims struct {
	jwt.RegisteredClaims
	auth.ClaimGrants
}

var webhookParser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}

// ReceiveWebhook verifies a LiveKit webhook as protocol's
// webhook.ReceiveWebhookEvent does and turns it into provider events. The
// Authorization header is a JWT signed HS256 with the secret of the API key
// in its iss (the current pair or, during a rotation, the previous one),
// unexpired (LiveKit signs each delivery for 5 minutes, so a captured one
// replays for at most that long), whose sha256 claim is the base64 SHA-256
// of the raw body. Nothing of an unverified body is parsed.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	events, err := p.parseWebhook(ctx, req)
	return calls.ProviderWebhook{Events: events}, err
}

func (p *Provider) parseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("livekit: webhook: %w", err)
	}
	if err := p.verify(req); err != nil {
		return nil, err
	}
	var ev lkproto.WebhookEvent
	if err := unmarshal.Unmarshal(req.Body, &ev); err != nil {
		return nil, fmt.Errorf("%w: livekit: body is not a LiveKit webhook event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.GetEvent() == "" {
		return nil, fmt.Errorf("%w: livekit: event is missing", calls.ErrWebhookMalformed)
	}
	out := calls.ProviderEvent{DeliveryID: ev.GetId(), Room: ev.GetRoom().GetName()}
	if ev.GetCreatedAt() > 0 {
		out.At = time.Unix(ev.GetCreatedAt(), 0).UTC()
	} else {
		out.At = p.now().UTC()
	}

	switch ev.GetEvent() {
	case eventRoomStarted, eventRoomFinished:
		if out.Room == "" {
			return nil, fmt.Errorf("%w: livekit: %s has no room.name", calls.ErrWebhookMalformed, ev.GetEvent())
		}
		out.Kind = calls.ProviderRoomStarted
		if ev.GetEvent() == eventRoomFinished {
			out.Kind = calls.ProviderRoomEnded
		}
		return []calls.ProviderEvent{out}, nil

	case eventParticipantJoined, eventParticipantLeft, eventParticipantAbort:
		pi := ev.GetParticipant()
		if out.Room == "" || pi.GetIdentity() == "" {
			return nil, fmt.Errorf("%w: livekit: %s needs room.name and participant.identity", calls.ErrWebhookMalformed, ev.GetEvent())
		}
		if !counts(pi) {
			// A recorder or ingress joining is not a person.
			return []calls.ProviderEvent{}, nil
		}
		out.Identity, out.Name = pi.GetIdentity(), pi.GetName()
		left := ev.GetEvent() != eventParticipantJoined
		out.Kind = calls.ProviderParticipantJoined
		if left {
			out.Kind = calls.ProviderParticipantLeft
		}
		out.Seq = sessionSeq(pi, ev.GetCreatedAt(), left)
		return []calls.ProviderEvent{out}, nil

	case eventEgressEnded:
		return recordings(&ev, out), nil
	}
	return []calls.ProviderEvent{}, nil
}

// sessionSeq orders one identity's joins and leaves. LiveKit's createdAt
// is in whole seconds, so a join and a leave in the same second would tie
// and the leave would be dropped as stale. Instead the order comes from
// the session the event belongs to: both its joined and its left event
// carry the participant's joinedAtMs, so 2·joinedAtMs for the join and
// 2·joinedAtMs+1 for the leave put every session's leave after its join
// and before any later session's join. A late "joined" of a session that
// has left therefore never resurrects it, and a late "left" of an old
// session never removes the person's new one. Without joinedAt(Ms) the
// event time in milliseconds is used the same way.
func sessionSeq(pi *lkproto.ParticipantInfo, createdAt int64, left bool) int64 {
	ms := pi.GetJoinedAtMs()
	if ms <= 0 {
		ms = pi.GetJoinedAt() * 1000
	}
	if ms <= 0 {
		ms = createdAt * 1000
	}
	if ms <= 0 {
		return 0
	}
	seq := 2 * ms
	if left {
		seq++
	}
	return seq
}

// recordings turns egress_ended into one recording event per file or HLS
// playlist it produced. Egresses that failed or were aborted produced
// nothing to fetch.
func recordings(ev *lkproto.WebhookEvent, base calls.ProviderEvent) []calls.ProviderEvent {
	eg := ev.GetEgressInfo()
	switch eg.GetStatus() {
	case lkproto.EgressStatus_EGRESS_COMPLETE, lkproto.EgressStatus_EGRESS_LIMIT_REACHED:
	default:
		return []calls.ProviderEvent{}
	}
	base.Room = eg.GetRoomName()
	if base.Room == "" {
		base.Room = ev.GetRoom().GetName()
	}
	if base.Room == "" {
		return []calls.ProviderEvent{}
	}
	at := base.At
	if ns := eg.GetEndedAt(); ns > 0 {
		at = time.Unix(0, ns).UTC()
	}
	var recs []calls.Recording
	files := eg.GetFileResults()
	if len(files) == 0 && eg.GetFile() != nil {
		files = []*lkproto.FileInfo{eg.GetFile()} //nolint:staticcheck // older servers report one file here
	}
	for _, f := range files {
		url := f.GetLocation()
		if url == "" {
			url = f.GetFilename()
		}
		recs = append(recs, calls.Recording{Kind: "recording", URL: url, ProviderID: eg.GetEgressId(), Duration: time.Duration(f.GetDuration()), At: at})
	}
	segs := eg.GetSegmentResults()
	if len(segs) == 0 && eg.GetSegments() != nil {
		segs = []*lkproto.SegmentsInfo{eg.GetSegments()} //nolint:staticcheck // older servers
	}
	for _, s := range segs {
		url := s.GetPlaylistLocation()
		if url == "" {
			url = s.GetPlaylistName()
		}
		recs = append(recs, calls.Recording{Kind: "recording", URL: url, ProviderID: eg.GetEgressId(), Duration: time.Duration(s.GetDuration()), At: at})
	}
	out := make([]calls.ProviderEvent, 0, len(recs))
	for i := range recs {
		e := base
		e.Kind = calls.ProviderRecordingReady
		e.Recording = &recs[i]
		if i > 0 && e.DeliveryID != "" {
			// One delivery, several recordings: each is applied once.
			e.DeliveryID += "#" + strconv.Itoa(i)
		}
		out = append(out, e)
	}
	return out
}

// verify checks the Authorization JWT and the body's SHA-256.
func (p *Provider) verify(req calls.WebhookRequest) error {
	if len(p.webhookKeys) == 0 {
		return fmt.Errorf("%w: livekit: no API secret is configured, so no delivery can be verified", calls.ErrWebhookUnauthenticated)
	}
	raw := strings.TrimSpace(headerValue(req.Header, AuthHeader))
	if raw == "" {
		return fmt.Errorf("%w: livekit: %s header is missing", calls.ErrWebhookUnauthenticated, AuthHeader)
	}
	// LiveKit sends the bare JWT; tolerate a Bearer prefix from a proxy.
	if len(raw) > 7 && strings.EqualFold(raw[:7], "bearer ") {
		raw = strings.TrimSpace(raw[7:])
	}
	var unverified jwt.RegisteredClaims
	if _, _, err := webhookParser.ParseUnverified(raw, &unverified); err != nil {
		return fmt.Errorf("%w: livekit: %s is not a JWT", calls.ErrWebhookUnauthenticated, AuthHeader)
	}
	secrets := p.webhookKeys[unverified.Issuer]
	if len(secrets) == 0 {
		return fmt.Errorf("%w: livekit: signed for API key %q, which is not configured", calls.ErrWebhookUnauthenticated, printable(unverified.Issuer))
	}
	sum := sha256.Sum256(req.Body)
	want := base64.StdEncoding.EncodeToString(sum[:])

	var lastErr error
	for _, secret := range secrets {
		var claims webhookClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(unverified.Issuer),
			jwt.WithLeeway(tokenLeeway),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(p.now),
		)
		if err != nil {
			lastErr = err
			continue
		}
		if subtle.ConstantTimeCompare([]byte(claims.Sha256), []byte(want)) != 1 {
			return fmt.Errorf("%w: livekit: the body's SHA-256 does not match the signed sha256 claim", calls.ErrWebhookUnauthenticated)
		}
		return nil
	}
	switch {
	case errors.Is(lastErr, jwt.ErrTokenExpired), errors.Is(lastErr, jwt.ErrTokenNotValidYet), errors.Is(lastErr, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: livekit: %s token is expired or not yet valid: %w", calls.ErrWebhookUnauthenticated, AuthHeader, lastErr)
	}
	return fmt.Errorf("%w: livekit: %s signature does not match any configured secret for API key %q", calls.ErrWebhookUnauthenticated, AuthHeader, printable(unverified.Issuer))
}

// printable bounds and cleans a value from an unverified token for a
// message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
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
