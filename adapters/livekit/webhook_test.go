package livekit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/calls"
)

// now is the fixed clock of webhook tests.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clocked(t testing.TB, mutate func(*Config)) *Provider {
	return newTestProvider(t, func(c *Config) {
		c.Now = func() time.Time { return now }
		if mutate != nil {
			mutate(c)
		}
	})
}

// signAt signs body like the server, at a chosen time and with chosen
// claims (claims may override or delete: a nil value deletes).
func signAt(t testing.TB, key, secret string, body []byte, at time.Time, extra map[string]any) string {
	t.Helper()
	sum := sha256.Sum256(body)
	claims := jwt.MapClaims{
		"iss": key, "nbf": at.Unix(), "iat": at.Unix(), "exp": at.Add(5 * time.Minute).Unix(),
		"sha256": base64.StdEncoding.EncodeToString(sum[:]),
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type vectorFile struct {
	APIKey   string `json:"api_key"`
	Secret   string `json:"api_secret"`
	RawBody  string `json:"raw_body"`
	Expected string `json:"expected_sha256_claim"`
}

func loadVector(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/livekit.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []vectorFile `json:"webhook_vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil || len(f.Vectors) != 1 {
		t.Fatalf("vector file: %v", err)
	}
	return f.Vectors[0]
}

// TestWebhookVector is LiveKit's own WebhookReceiver test
// (node-sdks WebhookReceiver.test.ts): the body's SHA-256 claim is
// byte-exact, and a delivery signed with it for key abcdefg / secret
// abababa is accepted and read.
func TestWebhookVector(t *testing.T) {
	v := loadVector(t)
	sum := sha256.Sum256([]byte(v.RawBody))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != v.Expected {
		t.Fatalf("sha256 claim %s, vector %s", got, v.Expected)
	}
	p := clocked(t, func(c *Config) {
		c.APIKey, c.APISecret, c.PreviousAPIKey, c.PreviousAPISecret = v.APIKey, v.Secret, "", ""
	})
	auth := signAt(t, v.APIKey, v.Secret, []byte(v.RawBody), now, map[string]any{"sha256": v.Expected})
	res, err := p.ReceiveWebhook(context.Background(), webhookRequest(auth, []byte(v.RawBody)))
	if err != nil {
		t.Fatal(err)
	}
	want := []calls.ProviderEvent{{Kind: calls.ProviderRoomStarted, Room: "mytestroom", At: now}}
	if !reflect.DeepEqual(res.Events, want) || res.Reply != nil {
		t.Fatalf("events %+v", res)
	}
	// The protocol library's own signer produces a header the adapter takes.
	p.now = time.Now
	if _, err := p.ReceiveWebhook(context.Background(), webhookRequest(signWebhook(t, v.APIKey, v.Secret, []byte(v.RawBody)), []byte(v.RawBody))); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookRefusals(t *testing.T) {
	body := []byte(`{"event":"room_finished","room":{"sid":"RM_1","name":"call-1"},"id":"EV_1","createdAt":"1772366400"}`)
	good := func(key, secret string) string { return signAt(t, key, secret, body, now, nil) }
	for _, tc := range []struct {
		name    string
		auth    string
		body    []byte
		mutate  func(*Config)
		wantErr error
	}{
		{name: "current pair", auth: good(testKey, testSecret)},
		{name: "previous pair during rotation", auth: good(oldKey, oldSecret)},
		{name: "bearer prefix tolerated", auth: "Bearer " + good(testKey, testSecret)},
		{name: "previous secret under the same key", auth: good(testKey, oldSecret), mutate: func(c *Config) { c.PreviousAPIKey = "" }},
		{name: "wrong signature", auth: good(testKey, "some-other-secret-32-characters-long"), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "old secret after rotation ended", auth: good(oldKey, oldSecret), mutate: func(c *Config) { c.PreviousAPIKey, c.PreviousAPISecret = "", "" }, wantErr: calls.ErrWebhookUnauthenticated},
		{name: "third unknown secret for the old key", auth: good(oldKey, "a-third-secret-nobody-configured-32c"), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "unknown api key", auth: good(otherKey, testSecret), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "stale token", auth: signAt(t, testKey, testSecret, body, now.Add(-7*time.Minute), nil), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "expired within leeway", auth: signAt(t, testKey, testSecret, body, now.Add(-5*time.Minute-30*time.Second), nil)},
		{name: "not yet valid", auth: signAt(t, testKey, testSecret, body, now.Add(3*time.Minute), nil), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "no exp", auth: signAt(t, testKey, testSecret, body, now, map[string]any{"exp": nil}), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "no sha256 claim", auth: signAt(t, testKey, testSecret, body, now, map[string]any{"sha256": nil}), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "hex sha256 claim", auth: signAt(t, testKey, testSecret, body, now, map[string]any{"sha256": strings.Repeat("ab", 32)}), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "body altered by one byte", auth: good(testKey, testSecret), body: append(append([]byte(nil), body[:len(body)-2]...), '1', '}'), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "body with a trailing newline", auth: good(testKey, testSecret), body: append(append([]byte(nil), body...), '\n'), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "missing header", auth: "", wantErr: calls.ErrWebhookUnauthenticated},
		{name: "not a JWT", auth: "abc.def", wantErr: calls.ErrWebhookUnauthenticated},
		{name: "alg none", auth: noneToken(t, body), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "HS512", auth: hs512(t, body), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "signature of another body", auth: signAt(t, testKey, testSecret, []byte(`{"event":"room_started"}`), now, nil), wantErr: calls.ErrWebhookUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := clocked(t, tc.mutate)
			b := body
			if tc.body != nil {
				b = tc.body
			}
			res, err := p.ReceiveWebhook(context.Background(), webhookRequest(tc.auth, b))
			if tc.wantErr == nil {
				if err != nil || len(res.Events) != 1 || res.Events[0].Kind != calls.ProviderRoomEnded {
					t.Fatalf("%+v %v", res, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || len(res.Events) != 0 {
				t.Fatalf("got %+v %v, want %v", res, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), oldSecret) {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

func noneToken(t *testing.T, body []byte) string {
	sum := sha256.Sum256(body)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": testKey, "exp": now.Add(time.Minute).Unix(), "sha256": base64.StdEncoding.EncodeToString(sum[:])}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hs512(t *testing.T, body []byte) string {
	sum := sha256.Sum256(body)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"iss": testKey, "exp": now.Add(time.Minute).Unix(), "sha256": base64.StdEncoding.EncodeToString(sum[:])}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestWebhookEvents(t *testing.T) {
	at := time.Unix(1772366400, 0).UTC()
	for _, tc := range []struct {
		name    string
		body    string
		want    []calls.ProviderEvent
		wantErr error
	}{
		{
			name: "room_started",
			body: `{"event":"room_started","room":{"sid":"RM_1","name":"call-1","emptyTimeout":300,"creationTime":"1772366400"},"id":"EV_a","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_a", Kind: calls.ProviderRoomStarted, Room: "call-1", At: at}},
		},
		{
			name: "room_finished",
			body: `{"event":"room_finished","room":{"sid":"RM_1","name":"call-1"},"id":"EV_b","createdAt":"1772366400","roomEndReason":"API_REQUEST"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_b", Kind: calls.ProviderRoomEnded, Room: "call-1", At: at}},
		},
		{
			name: "participant_joined",
			body: `{"event":"participant_joined","room":{"name":"call-1"},"participant":{"sid":"PA_1","identity":"ada","name":"Ada","state":"ACTIVE","joinedAt":"1772366399","joinedAtMs":"1772366399123"},"id":"EV_c","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_c", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "ada", Name: "Ada", Seq: 2 * 1772366399123, At: at}},
		},
		{
			name: "participant_left",
			body: `{"event":"participant_left","room":{"name":"call-1"},"participant":{"identity":"ada","name":"Ada","joinedAt":"1772366399","joinedAtMs":"1772366399123","disconnectReason":"CLIENT_INITIATED"},"id":"EV_d","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_d", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "ada", Name: "Ada", Seq: 2*1772366399123 + 1, At: at}},
		},
		{
			name: "participant_connection_aborted is a leave",
			body: `{"event":"participant_connection_aborted","room":{"name":"call-1"},"participant":{"identity":"ada","joinedAt":"1772366399"},"id":"EV_e","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_e", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "ada", Seq: 2*1772366399000 + 1, At: at}},
		},
		{
			name: "participant without join time orders by event time",
			body: `{"event":"participant_joined","room":{"name":"call-1"},"participant":{"identity":"ada"},"id":"EV_f","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_f", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "ada", Seq: 2 * 1772366400000, At: at}},
		},
		{
			name: "a recorder joining is not a person",
			body: `{"event":"participant_joined","room":{"name":"call-1"},"participant":{"identity":"EG_1","kind":"EGRESS"},"id":"EV_g","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{},
		},
		{
			name: "egress_ended with files and a playlist",
			body: `{"event":"egress_ended","egressInfo":{"egressId":"EG_1","roomId":"RM_1","roomName":"call-1","status":"EGRESS_COMPLETE","startedAt":"1772366000000000000","endedAt":"1772366400000000000",` +
				`"fileResults":[{"filename":"call-1.mp4","duration":"60000000000","size":"1000","location":"https://bucket.s3.amazonaws.com/call-1.mp4"}],` +
				`"segmentResults":[{"playlistName":"call-1.m3u8","playlistLocation":"https://bucket.s3.amazonaws.com/call-1.m3u8","duration":"61000000000"}]},"id":"EV_h","createdAt":"1772366401"}`,
			want: []calls.ProviderEvent{
				{DeliveryID: "EV_h", Kind: calls.ProviderRecordingReady, Room: "call-1", At: at.Add(time.Second), Recording: &calls.Recording{Kind: "recording", URL: "https://bucket.s3.amazonaws.com/call-1.mp4", ProviderID: "EG_1", Duration: time.Minute, At: at}},
				{DeliveryID: "EV_h#1", Kind: calls.ProviderRecordingReady, Room: "call-1", At: at.Add(time.Second), Recording: &calls.Recording{Kind: "recording", URL: "https://bucket.s3.amazonaws.com/call-1.m3u8", ProviderID: "EG_1", Duration: 61 * time.Second, At: at}},
			},
		},
		{
			name: "egress_ended from an older server (file)",
			body: `{"event":"egress_ended","egressInfo":{"egressId":"EG_2","roomName":"call-1","status":"EGRESS_LIMIT_REACHED","file":{"filename":"out.ogg","duration":"5000000000"}},"id":"EV_i","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{{DeliveryID: "EV_i", Kind: calls.ProviderRecordingReady, Room: "call-1", At: at, Recording: &calls.Recording{Kind: "recording", URL: "out.ogg", ProviderID: "EG_2", Duration: 5 * time.Second, At: at}}},
		},
		{
			name: "failed egress produced nothing",
			body: `{"event":"egress_ended","egressInfo":{"egressId":"EG_3","roomName":"call-1","status":"EGRESS_FAILED","error":"no space"},"id":"EV_j","createdAt":"1772366400"}`,
			want: []calls.ProviderEvent{},
		},
		{name: "track_published is ignored", body: `{"event":"track_published","room":{"name":"call-1"},"participant":{"identity":"ada"},"track":{"sid":"TR_1"},"id":"EV_k"}`, want: []calls.ProviderEvent{}},
		{name: "unknown fields are ignored", body: `{"event":"room_started","room":{"name":"call-1","brandNewField":1},"id":"EV_l","createdAt":"1772366400","future":{"x":1}}`, want: []calls.ProviderEvent{{DeliveryID: "EV_l", Kind: calls.ProviderRoomStarted, Room: "call-1", At: at}}},
		{name: "no createdAt uses the clock", body: `{"event":"room_started","room":{"name":"call-1"}}`, want: []calls.ProviderEvent{{Kind: calls.ProviderRoomStarted, Room: "call-1", At: now}}},
		{name: "not JSON", body: `room_started`, wantErr: calls.ErrWebhookMalformed},
		{name: "no event", body: `{"room":{"name":"call-1"}}`, wantErr: calls.ErrWebhookMalformed},
		{name: "room event without a room", body: `{"event":"room_started"}`, wantErr: calls.ErrWebhookMalformed},
		{name: "participant without identity", body: `{"event":"participant_joined","room":{"name":"call-1"},"participant":{"sid":"PA_1"}}`, wantErr: calls.ErrWebhookMalformed},
		{name: "wrong type", body: `{"event":"room_started","room":{"name":5}}`, wantErr: calls.ErrWebhookMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := clocked(t, nil)
			res, err := p.ReceiveWebhook(context.Background(), webhookRequest(signAt(t, testKey, testSecret, []byte(tc.body), now, nil), []byte(tc.body)))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Events, tc.want) {
				t.Fatalf("events\n got %+v\nwant %+v", res.Events, tc.want)
			}
		})
	}
}

// TestSessionOrdering applies LiveKit's joins and leaves, delivered out of
// order, to a call's roster: a late "joined" never resurrects, a join and
// leave within one second both apply, and a stale leave of an earlier
// session does not remove a rejoin.
func TestSessionOrdering(t *testing.T) {
	p := clocked(t, nil)
	ev := func(event string, joinedMs int64) calls.ProviderEvent {
		body := []byte(`{"event":"` + event + `","room":{"name":"call-1"},"participant":{"identity":"ada","joinedAtMs":"` + itoa(joinedMs) + `"},"createdAt":"1772366400"}`)
		res, err := p.ReceiveWebhook(context.Background(), webhookRequest(signAt(t, testKey, testSecret, body, now, nil), body))
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("%s: %+v %v", event, res, err)
		}
		return res.Events[0]
	}
	c := &calls.Call{ID: "call-1", State: calls.StateActive}
	apply := func(e calls.ProviderEvent) {
		c.MarkPresence(e.Identity, e.Name, e.Kind == calls.ProviderParticipantJoined, e.Seq, e.At)
	}
	in := func() bool { return len(c.Participants) == 1 }

	apply(ev("participant_joined", 1772366400100))
	apply(ev("participant_left", 1772366400100)) // same second
	if in() {
		t.Fatal("a leave in the join's second was dropped")
	}
	apply(ev("participant_joined", 1772366400100)) // late duplicate join
	if in() {
		t.Fatal("a late join resurrected a participant who left")
	}
	apply(ev("participant_joined", 1772366400900)) // rejoin, same second
	if !in() {
		t.Fatal("a rejoin was dropped")
	}
	apply(ev("participant_connection_aborted", 1772366400100)) // old session's late leave
	if !in() {
		t.Fatal("an old session's late leave removed the rejoined participant")
	}
	apply(ev("participant_left", 1772366400900))
	if in() {
		t.Fatal("the rejoined session's leave was dropped")
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// FuzzReceiveWebhook feeds arbitrary headers and bodies, signed or not,
// to the webhook parser: it never panics, refuses with the typed errors
// only, and accepts only events it knows.
func FuzzReceiveWebhook(f *testing.F) {
	v := loadVector(f)
	f.Add([]byte(v.RawBody), "", true)
	f.Add([]byte(v.RawBody), "garbage", false)
	f.Add([]byte(`{"event":"participant_joined","room":{"name":"c"},"participant":{"identity":"a","joinedAtMs":"1"}}`), "", true)
	f.Add([]byte(`{"event":"egress_ended","egressInfo":{"roomName":"c","status":"EGRESS_COMPLETE","fileResults":[{"location":"x","duration":"1"}],"segmentResults":[{}]}}`), "", true)
	f.Add([]byte(`{"event":"participant_left","participant":{"identity":"a","joinedAt":"-9223372036854775808"},"room":{"name":"c"}}`), "", true)
	f.Add([]byte(`{}`), "Bearer x.y.z", false)
	p := clocked(f, nil)
	known := map[calls.ProviderEventKind]bool{calls.ProviderRoomStarted: true, calls.ProviderRoomEnded: true, calls.ProviderParticipantJoined: true, calls.ProviderParticipantLeft: true, calls.ProviderRecordingReady: true}
	f.Fuzz(func(t *testing.T, body []byte, auth string, sign bool) {
		if sign {
			auth = signAt(t, testKey, testSecret, body, now, nil)
		}
		res, err := p.ReceiveWebhook(context.Background(), webhookRequest(auth, body))
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			if len(res.Events) != 0 {
				t.Fatal("events with an error")
			}
			return
		}
		if !sign {
			t.Fatalf("an unsigned delivery was accepted: %q", auth)
		}
		for _, e := range res.Events {
			if !known[e.Kind] || e.Room == "" || (e.Kind == calls.ProviderRecordingReady) != (e.Recording != nil) {
				t.Fatalf("event %+v", e)
			}
			if (e.Kind == calls.ProviderParticipantJoined || e.Kind == calls.ProviderParticipantLeft) && e.Identity == "" {
				t.Fatalf("participant event without identity %+v", e)
			}
		}
	})
}
