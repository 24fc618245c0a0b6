package hs256

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
)

var hostile = hs256test.HostileStrings()

// stdString is encoding/json's encoding of s.
func stdString(t testing.TB, s string, escapeHTML bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range hostile {
		for _, html := range []bool{true, false} {
			got := AppendString(nil, s, html)
			if want := stdString(t, s, html); !bytes.Equal(got, want) {
				t.Errorf("AppendString(%q, html=%v)\n got %q\nwant %q", trunc(s), html, trunc(string(got)), trunc(string(want)))
			}
		}
	}
	// Every single byte, and every byte after a multi-byte lead.
	for c := 0; c < 256; c++ {
		for _, s := range []string{string([]byte{byte(c)}), "a" + string([]byte{byte(c)}) + "b", "\xe2\x80" + string([]byte{byte(c)})} {
			for _, html := range []bool{true, false} {
				if got, want := AppendString(nil, s, html), stdString(t, s, html); !bytes.Equal(got, want) {
					t.Errorf("byte %#x in %q html=%v: got %q want %q", c, s, html, got, want)
				}
			}
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range hostile[:len(hostile)-1] {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, html bool) {
		if got, want := AppendString([]byte("prefix"), s, html), append([]byte("prefix"), stdString(t, s, html)...); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q, %v) = %q, encoding/json %q", s, html, got, want)
		}
	})
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestSignMatchesGolangJWT(t *testing.T) {
	secret := []byte("a secret of some length")
	s := NewSigner(secret)
	for _, v := range hostile {
		claims := jwt.MapClaims{"sub": v, "n": int64(42)}
		want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		b := Buffer()
		*b = append(*b, `{"n":42,"sub":`...)
		*b = AppendString(*b, v, true)
		*b = append(*b, '}')
		// Twice: the second run uses a recycled MAC and buffer.
		for range 2 {
			c := Buffer()
			*c = append(*c, *b...)
			if got := s.Sign(Header, c); got != want {
				t.Fatalf("Sign = %s\nwant %s", trunc(got), trunc(want))
			}
		}
		PutBuffer(b)
		parsed, err := jwt.Parse(want, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
		if err != nil || !parsed.Valid {
			t.Fatalf("golang-jwt does not verify: %v", err)
		}
	}
}

func TestSignerCopiesSecret(t *testing.T) {
	secret := []byte("secret")
	s := NewSigner(secret)
	want := s.Sign(Header, claims(`{}`))
	secret[0] = 'X'
	if got := s.Sign(Header, claims(`{}`)); got != want {
		t.Fatal("the signer follows changes to the caller's secret slice")
	}
}

func claims(s string) *[]byte {
	b := Buffer()
	*b = append(*b, s...)
	return b
}

func BenchmarkSign(b *testing.B) {
	s := NewSigner([]byte("secret"))
	payload := `{"exp":1700003600,"iat":1700000000,"sub":"u-ada","room":"call-1"}`
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(Header, claims(payload))
	}
}
