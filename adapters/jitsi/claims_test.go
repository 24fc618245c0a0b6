package jitsi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/internal/hs256/hs256test"
	"github.com/callgate/callgate/calls"
)

var hostileStrings = hs256test.HostileStrings()

// referenceClaims are the jwt.MapClaims golang-jwt signed before.
func referenceClaims(p *Provider, room string, req calls.CredentialRequest, issued, expires time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": p.appID, "aud": p.audience, "sub": p.subject, "room": room,
		"iat": issued.Unix(), "nbf": issued.Add(-clockSkew).Unix(), "exp": expires.Unix(),
		"context": map[string]any{"user": map[string]any{"id": req.UserID, "name": req.Name, "moderator": req.Role.IsModerator()}},
	}
}

func checkClaims(t *testing.T, p *Provider, room string, req calls.CredentialRequest, issued, expires time.Time) {
	t.Helper()
	got := p.appendClaims(nil, room, req, issued, expires)
	want, err := json.Marshal(referenceClaims(p, room, req, issued, expires))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("claims\n got %.300s\nwant %.300s", got, want)
	}
}

func TestClaimsMatchEncodingJSON(t *testing.T) {
	for _, s := range hostileStrings {
		p := newProvider(t, Config{AppID: s + "app", AppSecret: testAppSecret, Audience: s + "aud", Subject: s + "sub"})
		for _, role := range []calls.Role{calls.RoleOwner, calls.RoleListener} {
			for _, at := range []time.Time{testNow, time.Unix(0, 0), time.Unix(-100, 5)} {
				req := calls.CredentialRequest{UserID: s, Name: s, Role: role}
				checkClaims(t, p, s, req, at, at.Add(time.Hour))
			}
		}
	}
}

func FuzzClaims(f *testing.F) {
	for _, s := range hostileStrings[:len(hostileStrings)-1] {
		f.Add(s, s, "call-1", int64(1700000000), true)
	}
	f.Fuzz(func(t *testing.T, userID, name, room string, iat int64, owner bool) {
		p := newProvider(t, Config{AppID: testAppID, AppSecret: testAppSecret})
		req := calls.CredentialRequest{UserID: userID, Name: name, Role: calls.RoleListener}
		if owner {
			req.Role = calls.RoleOwner
		}
		at := time.Unix(iat%(1<<40), 0)
		checkClaims(t, p, room, req, at, at.Add(time.Hour))
	})
}

// TestMintMatchesGolangJWT: the token is the one golang-jwt signed.
func TestMintMatchesGolangJWT(t *testing.T) {
	p := newProvider(t, Config{AppID: testAppID, AppSecret: testAppSecret})
	for _, s := range hostileStrings {
		for range 2 { // the second time with recycled buffers and MAC
			req := calls.CredentialRequest{UserID: s, Name: s, Role: calls.RoleOwner}
			got, err := p.mint(s, req, testNow, testNow.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, referenceClaims(p, s, req, testNow, testNow.Add(time.Hour))).SignedString([]byte(testAppSecret))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("mint(%.40q)\n got %.200s\nwant %.200s", s, got, want)
			}
		}
	}
}
