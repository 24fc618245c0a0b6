package jitsi

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
	in, ok := adapters.Unwrapped(p).(*Provider)
	if !ok || p == adapters.Unwrapped(p) {
		t.Fatalf("without a webhook secret the provider is %T", p)
	}
	if _, takes := p.(interface {
		ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error)
	}); takes {
		t.Error("a provider without webhook secrets takes webhooks")
	}
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

func TestTokenTTLAndJoinTemplate(t *testing.T) {
	s := defaultSettings()
	s.AppID, s.AppSecret = "callgate", "0123456789abcdef0123"
	s.TokenTTL = 10 * time.Minute
	s.JoinURLTemplate = "https://app.example/call?room={{.Room}}&jwt={{.Token}}&meet={{urlquery .URL}}"
	p, err := build(context.Background(), s, adapters.Deps{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := p.Credential(context.Background(), calls.Room{Name: "r-1"}, calls.CredentialRequest{UserID: "ada", Role: calls.RoleOwner, TTL: time.Hour, IssuedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if !cred.ExpiresAt.Equal(testNow.Add(10 * time.Minute)) {
		t.Fatalf("expires %v, want token_ttl to cap it at 10m", cred.ExpiresAt)
	}
	if !strings.HasPrefix(cred.JoinURL, "https://app.example/call?room=r-1&jwt="+cred.Token+"&meet=https%3A%2F%2Fmeet.jit.si%2Fr-1%3Fjwt%3D") {
		t.Fatalf("join URL %q", cred.JoinURL)
	}
	var problems []string
	bad := defaultSettings()
	bad.JoinURLTemplate = "{{.Nope}}"
	bad.TokenTTL = 48 * time.Hour
	bad.Validate(func(field, msg string, _ ...string) { problems = append(problems, field) })
	if strings.Join(problems, ",") != "token_ttl,join_url_template" {
		t.Fatalf("problems %v", problems)
	}
}
