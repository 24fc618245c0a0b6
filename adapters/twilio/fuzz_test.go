package twilio

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/calls"
)

// FuzzReceiveWebhook feeds arbitrary URLs, signatures and bodies to the
// verifier and parser. Whatever comes in, it must not panic, must refuse
// with one of the two webhook errors, and must never return events for a
// request it refused. When the fuzzer's body is a form, the same request
// signed with the configured token must pass verification.
func FuzzReceiveWebhook(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.URL, v.ExpectedSignature, string(v.body()))
	}
	for _, kind := range []string{"room-created", "participant-connected", "participant-disconnected", "room-ended", "recording-completed", "composition-available", "track-added"} {
		params := event(kind, "ParticipantIdentity", "ada", "RecordingSid", "RT1", "CompositionSid", "CJ1", "Duration", "5")
		f.Add(testHookURL, sign(testAuthToken, testHookURL, params), params.Encode())
	}
	f.Add("https://gw.example:443/x?bodySHA256=00", "", `{"a":1}`)
	p, mock := newTestProvider(f)
	mock.RegisterNoResponder(httpmock.NewStringResponder(404, `{"code": 20404}`))
	p.client.RetryMax = 0
	f.Fuzz(func(t *testing.T, rawURL, sig, body string) {
		req := calls.WebhookRequest{URL: rawURL, Header: http.Header{SignatureHeader: {sig}}, Body: []byte(body)}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("error of no webhook kind: %v", err)
			}
			if len(hook.Events) != 0 {
				t.Fatalf("refused request gave events: %+v", hook.Events)
			}
		}
		for _, ev := range hook.Events {
			if ev.Room == "" || ev.Kind == "" {
				t.Fatalf("event without room or kind: %+v", ev)
			}
		}

		params, perr := url.ParseQuery(body)
		u, uerr := url.Parse(rawURL)
		if perr != nil || uerr != nil || u.Host == "" || u.Query().Get("bodySHA256") != "" || strings.ContainsAny(rawURL, "\x00") {
			return
		}
		req.Header.Set(SignatureHeader, sign(testAuthToken, rawURL, params))
		if _, err := p.verify(req); err != nil {
			t.Fatalf("own signature over %q refused: %v", rawURL, err)
		}
	})
}
