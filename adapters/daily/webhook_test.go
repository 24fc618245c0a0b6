package daily

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

// vectors is testdata/daily.json (copied from the shared vectors). Daily
// publishes no signature vector: the one here was computed from the
// documented algorithm (it proves the implementation matches that
// formula byte for byte, not Daily's servers).
type vectors struct {
	Samples []struct {
		Type string          `json:"type"`
		Body json.RawMessage `json:"body"`
	} `json:"webhook_samples"`
	Derived []struct {
		Secret    string `json:"hmac_secret"`
		Timestamp string `json:"x_webhook_timestamp"`
		Body      string `json:"raw_body"`
		Signature string `json:"x_webhook_signature"`
	} `json:"DERIVED_selfcomputed_NOT_official"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/daily.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Derived) == 0 || len(v.Samples) == 0 {
		t.Fatal("vectors are empty")
	}
	return v
}

// Secrets as Daily gives them (base64); both contain +, / and =.
var (
	currentSecret  = base64.StdEncoding.EncodeToString([]byte("current secret \xfb\xff\xfe for + / = tests"))
	previousSecret = base64.StdEncoding.EncodeToString([]byte("previous secret \xfb\xef\xbe!"))
	unknownSecret  = base64.StdEncoding.EncodeToString([]byte("a third secret nobody configured"))
)

func webhookProvider(t testing.TB, now time.Time, secrets ...string) *Provider {
	t.Helper()
	p, err := New(Config{APIKey: testAPIKey, WebhookHMAC: secrets, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signed builds a delivery as Daily signs it.
func signed(t testing.TB, secret string, ts int64, body []byte) calls.WebhookRequest {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	tsText := strconv.FormatInt(ts, 10)
	sig := base64.StdEncoding.EncodeToString(Sign(key, tsText, body))
	return calls.WebhookRequest{Header: http.Header{SignatureHeader: {sig}, TimestampHeader: {tsText}}, Body: body}
}

func TestSignatureVector(t *testing.T) {
	v := loadVectors(t)
	for _, d := range v.Derived {
		ts, _ := strconv.ParseInt(d.Timestamp, 10, 64)
		p := webhookProvider(t, time.Unix(ts, 0).Add(30*time.Second), d.Secret)
		req := calls.WebhookRequest{Header: http.Header{"X-Webhook-Signature": {d.Signature}, "X-Webhook-Timestamp": {d.Timestamp}}, Body: []byte(d.Body)}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := base64.StdEncoding.DecodeString(d.Secret)
		if got := base64.StdEncoding.EncodeToString(Sign(key, d.Timestamp, []byte(d.Body))); got != d.Signature {
			t.Fatalf("signature %s, vector %s", got, d.Signature)
		}
		want := []calls.ProviderEvent{{DeliveryID: "met-sta-f2aa1ade-ff80-464c-b46e-50ffa577d48d-1708526032", Kind: calls.ProviderRoomStarted, Room: "TrPmUX1DzjSwDaAFDfNj", At: time.UnixMilli(1708526033049).UTC()}}
		if !equalJSON(hook.Events, want) {
			t.Fatalf("events %+v", hook.Events)
		}
	}
}

func TestWebhookVerification(t *testing.T) {
	now := testNow
	body := loadVectors(t).Samples[0].Body
	p := webhookProvider(t, now, currentSecret, previousSecret)
	good := signed(t, currentSecret, now.Unix(), body)
	for _, tc := range []struct {
		name string
		req  func() calls.WebhookRequest
		ok   bool
	}{
		{"current secret", func() calls.WebhookRequest { return good }, true},
		{"previous secret during a rotation", func() calls.WebhookRequest { return signed(t, previousSecret, now.Unix(), body) }, true},
		{"an unknown third secret", func() calls.WebhookRequest { return signed(t, unknownSecret, now.Unix(), body) }, false},
		{"4 minutes old", func() calls.WebhookRequest { return signed(t, currentSecret, now.Add(-4*time.Minute).Unix(), body) }, true},
		{"6 minutes old: stale", func() calls.WebhookRequest { return signed(t, currentSecret, now.Add(-6*time.Minute).Unix(), body) }, false},
		{"6 minutes ahead", func() calls.WebhookRequest { return signed(t, currentSecret, now.Add(6*time.Minute).Unix(), body) }, false},
		{"timestamp in milliseconds", func() calls.WebhookRequest { return signed(t, currentSecret, now.UnixMilli(), body) }, true},
		{"body altered by one byte", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			b := append([]byte(nil), r.Body...)
			b[len(b)-2] ^= 1
			r.Body = b
			return r
		}, false},
		{"timestamp swapped after signing", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix()-1, 10))
			return r
		}, false},
		{"wrong signature", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Set(SignatureHeader, base64.StdEncoding.EncodeToString(make([]byte, 32)))
			return r
		}, false},
		{"signature not base64", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Set(SignatureHeader, "%%%")
			return r
		}, false},
		{"missing signature", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Del(SignatureHeader)
			return r
		}, false},
		{"missing timestamp", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Del(TimestampHeader)
			return r
		}, false},
		{"timestamp not a number", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			r.Header.Set(TimestampHeader, "yesterday")
			return r
		}, false},
		{"lower-case header names as a hand-built map", func() calls.WebhookRequest {
			r := signed(t, currentSecret, now.Unix(), body)
			return calls.WebhookRequest{Header: http.Header{"x-webhook-signature": r.Header[SignatureHeader], "x-webhook-timestamp": r.Header[TimestampHeader]}, Body: r.Body}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook, err := p.ReceiveWebhook(context.Background(), tc.req())
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
	// The rotation ends: the previous secret no longer verifies.
	after := webhookProvider(t, now, currentSecret)
	if _, err := after.ReceiveWebhook(context.Background(), signed(t, previousSecret, now.Unix(), body)); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	// Fail closed without a secret.
	none := webhookProvider(t, now)
	if _, err := none.ReceiveWebhook(context.Background(), good); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("no secret configured: %v", err)
	}
}

// Daily checks a new webhook's URL with {"test":"test"} and wants 200.
func TestVerificationPing(t *testing.T) {
	p := webhookProvider(t, testNow, currentSecret)
	for _, body := range []string{`{"test":"test"}`, `{ "test": "test" }`, "{\"test\":\"test\"}\n"} {
		hook, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: http.Header{}, Body: []byte(body)})
		if err != nil || hook.Events == nil || len(hook.Events) != 0 || hook.Reply != nil {
			t.Errorf("%q: %+v %v", body, hook, err)
		}
	}
	// Also when it arrives signed, and also with no secret configured.
	if hook, err := p.ReceiveWebhook(context.Background(), signed(t, currentSecret, testNow.Unix(), []byte(`{"test":"test"}`))); err != nil || len(hook.Events) != 0 {
		t.Errorf("signed ping: %+v %v", hook, err)
	}
	// Anything more than the ping needs a signature.
	for _, body := range []string{`{"test":"test","type":"meeting.ended","payload":{"room":"x"}}`, `{"type":"meeting.ended","payload":{"room":"x"}}`, `{}`} {
		if _, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: http.Header{}, Body: []byte(body)}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
			t.Errorf("%s unsigned: %v", body, err)
		}
	}
}

func TestWebhookEvents(t *testing.T) {
	p := webhookProvider(t, testNow, currentSecret)
	at := time.UnixMilli(1741064767250).UTC()
	for _, tc := range []struct {
		name string
		body string
		want []calls.ProviderEvent
	}{
		{"meeting ended", `{"version":"1.0.0","type":"meeting.ended","id":"met-end-1","payload":{"start_ts":1741064700,"end_ts":1741064767,"meeting_id":"m1","room":"call-abc"},"event_ts":1741064767.25}`,
			[]calls.ProviderEvent{{DeliveryID: "met-end-1", Kind: calls.ProviderRoomEnded, Room: "call-abc", At: at}}},
		{"participant joined", `{"version":"1.0.0","type":"participant.joined","id":"ptcpt-join-1","payload":{"room":"call-abc","user_id":"slack:U1","user_name":"Ann","session_id":"s1","joined_at":1741064767.1,"owner":true},"event_ts":1741064767.25}`,
			[]calls.ProviderEvent{{DeliveryID: "ptcpt-join-1", Kind: calls.ProviderParticipantJoined, Room: "call-abc", Identity: "slack:U1", Name: "Ann", Seq: 1741064767250, At: at}}},
		{"participant left without a token: session id", `{"version":"1.0.0","type":"participant.left","id":"ptcpt-left-1","payload":{"room":"call-abc","user_name":null,"session_id":"s9","duration":12},"event_ts":1741064767.25}`,
			[]calls.ProviderEvent{{DeliveryID: "ptcpt-left-1", Kind: calls.ProviderParticipantLeft, Room: "call-abc", Identity: "s9", Seq: 1741064767250, At: at}}},
		{"recording ready", `{"version":"1.0.0","type":"recording.ready-to-download","id":"rec-rtd-1","payload":{"type":"cloud","recording_id":"rec-1","room_name":"call-abc","start_ts":1741064000,"status":"finished","max_participants":2,"duration":754,"s3_key":"team/call-abc/1741064000"},"event_ts":1741064767.25}`,
			[]calls.ProviderEvent{{DeliveryID: "rec-rtd-1", Kind: calls.ProviderRecordingReady, Room: "call-abc", At: at, Recording: &calls.Recording{Kind: "recording", ProviderID: "rec-1", Duration: 754 * time.Second, At: at}}}},
		{"unknown type: nothing, no error", `{"version":"1.0.0","type":"waiting-participant.joined","id":"w1","payload":{"room":"call-abc"},"event_ts":1741064767.25}`, []calls.ProviderEvent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook, err := p.ReceiveWebhook(context.Background(), signed(t, currentSecret, testNow.Unix(), []byte(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(hook.Events, tc.want) {
				t.Fatalf("events %+v\nwant   %+v", hook.Events, tc.want)
			}
		})
	}
	for _, body := range []string{
		`not json`,
		`{"id":"x","payload":{}}`,
		`{"type":"participant.joined","id":"x","payload":{"room":"call-abc"}}`,
		`{"type":"meeting.started","id":"x","payload":{}}`,
		`{"type":"meeting.started","id":"x","payload":{"room":"call-abc"},"event_ts":"soon"}`,
	} {
		if _, err := p.ReceiveWebhook(context.Background(), signed(t, currentSecret, testNow.Unix(), []byte(body))); !errors.Is(err, calls.ErrWebhookMalformed) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func FuzzReceiveWebhook(f *testing.F) {
	v := loadVectors(f)
	key, _ := base64.StdEncoding.DecodeString(currentSecret)
	now := testNow
	for _, s := range v.Samples {
		f.Add([]byte(s.Body), now.Unix(), true)
	}
	for _, d := range v.Derived {
		f.Add([]byte(d.Body), now.Unix(), true)
	}
	f.Add([]byte(`{"test":"test"}`), now.Unix(), false)
	f.Add([]byte(`{"type":"participant.left","id":"x","payload":{"room":"r","session_id":"s"},"event_ts":1e300}`), now.Unix(), true)
	f.Add([]byte(`{"type":"recording.ready-to-download","payload":{"room_name":"r","duration":-1}}`), now.Add(-time.Hour).Unix(), true)
	p := webhookProvider(f, now, currentSecret, previousSecret)
	f.Fuzz(func(t *testing.T, body []byte, ts int64, sign bool) {
		tsText := strconv.FormatInt(ts, 10)
		sig := base64.StdEncoding.EncodeToString(make([]byte, 32))
		if sign {
			sig = base64.StdEncoding.EncodeToString(Sign(key, tsText, body))
		}
		req := calls.WebhookRequest{Header: http.Header{SignatureHeader: {sig}, TimestampHeader: {tsText}}, Body: body}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		fresh := ts > 0 && (now.Sub(time.Unix(ts, 0)).Abs() <= ReplayWindow || (ts > 1e12 && now.Sub(time.UnixMilli(ts)).Abs() <= ReplayWindow))
		if (!sign || !fresh) && err == nil && !isVerificationPing(body) {
			t.Fatalf("accepted an unsigned or stale delivery: sign=%v ts=%d", sign, ts)
		}
		if err != nil && len(hook.Events) != 0 {
			t.Fatal("events with an error")
		}
		for _, ev := range hook.Events {
			if ev.Room == "" || ev.Kind == "" || (ev.Kind == calls.ProviderRecordingReady) != (ev.Recording != nil) {
				t.Fatalf("bad event %+v", ev)
			}
		}
	})
}

func benchRequest(b *testing.B) (*Provider, calls.WebhookRequest) {
	v := loadVectors(b)
	body := []byte(v.Derived[0].Body)
	p := webhookProvider(b, testNow, currentSecret, previousSecret)
	return p, signed(b, currentSecret, testNow.Unix(), body)
}

// BenchmarkWebhookVerify is signature and replay check plus parsing of
// one meeting.started delivery.
func BenchmarkWebhookVerify(b *testing.B) {
	p, req := benchRequest(b)
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookVerifyPrevious verifies with the second (previous)
// secret: the worst case during a rotation, two MACs.
func BenchmarkWebhookVerifyPrevious(b *testing.B) {
	p, req := benchRequest(b)
	req = signed(b, previousSecret, testNow.Unix(), req.Body)
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling: one HMAC-SHA256 over the same
// timestamp + "." + body.
func BenchmarkHMACSHA256(b *testing.B) {
	_, req := benchRequest(b)
	key, _ := base64.StdEncoding.DecodeString(currentSecret)
	ts := req.Header.Get(TimestampHeader)
	hs256test.BenchmarkHMAC(b, key, append([]byte(ts+"."), req.Body...))
}
