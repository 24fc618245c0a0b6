package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"net/url"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var (
	benchRoom = calls.Room{Name: "call-1", ProviderID: roomSID}
	benchReq  = calls.CredentialRequest{UserID: "slack:U012345", Role: calls.RoleParticipant, IssuedAt: time.Unix(1700000000, 0)}
)

// BenchmarkCredential mints one access token (JSON, base64, HMAC-SHA256).
func BenchmarkCredential(b *testing.B) {
	p, _ := newTestProvider(b)
	rm, req := benchRoom, benchReq
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(ctx, rm, req); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRequest is a participant-connected callback as Twilio sends it.
func benchRequest() calls.WebhookRequest {
	params := event("participant-connected", "ParticipantIdentity", "slack:U012345", "ParticipantSid", "PA0123456789abcdef0123456789abcdef", "ParticipantStatus", "connected")
	return request(testAuthToken, testHookURL, testHookURL, params)
}

// signedInput is the bytes one signature covers for benchRequest.
func signedInput() []byte {
	req := benchRequest()
	params, _ := parseForm(req.Body)
	return append([]byte(req.URL), signedParams(params)...)
}

// BenchmarkReceiveWebhook verifies and parses one callback: form parsing,
// four HMAC-SHA1s (two URL forms, two tokens) and the event.
func BenchmarkReceiveWebhook(b *testing.B) {
	p, _ := newTestProvider(b)
	req := benchRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		hook, err := p.ReceiveWebhook(ctx, req)
		if err != nil || len(hook.Events) != 1 {
			b.Fatal(hook, err)
		}
	}
}

// BenchmarkValidSignature is the signature check alone, on parsed params.
func BenchmarkValidSignature(b *testing.B) {
	req := benchRequest()
	params, _ := parseForm(req.Body)
	sig := req.Header.Get(SignatureHeader)
	tokens := [][]byte{[]byte(testAuthToken), []byte(testOldToken)}
	b.ReportAllocs()
	for b.Loop() {
		if !validSignature(tokens, sig, req.URL, params) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkHMACSHA1 is one raw HMAC-SHA1 over the same input: the
// algorithm Twilio signs with.
func BenchmarkHMACSHA1(b *testing.B) {
	in := signedInput()
	key := []byte(testAuthToken)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		mac := hmac.New(sha1.New, key)
		mac.Write(in)
		mac.Sum(nil)
	}
}

// BenchmarkHMACSHA256 is one raw HMAC-SHA256 over the same input: the
// ceiling every provider's verifier is compared with.
func BenchmarkHMACSHA256(b *testing.B) {
	in := signedInput()
	key := []byte(testAuthToken)
	hs256test.BenchmarkHMAC(b, key, in)
}

func parseForm(body []byte) (url.Values, error) { return url.ParseQuery(string(body)) }

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over as many bytes as BenchmarkCredential's token signs
// (header.payload).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p, _ := newTestProvider(b)
	cred, err := p.Credential(context.Background(), benchRoom, benchReq)
	if err != nil {
		b.Fatal(err)
	}
	in := hs256test.SignedPart(cred.Token)
	key := []byte(testKeySecret)
	hs256test.BenchmarkHMAC(b, key, in)
}
