package jitsi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the jitsi provider kind: `providers.<name>: {kind: jitsi, ...}`.
var Kind = adapters.Provider("jitsi", defaultSettings, build)

// Settings is a jitsi provider block of the configuration.
type Settings struct {
	// APIURL is the Meet server, default DefaultBaseURL; with the jaas_*
	// keys it defaults to https://8x8.vc (the /<AppID> path is added).
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
	// JaaSAppID, JaaSKeyID and JaaSPrivateKey switch to 8x8's JaaS: the
	// AppID (vpaas-magic-cookie-…), the API key's id (as the console shows
	// it, with or without the "<AppID>/" prefix) and its PEM private key.
	// Links then carry RS256 tokens; api_url defaults to https://8x8.vc.
	JaaSAppID      string `yaml:"jaas_app_id"`
	JaaSKeyID      string `yaml:"jaas_key_id"`
	JaaSPrivateKey string `yaml:"jaas_private_key" secret:"true"`
	// TokenTTL bounds the lifetime of join tokens; 0 (default) follows
	// calls.token_ttl, and the shorter of the two wins.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate, when set, builds join links instead of the Meet
	// server's own (an app that embeds Jitsi): a Go template over .Room,
	// .Token, .UID, .Identity and .URL (the Meet link callgate would give).
	JoinURLTemplate string `yaml:"join_url_template"`
}

func defaultSettings() *Settings {
	return &Settings{APIURL: DefaultBaseURL, Audience: DefaultAudience}
}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator).
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.APIURL != "" {
		adapters.ValidateBaseURL("api_url", s.APIURL, report)
	}
	if s.TokenTTL < 0 || s.TokenTTL > 24*time.Hour {
		report("token_ttl", "must be between 0s (follow calls.token_ttl) and 24h")
	}
	if s.JoinURLTemplate != "" {
		if _, err := adapters.ParseJoinTemplate(s.JoinURLTemplate, joinData{}); err != nil {
			report("join_url_template", "is not a valid template: "+err.Error())
		}
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
	s.validateJaaS(report)
}

// validateJaaS checks the JaaS keys: all three or none, an AppID that looks
// like one, a key id that belongs to it, a private key that parses as RSA.
func (s *Settings) validateJaaS(report func(field, message string, near ...string)) {
	if s.JaaSAppID == "" {
		if s.JaaSKeyID != "" {
			report("jaas_app_id", "required when jaas_key_id is set", "jaas_key_id")
		}
		if s.JaaSPrivateKey != "" {
			report("jaas_app_id", "required when jaas_private_key is set", "jaas_private_key")
		}
		return
	}
	if !strings.HasPrefix(s.JaaSAppID, jaasAppPrefix) || len(s.JaaSAppID) == len(jaasAppPrefix) || strings.ContainsAny(s.JaaSAppID, "/ ") {
		report("jaas_app_id", "{value} is not a JaaS AppID (vpaas-magic-cookie-…)")
	}
	if s.AppID != "" || s.AppSecret != "" {
		report("jaas_app_id", "JaaS and self-hosted token auth (app_id, app_secret) are exclusive; set one of them")
	}
	switch {
	case s.JaaSKeyID == "":
		report("jaas_key_id", "required with jaas_app_id (JaaS console → API Keys)", "jaas_app_id")
	case strings.Contains(s.JaaSKeyID, "/") && !strings.HasPrefix(s.JaaSKeyID, s.JaaSAppID+"/"):
		report("jaas_key_id", "{value} belongs to another AppID than jaas_app_id")
	}
	if s.JaaSPrivateKey == "" {
		report("jaas_private_key", "required with jaas_app_id (the PEM private key of the API key)", "jaas_app_id")
	} else if _, err := ParseRSAPrivateKey(s.JaaSPrivateKey); err != nil {
		report("jaas_private_key", err.Error())
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
		JaaSAppID: s.JaaSAppID, JaaSKeyID: s.JaaSKeyID,
		TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate,
	}
}

// build makes the provider. Without a webhook secret it takes no webhooks
// (the value does not implement the webhook capability, so
// /webhooks/providers/<name> answers 404 rather than refusing every
// delivery).
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	if s.JaaSPrivateKey != "" {
		key, err := ParseRSAPrivateKey(s.JaaSPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("jitsi: jaas_private_key %s", err)
		}
		cfg.JaaSPrivateKey = key
	}
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookSecrets) == 0 {
		return adapters.WithoutWebhooks(p), nil
	}
	return p, nil
}
