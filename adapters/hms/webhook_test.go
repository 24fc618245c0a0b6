package hms

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

// vectors is testdata/100ms.json (copied from the shared vectors): the
// webhook samples are 100ms's documented bodies.
type vectors struct {
	Samples []struct {
		Type string          `json:"type"`
		Body json.RawMessage `json:"body"`
	} `json:"webhook_samples"`
	CreateRoom struct {
		Request struct {
			Body json.RawMessage `json:"body"`
		} `json:"request"`
		Response json.RawMessage `json:"response_200"`
	} `json:"create_room_sample"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/100ms.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Samples) < 2 {
		t.Fatal("vectors hold no webhook samples")
	}
	return v
}

// Header sets: the secrets contain +, / and = on purpose.
var (
	currentHeaders  = http.Header{"X-Hms-Secret": {"cur+/=Zx9"}, "X-Team": {"callgate"}}
	previousHeaders = http.Header{"X-Hms-Secret": {"old+/=Qq1"}}
)

func webhookProvider(t testing.TB) *Provider {
	t.Helper()
	p, err := New(Config{
		AccessKey: testAccessKey, AppSecret: testSecret, APIURL: testAPI,
		WebhookHeaders: []http.Header{currentHeaders, previousHeaders},
		Now:            func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebhookVectors(t *testing.T) {
	v := loadVectors(t)
	p := webhookProvider(t)
	want := map[string]calls.ProviderEvent{
		"peer.join.success": {
			DeliveryID: "6c75de35-b778-4fb0-88ae-114c28dc285f", Kind: calls.ProviderParticipantJoined,
			Room: "test room", Identity: "user.001", Name: "test user",
			Seq: time.Date(2021, 8, 8, 7, 4, 15, 1380432, time.UTC).UnixMilli(),
			At:  time.Date(2021, 8, 8, 7, 4, 15, 1380432, time.UTC),
		},
		"peer.leave.success (masked values as in docs)": {
			DeliveryID: "********-****-****-****-***********", Kind: calls.ProviderParticipantLeft,
			Room: "**********", Identity: "************************", Name: "********",
			Seq: time.Date(2021, 11, 30, 12, 58, 58, 500451704, time.UTC).UnixMilli(),
			At:  time.Date(2021, 11, 30, 12, 58, 58, 500451704, time.UTC),
		},
	}
	for _, s := range v.Samples {
		t.Run(s.Type, func(t *testing.T) {
			hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: currentHeaders.Clone(), Body: s.Body})
			if err != nil {
				t.Fatal(err)
			}
			if len(hook.Events) != 1 || hook.Reply != nil {
				t.Fatalf("hook %+v", hook)
			}
			if w := want[s.Type]; !equalJSON(hook.Events[0], w) {
				t.Fatalf("event %+v\nwant  %+v", hook.Events[0], w)
			}
		})
	}
}

func TestWebhookEvents(t *testing.T) {
	p := webhookProvider(t)
	for _, tc := range []struct {
		name string
		body string
		want []calls.ProviderEvent
	}{
		{"session open", `{"version":"2.0","id":"e1","timestamp":"2021-11-30T12:58:49Z","type":"session.open.success","data":{"room_id":"r1","room_name":"call-abc","session_id":"s1"}}`,
			[]calls.ProviderEvent{{DeliveryID: "e1", Kind: calls.ProviderRoomStarted, Room: "call-abc", At: time.Date(2021, 11, 30, 12, 58, 49, 0, time.UTC)}}},
		{"session close", `{"version":"2.0","id":"e2","timestamp":"2021-11-30T12:58:49Z","type":"session.close.success","data":{"room_id":"r1","room_name":"call-abc"}}`,
			[]calls.ProviderEvent{{DeliveryID: "e2", Kind: calls.ProviderRoomEnded, Room: "call-abc", At: time.Date(2021, 11, 30, 12, 58, 49, 0, time.UTC)}}},
		{"room end", `{"version":"2.0","id":"e3","timestamp":"2021-11-25T09:10:35Z","type":"room.end.success","data":{"room_id":"r1","room_name":"call-abc","lock_room":true}}`,
			[]calls.ProviderEvent{{DeliveryID: "e3", Kind: calls.ProviderRoomEnded, Room: "call-abc", At: time.Date(2021, 11, 25, 9, 10, 35, 0, time.UTC)}}},
		{"peer without user id uses the peer id", `{"id":"e4","timestamp":"2021-11-25T09:10:35Z","type":"peer.join.success","data":{"room_name":"call-abc","peer_id":"p9","user_name":"Guest","joined_at":"2021-11-25T09:10:34.5Z"}}`,
			[]calls.ProviderEvent{{DeliveryID: "e4", Kind: calls.ProviderParticipantJoined, Room: "call-abc", Identity: "p9", Name: "Guest", Seq: time.Date(2021, 11, 25, 9, 10, 34, 500000000, time.UTC).UnixMilli(), At: time.Date(2021, 11, 25, 9, 10, 34, 500000000, time.UTC)}}},
		{"SFU recording", `{"version":"1.0","id":"e5","timestamp":"2021-11-30T20:12:35Z","type":"recording.success","data":{"duration":600,"room_id":"r1","room_name":"call-abc","session_id":"s1","recording_path":"s3://b/a.mp4","recording_presigned_url":"https://dl.test/a.mp4?sig"}}`,
			[]calls.ProviderEvent{{DeliveryID: "e5", Kind: calls.ProviderRecordingReady, Room: "call-abc", At: time.Date(2021, 11, 30, 20, 12, 35, 0, time.UTC),
				Recording: &calls.Recording{Kind: "composition", URL: "https://dl.test/a.mp4?sig", ProviderID: "s3://b/a.mp4", Duration: 10 * time.Minute, At: time.Date(2021, 11, 30, 20, 12, 35, 0, time.UTC)}}}},
		{"transcript", `{"id":"e6","timestamp":"2023-06-15T06:17:39Z","type":"transcription.success","data":{"room_id":"r1","room_name":"call-abc","transcription_id":"t1","duration":23,"transcript_txt_presigned_url":"https://dl.test/t.txt"}}`,
			[]calls.ProviderEvent{{DeliveryID: "e6", Kind: calls.ProviderRecordingReady, Room: "call-abc", At: time.Date(2023, 6, 15, 6, 17, 39, 0, time.UTC),
				Recording: &calls.Recording{Kind: "transcript", URL: "https://dl.test/t.txt", ProviderID: "t1", Duration: 23 * time.Second, At: time.Date(2023, 6, 15, 6, 17, 39, 0, time.UTC)}}}},
		{"unknown type: nothing, no error", `{"id":"e7","type":"role.change.success","data":{}}`, []calls.ProviderEvent{}},
		{"failure types are ignored", `{"id":"e8","type":"peer.join.failure","data":{"room_name":"x"}}`, []calls.ProviderEvent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: currentHeaders.Clone(), Body: []byte(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(hook.Events, tc.want) {
				t.Fatalf("events %+v\nwant   %+v", hook.Events, tc.want)
			}
		})
	}
}

// beam.recording.success carries the room id only: the name is looked up
// once at the API and remembered.
func TestBeamRecordingLooksUpTheRoomName(t *testing.T) {
	p, m := newTestProvider(t, func(c *Config) { c.WebhookHeaders = []http.Header{currentHeaders} })
	m.on("GET", "/v2/rooms/r77", answer{200, `{"id":"r77","name":"call-xyz","enabled":true}`})
	body := `{"version":"2.0","id":"e9","timestamp":"2021-11-30T12:59:57Z","type":"beam.recording.success","data":{"beam_id":"b1","room_id":"r77","duration":79,"recording_path":"s3://b/beam.mp4","recording_presigned_url":"https://dl.test/beam.mp4"}}`
	for i := 0; i < 2; i++ {
		hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: currentHeaders.Clone(), Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		want := []calls.ProviderEvent{{DeliveryID: "e9", Kind: calls.ProviderRecordingReady, Room: "call-xyz", At: time.Date(2021, 11, 30, 12, 59, 57, 0, time.UTC),
			Recording: &calls.Recording{Kind: "recording", URL: "https://dl.test/beam.mp4", ProviderID: "s3://b/beam.mp4", Duration: 79 * time.Second, At: time.Date(2021, 11, 30, 12, 59, 57, 0, time.UTC)}}}
		if !equalJSON(hook.Events, want) {
			t.Fatalf("events %+v", hook.Events)
		}
	}
	if n := len(m.requests()); n != 1 {
		t.Fatalf("%d lookups, want 1", n)
	}
	// A failed lookup is neither unauthenticated nor malformed: the intake
	// answers 500 and 100ms retries.
	m.on("GET", "/v2/rooms/r78", answer{503, ``})
	_, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: currentHeaders.Clone(), Body: []byte(`{"id":"e10","type":"beam.recording.success","data":{"room_id":"r78"}}`)})
	if err == nil || errors.Is(err, calls.ErrWebhookMalformed) || errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("lookup failure: %v", err)
	}
}

func TestWebhookAuthentication(t *testing.T) {
	body := []byte(`{"version":"2.0","id":"e1","timestamp":"2021-11-30T12:58:49Z","type":"session.open.success","data":{"room_name":"call-abc"}}`)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"current set", h("X-Hms-Secret", "cur+/=Zx9", "X-Team", "callgate"), true},
		{"current set, other headers too", h("X-Hms-Secret", "cur+/=Zx9", "X-Team", "callgate", "User-Agent", "100ms"), true},
		{"lower-case names as a hand-built map", http.Header{"x-hms-secret": {"cur+/=Zx9"}, "x-team": {"callgate"}}, true},
		{"previous set during a rotation", h("X-Hms-Secret", "old+/=Qq1"), true},
		{"an unknown third secret", h("X-Hms-Secret", "new+/=Ww0", "X-Team", "callgate"), false},
		{"wrong value", h("X-Hms-Secret", "cur+/=Zx8", "X-Team", "callgate"), false},
		{"one header of the set missing", h("X-Hms-Secret", "cur+/=Zx9"), false},
		{"other header of the set missing", h("X-Team", "callgate"), false},
		{"no headers", h(), false},
		{"a prefix of the secret", h("X-Hms-Secret", "cur+/=", "X-Team", "callgate"), false},
		{"the secret twice", h("X-Hms-Secret", "cur+/=Zx9", "X-Hms-Secret", "cur+/=Zx9", "X-Team", "callgate"), false},
		{"the previous value under another name", h("X-Other", "old+/=Qq1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webhookProvider(t)
			hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: tc.header, Body: body})
			if tc.ok {
				if err != nil || len(hook.Events) != 1 {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) || len(hook.Events) != 0 {
				t.Fatalf("accepted or wrong error: %v %+v", err, hook)
			}
		})
	}
	// After the rotation ends (previous set removed) the old secret fails.
	p, err := New(Config{AccessKey: "a", AppSecret: testSecret, WebhookHeaders: []http.Header{currentHeaders}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: h("X-Hms-Secret", "old+/=Qq1"), Body: body}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	// Fail closed: a provider with no headers refuses everything, even an
	// empty header map.
	p, _ = New(Config{AccessKey: "a", AppSecret: testSecret})
	if _, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: http.Header{}, Body: body}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("no headers configured: %v", err)
	}
}

// 100ms signs nothing: the body is not covered by the secret headers, so a
// changed body is authenticated, and what matters is that a changed body
// that no longer parses is malformed and changes nothing.
func TestWebhookMalformed(t *testing.T) {
	p := webhookProvider(t)
	for _, body := range []string{
		`{"id":"e1","type":"session.open.success","data":{"room_name":"call-abc"}`, // one byte short
		`not json`,
		`{"id":"e1","data":{}}`,
		`{"id":"e1","type":"peer.join.success","data":{"room_name":"x"}}`,
		`{"id":"e1","type":"session.open.success","data":{}}`,
		`{"id":"e1","type":"session.open.success","timestamp":"yesterday","data":{"room_name":"x"}}`,
	} {
		hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: currentHeaders.Clone(), Body: []byte(body)})
		if !errors.Is(err, calls.ErrWebhookMalformed) || len(hook.Events) != 0 {
			t.Errorf("%s: %v %+v", body, err, hook)
		}
	}
	// Unauthenticated comes first: a bad body with bad headers is 401.
	if _, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: http.Header{}, Body: []byte("not json")}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("order: %v", err)
	}
}

func FuzzReceiveWebhook(f *testing.F) {
	v := loadVectors(f)
	for _, s := range v.Samples {
		f.Add([]byte(s.Body), "cur+/=Zx9", "callgate")
	}
	f.Add([]byte(`{"type":"beam.recording.success","data":{"room_id":"r1"}}`), "cur+/=Zx9", "callgate")
	f.Add([]byte(`{"type":"recording.success","data":{"room_name":"x","duration":1e308}}`), "old+/=Qq1", "")
	f.Add([]byte(`{}`), "", "")
	p := webhookProvider(f)
	// Room-name lookups must not reach the network while fuzzing.
	p.names = map[string]string{"r1": "call-r1"}
	p.api = "http://127.0.0.1:1"
	p.http.RetryMax = 0
	f.Fuzz(func(t *testing.T, body []byte, secret, team string) {
		header := http.Header{"X-Hms-Secret": {secret}, "X-Team": {team}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hook, err := p.ReceiveWebhook(ctx, calls.WebhookRequest{Header: header, Body: body})
		authentic := (secret == "cur+/=Zx9" && team == "callgate") || secret == "old+/=Qq1"
		if !authentic && !errors.Is(err, calls.ErrWebhookUnauthenticated) {
			t.Fatalf("unauthenticated delivery got %v", err)
		}
		if err != nil && len(hook.Events) != 0 {
			t.Fatal("events with an error")
		}
		for _, ev := range hook.Events {
			if ev.Room == "" || ev.Kind == "" {
				t.Fatalf("event without room or kind: %+v", ev)
			}
			if (ev.Kind == calls.ProviderRecordingReady) != (ev.Recording != nil) {
				t.Fatalf("recording mismatch: %+v", ev)
			}
		}
	})
}

func BenchmarkAppToken(b *testing.B) {
	p, err := New(Config{AccessKey: testAccessKey, AppSecret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	exp := testNow.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.AppToken("631b2654f771854d9bf633df", "guest", "slack:U012AB3CD", testNow, exp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCredential(b *testing.B) {
	p, err := New(Config{AccessKey: testAccessKey, AppSecret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	room := calls.Room{Name: "call-abc", ProviderID: "631b2654f771854d9bf633df"}
	req := calls.CredentialRequest{UserID: "slack:U012AB3CD", Role: calls.RoleParticipant, TTL: time.Hour, IssuedAt: testNow}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), room, req); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBody is the documented peer.join.success sample.
func benchBody(b *testing.B) []byte {
	v := loadVectors(b)
	return v.Samples[0].Body
}

// BenchmarkWebhookVerify is header authentication plus parsing of one
// peer.join.success delivery.
func BenchmarkWebhookVerify(b *testing.B) {
	p := webhookProvider(b)
	body := benchBody(b)
	req := calls.WebhookRequest{Header: currentHeaders.Clone(), Body: body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookAuthenticate is the secret-header check alone.
func BenchmarkWebhookAuthenticate(b *testing.B) {
	p := webhookProvider(b)
	h := currentHeaders.Clone()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.authenticate(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling on the same body: what an
// HMAC-signed provider pays at least per delivery.
func BenchmarkHMACSHA256(b *testing.B) {
	body := benchBody(b)
	key := []byte(testSecret)
	hs256test.BenchmarkHMAC(b, key, body)
}

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over as many bytes as BenchmarkAppToken's token signs
// (header.payload).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p, err := New(Config{AccessKey: testAccessKey, AppSecret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := p.AppToken("631b2654f771854d9bf633df", "guest", "slack:U012AB3CD", testNow, testNow.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	in := hs256test.SignedPart(tok)
	key := []byte(testSecret)
	hs256test.BenchmarkHMAC(b, key, in)
}
