package hms

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
)

var hostileStrings = hs256test.HostileStrings()

// appMapClaims is the reference: the claims golang-jwt signed before.
func appMapClaims(accessKey, roomID, role, userID, jti string, iat, exp int64) jwt.MapClaims {
	return jwt.MapClaims{
		"access_key": accessKey, "type": "app", "version": 2,
		"room_id": roomID, "role": role, "user_id": userID,
		"iat": iat, "nbf": iat, "exp": exp, "jti": jti,
	}
}

func TestAppClaimsMatchEncodingJSON(t *testing.T) {
	for _, a := range hostileStrings {
		for _, iat := range []int64{0, -5, 1700000000, 1 << 40} {
			got := appendAppClaims(nil, a, a+"r", "guest"+a, a, a+"j", iat, iat+3600)
			want, err := json.Marshal(appMapClaims(a, a+"r", "guest"+a, a, a+"j", iat, iat+3600))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("claims(%.40q)\n got %.200s\nwant %.200s", a, got, want)
			}
		}
	}
}

func FuzzAppClaims(f *testing.F) {
	for _, s := range hostileStrings[:len(hostileStrings)-1] {
		f.Add(s, "631b2654f771854d9bf633df", "guest", int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, userID, roomID, role string, iat int64) {
		got := appendAppClaims(nil, testAccessKey, roomID, role, userID, "jti", iat, iat+1)
		want, err := json.Marshal(appMapClaims(testAccessKey, roomID, role, userID, "jti", iat, iat+1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("claims\n got %s\nwant %s", got, want)
		}
	})
}

// TestAppTokenMatchesGolangJWT signs the same claims (jti included) both
// ways: the tokens must be identical.
func TestAppTokenMatchesGolangJWT(t *testing.T) {
	p, err := New(Config{AccessKey: testAccessKey, AppSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range hostileStrings {
		tok, err := p.AppToken(s, "guest", s, testNow, testNow.Add(3600e9))
		if err != nil {
			t.Fatal(err)
		}
		parsed := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, parsed, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }, jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation()); err != nil {
			t.Fatalf("golang-jwt rejects the token: %v", err)
		}
		jti, _ := parsed["jti"].(string)
		iat := testNow.Add(-clockSkew).Unix()
		want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, appMapClaims(testAccessKey, s, "guest", s, jti, iat, testNow.Add(3600e9).Unix())).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		if tok != want {
			t.Fatalf("AppToken(%.40q)\n got %.200s\nwant %.200s", s, tok, want)
		}
	}
}
