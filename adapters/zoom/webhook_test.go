package zoom

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

type zoomVector struct {
	SecretToken string `json:"secret_token"`
	Timestamp   string `json:"x_zm_request_timestamp"`
	RawBody     string `json:"raw_body"`
	Signature   string `json:"x_zm_signature"`
	Validation  *struct {
		PlainToken     string `json:"plainToken"`
		EncryptedToken string `json:"encryptedToken"`
	} `json:"url_validation_response"`
}

func loadVectors(t testing.TB) []zoomVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/zoom.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Derived []zoomVector `json:"DERIVED_selfcomputed_NOT_official"`
	}
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Derived) == 0 {
		t.Fatalf("vectors: %v", err)
	}
	return f.Derived
}

func webhookProvider(t testing.TB, at time.Time, secrets ...string) *Provider {
	return newTestProvider(t, func(c *Config) {
		c.WebhookSecrets = secrets
		c.Now = func() time.Time { return at }
	})
}

func signed(secret, ts string, body []byte) calls.WebhookRequest {
	h := http.Header{}
	h.Set(TimestampHeader, ts)
	h.Set(SignatureHeader, "v0="+hex.EncodeToString(sign([]byte(secret), ts, body)))
	return calls.WebhookRequest{URL: "https://gw.example/webhooks/providers/zoom", Header: h, Body: body}
}

func TestVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		ts, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		p := webhookProvider(t, time.Unix(ts, 0).Add(time.Minute), v.SecretToken)
		// Headers as Zoom sends them (lower case), byte-exact signature.
		req := calls.WebhookRequest{Header: http.Header{"x-zm-signature": {v.Signature}, "x-zm-request-timestamp": {v.Timestamp}}, Body: []byte(v.RawBody)}
		if got := "v0=" + hex.EncodeToString(sign([]byte(v.SecretToken), v.Timestamp, []byte(v.RawBody))); got != v.Signature {
			t.Fatalf("vector %d: signature %s, want %s", i, got, v.Signature)
		}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if v.Validation != nil {
			want, _ := json.Marshal(map[string]string{"plainToken": v.Validation.PlainToken, "encryptedToken": v.Validation.EncryptedToken})
			if hook.Reply == nil || string(hook.Reply.Body) != string(want) || hook.Reply.ContentType != "application/json" || len(hook.Events) != 0 {
				t.Fatalf("validation reply %+v, want %s", hook.Reply, want)
			}
			continue
		}
		want := []calls.ProviderEvent{{Kind: calls.ProviderRoomStarted, Room: "85746065432", Seq: 1700000000123,
			At: time.UnixMilli(1700000000123).UTC(), DeliveryID: "meeting.started/4444AAAiAAAAAiAiAiiAii==/1700000000123"}}
		if !reflect.DeepEqual(hook.Events, want) || hook.Reply != nil {
			t.Fatalf("events %+v", hook)
		}
	}
}

