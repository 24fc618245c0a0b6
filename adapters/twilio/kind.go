package twilio

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the Twilio Video provider kind: `providers.<name>: {kind: twilio, ...}`.
var Kind = adapters.Provider("twilio", defaultSettings, build)

// Settings is a twilio provider block of the configuration.
type Settings struct {
	// AccountSID is the Account SID (AC + 32 hex), the access token's "sub".
	AccountSID string `yaml:"account_sid"`
	// APIKeySID and APIKeySecret are a standard API key (SK + 32 hex): the
	// REST API's Basic auth and the access tokens' issuer and signing key.
	APIKeySID    string `yaml:"api_key_sid"`
	APIKeySecret string `yaml:"api_key_secret" secret:"true"`
	// AuthToken is the account's Auth Token, with which Twilio signs status
	// callbacks (X-Twilio-Signature). Without it the provider takes no
	// webhooks and rooms are created without a StatusCallback.
	AuthToken string `yaml:"auth_token" secret:"true"`
	// PreviousAuthToken stays valid while the Auth Token is rotated (Twilio's
	// secondary token, promoted to primary).
	PreviousAuthToken string `yaml:"previous_auth_token" secret:"true"`
	// RoomType is the Twilio room type: group (default), group-small,
	// peer-to-peer or go.
	RoomType string `yaml:"room_type"`
	// APIURL is the Video REST API base, default DefaultAPIURL.
	APIURL string `yaml:"api_url"`
	// TokenTTL is the access token lifetime when a request names none;
	// default 1h, at most 24h (Twilio's limit).
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate, when set, makes Credential return a join link: a Go
	// text/template over .Room .Token .UID .Identity .URL.
	JoinURLTemplate string `yaml:"join_url_template"`
}

func defaultSettings() *Settings {
	return &Settings{RoomType: "group", APIURL: DefaultAPIURL, TokenTTL: DefaultTokenTTL}
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeySIDPattern  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
)

// RoomTypes are the room types Twilio's Rooms API accepts.
var RoomTypes = []string{"group", "group-small", "peer-to-peer", "go"}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). Secrets are never echoed.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	switch {
	case s.AccountSID == "":
		report("account_sid", "is required (Twilio Console, Account Info: Account SID, AC followed by 32 hex characters)")
	case !accountSIDPattern.MatchString(s.AccountSID):
		report("account_sid", "{value} is not an Account SID (AC followed by 32 hex characters)")
	}
	switch {
	case s.APIKeySID == "":
		report("api_key_sid", "is required (Twilio Console, API keys & tokens: an API key SID, SK followed by 32 hex characters)")
	case strings.HasPrefix(s.APIKeySID, "AC"):
		report("api_key_sid", "is an Account SID; access tokens need an API key SID (SK followed by 32 hex characters)")
	case !apiKeySIDPattern.MatchString(s.APIKeySID):
		report("api_key_sid", "{value} is not an API key SID (SK followed by 32 hex characters)")
	}
	switch {
	case s.APIKeySecret == "":
		report("api_key_secret", "is required (shown once when the API key is created)", "api_key_sid")
	case len(s.APIKeySecret) < 16:
		report("api_key_secret", "is too short to be an API key secret (Twilio's are 32 characters)")
	}
	if s.AuthToken != "" && len(s.AuthToken) < 16 {
		report("auth_token", "is too short to be an Auth Token (Twilio's are 32 characters)")
	}
	switch {
	case s.PreviousAuthToken != "" && s.AuthToken == "":
		report("previous_auth_token", "set only together with auth_token, during a rotation")
	case s.PreviousAuthToken != "" && len(s.PreviousAuthToken) < 16:
		report("previous_auth_token", "is too short to be an Auth Token (Twilio's are 32 characters)")
	}
	if !validRoomType(s.RoomType) {
		report("room_type", "{value} is not a Twilio room type (group, group-small, peer-to-peer or go)")
	}
	if s.APIURL != "" {
		adapters.ValidateBaseURL("api_url", s.APIURL, report)
	}
	switch {
	case s.TokenTTL < 0:
		report("token_ttl", "must not be negative")
	case s.TokenTTL > MaxTokenTTL:
		report("token_ttl", "must be at most 24h (Twilio refuses longer-lived access tokens)")
	}
	if s.JoinURLTemplate != "" {
		if _, err := adapters.ParseJoinTemplate(s.JoinURLTemplate, joinSample); err != nil {
			report("join_url_template", "is not a valid Go template: "+err.Error())
		}
	}
}

func validRoomType(t string) bool {
	for _, r := range RoomTypes {
		if t == r {
			return true
		}
	}
	return t == ""
}

// config turns settings into the provider's Config.
func (s *Settings) config() Config {
	var tokens []string
	for _, t := range []string{s.AuthToken, s.PreviousAuthToken} {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	return Config{
		AccountSID: s.AccountSID, APIKeySID: s.APIKeySID, APIKeySecret: s.APIKeySecret,
		AuthTokens: tokens, RoomType: s.RoomType, BaseURL: s.APIURL,
		TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate,
	}
}

// build makes the provider. Without an auth token it takes no webhooks (the
// value lacks the webhook capability, so /webhooks/providers/<name>
// answers 404) and rooms get no StatusCallback, since nothing could verify
// what Twilio would send there.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	cfg.Logger = deps.Logger
	if len(cfg.AuthTokens) > 0 {
		cfg.StatusCallback = deps.WebhookURL
	}
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.AuthTokens) == 0 {
		return adapters.WithoutWebhooks(p), nil
	}
	return p, nil
}
