package agora

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/webhooks"
)

const (
	testAppID = "970CA35de60c44645bbae8a215061b33"
	testCert  = "5CFd2fd1755d40ecb72977518be15d3b"
)

func TestKindDefaultsAndBuild(t *testing.T) {
	if Kind.Name != "agora" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok || !reflect.DeepEqual(s, &Settings{APIURL: "https://api.agora.io", TokenTTL: time.Hour}) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	if Kind.NewSettings() == Kind.NewSettings() {
		t.Error("NewSettings shares a value")
	}

	s.AppID, s.AppCertificate, s.RTM = testAppID, testCert, true
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "agora"})
	if err != nil {
		t.Fatal(err)
	}
	in, ok := p.(*Provider)
	if !ok {
		t.Fatalf("without an NCS secret the provider is %T", p)
	}
	if _, takes := p.(webhooks.ProviderReceiver); takes {
		t.Error("a provider without an NCS secret takes webhooks")
	}
	if _, shapes := p.(api.StreamCallShaper); !shapes {
		t.Error("the provider does not shape Stream calls")
	}
	if in.appID != testAppID || in.cert != testCert || !in.rtm || in.ttl != time.Hour || in.now == nil {
		t.Errorf("built %+v", in)
	}

	s.NCSSecret, s.PreviousNCSSecret = "new", "old"
	p, err = Kind.New(context.Background(), s, adapters.Deps{Name: "agora"})
	if err != nil {
		t.Fatal(err)
	}
	w, ok := p.(*WebhookProvider)
	if !ok || len(w.ncs) != 2 {
		t.Fatalf("with NCS secrets: %T", p)
	}
	if _, takes := p.(webhooks.ProviderReceiver); !takes {
		t.Error("a provider with an NCS secret takes no webhooks")
	}
	if _, shapes := p.(api.StreamCallShaper); !shapes {
		t.Error("the webhook provider does not shape Stream calls")
	}

	if _, err := Kind.New(context.Background(), struct{}{}, adapters.Deps{}); err == nil {
		t.Error("settings of another type accepted")
	}
	s.AppID = "short"
	if _, err := Kind.New(context.Background(), s, adapters.Deps{}); err == nil || strings.Contains(err.Error(), testCert) {
		t.Errorf("bad app id: %v", err)
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{AppID: testAppID, AppCertificate: testCert}
	with := func(f func(*Settings)) Settings { s := ok; f(&s); return s }
	secretCert := "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"minimal", ok, nil},
		{"defaults plus ids", with(func(s *Settings) { d := defaultSettings(); d.AppID, d.AppCertificate = testAppID, testCert; *s = *d }), nil},
		{"everything", with(func(s *Settings) {
			s.NCSSecret, s.PreviousNCSSecret, s.RTM, s.TokenTTL = "a+b/c=", "old", true, 2*time.Hour
			s.JoinURLTemplate = "https://app.example/join?c={{.Room}}&t={{urlquery .Token}}&uid={{.UID}}"
		}), nil},
		{"nothing", Settings{}, []string{
			"app_id: is required (the project's App ID in Agora Console)",
			"app_certificate: is required (enable the primary App Certificate in Agora Console) [app_id]",
		}},
		{"app id not hex", with(func(s *Settings) { s.AppID = "970CA35de60c44645bbae8a215061b3g" }), []string{"app_id: {value} is not 32 hexadecimal characters"}},
		{"app id short", with(func(s *Settings) { s.AppID = "970CA35de60c" }), []string{"app_id: {value} is not 32 hexadecimal characters"}},
		{"certificate not hex", with(func(s *Settings) { s.AppCertificate = secretCert }), []string{"app_certificate: must be 32 hexadecimal characters"}},
		{"previous secret alone", with(func(s *Settings) { s.PreviousNCSSecret = "x" }), []string{"previous_ncs_secret: set only together with ncs_secret, during a rotation"}},
		{"api url", with(func(s *Settings) { s.APIURL = "api.agora.io" }), []string{"api_url: {value} is not an absolute http:// or https:// URL"}},
		{"api url credentials", with(func(s *Settings) { s.APIURL = "https://u:p@api.agora.io" }), []string{"api_url: must not contain a user name or password"}},
		{"ttl too long", with(func(s *Settings) { s.TokenTTL = 25 * time.Hour }), []string{"token_ttl: must be between 1m and 24h (or 0 to follow calls.token_ttl)"}},
		{"ttl too short", with(func(s *Settings) { s.TokenTTL = time.Second }), []string{"token_ttl: must be between 1m and 24h (or 0 to follow calls.token_ttl)"}},
		{"ttl follows calls", with(func(s *Settings) { s.TokenTTL = 0 }), nil},
		{"template", with(func(s *Settings) { s.JoinURLTemplate = "{{.Room" }), []string{`join_url_template: is not a valid Go template: template: join_url_template:1: unclosed action`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, msg string, near ...string) {
				if len(near) > 0 {
					msg += " [" + strings.Join(near, ",") + "]"
				}
				if strings.Contains(msg, secretCert) || strings.Contains(msg, testCert) {
					t.Errorf("message shows a secret: %s", msg)
				}
				got = append(got, field+": "+msg)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The provider satisfies the seams it is meant to.
var (
	_ calls.Provider            = (*Provider)(nil)
	_ api.StreamCallShaper      = (*Provider)(nil)
	_ webhooks.ProviderReceiver = (*WebhookProvider)(nil)
)
