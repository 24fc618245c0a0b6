package hms

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// 100ms webhook types callgate understands; every other type is
// acknowledged and ignored.
const (
	eventPeerJoin         = "peer.join.success"
	eventPeerLeave        = "peer.leave.success"
	eventSessionOpen      = "session.open.success"
	eventSessionClose     = "session.close.success"
	eventRoomEnd          = "room.end.success"
	eventRecording        = "recording.success"      // SFU recording, composed
	eventBeamRecording    = "beam.recording.success" // browser recording
	eventHLSRecording     = "hls.recording.success"  // HLS recording
	eventTranscriptionEnd = "transcription.success"
)

// hmsEvent is the webhook envelope
// ({version, id, app_id, account_id, timestamp, type, data}); only the
// fields callgate uses are decoded.
type hmsEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		RoomID   string `json:"room_id"`
		RoomName string `json:"room_name"`
		PeerID   string `json:"peer_id"`
		UserID   string `json:"user_id"`
		UserName string `json:"user_name"`
		// JoinedAt/LeftAt order a person's joins and leaves more finely
		// than the envelope's whole-second timestamp.
		JoinedAt time.Time `json:"joined_at"`
		LeftAt   time.Time `json:"left_at"`
		// Recording fields (recording.success, beam.recording.success,
		// hls.recording.success, transcription.success).
		Duration              float64 `json:"duration"`
		RecordingPresignedURL string  `json:"recording_presigned_url"`
		RecordingPath         string  `json:"recording_path"`
		Location              string  `json:"location"` // deprecated
		URL                   string  `json:"URL"`      // deprecated, recording.success
		BeamID                string  `json:"beam_id"`
		SessionID             string  `json:"session_id"`
		HLSPresignedURL       string  `json:"hls_vod_recording_presigned_url"`
		HLSPath               string  `json:"hls_vod_recording_path"`
		TranscriptTxtURL      string  `json:"transcript_txt_presigned_url"`
		TranscriptJSONURL     string  `json:"transcript_json_presigned_url"`
		TranscriptionID       string  `json:"transcription_id"`
	} `json:"data"`
}

// ReceiveWebhook authenticates a 100ms webhook by its secret headers and
// turns it into provider events. Nothing in an unauthenticated body is
// parsed. Errors wrap calls.ErrWebhookUnauthenticated or
// calls.ErrWebhookMalformed (or are a lookup failure, answered 500 so 100ms
// retries).
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	events, err := p.parseWebhook(ctx, req)
	return calls.ProviderWebhook{Events: events}, err
}

func (p *Provider) parseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hms: webhook: %w", err)
	}
	if err := p.authenticate(req.Header); err != nil {
		return nil, err
	}
	var ev hmsEvent
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		return nil, fmt.Errorf("%w: hms: body is not a 100ms event: %w", calls.ErrWebhookMalformed, err)
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: hms: type is missing", calls.ErrWebhookMalformed)
	}
	out := calls.ProviderEvent{DeliveryID: ev.ID, Room: ev.Data.RoomName, At: ev.Timestamp.UTC()}

	switch ev.Type {
	case eventSessionOpen:
		out.Kind = calls.ProviderRoomStarted
	case eventSessionClose, eventRoomEnd:
		out.Kind = calls.ProviderRoomEnded
	case eventPeerJoin, eventPeerLeave:
		out.Kind = calls.ProviderParticipantJoined
		at := ev.Data.JoinedAt
		if ev.Type == eventPeerLeave {
			out.Kind = calls.ProviderParticipantLeft
			at = ev.Data.LeftAt
		}
		// user_id is the id callgate put in the token; a peer without one
		// only has its peer id.
		out.Identity = ev.Data.UserID
		if out.Identity == "" {
			out.Identity = ev.Data.PeerID
		}
		if out.Identity == "" {
			return nil, fmt.Errorf("%w: hms: %s has neither user_id nor peer_id", calls.ErrWebhookMalformed, ev.Type)
		}
		out.Name = ev.Data.UserName
		if at.IsZero() || at.Year() < 2000 {
			at = ev.Timestamp
		}
		if !at.IsZero() {
			out.At = at.UTC()
			out.Seq = at.UnixMilli()
		}
	case eventRecording, eventBeamRecording, eventHLSRecording, eventTranscriptionEnd:
		out.Kind = calls.ProviderRecordingReady
		rec := &calls.Recording{Kind: "recording", At: out.At}
		if ev.Type == eventTranscriptionEnd {
			rec.Kind = "transcript"
		}
		if ev.Type == eventRecording {
			// SFU recording: 100ms composes the room into one file.
			rec.Kind = "composition"
		}
		// Presigned URLs are fetchable (for 24 h); the s3:// paths are the
		// lasting ids in the customer's bucket.
		rec.URL = firstNonEmpty(ev.Data.RecordingPresignedURL, ev.Data.HLSPresignedURL, ev.Data.TranscriptTxtURL, ev.Data.TranscriptJSONURL, ev.Data.URL, ev.Data.Location)
		rec.ProviderID = firstNonEmpty(ev.Data.TranscriptionID, ev.Data.RecordingPath, ev.Data.HLSPath, ev.Data.BeamID, ev.Data.SessionID)
		if ev.Data.Duration > 0 && ev.Data.Duration < 1e9 {
			rec.Duration = time.Duration(ev.Data.Duration * float64(time.Second))
		}
		out.Recording = rec
	default:
		return []calls.ProviderEvent{}, nil
	}

	if out.Room == "" {
		// Beam events carry only the room id.
		if ev.Data.RoomID == "" {
			return nil, fmt.Errorf("%w: hms: %s has neither room_name nor room_id", calls.ErrWebhookMalformed, ev.Type)
		}
		name, err := p.roomName(ctx, ev.Data.RoomID)
		if err != nil {
			return nil, fmt.Errorf("hms: webhook %s: finding the name of room %s: %w", ev.Type, ev.Data.RoomID, err)
		}
		out.Room = name
	} else if ev.Data.RoomID != "" {
		p.remember(ev.Data.RoomID, out.Room)
	}
	return []calls.ProviderEvent{out}, nil
}

// authenticate accepts a delivery that carries every header of one
// configured set with its value. Every set is compared in full, in
// constant time per value, so the time taken says nothing about which
// header or byte differed.
func (p *Provider) authenticate(h http.Header) error {
	if len(p.headerSets) == 0 {
		return fmt.Errorf("%w: hms: no webhook headers are configured, so no delivery can be authenticated", calls.ErrWebhookUnauthenticated)
	}
	ok := 0
	for _, set := range p.headerSets {
		match := 1
		for name, want := range set {
			got := headerValues(h, name)
			m := 0
			for _, g := range got {
				m |= subtle.ConstantTimeCompare([]byte(g), []byte(want[0]))
			}
			// Exactly one value: a second copy of the header is not the
			// configured request.
			if len(got) != 1 {
				m = 0
			}
			match &= m
		}
		ok |= match
	}
	if ok != 1 {
		return fmt.Errorf("%w: hms: the configured secret headers are missing or do not match", calls.ErrWebhookUnauthenticated)
	}
	return nil
}

// headerValues reads a header whether or not the map's keys are canonical.
func headerValues(h http.Header, name string) []string {
	if vs, ok := h[http.CanonicalHeaderKey(name)]; ok {
		return vs
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			return vs
		}
	}
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
