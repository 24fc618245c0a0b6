package livekit

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
	if Kind.Name != "livekit" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok || !reflect.DeepEqual(s, &Settings{TokenTTL: time.Hour}) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}
	for _, tc := range []struct{ url, apiURL, wantWS, wantAPI string }{
		{"wss://project.livekit.cloud", "", "wss://project.livekit.cloud", "https://project.livekit.cloud"},
		{"ws://127.0.0.1:7880/", "", "ws://127.0.0.1:7880", "http://127.0.0.1:7880"},
		{"https://lk.example.com", "", "wss://lk.example.com", "https://lk.example.com"},
		{"wss://lk.example.com", "http://livekit.internal:7880/", "wss://lk.example.com", "http://livekit.internal:7880"},
	} {
		s := &Settings{URL: tc.url, APIURL: tc.apiURL, APIKey: testKey, APISecret: testSecret, PreviousAPISecret: oldSecret, TokenTTL: time.Hour}
		p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "lk", Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		lp := p.(*Provider)
		if lp.wsURL != tc.wantWS || lp.apiBase != tc.wantAPI {
			t.Errorf("%s/%s: ws %s api %s", tc.url, tc.apiURL, lp.wsURL, lp.apiBase)
		}
		// previous_api_key defaults to api_key.
		if len(lp.webhookKeys[testKey]) != 2 {
			t.Errorf("webhook keys %d", len(lp.webhookKeys[testKey]))
		}
		if _, ok := p.(webhooks.ProviderReceiver); !ok {
			t.Error("takes no webhooks")
		}
		if _, ok := p.(calls.RoomStatusReporter); !ok {
			t.Error("reports no room status")
		}
	}
	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
	if _, err := Kind.New(context.Background(), &Settings{URL: "wss://x"}, adapters.Deps{}); err == nil {
		t.Error("built without keys")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{URL: "wss://project.livekit.cloud", APIKey: "APIabc", APISecret: "s", TokenTTL: time.Hour}
	with := func(f func(*Settings)) Settings { s := ok; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"complete", ok, nil},
		{"http url and everything", with(func(s *Settings) {
			s.URL, s.APIURL, s.PreviousAPIKey, s.PreviousAPISecret = "http://localhost:7880", "http://localhost:7880", "APIold", "x"
			s.EmptyTimeout, s.DepartureTimeout, s.MaxParticipants, s.E2EE = 5*time.Minute, 20*time.Second, 50, true
			s.JoinURLTemplate = "https://meet.livekit.io/custom?liveKitUrl={{urlquery .URL}}&token={{.Token}}"
		}), nil},
		{"defaults", *defaultSettings(), []string{
			"url: required: the LiveKit server URL, e.g. wss://<project>.livekit.cloud",
			"api_key: required: an API key of the LiveKit project",
			"api_secret: required: the secret of api_key [api_key]",
		}},
		{"relative url", with(func(s *Settings) { s.URL = "project.livekit.cloud" }), []string{"url: {value} is not an absolute ws://, wss://, http:// or https:// URL without a query or fragment"}},
		{"ftp url", with(func(s *Settings) { s.URL = "ftp://x" }), []string{"url: {value} is not an absolute ws://, wss://, http:// or https:// URL without a query or fragment"}},
		{"url with credentials", with(func(s *Settings) { s.URL = "wss://key:secret@x" }), []string{"url: must be an absolute ws://, wss://, http:// or https:// URL without a user name, query or fragment"}},
		{"url with query", with(func(s *Settings) { s.URL = "wss://x/?a=1" }), []string{"url: {value} is not an absolute ws://, wss://, http:// or https:// URL without a query or fragment"}},
		{"api_url with credentials", with(func(s *Settings) { s.APIURL = "https://a:b@x" }), []string{"api_url: must be an absolute http:// or https:// URL without a user name, query or fragment"}},
		{"api_url not a URL", with(func(s *Settings) { s.APIURL = "x" }), []string{"api_url: {value} is not an absolute http:// or https:// URL without a query or fragment"}},
		{"api key with space", with(func(s *Settings) { s.APIKey = "API abc" }), []string{"api_key: must not contain spaces"}},
		{"previous key without secret", with(func(s *Settings) { s.PreviousAPIKey = "APIold" }), []string{"previous_api_secret: required when previous_api_key is set [previous_api_key]"}},
		{"bad numbers", with(func(s *Settings) {
			s.TokenTTL, s.EmptyTimeout, s.DepartureTimeout, s.MaxParticipants = -1, 1500*time.Millisecond, 48*time.Hour, -1
		}), []string{
			"token_ttl: must not be negative",
			"empty_timeout: must be whole seconds",
			"departure_timeout: must be between 0 and 24h",
			"max_participants: must not be negative",
		}},
		{"template with an unknown field", with(func(s *Settings) { s.JoinURLTemplate = "https://x/{{.Secret}}" }), []string{"join_url_template: cannot be filled in (it may use .Room .Token .UID .Identity .URL): template: join_url_template:1:12: executing \"join_url_template\" at <.Secret>: can't evaluate field Secret in type livekit.joinData"}},
		{"bad template", with(func(s *Settings) { s.JoinURLTemplate = "https://x/{{.Token" }), []string{"join_url_template: is not a valid Go template: template: join_url_template:1: unclosed action"}},
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
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
			for _, m := range got {
				if strings.Contains(m, "secret:") && strings.Contains(m, "key:secret") {
					t.Errorf("message shows a secret: %s", m)
				}
			}
		})
	}
}

func TestStreamCall(t *testing.T) {
	p := newTestProvider(t, nil)
	got := p.StreamCall(calls.Room{Name: "call-1", ProviderID: "RM_1"})
	if !reflect.DeepEqual(got, map[string]any{"room": "call-1", "sid": "RM_1", "url": "wss://project.livekit.cloud"}) {
		t.Fatalf("%v", got)
	}
}
