package jitsi

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

func TestKindDefaultsAndBuild(t *testing.T) {
	if Kind.Name != "jitsi" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok || !reflect.DeepEqual(s, &Settings{APIURL: "https://meet.jit.si", Audience: "jitsi"}) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}

	// The URL's trailing slash is trimmed and the subject is its host.
	s.APIURL, s.AppID, s.AppSecret = "https://meet.example.com:8443/", "callgate", testAppSecret
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "meet"})
	if err != nil {
		t.Fatal(err)
	}
	jp, ok := p.(withoutWebhooks)
	if !ok {
		t.Fatalf("without a webhook secret the provider is %T", p)
	}
	if _, takes := p.(interface {
		ParseWebhook(context.Context, calls.WebhookRequest) ([]calls.ProviderEvent, error)
	}); takes {
		t.Error("a provider without webhook secrets takes webhooks")
	}
	in := jp.Provider.(*Provider)
	if in.base != "https://meet.example.com:8443" || in.subject != "meet.example.com" || in.audience != "jitsi" || in.appID != "callgate" {
		t.Errorf("built %+v", in)
	}

	s.WebhookSecret, s.PreviousWebhookSecret = hookSecret, hookSecretOld
	p, err = Kind.New(context.Background(), s, adapters.Deps{Name: "meet"})
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := p.(*Provider); !ok || len(in.webhook) != 2 {
		t.Errorf("with webhook secrets: %T %+v", p, p)
	}

	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"defaults", *defaultSettings(), nil},
		{"no url is the default", Settings{}, nil},
		{"token auth", Settings{APIURL: "https://m.example", AppID: "a", AppSecret: "0123456789abcdef"}, nil},
		{"relative url", Settings{APIURL: "meet.example.com"}, []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"url with credentials", Settings{APIURL: "https://u:p@m.example"}, []string{"api_url: must not contain a user name or password"}},
		{"unparsable url with @", Settings{APIURL: "ht tp://u@x"}, []string{"api_url: must be an absolute http:// or https:// URL"}},
		{"url with query", Settings{APIURL: "https://m.example/?x"}, []string{"api_url: must not have a query (?) or fragment (#)"}},
		{"url with fragment", Settings{APIURL: "https://m.example#x"}, []string{"api_url: must not have a query (?) or fragment (#)"}},
		{"app_id alone", Settings{AppID: "a"}, []string{"app_secret: required when app_id is set [app_id]"}},
		{"app_secret alone", Settings{AppSecret: "0123456789abcdef"}, []string{"app_id: required when app_secret is set [app_secret]"}},
		{"short app_secret", Settings{AppID: "a", AppSecret: "short"}, []string{"app_secret: must be at least 16 characters"}},
		{"previous webhook secret alone", Settings{PreviousWebhookSecret: "x"}, []string{"previous_webhook_secret: set only together with webhook_secret, during a rotation"}},
		{"rotation", Settings{WebhookSecret: "a", PreviousWebhookSecret: "b"}, nil},
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
		})
	}
}
