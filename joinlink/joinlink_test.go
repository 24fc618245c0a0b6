package joinlink

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	signer, err := NewSigner(clock, secretA)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewSigner(clock, secretB, secretA) // B signs now, A still accepted
	other, _ := NewSigner(clock, secretB)
	claims := Claims{CallID: "call-123", UserID: "u1", Name: "Ada", Expiry: now.Add(time.Hour)}
	tok, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	later, _ := NewSigner(func() time.Time { return now.Add(2 * time.Hour) }, secretA)

	tests := []struct {
		name    string
		signer  *Signer
		token   string
		wantErr error
	}{
		{"valid", signer, tok, nil},
		{"accepted after rotation", rotated, tok, nil},
		{"other secret", other, tok, ErrInvalid},
		{"expired", later, tok, ErrExpired},
		{"tampered payload", signer, tamper(tok), ErrInvalid},
		{"garbage", signer, "not-a-token", ErrInvalid},
		{"empty", signer, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.Verify(tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.CallID != "call-123" || got.UserID != "u1" || got.Name != "Ada" || !got.Expiry.Equal(claims.Expiry) {
				t.Fatalf("claims = %+v", got)
			}
		})
	}
}

// tamper changes the call id inside the payload while keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	for i := range p {
		if p[i] == 'Y' {
			p[i] = 'Z'
			break
		}
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestSignerNeedsStrongSecret(t *testing.T) {
	if _, err := NewSigner(nil, []byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
	if _, err := NewSigner(nil); err == nil {
		t.Fatal("no secret was accepted")
	}
	s, _ := NewSigner(nil, secretA)
	if _, err := s.Sign(Claims{CallID: "c"}); err == nil {
		t.Fatal("claims without user and expiry were signed")
	}
}
