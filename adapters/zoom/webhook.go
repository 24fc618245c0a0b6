package zoom

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Webhook headers Zoom signs with.
const (
	SignatureHeader = "X-Zm-Signature"
	TimestampHeader = "X-Zm-Request-Timestamp"
)

// ReplayWindow is how far the signed timestamp may lie from now, either
// way: Zoom's own sample rejects older deliveries after five minutes.
const ReplayWindow = 5 * time.Minute

// Zoom event types callgate understands; others are acknowledged and
// ignored.
const (
	eventURLValidation       = "endpoint.url_validation"
	eventMeetingStarted      = "meeting.started"
	eventMeetingEnded        = "meeting.ended"
	eventParticipantJoined   = "meeting.participant_joined"
	eventParticipantLeft     = "meeting.participant_left"
	eventRecordingCompleted  = "recording.completed"
	eventTranscriptCompleted = "recording.transcript_completed"
)

type zoomEvent struct {
	Event   string `json:"event"`
	EventTS int64  `json:"event_ts"` // Unix milliseconds
	Payload struct {
		PlainToken string `json:"plainToken"`
		Object     struct {
			ID             json.Number     `json:"id"`
			UUID           string          `json:"uuid"`
			Participant    zoomParticipant `json:"participant"`
			RecordingFiles []recordingFile `json:"recording_files"`
		} `json:"object"`
	} `json:"payload"`
}

// zoomParticipant holds every id Zoom may send for a participant. user_id
// is the per-join id that changes on every rejoin; the others are stable.
type zoomParticipant struct {
	UserID            string `json:"user_id"`
	UserName          string `json:"user_name"`
	ID                string `json:"id"`
	ParticipantUserID string `json:"participant_user_id"`
	ParticipantUUID   string `json:"participant_uuid"`
	Email             string `json:"email"`
	RegistrantID      string `json:"registrant_id"`
	CustomerKey       string `json:"customer_key"`
}

// identity picks the most stable key Zoom gave for a person, so a rejoin
// (which brings a new user_id) is the same identity: customer_key (set by
// an SDK join, may be the chat user id), registrant id, the Zoom user id of
// a signed-in user, email, participant_uuid, and only then the per-join
// user_id.
func (z zoomParticipant) identity() string {
	for _, v := range []string{z.CustomerKey, z.RegistrantID, z.ParticipantUserID, z.ID, z.Email, z.ParticipantUUID, z.UserID} {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

type recordingFile struct {
	ID             string `json:"id"`
	FileType       string `json:"file_type"`
	RecordingStart string `json:"recording_start"`
	RecordingEnd   string `json:"recording_end"`
	PlayURL        string `json:"play_url"`
	DownloadURL    string `json:"download_url"`
	Status         string `json:"status"`
}

// recordingKind maps a Zoom file type to a recording kind; files that are
// neither media nor a transcript (chat, timeline, summary) are skipped.
func recordingKind(fileType string) string {
	switch strings.ToUpper(fileType) {
	case "MP4", "M4A":
		return "recording"
	case "TRANSCRIPT":
		return "transcript"
	}
	return ""
}

// ReceiveWebhook verifies a Zoom webhook and turns it into events, or into
// the endpoint.url_validation answer. Verification comes first, for the
// challenge too (Zoom signs it like every event), and the challenge is
// answered whenever it comes: Zoom re-validates endpoints periodically.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	if err := ctx.Err(); err != nil {
		return calls.ProviderWebhook{}, fmt.Errorf("zoom: webhook: %w", err)
	}
	secret, err := p.verify(req)
	if err != nil {
		return calls.ProviderWebhook{}, err
	}
	var ev zoomEvent
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return calls.ProviderWebhook{}, fmt.Errorf("%w: zoom: body is not a Zoom event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.Event == "" {
		return calls.ProviderWebhook{}, fmt.Errorf("%w: zoom: event is missing", calls.ErrWebhookMalformed)
	}
	if ev.Event == eventURLValidation {
		reply, err := validationReply(secret, ev.Payload.PlainToken)
		if err != nil {
			return calls.ProviderWebhook{}, err
		}
		return calls.ProviderWebhook{Events: []calls.ProviderEvent{}, Reply: reply}, nil
	}
	events, err := normalise(ev)
	return calls.ProviderWebhook{Events: events}, err
}

// validationReply answers Zoom's challenge with the secret that verified
// it: during a rotation Zoom still signs (and checks) with the token it
// knows.
func validationReply(secret []byte, plain string) (*calls.WebhookReply, error) {
	if plain == "" {
		return nil, fmt.Errorf("%w: zoom: url_validation without payload.plainToken", calls.ErrWebhookMalformed)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(plain))
	body, err := json.Marshal(map[string]string{"plainToken": plain, "encryptedToken": hex.EncodeToString(mac.Sum(nil))})
	if err != nil {
		return nil, fmt.Errorf("%w: zoom: %w", calls.ErrWebhookMalformed, err)
	}
	return &calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: body}, nil
}

