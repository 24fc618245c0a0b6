package daily

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

func TestKindDefaultsAndBuild(t *testing.T) {
	if Kind.Name != "daily" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	want := &Settings{Privacy: "private", APIURL: "https://api.daily.co/v1", TokenTTL: time.Hour, JoinURLTemplate: "{{.URL}}?t={{.Token}}"}
	if !ok || !reflect.DeepEqual(s, want) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}
	s.APIKey, s.Domain = testAPIKey, "team.daily.co"
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := adapters.Unwrapped(p).(*Provider); !ok || p == adapters.Unwrapped(p) {
		t.Fatalf("without an hmac secret the provider is %T", p)
	}
	if _, takes := p.(interface {
		ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error)
	}); takes {
		t.Error("a provider without an hmac secret takes webhooks")
	}
	if _, ok := p.(calls.RoomStatusReporter); !ok {
		t.Error("room status lost")
	}
	s.WebhookHMAC, s.PreviousWebhookHMAC = currentSecret, previousSecret
	p, err = Kind.New(context.Background(), s, adapters.Deps{Name: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := p.(*Provider); !ok || len(in.secrets) != 2 || in.privacy != "private" || in.api != DefaultAPIURL {
		t.Fatalf("with secrets: %T %+v", p, p)
	}
	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := *defaultSettings()
	ok.APIKey = testAPIKey
	with := func(f func(*Settings)) Settings { s := ok; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"minimal", ok, nil},
		{"everything", with(func(s *Settings) {
			s.Domain, s.WebhookHMAC, s.PreviousWebhookHMAC, s.Privacy = "team.daily.co", currentSecret, previousSecret, "public"
			s.APIURL, s.TokenTTL, s.JoinURLTemplate = "http://localhost:8080/v1", 2*time.Hour, "https://x/{{.Room}}#{{.Token}}"
		}), nil},
		{"unpadded base64 secret", with(func(s *Settings) { s.WebhookHMAC = strings.TrimRight(currentSecret, "=") }), nil},
		{"no api key", *defaultSettings(), []string{"api_key: is required (Daily dashboard → Developers → API key)"}},
		{"api key with space", with(func(s *Settings) { s.APIKey = "a b" }), []string{"api_key: must not contain white space"}},
		{"domain with scheme", with(func(s *Settings) { s.Domain = "https://team.daily.co" }), []string{"domain: {value} is not a host name like your-team.daily.co (no https://, no path)"}},
		{"hmac not base64", with(func(s *Settings) { s.WebhookHMAC = "not base64!" }), []string{"webhook_hmac: is not base64 as Daily gives it"}},
		{"previous alone", with(func(s *Settings) { s.PreviousWebhookHMAC = previousSecret }), []string{"previous_webhook_hmac: set only together with webhook_hmac, during a rotation"}},
		{"privacy", with(func(s *Settings) { s.Privacy = "secret" }), []string{"privacy: {value} is not private or public"}},
		{"api url", with(func(s *Settings) { s.APIURL = "ftp://x" }), []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"api url with query", with(func(s *Settings) { s.APIURL = "https://x/v1?k=1" }), []string{"api_url: must not have a query (?) or fragment (#)"}},
		{"negative ttl", with(func(s *Settings) { s.TokenTTL = -time.Minute }), []string{"token_ttl: must not be negative"}},
		{"template", with(func(s *Settings) { s.JoinURLTemplate = "{{.Nope}}" }), []string{"join_url_template: does not parse: template: join_url_template:1:2: executing \"join_url_template\" at <.Nope>: can't evaluate field Nope in type daily.joinData"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, message string, near ...string) {
				line := field + ": " + message
				if len(near) > 0 {
					line += " [" + strings.Join(near, ",") + "]"
				}
				got = append(got, line)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			for _, line := range got {
				if strings.Contains(line, testAPIKey) || strings.Contains(line, currentSecret) || strings.Contains(line, "not base64!") {
					t.Errorf("message quotes a secret: %s", line)
				}
			}
		})
	}
}
