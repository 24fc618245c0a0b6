package agora

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// FuzzReceiveWebhook feeds arbitrary bodies, signed with the configured
// secret (so the parser behind the verifier is reached) or with the given
// header value, and checks that the receiver never panics, that every error
// is one of the two webhook errors, and that events are well formed.
func FuzzReceiveWebhook(f *testing.F) {
	const secret = "fuzz+/=secret"
	for _, v := range loadVectors(f).NCS {
		f.Add([]byte(v.RawBody), v.SHA256Hx, true)
		f.Add([]byte(v.RawBody), v.SHA1Hex, false)
	}
	for _, ev := range []int{101, 102, 103, 104, 105, 106, 107, 108, 111} {
		f.Add([]byte(notice(ev, `{"channelName":"call-1","uid":2882341273,"platform":7,"clientSeq":12,"ts":1740830400}`)), "", true)
	}
	f.Add([]byte(`{"productId":1,"eventType":107,"notifyMs":1740830400123,"payload":{"uid":-1}}`), "", true)
	f.Add([]byte(`[]`), "00", false)

	p := newHooks(f, time.UnixMilli(notifyAt), secret)
	f.Fuzz(func(t *testing.T, body []byte, sig string, signIt bool) {
		h := http.Header{SignatureV1Header: {sig}}
		if signIt {
			h = http.Header{SignatureV2Header: {hexMAC(secret, string(body), true)}}
		}
		got, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{Header: h, Body: body})
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("error of another kind: %v", err)
			}
			if len(got.Events) != 0 {
				t.Fatalf("events with an error: %+v", got.Events)
			}
			return
		}
		for _, ev := range got.Events {
			if ev.Room == "" || ev.At.IsZero() || ev.Seq < 0 {
				t.Fatalf("ill-formed event %+v", ev)
			}
			if (ev.Kind == calls.ProviderParticipantJoined || ev.Kind == calls.ProviderParticipantLeft) && (ev.Identity == "" || ev.Identity == "0") {
				t.Fatalf("participant event without identity %+v", ev)
			}
		}
	})
}
