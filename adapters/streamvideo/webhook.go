package streamvideo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Webhook headers Stream sends.
const (
	SignatureHeader = "X-Signature"
	WebhookIDHeader = "X-Webhook-Id"
)

// maxInflated bounds a decompressed body (a gzip bomb stops here).
const maxInflated = 8 << 20

var gzipMagic = []byte{0x1f, 0x8b}

type streamEvent struct {
	Type        string          `json:"type"`
	CreatedAt   json.RawMessage `json:"created_at"`
	CallCID     string          `json:"call_cid"`
	SessionID   string          `json:"session_id"`
	EgressID    string          `json:"egress_id"`
	Participant struct {
		UserSessionID string `json:"user_session_id"`
		User          struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
	} `json:"participant"`
	CallRecording     *streamFile `json:"call_recording"`
	CallTranscription *streamFile `json:"call_transcription"`
	RecordingType     string      `json:"recording_type"`
}

type streamFile struct {
	Filename  string    `json:"filename"`
	URL       string    `json:"url"`
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	SessionID string    `json:"session_id"`
}

// ReceiveWebhook verifies a Stream Video webhook (over the decompressed
// body when Stream gzips it) and turns it into events.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	if err := ctx.Err(); err != nil {
		return calls.ProviderWebhook{}, fmt.Errorf("streamvideo: webhook: %w", err)
	}
	body, err := p.verify(req)
	if err != nil {
		return calls.ProviderWebhook{}, err
	}
	events, err := normalise(body, headerValue(req.Header, WebhookIDHeader))
	return calls.ProviderWebhook{Events: events}, err
}

// verify checks X-Signature = hex(HMAC-SHA256(api secret, body)) against
// the current and previous secrets, where body is the JSON Stream signed:
// gunzipped when the delivery is gzip (by Content-Encoding or by the gzip
// magic bytes, as Stream's SDKs detect it, since a proxy may already have
// removed the header). It returns the signed JSON.
func (p *Provider) verify(req calls.WebhookRequest) ([]byte, error) {
	if len(p.webhook) == 0 {
		return nil, fmt.Errorf("%w: streamvideo: no API secret is configured, so no delivery can be verified", calls.ErrWebhookUnauthenticated)
	}
	header := strings.TrimSpace(headerValue(req.Header, SignatureHeader))
	if header == "" {
		return nil, fmt.Errorf("%w: streamvideo: %s header is missing", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	sig, err := hex.DecodeString(header)
	if err != nil || len(sig) != sha256.Size {
		return nil, fmt.Errorf("%w: streamvideo: %s is not a hex SHA-256 MAC", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	body := req.Body
	if strings.EqualFold(strings.TrimSpace(headerValue(req.Header, "Content-Encoding")), "gzip") || bytes.HasPrefix(body, gzipMagic) {
		if body, err = gunzip(body); err != nil {
			return nil, fmt.Errorf("%w: streamvideo: gzip body: %w", calls.ErrWebhookMalformed, err)
		}
	}
	for _, secret := range p.webhook {
		if hmac.Equal(sig, mac(secret, body)) {
			return body, nil
		}
	}
	return nil, fmt.Errorf("%w: streamvideo: %s does not match the API secret", calls.ErrWebhookUnauthenticated, SignatureHeader)
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflated {
		return nil, errors.New("decompressed body too large")
	}
	return out, nil
}

// eventTime reads created_at as Stream writes it (RFC 3339) or as a Unix
// number (its test fixtures use nanoseconds; seconds and milliseconds
// are told apart by size).
func eventTime(raw json.RawMessage) (time.Time, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return time.Time{}, nil
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return time.Time{}, err
		}
		return time.Parse(time.RFC3339Nano, str)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	switch {
	case n > 1e17:
		return time.Unix(0, n), nil
	case n > 1e14:
		return time.UnixMicro(n), nil
	case n > 1e11:
		return time.UnixMilli(n), nil
	}
	return time.Unix(n, 0), nil
}

func normalise(body []byte, webhookID string) ([]calls.ProviderEvent, error) {
	var ev streamEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: streamvideo: body is not a Stream event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: streamvideo: type is missing", calls.ErrWebhookMalformed)
	}
	var kind calls.ProviderEventKind
	switch ev.Type {
	case "call.session_started":
		kind = calls.ProviderRoomStarted
	case "call.session_ended", "call.ended":
		kind = calls.ProviderRoomEnded
	case "call.session_participant_joined":
		kind = calls.ProviderParticipantJoined
	case "call.session_participant_left":
		kind = calls.ProviderParticipantLeft
	case "call.recording_ready", "call.transcription_ready":
		kind = calls.ProviderRecordingReady
	default:
		return []calls.ProviderEvent{}, nil
	}
	at, err := eventTime(ev.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%w: streamvideo: created_at: %w", calls.ErrWebhookMalformed, err)
	}
	_, room, ok := strings.Cut(ev.CallCID, ":")
	if !ok || room == "" {
		return nil, fmt.Errorf("%w: streamvideo: %s has no call_cid \"<type>:<id>\"", calls.ErrWebhookMalformed, ev.Type)
	}
	out := calls.ProviderEvent{Kind: kind, Room: room, At: at.UTC()}
	if !at.IsZero() {
		out.Seq = at.UnixNano()
	}
	// Stream's delivery id when the header is there; otherwise what a
	// retry repeats: the event, the call and its time.
	out.DeliveryID = webhookID
	if out.DeliveryID == "" {
		out.DeliveryID = ev.Type + "/" + ev.CallCID + "/" + strings.TrimSpace(string(ev.CreatedAt))
	}

	switch kind {
	case calls.ProviderParticipantJoined, calls.ProviderParticipantLeft:
		out.Identity = ev.Participant.User.ID
		if out.Identity == "" {
			return nil, fmt.Errorf("%w: streamvideo: %s has no participant.user.id", calls.ErrWebhookMalformed, ev.Type)
		}
		out.Name = ev.Participant.User.Name
		if webhookID == "" {
			out.DeliveryID += "/" + out.Identity + "/" + ev.Participant.UserSessionID
		}
	case calls.ProviderRecordingReady:
		f, recKind := ev.CallRecording, "recording"
		if ev.Type == "call.transcription_ready" {
			f, recKind = ev.CallTranscription, "transcript"
		} else if ev.RecordingType == "composite" {
			recKind = "composition"
		}
		if f == nil {
			return nil, fmt.Errorf("%w: streamvideo: %s carries no file", calls.ErrWebhookMalformed, ev.Type)
		}
		id := ev.EgressID
		if id == "" {
			id = f.Filename
		}
		rec := &calls.Recording{Kind: recKind, URL: f.URL, ProviderID: id, At: out.At}
		if !f.StartTime.IsZero() && f.EndTime.After(f.StartTime) {
			rec.Duration = f.EndTime.Sub(f.StartTime)
		}
		out.Recording = rec
	}
	return []calls.ProviderEvent{out}, nil
}

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
