package streamvideo

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

type streamVector struct {
	RawBody  string `json:"raw_body"`
	Sig      string `json:"x_signature"`
	Matches  bool   `json:"signature_matches_body"`
	Expected string `json:"expected"`
}

func loadVectors(t testing.TB) (string, []streamVector) {
	t.Helper()
	raw, err := os.ReadFile("testdata/stream-video.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Secret  string         `json:"secret"`
		Vectors []streamVector `json:"webhook_vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Vectors) == 0 {
		t.Fatalf("vectors: %v", err)
	}
	return f.Secret, f.Vectors
}

func signedReq(secret string, body []byte) calls.WebhookRequest {
	h := http.Header{}
	h.Set(SignatureHeader, hex.EncodeToString(mac([]byte(secret), body)))
	return calls.WebhookRequest{Header: h, Body: body}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestVectors(t *testing.T) {
	secret, vectors := loadVectors(t)
	p := newTestProvider(t, func(c *Config) { c.Secrets = []string{secret} })
	for _, v := range vectors {
		if got := hex.EncodeToString(mac([]byte(secret), []byte(v.RawBody))); (got == v.Sig) != v.Matches {
			t.Fatalf("%s: computed %s vs %s", v.Expected, got, v.Sig)
		}
		for _, gzipped := range []bool{false, true} {
			body := []byte(v.RawBody)
			h := http.Header{"x-signature": {v.Sig}}
			if gzipped {
				body = gz(t, body)
				h.Set("Content-Encoding", "gzip")
			}
			signedBody, err := p.verify(calls.WebhookRequest{Header: h, Body: body})
			if v.Matches {
				if err != nil || string(signedBody) != v.RawBody {
					t.Fatalf("valid vector refused (gzip %v): %v", gzipped, err)
				}
				// It names no call: verified, then refused as malformed.
				if _, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: h, Body: body}); !errors.Is(err, calls.ErrWebhookMalformed) {
					t.Fatalf("vector without call_cid: %v", err)
				}
			} else if !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("tampered vector accepted (gzip %v): %v", gzipped, err)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	body := []byte(`{"type":"call.ended","created_at":"2026-03-14T15:09:26.123456Z","call_cid":"default:call-1"}`)
	good := signedReq("cur+/=", body)
	gzBody := gz(t, body)
	mutate := func(f func(r *calls.WebhookRequest)) calls.WebhookRequest {
		r := calls.WebhookRequest{Header: good.Header.Clone(), Body: append([]byte(nil), good.Body...)}
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name    string
		secrets []string
		req     calls.WebhookRequest
		want    error
	}{
		{"valid, secret with + / =", []string{"cur+/="}, good, nil},
		{"gzip by header", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Body = gzBody; r.Header.Set("Content-Encoding", "gzip") }), nil},
		{"gzip by magic bytes", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Body = gzBody }), nil},
		{"previous secret during rotation", []string{"new", "cur+/="}, good, nil},
		{"rotation over", []string{"new", "other"}, good, calls.ErrWebhookUnauthenticated},
		{"wrong signature", []string{"cur+/="}, signedReq("wrong", body), calls.ErrWebhookUnauthenticated},
		{"body altered by one byte", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Body[10] ^= 1 }), calls.ErrWebhookUnauthenticated},
		{"signature over the gzip bytes", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) {
			r.Body = gzBody
			r.Header.Set(SignatureHeader, hex.EncodeToString(mac([]byte("cur+/="), gzBody)))
		}), calls.ErrWebhookUnauthenticated},
		{"missing header", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Del(SignatureHeader) }), calls.ErrWebhookUnauthenticated},
		{"upper-case hex", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Set(SignatureHeader, "ZZ") }), calls.ErrWebhookUnauthenticated},
		{"broken gzip", []string{"cur+/="}, mutate(func(r *calls.WebhookRequest) { r.Body = gzBody[:10] }), calls.ErrWebhookMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, func(c *Config) { c.Secrets = tc.secrets })
			hook, err := p.ReceiveWebhook(context.Background(), tc.req)
			if tc.want == nil {
				if err != nil || len(hook.Events) != 1 || hook.Events[0].Kind != calls.ProviderRoomEnded {
					t.Fatalf("hook %+v err %v", hook, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || len(hook.Events) != 0 {
				t.Fatalf("hook %+v err %v, want %v", hook, err, tc.want)
			}
		})
	}
	// Without any secret nothing is accepted.
	p := newTestProvider(t, nil)
	p.webhook = nil
	if _, err := p.ReceiveWebhook(context.Background(), good); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("no secret: %v", err)
	}
}

func TestEvents(t *testing.T) {
	at := time.Date(2026, 3, 14, 15, 9, 26, 123456000, time.UTC)
	ts := `"2026-03-14T15:09:26.123456Z"`
	for _, tc := range []struct {
		name, body, webhookID string
		want                  []calls.ProviderEvent
	}{
		{"joined", `{"type":"call.session_participant_joined","created_at":` + ts + `,"call_cid":"default:call-1","session_id":"s1","participant":{"user_session_id":"us1","role":"admin","user":{"id":"ada","name":"Ada"}}}`, "wh-1",
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "ada", Name: "Ada", Seq: at.UnixNano(), At: at, DeliveryID: "wh-1"}}},
		{"left, no webhook id", `{"type":"call.session_participant_left","created_at":` + ts + `,"call_cid":"default:call-1","participant":{"user_session_id":"us1","user":{"id":"ada"}}}`, "",
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "ada", Seq: at.UnixNano(), At: at, DeliveryID: "call.session_participant_left/default:call-1/" + ts + "/ada/us1"}}},
		{"session started", `{"type":"call.session_started","created_at":1778198400000000000,"call_cid":"default:c"}`, "w",
			[]calls.ProviderEvent{{Kind: calls.ProviderRoomStarted, Room: "c", Seq: 1778198400000000000, At: time.Unix(0, 1778198400000000000).UTC(), DeliveryID: "w"}}},
		{"session ended", `{"type":"call.session_ended","created_at":` + ts + `,"call_cid":"default:c"}`, "w",
			[]calls.ProviderEvent{{Kind: calls.ProviderRoomEnded, Room: "c", Seq: at.UnixNano(), At: at, DeliveryID: "w"}}},
		{"recording", `{"type":"call.recording_ready","created_at":` + ts + `,"call_cid":"default:c","egress_id":"eg1","recording_type":"composite","call_recording":{"filename":"r.mp4","url":"https://cdn.example/r.mp4?sig=x","start_time":"2026-03-14T15:00:00Z","end_time":"2026-03-14T15:09:00Z","session_id":"s"}}`, "w",
			[]calls.ProviderEvent{{Kind: calls.ProviderRecordingReady, Room: "c", Seq: at.UnixNano(), At: at, DeliveryID: "w",
				Recording: &calls.Recording{Kind: "composition", URL: "https://cdn.example/r.mp4?sig=x", ProviderID: "eg1", Duration: 9 * time.Minute, At: at}}}},
		{"transcript", `{"type":"call.transcription_ready","created_at":` + ts + `,"call_cid":"default:c","egress_id":"eg2","call_transcription":{"filename":"t.jsonl","url":"https://cdn.example/t.jsonl"}}`, "w",
			[]calls.ProviderEvent{{Kind: calls.ProviderRecordingReady, Room: "c", Seq: at.UnixNano(), At: at, DeliveryID: "w",
				Recording: &calls.Recording{Kind: "transcript", URL: "https://cdn.example/t.jsonl", ProviderID: "eg2", At: at}}}},
		{"unknown", `{"type":"call.reaction_new","call_cid":"default:c"}`, "w", []calls.ProviderEvent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			req := signedReq(testSecret, []byte(tc.body))
			if tc.webhookID != "" {
				req.Header.Set(WebhookIDHeader, tc.webhookID)
			}
			hook, err := p.ReceiveWebhook(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hook.Events, tc.want) {
				g, _ := json.Marshal(hook.Events)
				w, _ := json.Marshal(tc.want)
				t.Fatalf("events\n %s\nwant\n %s", g, w)
			}
		})
	}
	for _, body := range []string{
		`{"type":"call.ended","call_cid":"nocolon"}`,
		`{"type":"call.session_participant_joined","call_cid":"default:c","participant":{}}`,
		`{"type":"call.recording_ready","call_cid":"default:c"}`,
		`{"type":"call.ended","call_cid":"default:c","created_at":"yesterday"}`,
		`{"call_cid":"default:c"}`,
		`[]`,
	} {
		p := newTestProvider(t, nil)
		if _, err := p.ReceiveWebhook(context.Background(), signedReq(testSecret, []byte(body))); !errors.Is(err, calls.ErrWebhookMalformed) {
			t.Errorf("%s: %v, want malformed", body, err)
		}
	}
}

func FuzzReceiveWebhook(f *testing.F) {
	_, vectors := loadVectors(f)
	for _, v := range vectors {
		f.Add([]byte(v.RawBody), true, false)
		f.Add([]byte(v.RawBody), true, true)
	}
	f.Add([]byte(`{"type":"call.session_participant_joined","created_at":"2026-03-14T15:09:26Z","call_cid":"default:c","participant":{"user":{"id":"a"}}}`), true, false)
	f.Add([]byte(`{"type":"call.recording_ready","call_cid":"default:c","call_recording":{}}`), false, false)
	p := newTestProvider(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, sign, gzipIt bool) {
		signed := body
		if gzipIt {
			body = gz(t, body)
		}
		req := calls.WebhookRequest{Header: http.Header{SignatureHeader: {"00"}}, Body: body}
		if sign {
			req.Header.Set(SignatureHeader, hex.EncodeToString(mac([]byte(testSecret), signed)))
		}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !sign {
			t.Fatal("unsigned body accepted")
		}
		for _, e := range hook.Events {
			if e.Room == "" || e.Kind == "" {
				t.Fatalf("event %+v", e)
			}
		}
	})
}
