package hms

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
	if Kind.Name != "hms" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok || !reflect.DeepEqual(s, &Settings{APIURL: "https://api.100ms.live", TokenTTL: time.Hour}) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}

	s.AccessKey, s.AppSecret = testAccessKey, testSecret
	s.Roles = map[string]string{"listener": "audience"}
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "hms", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	in, ok := adapters.Unwrapped(p).(*Provider)
	if !ok || p == adapters.Unwrapped(p) {
		t.Fatalf("without webhook headers the provider is %T", p)
	}
	if _, takes := p.(interface {
		ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error)
	}); takes {
		t.Error("a provider without webhook headers takes webhooks")
	}
	// The other capabilities stay.
	if _, ok := p.(calls.RoomStatusReporter); !ok {
		t.Error("room status lost")
	}
	if _, ok := p.(interface {
		StreamCall(calls.Room) map[string]any
	}); !ok {
		t.Error("stream call shape lost")
	}
	if in.Role(calls.RoleListener) != "audience" || in.Role(calls.RoleOwner) != "host" || in.api != DefaultAPIURL {
		t.Errorf("built %+v", in)
	}

	s.WebhookHeaders = map[string]string{"x-hms-secret": "cur+/=Zx9"}
	s.PreviousWebhookHeaders = map[string]string{"X-Hms-Secret": "old"}
	p, err = Kind.New(context.Background(), s, adapters.Deps{Name: "hms"})
	if err != nil {
		t.Fatal(err)
	}
	in, ok = p.(*Provider)
	if !ok || len(in.headerSets) != 2 || in.headerSets[0].Get("X-Hms-Secret") != "cur+/=Zx9" {
		t.Fatalf("with webhook headers: %T %+v", p, p)
	}

	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{AccessKey: testAccessKey, AppSecret: testSecret}
	with := func(f func(*Settings)) Settings { s := ok; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"minimal", ok, nil},
		{"everything", with(func(s *Settings) {
			s.TemplateID, s.Region, s.APIURL, s.TokenTTL = "tmpl", "eu", "https://api.100ms.live", 2*time.Hour
			s.WebhookHeaders = map[string]string{"X-Secret": "v"}
			s.PreviousWebhookHeaders = map[string]string{"X-Secret": "w"}
			s.Roles = map[string]string{"owner": "host", "listener": "viewer-realtime"}
			s.JoinURLTemplate = "https://t.app.100ms.live/preview/{{.RoomID}}/{{.Role}}?token={{.Token}}"
		}), nil},
		{"defaults alone", *defaultSettings(), []string{
			"access_key: is required (100ms dashboard → Developer → App Access Key)",
			"app_secret: is required (100ms dashboard → Developer → App Secret)",
		}},
		{"short secret", with(func(s *Settings) { s.AppSecret = "short" }), []string{"app_secret: is too short to be a 100ms app secret"}},
		{"access key with space", with(func(s *Settings) { s.AccessKey = "a b" }), []string{"access_key: must not contain white space"}},
		{"region", with(func(s *Settings) { s.Region = "mars" }), []string{"region: {value} is not one of us, eu, in, auto"}},
		{"api url", with(func(s *Settings) { s.APIURL = "api.100ms.live" }), []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"api url with credentials", with(func(s *Settings) { s.APIURL = "https://u:p@x" }), []string{"api_url: must not contain a user name or password"}},
		{"negative ttl", with(func(s *Settings) { s.TokenTTL = -time.Second }), []string{"token_ttl: must not be negative"}},
		{"tiny ttl", with(func(s *Settings) { s.TokenTTL = time.Second }), []string{"token_ttl: must be at least 1m"}},
		{"bad header name", with(func(s *Settings) { s.WebhookHeaders = map[string]string{"X Bad": "v"} }), []string{"webhook_headers: holds a name that is not a valid HTTP header name"}},
		{"empty header value", with(func(s *Settings) { s.WebhookHeaders = map[string]string{"X-Secret": ""} }), []string{"webhook_headers.X-Secret: must not be empty: an empty header proves nothing [webhook_headers]"}},
		{"previous alone", with(func(s *Settings) { s.PreviousWebhookHeaders = map[string]string{"X-Secret": "v"} }), []string{"previous_webhook_headers: set only together with webhook_headers, during a rotation"}},
		{"unknown role", with(func(s *Settings) { s.Roles = map[string]string{"boss": "host"} }), []string{"roles.boss: is not a callgate role (owner, panelist, presenter, co-presenter, promoted, participant, listener) [roles]"}},
		{"bad role name", with(func(s *Settings) { s.Roles = map[string]string{"owner": "the host"} }), []string{"roles.owner: {value} is not a 100ms role name [roles]"}},
		{"template does not parse", with(func(s *Settings) { s.JoinURLTemplate = "{{.Token" }), []string{"join_url_template: does not parse: template: join_url_template:1: unclosed action"}},
		{"template names an unknown field", with(func(s *Settings) { s.JoinURLTemplate = "{{.Secret}}" }), []string{"join_url_template: does not parse: template: join_url_template:1:2: executing \"join_url_template\" at <.Secret>: can't evaluate field Secret in type hms.joinData"}},
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
				if strings.Contains(line, testSecret) || strings.Contains(line, "cur+/=") {
					t.Errorf("message quotes a secret: %s", line)
				}
			}
		})
	}
}
