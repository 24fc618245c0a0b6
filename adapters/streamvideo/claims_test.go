package streamvideo

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
)

var hostileStrings = hs256test.HostileStrings()

// userMapClaims is the reference: the claims golang-jwt signed before.
func userMapClaims(userID, cid, role string, iat, exp int64) jwt.MapClaims {
	return jwt.MapClaims{"user_id": userID, "iat": iat, "exp": exp, "call_cids": []string{cid}, "role": role}
}

func TestUserClaimsMatchEncodingJSON(t *testing.T) {
	for _, a := range hostileStrings {
		for _, iat := range []int64{0, -5, 1700000000, 1 << 40} {
			got := appendUserClaims(nil, a, "default:"+a, a+"admin", iat, iat+3600)
			want, err := json.Marshal(userMapClaims(a, "default:"+a, a+"admin", iat, iat+3600))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("claims(%.40q)\n got %.200s\nwant %.200s", a, got, want)
			}
		}
	}
}

func FuzzUserClaims(f *testing.F) {
	for _, s := range hostileStrings[:len(hostileStrings)-1] {
		f.Add(s, "default:call-1", "admin", int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, userID, cid, role string, iat int64) {
		got := appendUserClaims(nil, userID, cid, role, iat, iat+1)
		want, err := json.Marshal(userMapClaims(userID, cid, role, iat, iat+1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("claims\n got %s\nwant %s", got, want)
		}
	})
}

// TestUserTokenMatchesGolangJWT: the token is the one golang-jwt signed.
func TestUserTokenMatchesGolangJWT(t *testing.T) {
	p := newTestProvider(t, nil)
	exp := testNow.Add(3600e9)
	for _, s := range hostileStrings {
		for range 2 { // the second time with recycled buffers and MAC
			got := p.userToken(s, "default:"+s, "admin", testNow, exp)
			want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, userMapClaims(s, "default:"+s, "admin", testNow.Add(-clockSkew).Unix(), exp.Unix())).SignedString([]byte(testSecret))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("userToken(%.40q)\n got %.200s\nwant %.200s", s, got, want)
			}
		}
	}
}
