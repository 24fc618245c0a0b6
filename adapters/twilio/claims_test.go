package twilio

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
)

var hostileStrings = hs256test.HostileStrings()

// encodedClaims is the reference: what the json.Encoder the minting code
// used before wrote.
func encodedClaims(t testing.TB, c *accessClaims) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func claimsOf(identity, room, iss string, iat int64) *accessClaims {
	return &accessClaims{
		JTI:    iss + "-" + "1700000000",
		Grants: grants{Identity: identity, Video: videoGrant{Room: room}},
		IAT:    iat, EXP: iat + 3600, ISS: iss, SUB: testAccountSID,
	}
}

func TestClaimsMatchEncodingJSON(t *testing.T) {
	for _, a := range hostileStrings {
		for _, b := range []string{"call-1", "", a} {
			for _, iat := range []int64{0, -1, 1700000000, 1 << 40} {
				c := claimsOf(a, b, a, iat)
				if got, want := appendClaims(nil, c), encodedClaims(t, c); !bytes.Equal(got, want) {
					t.Fatalf("claims(%.40q, %.40q)\n got %.200s\nwant %.200s", a, b, got, want)
				}
			}
		}
	}
}

func FuzzClaims(f *testing.F) {
	for _, s := range hostileStrings[:len(hostileStrings)-1] {
		f.Add(s, "call-1", int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, identity, room string, iat int64) {
		c := claimsOf(identity, room, testKeySID, iat)
		if got, want := appendClaims(nil, c), encodedClaims(t, c); !bytes.Equal(got, want) {
			t.Fatalf("claims\n got %s\nwant %s", got, want)
		}
	})
}

// TestMintMatchesReference checks whole tokens against the encoding/json
// and crypto/hmac construction the provider used before.
func TestMintMatchesReference(t *testing.T) {
	p, _ := newTestProvider(t)
	issued := time.Unix(1700000000, 0)
	for _, s := range hostileStrings {
		for range 2 { // the second time with recycled buffers and MAC
			got, exp := p.mint(s, s, issued, time.Hour)
			c := claimsOf(s, s, testKeySID, issued.Unix())
			c.JTI = testKeySID + "-1700000000"
			payload := encodedClaims(t, c)
			enc := base64.RawURLEncoding
			signing := tokenHeaderB64 + "." + enc.EncodeToString(payload)
			mac := hmac.New(sha256.New, []byte(testKeySecret))
			mac.Write([]byte(signing))
			if want := signing + "." + enc.EncodeToString(mac.Sum(nil)); got != want {
				t.Fatalf("mint(%.40q)\n got %.200s\nwant %.200s", s, got, want)
			}
			if !exp.Equal(issued.Add(time.Hour)) {
				t.Fatalf("expiry %v", exp)
			}
		}
	}
}
