package daily

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the Daily provider kind: `providers.<name>: {kind: daily, ...}`.
var Kind = adapters.Provider("daily", defaultSettings, build)

// Settings is a Daily provider block of the configuration.
type Settings struct {
	// APIKey is the domain's REST API key (dashboard → Developers → API
	// key).
	APIKey string `yaml:"api_key" secret:"true"`
	// Domain is the team's Daily domain, your-team.daily.co; room links
	// are https://<domain>/<room> when Daily's answer carries no URL.
	Domain string `yaml:"domain"`
	// WebhookHMAC is the webhook's hmac secret, base64 as Daily gives it
	// (or as given to POST /webhooks). Without it no webhook is accepted.
	WebhookHMAC string `yaml:"webhook_hmac" secret:"true"`
	// PreviousWebhookHMAC stays valid during a rotation.
	PreviousWebhookHMAC string `yaml:"previous_webhook_hmac" secret:"true"`
	// Privacy of new rooms: private (default: a meeting token is needed
	// to join) or public.
	Privacy string `yaml:"privacy"`
	// APIURL is the REST base, default DefaultAPIURL.
	APIURL string `yaml:"api_url"`
	// TokenTTL bounds a meeting token's lifetime, default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate is the join link, a Go template over .Room .Token
	// .UID .Identity .URL; default DefaultJoinURLTemplate.
	JoinURLTemplate string `yaml:"join_url_template"`
}

// DefaultJoinURLTemplate opens Daily Prebuilt with the meeting token.
const DefaultJoinURLTemplate = "{{.URL}}?t={{.Token}}"

func defaultSettings() *Settings {
	return &Settings{Privacy: "private", APIURL: DefaultAPIURL, TokenTTL: time.Hour, JoinURLTemplate: DefaultJoinURLTemplate}
}

// hostname is a DNS name such as your-team.daily.co.
var hostname = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$`)

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). It never quotes a secret.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	switch {
	case s.APIKey == "":
		report("api_key", "is required (Daily dashboard → Developers → API key)")
	case strings.ContainsAny(s.APIKey, " \t\r\n"):
		report("api_key", "must not contain white space")
	}
	if s.Domain != "" && !hostname.MatchString(s.Domain) {
		report("domain", "{value} is not a host name like your-team.daily.co (no https://, no path)")
	}
	for _, f := range []struct{ field, value string }{{"webhook_hmac", s.WebhookHMAC}, {"previous_webhook_hmac", s.PreviousWebhookHMAC}} {
		if f.value == "" {
			continue
		}
		if _, err := decodeSecret(f.value); err != nil {
			report(f.field, "is not base64 as Daily gives it")
		}
	}
	if s.PreviousWebhookHMAC != "" && s.WebhookHMAC == "" {
		report("previous_webhook_hmac", "set only together with webhook_hmac, during a rotation")
	}
	if s.Privacy != "" && s.Privacy != "private" && s.Privacy != "public" {
		report("privacy", "{value} is not private or public")
	}
	if s.APIURL != "" {
		adapters.ValidateBaseURL("api_url", s.APIURL, report)
	}
	if s.TokenTTL < 0 {
		report("token_ttl", "must not be negative")
	} else if s.TokenTTL > 0 && s.TokenTTL < time.Minute {
		report("token_ttl", "must be at least 1m")
	}
	if s.JoinURLTemplate != "" {
		if _, err := adapters.ParseJoinTemplate(s.JoinURLTemplate, joinData{}); err != nil {
			report("join_url_template", "does not parse: "+err.Error())
		}
	}
}

// decodeSecret decodes a Daily hmac secret: standard base64, padded or
// not.
func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) > 0 {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, base64.CorruptInputError(0)
	}
	return b, nil
}

// joinData is what join_url_template sees.
type joinData struct {
	Room     string // the room name
	Token    string // the meeting token
	UID      string // the user id in the token
	Identity string // the same
	URL      string // the room's URL, https://<domain>/<room>
}

func (s *Settings) config() Config {
	var secrets []string
	for _, v := range []string{s.WebhookHMAC, s.PreviousWebhookHMAC} {
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	return Config{
		APIKey: s.APIKey, Domain: s.Domain, WebhookHMAC: secrets, Privacy: s.Privacy,
		APIURL: s.APIURL, TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate,
	}
}

// build makes the provider. Without an hmac secret it takes no webhooks:
// the value lacks the webhook capability, so /webhooks/providers/<name>
// answers 404 rather than refusing every delivery.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	cfg.Logger = deps.Logger
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookHMAC) == 0 {
		return adapters.WithoutWebhooks(p), nil
	}
	return p, nil
}
