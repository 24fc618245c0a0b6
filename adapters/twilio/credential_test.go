package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/calls"
)

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCredential(t *testing.T) {
	p, _ := newTestProvider(t)
	rm := calls.Room{Name: "call-1", ProviderID: roomSID}
	issued := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name       string
		req        calls.CredentialRequest
		wantTTL    int64
		canPublish bool
	}{
		{"owner, default ttl", calls.CredentialRequest{UserID: "ada", Role: calls.RoleOwner, IssuedAt: issued}, 3600, true},
		{"participant, own ttl", calls.CredentialRequest{UserID: "bob", Role: calls.RoleParticipant, TTL: 10 * time.Minute, IssuedAt: issued}, 600, true},
		{"listener cannot publish", calls.CredentialRequest{UserID: "cy", Role: calls.RoleListener, IssuedAt: issued}, 3600, false},
		{"ttl capped at 24h", calls.CredentialRequest{UserID: "dee", Role: calls.RolePanelist, TTL: 48 * time.Hour, IssuedAt: issued}, 86400, true},
		{"identity with <&>", calls.CredentialRequest{UserID: "slack:U<1>&2", IssuedAt: issued}, 3600, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := p.Credential(context.Background(), rm, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(cred.Token, ".")
			if len(parts) != 3 {
				t.Fatalf("token %q", cred.Token)
			}
			// Header as the SDK writes it, byte for byte.
			if h, _ := base64.RawURLEncoding.DecodeString(parts[0]); string(h) != `{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}` {
				t.Errorf("header %s", h)
			}
			want := map[string]any{
				"jti":    testKeySID + "-1700000000",
				"grants": map[string]any{"identity": tc.req.UserID, "video": map[string]any{"room": "call-1"}},
				"iat":    float64(1700000000),
				"exp":    float64(1700000000 + tc.wantTTL),
				"iss":    testKeySID,
				"sub":    testAccountSID,
			}
			if got := decodeSegment(t, parts[1]); !reflect.DeepEqual(got, want) {
				t.Errorf("claims\n got %v\nwant %v", got, want)
			}
			// A standard JWT library accepts the HS256 signature under the
			// API key secret, and no other.
			parsed, err := jwt.Parse(cred.Token, func(*jwt.Token) (any, error) { return []byte(testKeySecret), nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return issued.Add(time.Minute) }))
			if err != nil || !parsed.Valid {
				t.Errorf("token does not verify: %v", err)
			}
			if _, err := jwt.Parse(cred.Token, func(*jwt.Token) (any, error) { return []byte("other"), nil },
				jwt.WithTimeFunc(func() time.Time { return issued })); err == nil {
				t.Error("token verifies under another secret")
			}
			if !cred.ExpiresAt.Equal(issued.Add(time.Duration(tc.wantTTL) * time.Second)) {
				t.Errorf("expires %s", cred.ExpiresAt)
			}
			wantFields := map[string]any{"room": "call-1", "identity": tc.req.UserID, "can_publish": tc.canPublish}
			if !reflect.DeepEqual(cred.Fields, wantFields) {
				t.Errorf("fields %v", cred.Fields)
			}
			if cred.JoinURL != "" {
				t.Errorf("join URL without a template: %q", cred.JoinURL)
			}
		})
	}
}

func TestCredentialDefaultsAndTemplate(t *testing.T) {
	p, _ := newTestProvider(t, func(c *Config) {
		c.TokenTTL = 2 * time.Hour
		c.JoinURLTemplate = "https://app.example/join/{{.Room}}?identity={{.Identity | urlquery}}&uid={{.UID}}&token={{.Token}}"
	})
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1"}, calls.CredentialRequest{UserID: "a b"})
	if err != nil {
		t.Fatal(err)
	}
	// IssuedAt defaults to the clock, the TTL to token_ttl.
	if !cred.ExpiresAt.Equal(testNow.Add(2 * time.Hour)) {
		t.Errorf("expires %s", cred.ExpiresAt)
	}
	if want := "https://app.example/join/call-1?identity=a+b&uid=a b&token=" + cred.Token; cred.JoinURL != want {
		t.Errorf("join URL %q, want %q", cred.JoinURL, want)
	}

	for _, tc := range []struct {
		room calls.Room
		req  calls.CredentialRequest
	}{
		{calls.Room{}, calls.CredentialRequest{UserID: "ada"}},
		{calls.Room{Name: "call-1"}, calls.CredentialRequest{}},
		{calls.Room{Name: "call-1"}, calls.CredentialRequest{UserID: "ada", TTL: -time.Second}},
	} {
		if _, err := p.Credential(context.Background(), tc.room, tc.req); !errors.Is(err, calls.ErrInvalidInput) {
			t.Errorf("%+v %+v: %v", tc.room, tc.req, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Credential(ctx, calls.Room{Name: "call-1"}, calls.CredentialRequest{UserID: "ada"}); err == nil {
		t.Error("credential minted for a cancelled request")
	}
}
