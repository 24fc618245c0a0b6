package twilio

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
	if Kind.Name != "twilio" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok || !reflect.DeepEqual(s, &Settings{RoomType: "group", APIURL: "https://video.twilio.com", TokenTTL: time.Hour}) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}
	deps := adapters.Deps{Name: "tw", WebhookURL: testHookURL, Now: time.Now}

	s.AccountSID, s.APIKeySID, s.APIKeySecret = testAccountSID, testKeySID, testKeySecret
	s.APIURL = "https://video.example/"
	p, err := Kind.New(context.Background(), s, deps)
	if err != nil {
		t.Fatal(err)
	}
	in, ok := adapters.Unwrapped(p).(*Provider)
	if !ok || p == adapters.Unwrapped(p) {
		t.Fatalf("without an auth token the provider is %T", p)
	}
	if _, takes := p.(webhooks.ProviderReceiver); takes {
		t.Error("a provider without an auth token takes webhooks")
	}
	if _, reports := p.(calls.RoomStatusReporter); !reports {
		t.Error("a provider without an auth token lost room status")
	}
	if in.statusCallback != "" || in.base != "https://video.example" || in.roomType != "group" || in.ttl != time.Hour {
		t.Errorf("built %+v", in)
	}

	s.AuthToken, s.PreviousAuthToken, s.RoomType = testAuthToken, testOldToken, "group-small"
	p, err = Kind.New(context.Background(), s, deps)
	if err != nil {
		t.Fatal(err)
	}
	in, ok = p.(*Provider)
	if !ok || len(in.authTokens) != 2 || in.statusCallback != testHookURL || in.roomType != "group-small" {
		t.Fatalf("with auth tokens: %T %+v", p, p)
	}
	if _, takes := p.(webhooks.ProviderReceiver); !takes {
		t.Error("a provider with an auth token takes no webhooks")
	}

	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
	bad := *s
	bad.APIKeySID = testAccountSID
	if _, err := Kind.New(context.Background(), &bad, deps); err == nil || strings.Contains(err.Error(), testKeySecret) {
		t.Errorf("an Account SID as API key: %v", err)
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{AccountSID: testAccountSID, APIKeySID: testKeySID, APIKeySecret: testKeySecret, RoomType: "group", APIURL: DefaultAPIURL, TokenTTL: time.Hour}
	with := func(f func(*Settings)) Settings { s := ok; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"valid", ok, nil},
		{"defaults lack credentials", *defaultSettings(), []string{
			"account_sid: is required (Twilio Console, Account Info: Account SID, AC followed by 32 hex characters)",
			"api_key_sid: is required (Twilio Console, API keys & tokens: an API key SID, SK followed by 32 hex characters)",
			"api_key_secret: is required (shown once when the API key is created) [api_key_sid]",
		}},
		{"webhooks and rotation", with(func(s *Settings) { s.AuthToken, s.PreviousAuthToken = testAuthToken, testOldToken }), nil},
		{"account sid prefix", with(func(s *Settings) { s.AccountSID = "SK0123456789abcdef0123456789abcdef" }), []string{"account_sid: {value} is not an Account SID (AC followed by 32 hex characters)"}},
		{"account sid length", with(func(s *Settings) { s.AccountSID = "AC0123" }), []string{"account_sid: {value} is not an Account SID (AC followed by 32 hex characters)"}},
		{"account sid not hex", with(func(s *Settings) { s.AccountSID = "AC0123456789abcdef0123456789abcdeg" }), []string{"account_sid: {value} is not an Account SID (AC followed by 32 hex characters)"}},
		{"account sid as api key", with(func(s *Settings) { s.APIKeySID = testAccountSID }), []string{"api_key_sid: is an Account SID; access tokens need an API key SID (SK followed by 32 hex characters)"}},
		{"api key sid length", with(func(s *Settings) { s.APIKeySID = "SK12" }), []string{"api_key_sid: {value} is not an API key SID (SK followed by 32 hex characters)"}},
		{"short secret", with(func(s *Settings) { s.APIKeySecret = "short" }), []string{"api_key_secret: is too short to be an API key secret (Twilio's are 32 characters)"}},
		{"short auth token", with(func(s *Settings) { s.AuthToken = "short" }), []string{"auth_token: is too short to be an Auth Token (Twilio's are 32 characters)"}},
		{"previous token alone", with(func(s *Settings) { s.PreviousAuthToken = testOldToken }), []string{"previous_auth_token: set only together with auth_token, during a rotation"}},
		{"short previous token", with(func(s *Settings) { s.AuthToken, s.PreviousAuthToken = testAuthToken, "x" }), []string{"previous_auth_token: is too short to be an Auth Token (Twilio's are 32 characters)"}},
		{"room types", with(func(s *Settings) { s.RoomType = "peer-to-peer" }), nil},
		{"bad room type", with(func(s *Settings) { s.RoomType = "small-group" }), []string{"room_type: {value} is not a Twilio room type (group, group-small, peer-to-peer or go)"}},
		{"relative url", with(func(s *Settings) { s.APIURL = "video.twilio.com" }), []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"url with credentials", with(func(s *Settings) { s.APIURL = "https://u:p@video.example" }), []string{"api_url: must not contain a user name or password"}},
		{"url with query", with(func(s *Settings) { s.APIURL = "https://video.example/?x" }), []string{"api_url: must not have a query (?) or fragment (#)"}},
		{"negative ttl", with(func(s *Settings) { s.TokenTTL = -time.Second }), []string{"token_ttl: must not be negative"}},
		{"ttl over a day", with(func(s *Settings) { s.TokenTTL = 25 * time.Hour }), []string{"token_ttl: must be at most 24h (Twilio refuses longer-lived access tokens)"}},
		{"template", with(func(s *Settings) { s.JoinURLTemplate = "https://app.example/{{.Room}}?t={{.Token | urlquery}}" }), nil},
		{"broken template", with(func(s *Settings) { s.JoinURLTemplate = "https://app.example/{{.Room" }), []string{"join_url_template: is not a valid Go template: template: join_url_template:1: unclosed action"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, msg string, near ...string) {
				if len(near) > 0 {
					msg += " [" + strings.Join(near, ",") + "]"
				}
				got = append(got, field+": "+msg)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, g := range got {
				for _, secret := range []string{testKeySecret, testAuthToken, testOldToken} {
					if strings.Contains(g, secret) {
						t.Errorf("message %q shows a secret", g)
					}
				}
			}
		})
	}
}
