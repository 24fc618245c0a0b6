package livekit

import (
	"context"
	"testing"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

// benchBody is a typical participant_joined delivery.
var benchBody = []byte(`{"event":"participant_joined","room":{"sid":"RM_TkVjUvAqgzKz","name":"call-1","emptyTimeout":300,"creationTime":"1772366400","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"}]},"participant":{"sid":"PA_1","identity":"u-1","name":"Ada Lovelace","state":"ACTIVE","joinedAt":"1772366400","joinedAtMs":"1772366400123","permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true}},"id":"EV_abcdefghijk","createdAt":"1772366400"}`)

var (
	benchRoom = calls.Room{Name: "call-1"}
	benchReq  = calls.CredentialRequest{UserID: "u-1", Name: "Ada Lovelace", Role: calls.RoleOwner}
)

// BenchmarkToken mints one join token (HS256, the claims protocol's
// AccessToken writes).
func BenchmarkToken(b *testing.B) {
	p := newTestProvider(b, nil)
	room, req := benchRoom, benchReq
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), room, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookVerify verifies and parses one delivery (JWT HS256 +
// SHA-256 of the body + protojson).
func BenchmarkWebhookVerify(b *testing.B) {
	p := clocked(b, nil)
	req := webhookRequest(signAt(b, testKey, testSecret, benchBody, now, nil), benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ReceiveWebhook(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookVerifyOnly is the verification without parsing.
func BenchmarkWebhookVerifyOnly(b *testing.B) {
	p := clocked(b, nil)
	req := webhookRequest(signAt(b, testKey, testSecret, benchBody, now, nil), benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the ceiling: one raw HMAC-SHA256 over the same
// body.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte(testSecret)
	hs256test.BenchmarkHMAC(b, key, benchBody)
}

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over as many bytes as BenchmarkToken's token signs
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
