package zoom

import (
	"context"
	"strings"
	"text/template"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the zoom provider kind: `providers.<name>: {kind: zoom, ...}`.
var Kind = adapters.Provider("zoom", defaultSettings, build)

// Settings is a zoom provider block of the configuration. The names are
// the ones the Zoom App Marketplace shows for a Server-to-Server OAuth app.
type Settings struct {
	// AccountID, ClientID and ClientSecret are the Server-to-Server OAuth
	// app's credentials (App Marketplace → Manage → the app → App
	// Credentials).
	AccountID    string `yaml:"account_id"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// WebhookSecretToken is the app's "Secret Token" (Features → Access);
	// without it the provider takes no webhooks.
	WebhookSecretToken string `yaml:"webhook_secret_token" secret:"true"`
	// PreviousWebhookSecretToken stays valid while the token is rotated.
	PreviousWebhookSecretToken string `yaml:"previous_webhook_secret_token" secret:"true"`
	// UserID is the host of the meetings: a Zoom user id or email, or "me"
	// (the user who created the app).
	UserID string `yaml:"user_id"`
	// OAuthURL is where tokens come from, default https://zoom.us.
	OAuthURL string `yaml:"oauth_url"`
	// APIURL is the REST API base, default https://api.zoom.us/v2.
	APIURL string `yaml:"api_url"`
	// TokenTTL bounds how long a join link is handed out for; the shorter
	// of it and the gateway's token lifetime wins. Default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate, when set, builds the join link from .URL (Zoom's
	// join or start link), .Room (the meeting id), .Identity and .Token
	// (empty: Zoom links carry no separate token).
	JoinURLTemplate string `yaml:"join_url_template"`
}

func defaultSettings() *Settings {
	return &Settings{UserID: "me", OAuthURL: DefaultOAuthURL, APIURL: DefaultAPIURL, TokenTTL: time.Hour}
}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). Secrets are never shown.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	for _, f := range []struct{ name, value string }{{"account_id", s.AccountID}, {"client_id", s.ClientID}, {"client_secret", s.ClientSecret}} {
		if strings.TrimSpace(f.value) == "" {
			report(f.name, "is required (the Server-to-Server OAuth app's App Credentials)")
		}
	}
	if strings.TrimSpace(s.UserID) == "" {
		report("user_id", `is required: a Zoom user id or email, or "me"`)
	}
	validateURL("oauth_url", s.OAuthURL, report)
	validateURL("api_url", s.APIURL, report)
	if s.TokenTTL < 0 {
		report("token_ttl", "must not be negative")
	}
	if s.PreviousWebhookSecretToken != "" && s.WebhookSecretToken == "" {
		report("previous_webhook_secret_token", "set only together with webhook_secret_token, during a rotation")
	}
	if s.JoinURLTemplate != "" {
		if _, err := template.New("join").Option("missingkey=error").Parse(s.JoinURLTemplate); err != nil {
			report("join_url_template", "is not a valid Go template: "+err.Error())
		}
	}
}

// validateURL checks a required base URL.
func validateURL(field, raw string, report adapters.Report) {
	if raw == "" {
		report(field, "is required")
		return
	}
	adapters.ValidateBaseURL(field, raw, report)
}

func (s *Settings) config() Config {
	var secrets []string
	for _, w := range []string{s.WebhookSecretToken, s.PreviousWebhookSecretToken} {
		if w != "" {
			secrets = append(secrets, w)
		}
	}
	return Config{
		AccountID: s.AccountID, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		WebhookSecrets: secrets, UserID: s.UserID, OAuthURL: s.OAuthURL, APIURL: s.APIURL,
		TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate,
	}
}

// build makes the provider. Without a webhook secret token it takes no
// webhooks: the value lacks ReceiveWebhook, so the route answers 404.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	cfg.Logger = deps.Logger
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookSecrets) == 0 {
		return adapters.WithoutWebhooks(p), nil
	}
	return p, nil
}
