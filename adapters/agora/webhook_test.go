package agora

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// notifyAt is the notifyMs the test bodies carry; the test clock is near it.
const notifyAt = 1740830400123

func hexMAC(secret, body string, sha256Sig bool) string {
	h := sha1.New
	if sha256Sig {
		h = sha256.New
	}
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func newHooks(t testing.TB, now time.Time, secrets ...string) *WebhookProvider {
	t.Helper()
	return &WebhookProvider{newTest(t, Config{NCSSecrets: secrets, Now: func() time.Time { return now }})}
}

func signedV2(secret, body string) calls.WebhookRequest {
	return calls.WebhookRequest{URL: "https://gw.example/webhooks/providers/agora", Header: http.Header{SignatureV2Header: {hexMAC(secret, body, true)}}, Body: []byte(body)}
}

func notice(event int, payload string) string {
	return fmt.Sprintf(`{"noticeId":"n-%d","productId":1,"eventType":%d,"notifyMs":%d,"sid":"S1","payload":%s}`, event, event, int64(notifyAt), payload)
}

// TestNCSSignatureVectors verifies Agora's documented example with both
// headers, each alone, and refuses it with another secret.
func TestNCSSignatureVectors(t *testing.T) {
	for _, v := range loadVectors(t).NCS {
		t.Run(v.Name, func(t *testing.T) {
			// The example body's event type (10) is not a channel event.
			p := newHooks(t, time.UnixMilli(1560408533119+30_000), v.Secret)
			if hexMAC(v.Secret, v.RawBody, true) != v.SHA256Hx || hexMAC(v.Secret, v.RawBody, false) != v.SHA1Hex {
				t.Fatal("test HMAC helper disagrees with the vector")
			}
			for name, h := range map[string]http.Header{
				"both":       {SignatureV2Header: {v.SHA256Hx}, SignatureV1Header: {v.SHA1Hex}},
				"v2 only":    {SignatureV2Header: {v.SHA256Hx}},
				"v1 only":    {SignatureV1Header: {v.SHA1Hex}},
				"upper hex":  {SignatureV2Header: {strings.ToUpper(v.SHA256Hx)}},
				"lower keys": {"agora-signature-v2": {v.SHA256Hx}},
			} {
				got, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: h, Body: []byte(v.RawBody)})
				if err != nil || got.Events == nil || len(got.Events) != 0 || got.Reply != nil {
					t.Errorf("%s: %+v %v", name, got, err)
				}
			}
			other := newHooks(t, time.UnixMilli(1560408533119), "another")
			if _, err := other.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: http.Header{SignatureV2Header: {v.SHA256Hx}}, Body: []byte(v.RawBody)}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Errorf("another secret: %v", err)
			}
		})
	}
}

