package jitsi

import (
	"context"
	"errors"
	"testing"

	"github.com/callgate/callgate/calls"
)

// FuzzReceiveWebhook feeds JaaS webhooks, signed and not, to the parser:
// it returns typed errors or events with a room, and never accepts an
// unsigned body.
func FuzzReceiveWebhook(f *testing.F) {
	for _, b := range [][]byte{sampleBody(f), []byte(joinedBody), []byte(leftBody)} {
		f.Add(b, true)
		f.Add(b, false)
	}
	p := newProvider(f, Config{WebhookSecrets: []string{hookSecret}})
	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		header := "t=1,v1=AAAA"
		if sign {
			header = jaasSign(hookSecret, testNow, body)
		}
		hook, err := p.ReceiveWebhook(context.Background(), hookRequest(header, body))
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
