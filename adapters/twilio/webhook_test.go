package twilio

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// event builds a status callback form as Twilio sends it.
func event(kind string, extra ...string) url.Values {
	v := url.Values{
		"AccountSid":          {testAccountSID},
		"RoomName":            {"call-1"},
		"RoomSid":             {roomSID},
		"RoomStatus":          {"in-progress"},
		"RoomType":            {"group"},
		"StatusCallbackEvent": {kind},
		"Timestamp":           {testNow.Add(-time.Minute).Format(time.RFC3339Nano)},
		"SequenceNumber":      {"3"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
			continue
		}
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func request(token, signedURL, receivedURL string, params url.Values) calls.WebhookRequest {
	h := http.Header{}
	h.Set("Content-Type", form)
	h.Set(SignatureHeader, sign(token, signedURL, params))
	return calls.WebhookRequest{URL: receivedURL, Header: h, Body: []byte(params.Encode())}
}

func TestReceiveWebhookEvents(t *testing.T) {
	at := testNow.Add(-time.Minute)
	for _, tc := range []struct {
		name   string
		params url.Values
		want   []calls.ProviderEvent
	}{
		{"room created", event("room-created", "SequenceNumber", "0"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":0", Kind: calls.ProviderRoomStarted, Room: "call-1", At: at}}},
		{"room ended", event("room-ended", "SequenceNumber", "9", "RoomStatus", "completed"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":9", Kind: calls.ProviderRoomEnded, Room: "call-1", Seq: 9, At: at}}},
		{"participant connected", event("participant-connected", "ParticipantIdentity", "ada", "ParticipantSid", "PA1", "ParticipantStatus", "connected"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":3", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "ada", Seq: 3, At: at}}},
		{"participant disconnected", event("participant-disconnected", "ParticipantIdentity", "ada", "SequenceNumber", "7", "ParticipantDuration", "60"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":7", Kind: calls.ProviderParticipantLeft, Room: "call-1", Identity: "ada", Seq: 7, At: at}}},
		{"recording completed", event("recording-completed", "RecordingSid", "RT1", "MediaUri", "/v1/Recordings/RT1/Media", "Duration", "42", "SequenceNumber", "8"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":8", Kind: calls.ProviderRecordingReady, Room: "call-1", Seq: 8, At: at,
				Recording: &calls.Recording{Kind: "recording", ProviderID: "RT1", URL: "/v1/Recordings/RT1/Media", Duration: 42 * time.Second, At: at}}}},
		{"composition available (RoomName given)", event("composition-available", "CompositionSid", "CJ1", "MediaUri", "/v1/Compositions/CJ1/Media", "Duration", "61", "SequenceNumber", ""),
			[]calls.ProviderEvent{{DeliveryID: "CJ1:composition-available", Kind: calls.ProviderRecordingReady, Room: "call-1", At: at,
				Recording: &calls.Recording{Kind: "composition", ProviderID: "CJ1", URL: "/v1/Compositions/CJ1/Media", Duration: 61 * time.Second, At: at}}}},
		{"unknown event", event("track-added", "TrackSid", "MT1"), []calls.ProviderEvent{}},
		{"no event at all", event("", "StatusCallbackEvent", ""), []calls.ProviderEvent{}},
		{"unreadable timestamp: the event keeps no time", event("room-created", "Timestamp", "yesterday"),
			[]calls.ProviderEvent{{DeliveryID: roomSID + ":3", Kind: calls.ProviderRoomStarted, Room: "call-1", Seq: 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTestProvider(t)
			hook, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, testHookURL, testHookURL, tc.params))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hook.Events, tc.want) || hook.Reply != nil {
				t.Errorf("events\n got %+v\nwant %+v", hook.Events, tc.want)
			}
		})
	}
}

func TestReceiveWebhookCompositionBySID(t *testing.T) {
	params := event("composition-available", "RoomName", "", "SequenceNumber", "", "CompositionSid", "CJ2", "MediaUri", "/v1/Compositions/CJ2/Media")
	p, mock := newTestProvider(t)
	var rec recorder
	mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, rec.responder(answer(200, roomJSON)))
	for range 2 { // the second is answered from memory
		hook, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, testHookURL, testHookURL, params))
		if err != nil || len(hook.Events) != 1 || hook.Events[0].Room != "call-1" || hook.Events[0].Recording.ProviderID != "CJ2" {
			t.Fatalf("%+v %v", hook, err)
		}
	}
	if got := rec.all(); len(got) != 1 || got[0].Auth != wantAuth {
		t.Errorf("room lookups %+v", got)
	}

	// A room Twilio does not know is malformed; a flaky lookup is retried.
	p, mock = newTestProvider(t)
	mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, *answer(404, `{"code": 20404}`))
	if _, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, testHookURL, testHookURL, params)); !errors.Is(err, calls.ErrWebhookMalformed) {
		t.Errorf("unknown room: %v", err)
	}
	p, mock = newTestProvider(t)
	mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, *answer(503, ""))
	_, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, testHookURL, testHookURL, params))
	if err == nil || errors.Is(err, calls.ErrWebhookMalformed) || errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Errorf("flaky lookup: %v", err)
	}
}

