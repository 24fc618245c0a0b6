package agora

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

// benchBody is a typical NCS callback (a user joining), the input size of
// BenchmarkNCSVerify and BenchmarkHMACSHA256.
var benchBody = []byte(notice(107, `{"channelName":"call-1","uid":2882341273,"platform":7,"clientSeq":1625051030746,"ts":1740830400}`))

var (
	benchRoom = calls.Room{Name: "call-1"}
	benchReq  = calls.CredentialRequest{CallID: "call-1", UserID: "ada", Role: calls.RoleParticipant, IssuedAt: issued}
)

// BenchmarkCredential mints one publisher token (RTC, no RTM) through the
// provider: uid derivation, salt, packing, three HMAC-SHA256, zlib, base64.
func BenchmarkCredential(b *testing.B) {
	p := newTest(b, Config{})
	room, req := benchRoom, benchReq
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(ctx, room, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessToken2Build is the token alone (the Go vector's inputs).
func BenchmarkAccessToken2Build(b *testing.B) {
	tok := accessToken{AppID: testAppID, Certificate: testCert, IssueTs: 1111111, Expire: 600, Salt: 1,
		Services: []tokenService{rtcService("7d72365eb983485397e3e3f9d460bdda", 2882341273, true, 600)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.build(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNCSVerify verifies Agora-Signature-V2 only.
func BenchmarkNCSVerify(b *testing.B) {
	p := newTest(b, Config{NCSSecrets: []string{"secret"}})
	req := calls.WebhookRequest{Header: http.Header{SignatureV2Header: {hexMAC("secret", string(benchBody), true)}}, Body: benchBody}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveWebhook is verification plus parsing into an event.
func BenchmarkReceiveWebhook(b *testing.B) {
	p := newHooks(b, time.UnixMilli(notifyAt), "secret")
	req := calls.WebhookRequest{Header: http.Header{SignatureV2Header: {hexMAC("secret", string(benchBody), true)}}, Body: benchBody}
	ctx := context.Background()
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if got, err := p.ReceiveWebhook(ctx, req); err != nil || len(got.Events) != 1 {
			b.Fatal(got, err)
		}
	}
}

// BenchmarkHMACSHA256 is the raw ceiling: one HMAC-SHA256 over the same body.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte("secret")
	hs256test.BenchmarkHMAC(b, key, benchBody)
}

// BenchmarkHMACSHA256TokenInput is the minting ceiling: one raw
// HMAC-SHA256 over BenchmarkCredential's token's signing info (the token
// itself needs three: two derive the key from the salt).
func BenchmarkHMACSHA256TokenInput(b *testing.B) {
	p := newTest(b, Config{})
	cred, err := p.Credential(context.Background(), benchRoom, benchReq)
	if err != nil {
		b.Fatal(err)
	}
	d, err := decodeToken(cred.Token)
	if err != nil {
		b.Fatal(err)
	}
	in := d.SigningInfo
	key := []byte(testCert)
	hs256test.BenchmarkHMAC(b, key, in)
}

// BenchmarkAccessToken2Compress is the pooled default-level zlib of one
// token's content alone (BenchmarkAccessToken2Build's): the part of
// minting that byte identity with Agora's builders fixes
// (TestOnlyLZ77LevelsMatchVectors).
func BenchmarkAccessToken2Compress(b *testing.B) {
	tok := accessToken{AppID: testAppID, Certificate: testCert, IssueTs: 1111111, Expire: 600, Salt: 1,
		Services: []tokenService{rtcService("7d72365eb983485397e3e3f9d460bdda", 2882341273, true, 600)}}
	info, err := tok.signingInfo()
	if err != nil {
		b.Fatal(err)
	}
	content := append(append([]byte{sha256.Size, 0}, make([]byte, sha256.Size)...), info...)
	var z bytes.Buffer
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		z.Reset()
		w := zlibWriters.Get().(*zlib.Writer)
		w.Reset(&z)
		w.Write(content)
		w.Close()
		zlibWriters.Put(w)
	}
}
