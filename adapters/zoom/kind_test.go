package zoom

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/webhooks"
)

func TestKindDefaultsAndBuild(t *testing.T) {
	if Kind.Name != "zoom" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	want := &Settings{UserID: "me", OAuthURL: "https://zoom.us", APIURL: "https://api.zoom.us/v2", TokenTTL: time.Hour}
	if !ok || !reflect.DeepEqual(s, want) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	s.AccountID, s.ClientID, s.ClientSecret = "a", "c", "s"
	s.APIURL = "https://api.zoom.example/v2/"
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "zoom"})
	if err != nil {
		t.Fatal(err)
	}
	if _, takes := p.(webhooks.ProviderReceiver); takes {
		t.Error("a provider without a webhook secret token takes webhooks")
	}
	if _, ok := p.(calls.RoomStatusReporter); !ok {
		t.Error("RoomStatus lost without webhooks")
	}
	if in := adapters.Unwrapped(p).(*Provider); in.apiURL != "https://api.zoom.example/v2" || in.userID != "me" {
		t.Errorf("built %+v", in)
	}
	s.WebhookSecretToken, s.PreviousWebhookSecretToken = "new", "old"
	p, err = Kind.New(context.Background(), s, adapters.Deps{Name: "zoom"})
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := p.(*Provider); !ok || len(in.webhook) != 2 {
		t.Errorf("with webhook secrets: %T", p)
	}
	if _, ok := p.(webhooks.ProviderReceiver); !ok {
		t.Error("no webhook receiver with a secret token")
	}
	if _, err := Kind.New(context.Background(), &Settings{}, adapters.Deps{}); err == nil {
		t.Error("built without credentials")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := func() Settings {
		s := *defaultSettings()
		s.AccountID, s.ClientID, s.ClientSecret = "a", "c", "super-secret-value"
		return s
	}
	with := func(f func(*Settings)) Settings { s := ok(); f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"complete", ok(), nil},
		{"defaults lack credentials", *defaultSettings(), []string{
			"account_id: is required (the Server-to-Server OAuth app's App Credentials)",
			"client_id: is required (the Server-to-Server OAuth app's App Credentials)",
			"client_secret: is required (the Server-to-Server OAuth app's App Credentials)"}},
		{"no user", with(func(s *Settings) { s.UserID = " " }), []string{`user_id: is required: a Zoom user id or email, or "me"`}},
		{"bad api url", with(func(s *Settings) { s.APIURL = "api.zoom.us" }), []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"oauth url with credentials", with(func(s *Settings) { s.OAuthURL = "https://u:p@zoom.us" }), []string{"oauth_url: must not contain a user name or password"}},
		{"negative ttl", with(func(s *Settings) { s.TokenTTL = -time.Second }), []string{"token_ttl: must not be negative"}},
		{"previous alone", with(func(s *Settings) { s.PreviousWebhookSecretToken = "x" }), []string{"previous_webhook_secret_token: set only together with webhook_secret_token, during a rotation"}},
		{"bad template", with(func(s *Settings) { s.JoinURLTemplate = "{{.URL" }), []string{"join_url_template: is not a valid Go template: template: join:1: unclosed action"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, msg string, near ...string) {
				if strings.Contains(msg, tc.s.ClientSecret) && tc.s.ClientSecret != "" {
					t.Errorf("message shows the secret: %s", msg)
				}
				got = append(got, field+": "+msg)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