func TestReceiveWebhookURLForms(t *testing.T) {
	params := event("participant-connected", "ParticipantIdentity", "ada")
	for _, tc := range []struct{ signed, received string }{
		{testHookURL, testHookURL},
		{"https://gw.example:443/webhooks/providers/tw", testHookURL}, // default port added
		{testHookURL, "https://gw.example:443/webhooks/providers/tw"}, // default port removed
		{"http://gw.example:80/webhooks/providers/tw", "http://gw.example/webhooks/providers/tw"},
		{"http://gw.example/webhooks/providers/tw", "http://gw.example:80/webhooks/providers/tw"},
		{"https://gw.example/webhooks/providers/tw", "https://gw.example:8443/webhooks/providers/tw"}, // any port removed, as the SDKs do
		{"https://gw.example/hooks/webhooks/providers/tw?x=1&y=%27", "https://gw.example/hooks/webhooks/providers/tw?x=1&y=%27"},
		{"https://[::1]:443/webhooks/providers/tw", "https://[::1]/webhooks/providers/tw"},
	} {
		p, _ := newTestProvider(t)
		if _, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, tc.signed, tc.received, params)); err != nil {
			t.Errorf("signed over %s, received at %s: %v", tc.signed, tc.received, err)
		}
	}
	// Other differences are refused.
	for _, tc := range []struct{ signed, received string }{
		{"https://gw.example/webhooks/providers/tw", "http://gw.example/webhooks/providers/tw"},
		{"https://gw.example/webhooks/providers/tw", "https://gw.example/webhooks/providers/tw2"},
		{"https://gw.example/webhooks/providers/tw?x=1", "https://gw.example/webhooks/providers/tw"},
		{"https://gw.example:8443/webhooks/providers/tw", "https://gw.example:9443/webhooks/providers/tw"},
	} {
		p, _ := newTestProvider(t)
		if _, err := p.ReceiveWebhook(context.Background(), request(testAuthToken, tc.signed, tc.received, params)); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
			t.Errorf("signed over %s, received at %s: %v", tc.signed, tc.received, err)
		}
	}
}