// The challenge is answered whenever it comes (Zoom re-validates every few
// days), with the secret Zoom signed it with during a rotation.
func TestURLValidationAnyTimeAndRotation(t *testing.T) {
	body := []byte(`{"payload":{"plainToken":"abc"},"event_ts":1,"event":"endpoint.url_validation"}`)
	for _, at := range []time.Time{testNow, testNow.AddDate(0, 3, 0)} {
		p := webhookProvider(t, at, "new+secret/=", "old-secret")
		for _, secret := range []string{"new+secret/=", "old-secret"} {
			hook, err := p.ReceiveWebhook(context.Background(), signed(secret, strconv.FormatInt(at.Unix(), 10), body))
			if err != nil {
				t.Fatal(err)
			}
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte("abc"))
			want := `{"encryptedToken":"` + hex.EncodeToString(mac.Sum(nil)) + `","plainToken":"abc"}`
			if string(hook.Reply.Body) != want {
				t.Fatalf("reply %s, want %s", hook.Reply.Body, want)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	body := []byte(`{"event":"meeting.ended","event_ts":1773500966000,"payload":{"object":{"id":"42","uuid":"u"}}}`)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	good := signed("current+/=", ts, body)
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
		{"valid, secret with + / =", []string{"current+/="}, good, nil},
		{"previous secret during rotation", []string{"next", "current+/="}, good, nil},
		{"rotation over: unknown secret", []string{"next", "other"}, good, calls.ErrWebhookUnauthenticated},
		{"no secret configured", nil, good, calls.ErrWebhookUnauthenticated},
		{"wrong signature", []string{"current+/="}, signed("wrong", ts, body), calls.ErrWebhookUnauthenticated},
		{"body altered by one byte", []string{"current+/="}, mutate(func(r *calls.WebhookRequest) { r.Body[len(r.Body)-2] = ' ' }), calls.ErrWebhookUnauthenticated},
		{"stale timestamp", []string{"current+/="}, signed("current+/=", strconv.FormatInt(testNow.Add(-6*time.Minute).Unix(), 10), body), calls.ErrWebhookUnauthenticated},
		{"future timestamp", []string{"current+/="}, signed("current+/=", strconv.FormatInt(testNow.Add(6*time.Minute).Unix(), 10), body), calls.ErrWebhookUnauthenticated},
		{"timestamp changed after signing", []string{"current+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Set(TimestampHeader, strconv.FormatInt(testNow.Unix()+1, 10)) }), calls.ErrWebhookUnauthenticated},
		{"missing signature", []string{"current+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Del(SignatureHeader) }), calls.ErrWebhookUnauthenticated},
		{"missing timestamp", []string{"current+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Del(TimestampHeader) }), calls.ErrWebhookUnauthenticated},
		{"no v0= prefix", []string{"current+/="}, mutate(func(r *calls.WebhookRequest) { r.Header.Set(SignatureHeader, r.Header.Get(SignatureHeader)[3:]) }), calls.ErrWebhookUnauthenticated},
		{"signed garbage is malformed", []string{"current+/="}, signed("current+/=", ts, []byte(`{"event":`)), calls.ErrWebhookMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webhookProvider(t, testNow, tc.secrets...)
			hook, err := p.ReceiveWebhook(context.Background(), tc.req)
			if tc.want == nil {
				if err != nil || len(hook.Events) != 1 || hook.Events[0].Kind != calls.ProviderRoomEnded {
					t.Fatalf("hook %+v err %v", hook, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || len(hook.Events) != 0 || hook.Reply != nil {
				t.Fatalf("hook %+v err %v, want %v", hook, err, tc.want)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	ms := testNow.UnixMilli()
	at := time.UnixMilli(ms).UTC()
	for _, tc := range []struct {
		name string
		body string
		want []calls.ProviderEvent
	}{
		{"participant joined, signed-in user", `{"event":"meeting.participant_joined","event_ts":` + strconv.FormatInt(ms, 10) + `,"payload":{"object":{"id":"85746065432","uuid":"U1","participant":{"user_id":"16778240","user_name":"Ada","id":"zoomUserAda","participant_uuid":"PU1","email":"ada@example.com"}}}}`,
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "85746065432", Identity: "zoomUserAda", Name: "Ada", Seq: ms, At: at, DeliveryID: "meeting.participant_joined/U1/" + strconv.FormatInt(ms, 10) + "/zoomUserAda"}}},
		{"rejoin brings a new user_id, same identity", `{"event":"meeting.participant_left","event_ts":` + strconv.FormatInt(ms+5, 10) + `,"payload":{"object":{"id":85746065432,"uuid":"U1","participant":{"user_id":"16779264","user_name":"Ada","id":"zoomUserAda"}}}}`,
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantLeft, Room: "85746065432", Identity: "zoomUserAda", Name: "Ada", Seq: ms + 5, At: time.UnixMilli(ms + 5).UTC(), DeliveryID: "meeting.participant_left/U1/" + strconv.FormatInt(ms+5, 10) + "/zoomUserAda"}}},
		{"customer key wins", `{"event":"meeting.participant_joined","event_ts":1,"payload":{"object":{"id":"7","uuid":"U","participant":{"user_id":"1","user_name":"Bo","customer_key":"chat-bo","email":"bo@x"}}}}`,
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "7", Identity: "chat-bo", Name: "Bo", Seq: 1, At: time.UnixMilli(1).UTC(), DeliveryID: "meeting.participant_joined/U/1/chat-bo"}}},
		{"guest falls back to user_id", `{"event":"meeting.participant_joined","event_ts":1,"payload":{"object":{"id":"7","uuid":"U","participant":{"user_id":"16778240","user_name":"Guest"}}}}`,
			[]calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "7", Identity: "16778240", Name: "Guest", Seq: 1, At: time.UnixMilli(1).UTC(), DeliveryID: "meeting.participant_joined/U/1/16778240"}}},
		{"recording completed", `{"event":"recording.completed","event_ts":1,"download_token":"SECRET-DL","payload":{"object":{"id":7,"uuid":"U","share_url":"https://zoom.us/rec/share/x","recording_files":[
			{"id":"f1","file_type":"MP4","recording_start":"2026-03-14T15:00:00Z","recording_end":"2026-03-14T15:30:00Z","play_url":"https://zoom.us/rec/play/f1","download_url":"https://zoom.us/rec/download/f1"},
			{"id":"f2","file_type":"CHAT","download_url":"https://zoom.us/rec/download/f2"},
			{"id":"f3","file_type":"TRANSCRIPT","recording_start":"2026-03-14T15:00:00Z","recording_end":"2026-03-14T15:30:00Z","play_url":"https://zoom.us/rec/play/f3","download_url":"https://zoom.us/rec/download/f3"}]}}}`,
			[]calls.ProviderEvent{
				{Kind: calls.ProviderRecordingReady, Room: "7", Seq: 1, At: time.UnixMilli(1).UTC(), DeliveryID: "recording.completed/U/1/f1",
					Recording: &calls.Recording{Kind: "recording", URL: "https://zoom.us/rec/play/f1", ProviderID: "f1", Duration: 30 * time.Minute, At: time.Date(2026, 3, 14, 15, 30, 0, 0, time.UTC)}},
				{Kind: calls.ProviderRecordingReady, Room: "7", Seq: 1, At: time.UnixMilli(1).UTC(), DeliveryID: "recording.completed/U/1/f3",
					Recording: &calls.Recording{Kind: "transcript", URL: "https://zoom.us/rec/download/f3", ProviderID: "f3", Duration: 30 * time.Minute, At: time.Date(2026, 3, 14, 15, 30, 0, 0, time.UTC)}},
			}},
		{"unknown event", `{"event":"meeting.sharing_started","event_ts":1,"payload":{"object":{"id":"7"}}}`, []calls.ProviderEvent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webhookProvider(t, testNow, "s")
			hook, err := p.ReceiveWebhook(context.Background(), signed("s", strconv.FormatInt(testNow.Unix(), 10), []byte(tc.body)))
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
		`{"event":"meeting.started","event_ts":1,"payload":{"object":{}}}`,
		`{"event":"meeting.started","event_ts":1,"payload":{"object":{"id":"abc"}}}`,
		`{"event":"meeting.participant_joined","event_ts":1,"payload":{"object":{"id":"7","participant":{}}}}`,
		`{"event_ts":1}`,
		`{"event":"endpoint.url_validation","payload":{}}`,
	} {
		p := webhookProvider(t, testNow, "s")
		if _, err := p.ReceiveWebhook(context.Background(), signed("s", strconv.FormatInt(testNow.Unix(), 10), []byte(body))); !errors.Is(err, calls.ErrWebhookMalformed) {
			t.Errorf("%s: err %v, want malformed", body, err)
		}
	}
}

func FuzzReceiveWebhook(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.RawBody), v.Timestamp, false)
	}
	f.Add([]byte(`{"event":"recording.completed","event_ts":1,"payload":{"object":{"id":7,"recording_files":[{"file_type":"MP4"}]}}}`), "1773500966", true)
	f.Add([]byte(`{"event":"meeting.participant_left","event_ts":1,"payload":{"object":{"id":"7","participant":{"user_id":"1"}}}}`), "1773500966", true)
	p := webhookProvider(f, testNow, "s")
	f.Fuzz(func(t *testing.T, body []byte, ts string, sign bool) {
		req := calls.WebhookRequest{Header: http.Header{SignatureHeader: {"v0=00"}, TimestampHeader: {ts}}, Body: body}
		if sign {
			req = signed("s", strconv.FormatInt(testNow.Unix(), 10), body)
		}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			if len(hook.Events) != 0 || hook.Reply != nil {
				t.Fatal("events with an error")
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
