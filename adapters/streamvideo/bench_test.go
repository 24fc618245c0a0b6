package streamvideo

import (
	"context"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var benchBody = []byte(`{"type":"call.session_participant_joined","created_at":"2026-03-14T15:09:26.123456Z","call_cid":"default:call-1","session_id":"5b9c1d4e-0000-4000-8000-000000000001","participant":{"joined_at":"2026-03-14T15:09:26Z","role":"admin","user_session_id":"us1","user":{"id":"ada","name":"Ada Lovelace","role":"user","custom":{}}}}`)

var (
	benchRoom = calls.Room{Name: "call-1", Data: map[string]string{"call_type": "default"}}
	benchReq  = calls.CredentialRequest{UserID: "ada", Role: calls.RoleOwner, TTL: time.Hour, IssuedAt: testNow}
)

// BenchmarkCredential mints one call token.
func BenchmarkCredential(b *testing.B) {
	p := newTestProvider(b, nil)
	room, req := benchRoom, benchReq
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), room, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWebhook(b *testing.B) {
	p := newTestProvider(b, nil)
	req := signedReq(testSecret, benchBody)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWebhookGzip(b *testing.B) {
	p := newTestProvider(b, nil)
	req := signedReq(testSecret, benchBody)
	req.Body = gz(b, benchBody)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReceiveWebhook(b *testing.B) {
	p := newTestProvider(b, nil)
	req := signedReq(testSecret, benchBody)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling over the same body.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte(testSecret)
	hs256test.BenchmarkHMAC(b, key, benchBody)
}

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over as many bytes as BenchmarkCredential's token signs
// (header.payload).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p := newTestProvider(b, nil)
	cred, err := p.Credential(context.Background(), benchRoom, benchReq)
	if err != nil {
		b.Fatal(err)
	}
	in := hs256test.SignedPart(cred.Token)
	key := []byte(testSecret)
	hs256test.BenchmarkHMAC(b, key, in)
}
