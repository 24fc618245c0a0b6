package livekit

import (
	"context"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// TestLiveKitSDKInterop checks the adapter against LiveKit's own Node SDK
// (livekit-server-sdk, interop/livekit): the SDK's TokenVerifier accepts
// the join tokens the adapter mints and reads the same grants; the SDK's
// WebhookReceiver accepts a webhook signed as livekit-server signs it
// (protocol's AccessToken with the sha256 claim) and refuses it altered;
// and the adapter accepts a webhook the SDK signed.
func TestLiveKitSDKInterop(t *testing.T) {
	script := nodeScript(t)
	p := newTestProvider(t, nil)
	room := calls.Room{Name: "call-1"}
	for _, role := range []calls.Role{calls.RoleOwner, calls.RoleParticipant, calls.RoleListener} {
		cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "u-" + string(role), Name: "Ada", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Claims struct {
				Iss, Sub, Name, Metadata string
				Exp                      int64
				Video                    map[string]any
			}
		}
		runNode(t, script, map[string]any{"mode": "verify", "apiKey": testKey, "apiSecret": testSecret, "token": cred.Token}, &res)
		c := res.Claims
		if c.Iss != testKey || c.Sub != "u-"+string(role) || c.Name != "Ada" || c.Metadata != `{"role":"`+string(role)+`"}` || c.Exp != cred.ExpiresAt.Unix() {
			t.Errorf("%s: claims %+v", role, c)
		}
		want := map[string]any{"roomJoin": true, "room": "call-1", "canPublish": role != calls.RoleListener, "canSubscribe": true, "canPublishData": true}
		if role.IsModerator() {
			want["roomAdmin"] = true
		}
		if !jsonEqual(c.Video, want) {
			t.Errorf("%s: video grant %v, want %v", role, c.Video, want)
		}
	}
	var bad struct{ Claims map[string]any }
	cred, _ := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "u"})
	cmdFails := func() (failed bool) {
		defer func() { failed = recover() != nil }()
		runNode(&panicTB{t}, script, map[string]any{"mode": "verify", "apiKey": testKey, "apiSecret": "another-secret", "token": cred.Token}, &bad)
		return false
	}
	if !cmdFails() {
		t.Errorf("TokenVerifier accepted a token under another secret: %v", bad)
	}

	// Server-signed (protocol's signer, as livekit-server's notifier) →
	// the SDK's WebhookReceiver.
	body := `{"event":"participant_joined","room":{"sid":"RM_1","name":"call-1"},"participant":{"sid":"PA_1","identity":"u-1","name":"Ada","joinedAtMs":"1772366400123"},"id":"EV_1","createdAt":"1772366400"}`
	authz := signWebhook(t, testKey, testSecret, []byte(body))
	var recv struct {
		OK    bool
		Error string
		Event map[string]any
	}
	runNode(t, script, map[string]any{"mode": "receive", "apiKey": testKey, "apiSecret": testSecret, "body": body, "auth": authz}, &recv)
	if !recv.OK || recv.Event["event"] != "participant_joined" || recv.Event["id"] != "EV_1" {
		t.Fatalf("WebhookReceiver: %+v", recv)
	}
	runNode(t, script, map[string]any{"mode": "receive", "apiKey": testKey, "apiSecret": testSecret, "body": body + " ", "auth": authz}, &recv)
	if recv.OK {
		t.Fatal("WebhookReceiver accepted an altered body")
	}

	// SDK-signed → the adapter.
	var signed struct{ Auth string }
	runNode(t, script, map[string]any{"mode": "sign", "apiKey": testKey, "apiSecret": testSecret, "body": body}, &signed)
	res, err := p.ReceiveWebhook(context.Background(), webhookRequest(signed.Auth, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	want := calls.ProviderEvent{DeliveryID: "EV_1", Kind: calls.ProviderParticipantJoined, Room: "call-1", Identity: "u-1", Name: "Ada", Seq: 2 * 1772366400123, At: time.Unix(1772366400, 0).UTC()}
	if len(res.Events) != 1 || res.Events[0] != want {
		t.Fatalf("events %+v", res.Events)
	}
	if _, err := p.ReceiveWebhook(context.Background(), webhookRequest(signed.Auth, []byte(body+" "))); err == nil {
		t.Fatal("altered SDK-signed body accepted")
	}
}

// panicTB turns Fatalf into a panic, to observe an expected failure of a
// helper without failing the test.
type panicTB struct{ testing.TB }

func (p *panicTB) Fatalf(format string, args ...any) { panic("fatal") }
func (p *panicTB) Helper()                           {}
