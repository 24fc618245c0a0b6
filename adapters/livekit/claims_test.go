package livekit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var hostileStrings = hs256test.HostileStrings()

// referenceClaims is protocol's tokenClaims (unexported there) filled as
// AccessToken.ToJWT fills it for the grant callgate gave before.
type referenceClaims struct {
	jwt.RegisteredClaims
	auth.ClaimGrants
}

func reference(key, room, identity, name string, role calls.Role, iat, exp int64) referenceClaims {
	grant := &auth.VideoGrant{RoomJoin: true, Room: room, RoomAdmin: role.IsModerator()}
	grant.SetCanPublish(role.CanPublish())
	grant.SetCanSubscribe(true)
	grant.SetCanPublishData(true)
	meta, _ := json.Marshal(struct {
		Role string `json:"role"`
	}{string(role)})
	return referenceClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: key, Subject: identity,
			IssuedAt: jwt.NewNumericDate(time.Unix(iat, 0)), NotBefore: jwt.NewNumericDate(time.Unix(iat, 0)),
			ExpiresAt: jwt.NewNumericDate(time.Unix(exp, 0)),
		},
		ClaimGrants: auth.ClaimGrants{Identity: identity, Name: name, Video: grant, Metadata: string(meta)},
	}
}

func checkClaims(t *testing.T, key, room, identity, name string, role calls.Role, iat int64) {
	t.Helper()
	got := appendClaims(nil, key, room, identity, name, role, iat, iat+3600)
	want, err := json.Marshal(reference(key, room, identity, name, role, iat, iat+3600))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("claims\n got %.300s\nwant %.300s", got, want)
	}
}

func TestClaimsMatchEncodingJSON(t *testing.T) {
	for _, s := range hostileStrings {
		for _, role := range append(calls.Roles, calls.Role(s)) {
			for _, iat := range []int64{0, 1700000000, 1 << 40} {
				checkClaims(t, s+"key", s+"room", s, s, role, iat)
				checkClaims(t, testKey, "call-1", "u-1", s, role, iat)
			}
		}
	}
}

func FuzzClaims(f *testing.F) {
	for _, s := range hostileStrings[:len(hostileStrings)-1] {
		f.Add(s, s, "call-1", "owner", int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, identity, name, room, role string, iat int64) {
		if iat < 0 || iat > 1<<40 {
			return // NumericDate's float formatting differs from an int outside real dates
		}
		checkClaims(t, testKey, room, identity, name, calls.Role(role), iat)
	})
}

// TestMintMatchesAccessToken compares tokens with protocol's own
// AccessToken, minted in the same second, and checks they verify.
func TestMintMatchesAccessToken(t *testing.T) {
	p := newTestProvider(t, nil)
	for _, s := range hostileStrings {
		for _, role := range calls.Roles {
			req := calls.CredentialRequest{UserID: s + "u", Name: s, Role: role, TTL: 10 * time.Minute}
			grant := &auth.VideoGrant{RoomJoin: true, Room: "call-1", RoomAdmin: role.IsModerator()}
			grant.SetCanPublish(role.CanPublish())
			grant.SetCanSubscribe(true)
			grant.SetCanPublishData(true)
			at := auth.NewAccessToken(testKey, testSecret).SetIdentity(req.UserID).SetName(req.Name).
				SetMetadata(`{"role":"` + string(role) + `"}`).SetVideoGrant(grant).SetValidFor(p.ttlFor(req))
			for {
				before := time.Now().Unix()
				want, err := at.ToJWT()
				if err != nil {
					t.Fatal(err)
				}
				got, exp := p.mint("call-1", req)
				if time.Now().Unix() != before {
					continue // a second boundary passed: mint again
				}
				if got != want {
					t.Fatalf("%s %.40q\n got %.200s\nwant %.200s", role, s, got, want)
				}
				if want := time.Unix(before, 0).Add(p.ttlFor(req)); !exp.Equal(want) {
					t.Fatalf("expiry %v, want %v", exp, want)
				}
				v, err := auth.ParseAPIToken(got)
				if err != nil {
					t.Fatal(err)
				}
				// encoding/json turned invalid UTF-8 into U+FFFD, so the
				// strings round-trip only when valid.
				if _, g, err := v.Verify(testSecret); err != nil || utf8.ValidString(s) && (g.Name != req.Name || g.Identity != req.UserID) {
					t.Fatalf("verify: %v %+v", err, g)
				}
				break
			}
		}
	}
}
