package jitsi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var credReq = calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleOwner, UserID: "u-ada", Name: "Ada Lovelace", TTL: time.Hour, IssuedAt: testNow}

// BenchmarkCredentialHS256 is a self-hosted token-auth link.
func BenchmarkCredentialHS256(b *testing.B) {
	p := newProvider(b, Config{AppID: testAppID, AppSecret: testAppSecret})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), calls.Room{Name: "call-1-abcdefghjk"}, credReq); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over as many bytes as BenchmarkCredentialHS256's token signs
// (header.payload).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p := newProvider(b, Config{AppID: testAppID, AppSecret: testAppSecret})
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1-abcdefghjk"}, credReq)
	if err != nil {
		b.Fatal(err)
	}
	in := hs256test.SignedPart(cred.Token)
	key := []byte(testAppSecret)
	hs256test.BenchmarkHMAC(b, key, in)
}

// BenchmarkCredentialJaaS is a JaaS RS256 (2048-bit) link: an RSA
// private-key operation, not comparable with an HMAC.
func BenchmarkCredentialJaaS(b *testing.B) {
	p := newProvider(b, Config{JaaSAppID: jaasApp, JaaSKeyID: jaasKeyID, JaaSPrivateKey: rsaKey(b)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(context.Background(), calls.Room{Name: "call-1-abcdefghjk"}, credReq); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWebhook(b *testing.B) {
	p := newProvider(b, Config{WebhookSecrets: []string{hookSecret}})
	body := []byte(joinedBody)
	req := hookRequest(jaasSign(hookSecret, testNow, body), body)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling over the same signed message.
func BenchmarkHMACSHA256(b *testing.B) {
	msg := []byte(strconv.FormatInt(testNow.Unix(), 10) + "." + joinedBody)
	b.SetBytes(int64(len(joinedBody)))
	for b.Loop() {
		m := hmac.New(sha256.New, []byte(hookSecret))
		m.Write(msg)
		m.Sum(nil)
	}
}
