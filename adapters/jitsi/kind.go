package jitsi

import (
	"context"
	"net/url"
	"strings"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the jitsi provider kind: `providers.<name>: {kind: jitsi, ...}`.
var Kind = adapters.Provider("jitsi", defaultSettings, build)

// Settings is a jitsi provider block of the configuration.
type Settings struct {
	// APIURL is the Meet server, default DefaultBaseURL. For JaaS it is
	// https://8x8.vc/vpaas-magic-cookie-….
	APIURL string `yaml:"api_url"`
	// AppID and AppSecret enable token auth on a self-hosted Jitsi (both or
	// neither): an HS256 JWT is appended to join links as ?jwt=.
	AppID     string `yaml:"app_id"`
	AppSecret string `yaml:"app_secret" secret:"true"`
	// Audience is the JWT "aud", default DefaultAudience.
	Audience string `yaml:"audience"`
	// Subject is the JWT "sub"; empty means the host of APIURL.
	Subject string `yaml:"subject"`
	// WebhookSecret verifies JaaS status webhooks; without it every
	// webhook is rejected.
	WebhookSecret string `yaml:"webhook_secret" secret:"true"`
	// PreviousWebhookSecret stays valid during a secret rotation.
	PreviousWebhookSecret string `yaml:"previous_webhook_secret" secret:"true"`
}

func defaultSettings() *Settings {
	return &Settings{APIURL: DefaultBaseURL, Audience: DefaultAudience}
}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator).
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.APIURL != "" {
		validateURL("api_url", s.APIURL, report)
	}
	switch {
	case s.AppID != "" && s.AppSecret == "":
		report("app_secret", "required when app_id is set", "app_id")
	case s.AppID == "" && s.AppSecret != "":
		report("app_id", "required when app_secret is set", "app_secret")
	case s.AppSecret != "" && len(s.AppSecret) < 16:
		report("app_secret", "must be at least 16 characters")
	}
	if s.PreviousWebhookSecret != "" && s.WebhookSecret == "" {
		report("previous_webhook_secret", "set only together with webhook_secret, during a rotation")
	}
}

// validateURL checks an absolute http(s) URL without credentials, query or
// fragment. Its value is shown only when it cannot hold credentials.
func validateURL(field, raw string, report func(field, message string, near ...string)) {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		report(field, "must not contain a user name or password")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.Hostname() == "":
		if strings.Contains(raw, "@") {
			report(field, "must be an absolute http:// or https:// URL")
		} else {
			report(field, "{value} is not an absolute http:// or https:// URL")
		}
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		report(field, "must not have a query (?) or fragment (#)")
	}
}

// config turns settings into the provider's Config. New derives what is
// left empty: the subject from the URL's host, and trims the URL's
// trailing slash.
func (s *Settings) config() Config {
	var secrets []string
	for _, w := range []string{s.WebhookSecret, s.PreviousWebhookSecret} {
		if w != "" {
			secrets = append(secrets, w)
		}
	}
	return Config{
		BaseURL: s.APIURL, AppID: s.AppID, AppSecret: s.AppSecret,
		Audience: s.Audience, Subject: s.Subject, WebhookSecrets: secrets,
	}
}

// build makes the provider. Without a webhook secret it takes no webhooks
// (the value does not implement the webhook capability, so
// /webhooks/providers/<name> answers 404 rather than refusing every
// delivery).
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookSecrets) == 0 {
		return withoutWebhooks{p}, nil
	}
	return p, nil
}

// withoutWebhooks is a Provider with only the calls.Provider methods.
type withoutWebhooks struct{ calls.Provider }