func TestNCSEvents(t *testing.T) {
	at := time.Unix(1740830400, 0).UTC()
	notified := time.UnixMilli(notifyAt).UTC()
	for _, tc := range []struct {
		name string
		body string
		want []calls.ProviderEvent
	}{
		{"channel created", notice(101, `{"channelName":"call-1","ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-101", Kind: calls.ProviderRoomStarted, Room: "call-1", At: at}}},
		{"channel destroyed", notice(102, `{"channelName":"call-1","ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-102", Kind: calls.ProviderRoomEnded, Room: "call-1", At: at}}},
		{"broadcaster joins", notice(103, `{"channelName":"call-1","uid":2882341273,"platform":7,"clientSeq":1625051030746,"ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-103", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "2882341273", Seq: 1625051030746, At: at}}},
		{"broadcaster leaves", notice(104, `{"channelName":"call-1","uid":2882341273,"platform":7,"clientSeq":1625051030789,"reason":1,"ts":1740830400,"duration":12}`),
			[]calls.ProviderEvent{{DeliveryID: "n-104", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "2882341273", Seq: 1625051030789, At: at}}},
		{"audience joins", notice(105, `{"channelName":"call-1","uid":7,"platform":1,"clientSeq":3,"ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-105", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "7", Seq: 3, At: at}}},
		{"audience leaves", notice(106, `{"channelName":"call-1","uid":7,"platform":1,"clientSeq":4,"reason":1,"ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-106", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "7", Seq: 4, At: at}}},
		{"communication joins", notice(107, `{"channelName":"call-1","uid":4294967295,"platform":2,"clientSeq":10,"ts":1740830400}`),
			[]calls.ProviderEvent{{DeliveryID: "n-107", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "4294967295", Seq: 10, At: at}}},
		{"communication leaves, no ts or seq", notice(108, `{"channelName":"call-1","uid":"12","platform":2,"reason":2}`),
			[]calls.ProviderEvent{{DeliveryID: "n-108", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "12", At: notified}}},
		{"role change", notice(111, `{"channelName":"call-1","uid":7,"clientSeq":5,"ts":1740830400}`), []calls.ProviderEvent{}},
		{"unknown event", notice(999, `{}`), []calls.ProviderEvent{}},
		{"another product", strings.Replace(notice(103, `{"x":1}`), `"productId":1`, `"productId":3`, 1), []calls.ProviderEvent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newHooks(t, time.UnixMilli(notifyAt+2000), "secret")
			got, err := p.ReceiveWebhook(context.Background(), signedV2("secret", tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Events, tc.want) || got.Reply != nil {
				t.Errorf("events\n got %+v\nwant %+v", got.Events, tc.want)
			}
		})
	}
}

// TestNCSRefuses: every way a callback can be wrong is refused with the
// right error, and nothing is parsed from an unauthenticated body.
func TestNCSRefuses(t *testing.T) {
	now := time.UnixMilli(notifyAt)
	body := notice(107, `{"channelName":"call-1","uid":7,"clientSeq":1,"ts":1740830400}`)
	good := signedV2("current", body)
	unauth, malformed := calls.ErrWebhookUnauthenticated, calls.ErrWebhookMalformed
	altered := []byte(body)
	altered[len(altered)-3] ^= 1

	for _, tc := range []struct {
		name    string
		secrets []string
		now     time.Time
		req     calls.WebhookRequest
		want    error
	}{
		{"wrong signature", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{SignatureV2Header: {hexMAC("current", body+" ", true)}}, Body: []byte(body)}, unauth},
		{"old secret after rotation ended", []string{"current", "previous"}, now, signedV2("retired", body), unauth},
		{"body altered by one byte", []string{"current"}, now, calls.WebhookRequest{Header: good.Header, Body: altered}, unauth},
		{"missing header", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{}, Body: []byte(body)}, unauth},
		{"nil header", []string{"current"}, now, calls.WebhookRequest{Body: []byte(body)}, unauth},
		{"signature not hex", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{SignatureV2Header: {"zz"}}, Body: []byte(body)}, unauth},
		{"sha1 in the v2 header", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{SignatureV2Header: {hexMAC("current", body, false)}}, Body: []byte(body)}, unauth},
		{"wrong v2 not rescued by v1", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{SignatureV2Header: {hexMAC("x", body, true)}, SignatureV1Header: {hexMAC("current", body, false)}}, Body: []byte(body)}, unauth},
		{"wrong v1", []string{"current"}, now, calls.WebhookRequest{Header: http.Header{SignatureV1Header: {hexMAC("x", body, false)}}, Body: []byte(body)}, unauth},
		{"no secret configured", nil, now, good, unauth},
		{"stale notifyMs", []string{"current"}, now.Add(ReplayWindow + time.Second), good, unauth},
		{"notifyMs in the future", []string{"current"}, now.Add(-ReplayWindow - time.Second), good, unauth},
		{"no notifyMs", []string{"current"}, now, signedV2("current", `{"noticeId":"n","productId":1,"eventType":101,"payload":{"channelName":"c"}}`), unauth},
		{"not JSON", []string{"current"}, now, signedV2("current", `not json`), malformed},
		{"no event type", []string{"current"}, now, signedV2("current", fmt.Sprintf(`{"noticeId":"n","productId":1,"notifyMs":%d}`, int64(notifyAt))), malformed},
		{"event type not a number", []string{"current"}, now, signedV2("current", fmt.Sprintf(`{"noticeId":"n","productId":1,"eventType":"x","notifyMs":%d}`, int64(notifyAt))), malformed},
		{"no payload", []string{"current"}, now, signedV2("current", strings.Replace(notice(101, `null`), `,"payload":null`, ``, 1)), malformed},
		{"no channel", []string{"current"}, now, signedV2("current", notice(101, `{"ts":1}`)), malformed},
		{"no uid", []string{"current"}, now, signedV2("current", notice(107, `{"channelName":"c","clientSeq":1}`)), malformed},
		{"uid 0", []string{"current"}, now, signedV2("current", notice(107, `{"channelName":"c","uid":0}`)), malformed},
		{"uid beyond 32 bits", []string{"current"}, now, signedV2("current", notice(107, `{"channelName":"c","uid":4294967296}`)), malformed},
		{"negative clientSeq", []string{"current"}, now, signedV2("current", notice(107, `{"channelName":"c","uid":1,"clientSeq":-1}`)), malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &WebhookProvider{newTest(t, Config{NCSSecrets: tc.secrets, Now: func() time.Time { return tc.now }})}
			got, err := p.ReceiveWebhook(context.Background(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if len(got.Events) != 0 {
				t.Errorf("a refused webhook gave events: %+v", got.Events)
			}
			if strings.Contains(err.Error(), "current") || strings.Contains(err.Error(), "previous") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newHooks(t, now, "current").ReceiveWebhook(cancelled, good); err == nil {
		t.Error("cancelled context")
	}
}

// TestNCSRotationAndAwkwardSecrets: both secrets count during a rotation,
// with either header, and secrets holding +, / and = work as written.
func TestNCSRotationAndAwkwardSecrets(t *testing.T) {
	body := notice(101, `{"channelName":"call-1","ts":1740830400}`)
	now := time.UnixMilli(notifyAt)
	for _, secrets := range [][]string{{"new+/=secret==", "old/+=="}, {"a+b/c="}} {
		p := newHooks(t, now, secrets...)
		for _, s := range secrets {
			for _, v2 := range []bool{true, false} {
				name := SignatureV1Header
				if v2 {
					name = SignatureV2Header
				}
				req := calls.WebhookRequest{Header: http.Header{name: {hexMAC(s, body, v2)}}, Body: []byte(body)}
				got, err := p.ReceiveWebhook(context.Background(), req)
				if err != nil || len(got.Events) != 1 {
					t.Errorf("secret %q via %s: %+v %v", s, name, got, err)
				}
			}
		}
	}
}
