package zoom

import (
	"context"
	"strconv"
	"testing"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var benchBody = []byte(`{"event":"meeting.participant_joined","event_ts":1773500966000,"payload":{"account_id":"abc","object":{"id":"85746065432","uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":"x1yCzABCDEfg23HiJKl4mN","topic":"Standup","participant":{"user_id":"16778240","user_name":"Ada Lovelace","id":"zoomUserAda","participant_uuid":"PU1","email":"ada@example.com","join_time":"2026-03-14T15:09:26Z"}}}}`)

// BenchmarkVerifyWebhook is signature verification alone.
func BenchmarkVerifyWebhook(b *testing.B) {
	p := webhookProvider(b, testNow, "test_secret_token")
	req := signed("test_secret_token", strconv.FormatInt(testNow.Unix(), 10), benchBody)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveWebhook is verification plus parsing into events.
func BenchmarkReceiveWebhook(b *testing.B) {
	p := webhookProvider(b, testNow, "test_secret_token")
	req := signed("test_secret_token", strconv.FormatInt(testNow.Unix(), 10), benchBody)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCredential is a non-owner join link (no request is made).
var (
	benchRoom = calls.Room{Name: "85746065432", URL: "https://us05web.zoom.us/j/85746065432?pwd=abc", Data: map[string]string{"password": "p"}}
	benchReq  = calls.CredentialRequest{Role: calls.RoleParticipant, UserID: "ada", TTL: 3600e9, IssuedAt: testNow}
)

// BenchmarkCredential builds one join link: Zoom signs nothing locally.
func BenchmarkCredential(b *testing.B) {
	p := webhookProvider(b, testNow, "s")
	room, req := benchRoom, benchReq
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), room, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling: one HMAC-SHA256 over the same
// signed message.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte("test_secret_token")
	msg := append([]byte("v0:1773500966:"), benchBody...)
	hs256test.BenchmarkHMAC(b, key, msg)
}

// BenchmarkHMACSHA256TokenInput is one raw HMAC-SHA256 over as many bytes
// as BenchmarkCredential's join link, for comparison with the providers
// that sign their tokens (Zoom's credential carries no signature).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p := webhookProvider(b, testNow, "s")
	cred, err := p.Credential(context.Background(), benchRoom, benchReq)
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(cred.JoinURL)
	key := []byte("test_secret_token")
	hs256test.BenchmarkHMAC(b, key, in)
}
