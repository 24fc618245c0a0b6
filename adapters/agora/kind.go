package agora

import (
	"context"
	"text/template"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the agora provider kind: `providers.<name>: {kind: agora, ...}`.
var Kind = adapters.Provider("agora", defaultSettings, build)

// Settings is an agora provider block of the configuration.
type Settings struct {
	// AppID is the project's App ID (32 hex characters).
	AppID string `yaml:"app_id"`
	// AppCertificate is the project's primary App Certificate (32 hex
	// characters); it signs the tokens.
	AppCertificate string `yaml:"app_certificate" secret:"true"`
	// NCSSecret verifies Notification Callback Service webhooks; without it
	// the kind takes no webhooks.
	NCSSecret string `yaml:"ncs_secret" secret:"true"`
	// PreviousNCSSecret stays valid during a secret rotation.
	PreviousNCSSecret string `yaml:"previous_ncs_secret" secret:"true"`
	// RTM also grants the RTM login privilege (for the person's user id).
	RTM bool `yaml:"rtm"`
	// APIURL is Agora's REST base URL (unused today, see the package
	// documentation).
	APIURL string `yaml:"api_url"`
	// TokenTTL is how long a token and its privileges last; 0 follows
	// calls.token_ttl.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate makes a join link for your own web client.
	JoinURLTemplate string `yaml:"join_url_template"`
}

func defaultSettings() *Settings {
	return &Settings{APIURL: DefaultAPIURL, TokenTTL: DefaultTokenTTL}
}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). Secrets are never shown.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	switch {
	case s.AppID == "":
		report("app_id", "is required (the project's App ID in Agora Console)")
	case !isHex32(s.AppID):
		report("app_id", "{value} is not 32 hexadecimal characters")
	}
	switch {
	case s.AppCertificate == "":
		report("app_certificate", "is required (enable the primary App Certificate in Agora Console)", "app_id")
	case !isHex32(s.AppCertificate):
		report("app_certificate", "must be 32 hexadecimal characters")
	}
	if s.PreviousNCSSecret != "" && s.NCSSecret == "" {
		report("previous_ncs_secret", "set only together with ncs_secret, during a rotation")
	}
	if s.APIURL != "" {
		adapters.ValidateBaseURL("api_url", s.APIURL, report)
	}
	if s.TokenTTL < 0 || s.TokenTTL > MaxTokenTTL || (s.TokenTTL > 0 && s.TokenTTL < time.Minute) {
		report("token_ttl", "must be between 1m and 24h (or 0 to follow calls.token_ttl)")
	}
	if s.JoinURLTemplate != "" {
		if _, err := template.New("join_url_template").Parse(s.JoinURLTemplate); err != nil {
			report("join_url_template", "is not a valid Go template: "+err.Error())
		}
	}
}

func (s *Settings) config() Config {
	var secrets []string
	for _, v := range []string{s.NCSSecret, s.PreviousNCSSecret} {
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	return Config{
		AppID: s.AppID, AppCertificate: s.AppCertificate, RTM: s.RTM,
		TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate, NCSSecrets: secrets,
	}
}

// build makes the provider. Without an NCS secret it takes no webhooks (the
// value lacks ReceiveWebhook, so /webhooks/providers/<name> answers 404
// instead of refusing every delivery).
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.NCSSecrets) == 0 {
		return p, nil
	}
	return &WebhookProvider{p}, nil
}
