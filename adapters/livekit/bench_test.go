package livekit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/callgate/callgate/calls"
)

// benchBody is a typical participant_joined delivery.
var benchBody = []byte(`{"event":"participant_joined","room":{"sid":"RM_TkVjUvAqgzKz","name":"call-1","emptyTimeout":300,"creationTime":"1772366400","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"}]},"participant":{"sid":"PA_1","identity":"u-1","name":"Ada Lovelace","state":"ACTIVE","joinedAt":"1772366400","joinedAtMs":"1772366400123","permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true}},"id":"EV_abcdefghijk","createdAt":"1772366400"}`)

// BenchmarkToken mints one join token (protocol's AccessToken, HS256).
func BenchmarkToken(b *testing.B) {
	p := newTestProvider(b, nil)
	room := calls.Room{Name: "call-1"}
	req := calls.CredentialRequest{UserID: "u-1", Name: "Ada Lovelace", Role: calls.RoleOwner}
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
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(benchBody)
		_ = m.Sum(nil)
	}
}