func TestReceiveWebhookRefusals(t *testing.T) {
	params := event("participant-connected", "ParticipantIdentity", "ada")
	good := func() calls.WebhookRequest { return request(testAuthToken, testHookURL, testHookURL, params) }
	for _, tc := range []struct {
		name string
		req  func() calls.WebhookRequest
		cfg  func(*Config)
		want error
	}{
		{"current token", good, nil, nil},
		{"previous token during rotation", func() calls.WebhookRequest { return request(testOldToken, testHookURL, testHookURL, params) }, nil, nil},
		{"previous token after rotation ends", func() calls.WebhookRequest { return request(testOldToken, testHookURL, testHookURL, params) },
			func(c *Config) { c.AuthTokens = []string{testAuthToken} }, calls.ErrWebhookUnauthenticated},
		{"unknown third token", func() calls.WebhookRequest { return request(testOtherToken, testHookURL, testHookURL, params) }, nil, calls.ErrWebhookUnauthenticated},
		{"no token configured: fail closed", good, func(c *Config) { c.AuthTokens = nil }, calls.ErrWebhookUnauthenticated},
		{"missing header", func() calls.WebhookRequest { r := good(); r.Header.Del(SignatureHeader); return r }, nil, calls.ErrWebhookUnauthenticated},
		{"header under a lower-case key", func() calls.WebhookRequest {
			r := good()
			sig := r.Header.Get(SignatureHeader)
			r.Header = http.Header{"x-twilio-signature": {sig}}
			return r
		}, nil, nil},
		{"wrong signature", func() calls.WebhookRequest {
			r := good()
			r.Header.Set(SignatureHeader, sign(testAuthToken, testHookURL, nil))
			return r
		}, nil, calls.ErrWebhookUnauthenticated},
		{"signature not base64", func() calls.WebhookRequest { r := good(); r.Header.Set(SignatureHeader, "%%%"); return r }, nil, calls.ErrWebhookUnauthenticated},
		{"body altered by one byte", func() calls.WebhookRequest {
			r := good()
			i := strings.Index(string(r.Body), "ParticipantIdentity=ada") + len("ParticipantIdentity=ad")
			r.Body[i] = 'b'
			return r
		}, nil, calls.ErrWebhookUnauthenticated},
		{"parameter added", func() calls.WebhookRequest { r := good(); r.Body = append(r.Body, "&X=1"...); return r }, nil, calls.ErrWebhookUnauthenticated},
		{"body not a form", func() calls.WebhookRequest { r := good(); r.Body = append(r.Body, "&%zz"...); return r }, nil, calls.ErrWebhookUnauthenticated},
		{"URL unreadable", func() calls.WebhookRequest { r := good(); r.URL = "::"; return r }, nil, calls.ErrWebhookUnauthenticated},
		{"stale event", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("participant-connected", "ParticipantIdentity", "ada", "Timestamp", testNow.Add(-ReplayWindow-time.Second).Format(time.RFC3339)))
		}, nil, calls.ErrWebhookUnauthenticated},
		{"event from the future", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("participant-connected", "ParticipantIdentity", "ada", "Timestamp", testNow.Add(MaxFutureSkew+time.Second).Format(time.RFC1123Z)))
		}, nil, calls.ErrWebhookUnauthenticated},
		{"participant without identity", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("participant-connected"))
		}, nil, calls.ErrWebhookMalformed},
		{"sequence number not a number", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("participant-connected", "ParticipantIdentity", "ada", "SequenceNumber", "x"))
		}, nil, calls.ErrWebhookMalformed},
		{"no room", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("room-created", "RoomName", "", "RoomSid", ""))
		}, nil, calls.ErrWebhookMalformed},
		{"recording without SID", func() calls.WebhookRequest {
			return request(testAuthToken, testHookURL, testHookURL, event("recording-completed"))
		}, nil, calls.ErrWebhookMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var muts []func(*Config)
			if tc.cfg != nil {
				muts = append(muts, tc.cfg)
			}
			p, _ := newTestProvider(t, muts...)
			hook, err := p.ReceiveWebhook(context.Background(), tc.req())
			if tc.want == nil {
				if err != nil || len(hook.Events) != 1 {
					t.Fatalf("%+v, %v", hook, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if len(hook.Events) != 0 {
				t.Errorf("a refused webhook gave events %+v", hook.Events)
			}
			for _, secret := range []string{testAuthToken, testOldToken, testOtherToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestSignedParamsRepeatedNames(t *testing.T) {
	// Repeated names: values sorted, duplicates dropped, each preceded by the
	// name (twilio-node's toFormUrlEncodedParam).
	got := string(signedParams(url.Values{"b": {"2"}, "a": {"z", "y", "z"}, "Reason": {"x"}, "ReasonConferenceEnded": {"w"}}))
	if want := "ReasonxReasonConferenceEndedwayaz" + "b2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPortForms(t *testing.T) {
	for _, tc := range []struct{ in, removed, added string }{
		{"https://a.example/p?q=1", "https://a.example/p?q=1", "https://a.example:443/p?q=1"},
		{"HTTPS://a.example", "HTTPS://a.example", "HTTPS://a.example:443"},
		{"http://a.example:8080/p", "http://a.example/p", "http://a.example:8080/p"},
		{"http://u:pw@a.example/p", "http://u:pw@a.example/p", "http://u:pw@a.example:80/p"},
		{"https://[::1]:8443/p", "https://[::1]/p", "https://[::1]:8443/p"},
		{"https://[::1]/p#f", "https://[::1]/p#f", "https://[::1]:443/p#f"},
		{"https://a.example?x=:1", "https://a.example?x=:1", "https://a.example:443?x=:1"},
		{"not a url", "not a url", "not a url"},
		{"1http://a", "1http://a", "1http://a"},
	} {
		if got := removePort(tc.in); got != tc.removed {
			t.Errorf("removePort(%q) = %q, want %q", tc.in, got, tc.removed)
		}
		if got := addPort(tc.in); got != tc.added {
			t.Errorf("addPort(%q) = %q, want %q", tc.in, got, tc.added)
		}
	}
}