func normalise(ev zoomEvent) ([]calls.ProviderEvent, error) {
	obj := ev.Payload.Object
	switch ev.Event {
	case eventMeetingStarted, eventMeetingEnded, eventParticipantJoined, eventParticipantLeft, eventRecordingCompleted, eventTranscriptCompleted:
	default:
		return []calls.ProviderEvent{}, nil
	}
	room := obj.ID.String()
	if room == "" {
		return nil, fmt.Errorf("%w: zoom: %s without payload.object.id", calls.ErrWebhookMalformed, ev.Event)
	}
	if _, err := strconv.ParseUint(room, 10, 64); err != nil {
		return nil, fmt.Errorf("%w: zoom: meeting id %q is not a number", calls.ErrWebhookMalformed, room)
	}
	at := time.UnixMilli(ev.EventTS).UTC()
	base := calls.ProviderEvent{Room: room, Seq: ev.EventTS, At: at}
	// Zoom sends no delivery id; a retry repeats the body, so the event,
	// the meeting instance and event_ts identify it.
	delivery := ev.Event + "/" + obj.UUID + "/" + strconv.FormatInt(ev.EventTS, 10)

	switch ev.Event {
	case eventMeetingStarted, eventMeetingEnded:
		base.Kind = calls.ProviderRoomStarted
		if ev.Event == eventMeetingEnded {
			base.Kind = calls.ProviderRoomEnded
		}
		base.DeliveryID = delivery
		return []calls.ProviderEvent{base}, nil
	case eventParticipantJoined, eventParticipantLeft:
		base.Kind = calls.ProviderParticipantJoined
		if ev.Event == eventParticipantLeft {
			base.Kind = calls.ProviderParticipantLeft
		}
		base.Identity = obj.Participant.identity()
		if base.Identity == "" {
			return nil, fmt.Errorf("%w: zoom: %s names no participant", calls.ErrWebhookMalformed, ev.Event)
		}
		base.Name = obj.Participant.UserName
		base.DeliveryID = delivery + "/" + base.Identity
		return []calls.ProviderEvent{base}, nil
	}

	out := []calls.ProviderEvent{}
	for i, f := range obj.RecordingFiles {
		kind := recordingKind(f.FileType)
		if kind == "" {
			continue
		}
		// play_url opens Zoom's player (sign-in or passcode protected);
		// download_url without the webhook's download_token needs the
		// account's OAuth token. The token is never copied: it would
		// make the link public to anyone who sees the call.
		link := f.PlayURL
		if link == "" || kind == "transcript" {
			link = f.DownloadURL
		}
		rec := &calls.Recording{Kind: kind, URL: link, ProviderID: f.ID, At: at}
		start, errS := time.Parse(time.RFC3339, f.RecordingStart)
		end, errE := time.Parse(time.RFC3339, f.RecordingEnd)
		if errS == nil && errE == nil && end.After(start) {
			rec.Duration = end.Sub(start)
			rec.At = end.UTC()
		}
		id := f.ID
		if id == "" {
			id = strconv.Itoa(i)
		}
		ev := base
		ev.Kind = calls.ProviderRecordingReady
		ev.Recording = rec
		ev.DeliveryID = delivery + "/" + id
		out = append(out, ev)
	}
	return out, nil
}

// verify checks x-zm-signature = "v0=" + hex(HMAC-SHA256(secret,
// "v0:" + x-zm-request-timestamp + ":" + raw body)) against every
// configured secret token, within the replay window. It returns the secret
// that matched.
func (p *Provider) verify(req calls.WebhookRequest) ([]byte, error) {
	if len(p.webhook) == 0 {
		return nil, fmt.Errorf("%w: zoom: no webhook secret token is configured, so no delivery can be verified", calls.ErrWebhookUnauthenticated)
	}
	sigHeader := headerValue(req.Header, SignatureHeader)
	if sigHeader == "" {
		return nil, fmt.Errorf("%w: zoom: %s header is missing", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	ts := headerValue(req.Header, TimestampHeader)
	if ts == "" {
		return nil, fmt.Errorf("%w: zoom: %s header is missing", calls.ErrWebhookUnauthenticated, TimestampHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: zoom: %s %q is not a Unix time", calls.ErrWebhookUnauthenticated, TimestampHeader, ts)
	}
	hexSig, ok := strings.CutPrefix(sigHeader, "v0=")
	if !ok {
		return nil, fmt.Errorf("%w: zoom: %s is not a v0 signature", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return nil, fmt.Errorf("%w: zoom: %s is not a hex SHA-256 MAC", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	signedAt := time.Unix(unix, 0)
	if d := p.now().Sub(signedAt); d > ReplayWindow || d < -ReplayWindow {
		return nil, fmt.Errorf("%w: zoom: request timestamp %s is outside the %s replay window", calls.ErrWebhookUnauthenticated, signedAt.UTC().Format(time.RFC3339), ReplayWindow)
	}
	for _, secret := range p.webhook {
		if hmac.Equal(sig, sign(secret, ts, req.Body)) {
			return secret, nil
		}
	}
	return nil, fmt.Errorf("%w: zoom: %s does not match any configured secret token", calls.ErrWebhookUnauthenticated, SignatureHeader)
}

func sign(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v0:"))
	mac.Write([]byte(ts))
	mac.Write([]byte{':'})
	mac.Write(body)
	return mac.Sum(nil)
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
