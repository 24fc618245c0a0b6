package jitsi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

const (
	jaasApp   = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"
	jaasKeyID = "4f4910"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		testKey = k
	})
	return testKey
}

func pkcs8PEM(t testing.TB, k any) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// jaasTemplate is the token template from 8x8's docs, in the vectors file.
func jaasTemplate(t testing.TB) (header, payload map[string]any) {
	raw, err := os.ReadFile("testdata/jitsi.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		T struct {
			Header  map[string]any `json:"header"`
			Payload map[string]any `json:"payload"`
		} `json:"jaas_jwt_template"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.T.Header, v.T.Payload
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestJaaSCredential(t *testing.T) {
	key := rsaKey(t)
	tmplHeader, tmplPayload := jaasTemplate(t)
	for _, tc := range []struct {
		name    string
		base    string
		keyID   string
		role    calls.Role
		mod     string
		wantURL string
	}{
		{"owner, default URL", "", jaasKeyID, calls.RoleOwner, "true", "https://8x8.vc/" + jaasApp + "/call-1-abcdefghjk?jwt="},
		{"panelist, public default replaced", DefaultBaseURL, jaasApp + "/" + jaasKeyID, calls.RolePanelist, "true", "https://8x8.vc/" + jaasApp + "/call-1-abcdefghjk?jwt="},
		{"participant, tenant already in api_url", "https://8x8.vc/" + jaasApp + "/", jaasKeyID, calls.RoleParticipant, "false", "https://8x8.vc/" + jaasApp + "/call-1-abcdefghjk?jwt="},
		{"listener, staging domain", "https://stage.8x8.vc", jaasKeyID, calls.RoleListener, "false", "https://stage.8x8.vc/" + jaasApp + "/call-1-abcdefghjk?jwt="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, Config{BaseURL: tc.base, JaaSAppID: jaasApp, JaaSKeyID: tc.keyID, JaaSPrivateKey: key})
			cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1-abcdefghjk"}, calls.CredentialRequest{
				Type: calls.TypeVideo, Role: tc.role, UserID: "u-ada", Name: "Ada Lovelace", TTL: 30 * time.Minute, IssuedAt: testNow,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cred.JoinURL, tc.wantURL+cred.Token) || cred.Token == "" {
				t.Fatalf("join URL %s", cred.JoinURL)
			}
			if strings.Contains(cred.JoinURL, "displayName") {
				t.Fatal("JaaS link carries the name in the fragment too")
			}
			if cred.Fields["app_id"] != jaasApp || cred.Fields["room_name"] != jaasApp+"/call-1-abcdefghjk" || cred.Fields["jwt"] != cred.Token {
				t.Fatalf("fields %v", cred.Fields)
			}
			// Verified with the public key only, as 8x8 does.
			claims := jwt.MapClaims{}
			tok, err := jwt.ParseWithClaims(cred.Token, claims, func(tok *jwt.Token) (any, error) { return &key.PublicKey, nil },
				jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("jitsi"), jwt.WithIssuer("chat"),
				jwt.WithTimeFunc(func() time.Time { return testNow.Add(time.Minute) }), jwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("RS256 token does not verify with the public key: %v", err)
			}
			// The header as in the docs' template: same keys, kid of the
			// same "<AppID>/<key id>" form (the template's own kid here).
			if !reflect.DeepEqual(keys(tok.Header), keys(tmplHeader)) || tok.Header["alg"] != "RS256" || tok.Header["typ"] != "JWT" {
				t.Fatalf("header %v, template %v", tok.Header, tmplHeader)
			}
			if tok.Header["kid"] != tmplHeader["kid"] {
				t.Fatalf("kid %v, want %v", tok.Header["kid"], tmplHeader["kid"])
			}
			if !reflect.DeepEqual(keys(claims), keys(tmplPayload)) {
				t.Fatalf("claims %v, template %v", keys(claims), keys(tmplPayload))
			}
			want := map[string]any{
				"aud": "jitsi", "iss": "chat", "sub": jaasApp, "room": "call-1-abcdefghjk",
				"exp": float64(testNow.Add(30 * time.Minute).Unix()), "nbf": float64(testNow.Add(-clockSkew).Unix()),
				"context": map[string]any{
					"user":     map[string]any{"id": "u-ada", "name": "Ada Lovelace", "avatar": "", "email": "", "moderator": tc.mod, "hidden-from-recorder": false},
					"features": map[string]any{"livestreaming": tc.mod, "recording": tc.mod, "transcription": tc.mod, "outbound-call": "false"},
					"room":     map[string]any{"regex": false},
				},
			}
			if got := map[string]any(claims); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("claims\n %s\nwant\n %s", g, w)
			}
			tctx := tmplPayload["context"].(map[string]any)
			gctx := claims["context"].(map[string]any)
			for _, part := range []string{"user", "features", "room"} {
				if !reflect.DeepEqual(keys(gctx[part].(map[string]any)), keys(tctx[part].(map[string]any))) {
					t.Fatalf("context.%s keys %v, template %v", part, keys(gctx[part].(map[string]any)), keys(tctx[part].(map[string]any)))
				}
			}
			// Another key does not verify it; nor does an HS256 reading.
			other, _ := rsa.GenerateKey(rand.Reader, 1024)
			if _, err := jwt.Parse(cred.Token, func(*jwt.Token) (any, error) { return &other.PublicKey, nil }, jwt.WithTimeFunc(func() time.Time { return testNow })); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Fatalf("verified with another key: %v", err)
			}
			if _, err := jwt.Parse(cred.Token, func(*jwt.Token) (any, error) { return []byte("x"), nil }, jwt.WithValidMethods([]string{"HS256"})); err == nil {
				t.Fatal("token reads as HS256")
			}
		})
	}
}

func TestJaaSNew(t *testing.T) {
	key := rsaKey(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"key without app", Config{JaaSKeyID: "k", JaaSPrivateKey: key}, "set together"},
		{"app without key", Config{JaaSAppID: jaasApp, JaaSKeyID: "k"}, "set together"},
		{"with self-hosted auth", Config{AppID: "a", AppSecret: "s", JaaSAppID: jaasApp, JaaSKeyID: "k", JaaSPrivateKey: key}, "exclusive"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Self-hosted HS256 and public behaviour stay as they were.
	p := newProvider(t, Config{})
	if p.tokenAuth() || p.base != DefaultBaseURL {
		t.Fatalf("public: %+v", p)
	}
}

func TestParseRSAPrivateKey(t *testing.T) {
	key := rsaKey(t)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name, pem, err string
	}{
		{"pkcs8", pkcs8PEM(t, key), ""},
		{"pkcs1", pkcs1, ""},
		{"escaped newlines from an env var", strings.ReplaceAll(strings.TrimSpace(pkcs8PEM(t, key)), "\n", `\n`), ""},
		{"not pem", "MIIEvQIBADANBg", "is not a PEM block"},
		{"ec key", pkcs8PEM(t, ec), "not RSA"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", `is a PEM "CERTIFICATE" block`},
		{"garbled pkcs8", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid PKCS#8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseRSAPrivateKey(tc.pem)
			if tc.err == "" {
				if err != nil || !k.Equal(key) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestJaaSSettings(t *testing.T) {
	key := pkcs8PEM(t, rsaKey(t))
	ok := func() Settings {
		s := *defaultSettings()
		s.JaaSAppID, s.JaaSKeyID, s.JaaSPrivateKey = jaasApp, jaasKeyID, key
		return s
	}
	with := func(f func(*Settings)) Settings { s := ok(); f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"complete", ok(), nil},
		{"prefixed key id", with(func(s *Settings) { s.JaaSKeyID = jaasApp + "/" + jaasKeyID }), nil},
		{"key id of another app", with(func(s *Settings) { s.JaaSKeyID = "vpaas-magic-cookie-other/4f4910" }), []string{"jaas_key_id: {value} belongs to another AppID than jaas_app_id"}},
		{"not an app id", with(func(s *Settings) { s.JaaSAppID = "my-app" }), []string{"jaas_app_id: {value} is not a JaaS AppID (vpaas-magic-cookie-…)"}},
		{"missing key id and key", with(func(s *Settings) { s.JaaSKeyID, s.JaaSPrivateKey = "", "" }), []string{
			"jaas_key_id: required with jaas_app_id (JaaS console → API Keys) [jaas_app_id]",
			"jaas_private_key: required with jaas_app_id (the PEM private key of the API key) [jaas_app_id]"}},
		{"key is not RSA PEM", with(func(s *Settings) { s.JaaSPrivateKey = "secret-not-a-key" }), []string{"jaas_private_key: is not a PEM block (-----BEGIN PRIVATE KEY-----)"}},
		{"key without app", Settings{JaaSKeyID: "k", JaaSPrivateKey: key}, []string{"jaas_app_id: required when jaas_key_id is set [jaas_key_id]", "jaas_app_id: required when jaas_private_key is set [jaas_private_key]"}},
		{"with self-hosted auth", with(func(s *Settings) { s.AppID, s.AppSecret = "a", "0123456789abcdef" }), []string{"jaas_app_id: JaaS and self-hosted token auth (app_id, app_secret) are exclusive; set one of them"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, msg string, near ...string) {
				if strings.Contains(msg, "secret-not-a-key") || strings.Contains(msg, "PRIVATE KEY-----\n") {
					t.Errorf("message shows the key: %s", msg)
				}
				if len(near) > 0 {
					msg += " [" + strings.Join(near, ",") + "]"
				}
				got = append(got, field+": "+msg)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	s := ok()
	s.WebhookSecret = hookSecret
	p, err := Kind.New(context.Background(), &s, adapters.Deps{Name: "jaas"})
	if err != nil {
		t.Fatal(err)
	}
	in := p.(*Provider)
	if in.base != "https://8x8.vc/"+jaasApp || in.jaasKid != jaasApp+"/"+jaasKeyID || in.subject != jaasApp || !in.jaasKey.Equal(rsaKey(t)) {
		t.Fatalf("built %+v", in)
	}
	s.JaaSPrivateKey = "nope"
	if _, err := Kind.New(context.Background(), &s, adapters.Deps{}); err == nil || strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad key: %v", err)
	}
}
