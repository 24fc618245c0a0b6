package livekit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/callgate/callgate/calls"
)

func TestCredentialGrants(t *testing.T) {
	room := calls.Room{Name: "call-1", ProviderID: "RM_1"}
	for _, role := range calls.Roles {
		t.Run(string(role), func(t *testing.T) {
			p := newTestProvider(t, nil)
			before := time.Now().Truncate(time.Second)
			cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{CallID: "call-1", UserID: "u-1", Name: "Ada L.", Role: role, TTL: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.ParseAPIToken(cred.Token)
			if err != nil || v.APIKey() != testKey || v.Identity() != "u-1" {
				t.Fatalf("token %v key %q identity %q", err, v.APIKey(), v.Identity())
			}
			reg, g, err := v.Verify(testSecret)
			if err != nil {
				t.Fatal(err)
			}
			// token_ttl (1h) wins over the gateway's TTL.
			if exp := reg.ExpiresAt.Time; !exp.Equal(cred.ExpiresAt) || exp.Before(before.Add(time.Hour)) || exp.After(time.Now().Add(time.Hour)) {
				t.Errorf("exp %v, credential %v", exp, cred.ExpiresAt)
			}
			vg := g.Video
			if vg == nil || !vg.RoomJoin || vg.Room != "call-1" || vg.RoomCreate || vg.RoomList {
				t.Fatalf("video grant %+v", vg)
			}
			if vg.GetCanPublish() != (role != calls.RoleListener) || !vg.GetCanSubscribe() || !vg.GetCanPublishData() {
				t.Errorf("%s: publish %v subscribe %v data %v", role, vg.GetCanPublish(), vg.GetCanSubscribe(), vg.GetCanPublishData())
			}
			if vg.RoomAdmin != (role == calls.RoleOwner || role == calls.RolePanelist) {
				t.Errorf("%s: roomAdmin %v", role, vg.RoomAdmin)
			}
			if g.Name != "Ada L." || g.Metadata != `{"role":"`+string(role)+`"}` {
				t.Errorf("name %q metadata %q", g.Name, g.Metadata)
			}
			if cred.Fields["url"] != "wss://project.livekit.cloud" || cred.Fields["room"] != "call-1" || cred.Fields["identity"] != "u-1" || len(cred.Fields) != 3 {
				t.Errorf("fields %v", cred.Fields)
			}
			if cred.JoinURL != "" {
				t.Errorf("join URL without a template: %q", cred.JoinURL)
			}
		})
	}
}

func TestCredentialOptions(t *testing.T) {
	room := calls.Room{Name: "call-1"}
	req := calls.CredentialRequest{UserID: "u-1", Name: "Ada", Role: calls.RoleParticipant, TTL: 10 * time.Minute}

	// Without token_ttl the gateway's TTL applies.
	p := newTestProvider(t, func(c *Config) { c.TokenTTL = 0 })
	cred, err := p.Credential(context.Background(), room, req)
	if err != nil || time.Until(cred.ExpiresAt) > 10*time.Minute+time.Second || time.Until(cred.ExpiresAt) < 9*time.Minute {
		t.Fatalf("expiry %v %v", cred.ExpiresAt, err)
	}

	// LiveKit Meet's link, and the e2ee key: one per room, the same for
	// everyone in it.
	p = newTestProvider(t, func(c *Config) {
		c.JoinURLTemplate = "https://meet.livekit.io/custom?liveKitUrl={{urlquery .URL}}&token={{.Token}}&room={{.Room}}&id={{.Identity}}/{{.UID}}"
		c.E2EE = true
	})
	cred, err = p.Credential(context.Background(), room, req)
	if err != nil {
		t.Fatal(err)
	}
	want := "https://meet.livekit.io/custom?liveKitUrl=wss%3A%2F%2Fproject.livekit.cloud&token=" + cred.Token + "&room=call-1&id=u-1/u-1"
	if cred.JoinURL != want {
		t.Errorf("join URL\n got %s\nwant %s", cred.JoinURL, want)
	}
	other, _ := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "u-2", Role: calls.RoleListener})
	elsewhere, _ := p.Credential(context.Background(), calls.Room{Name: "call-2"}, req)
	k := cred.Fields["e2ee_key"].(string)
	if len(k) < 40 || other.Fields["e2ee_key"] != k || elsewhere.Fields["e2ee_key"] == k || strings.Contains(k, testSecret) {
		t.Errorf("e2ee keys %v %v %v", k, other.Fields["e2ee_key"], elsewhere.Fields["e2ee_key"])
	}

	for name, tc := range map[string]struct {
		room calls.Room
		req  calls.CredentialRequest
	}{
		"no room":      {calls.Room{}, req},
		"no user":      {room, calls.CredentialRequest{Role: calls.RoleOwner}},
		"negative TTL": {room, calls.CredentialRequest{UserID: "u", TTL: -time.Second}},
	} {
		if _, err := p.Credential(context.Background(), tc.room, tc.req); !errors.Is(err, calls.ErrInvalidInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Credential(ctx, room, req); err == nil {
		t.Error("a cancelled request minted a token")
	}
}
