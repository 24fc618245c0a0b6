package streamvideo

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the Stream Video provider kind: `providers.<name>: {kind: streamvideo, ...}`.
var Kind = adapters.Provider("streamvideo", defaultSettings, build)

// Settings is a streamvideo provider block of the configuration, in the
// words of Stream's dashboard.
type Settings struct {
	// APIKey and APISecret are the app's keys (Dashboard → the app →
	// Overview → App Access Keys). The secret signs the server's requests,
	// users' tokens and Stream's webhooks.
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret" secret:"true"`
	// PreviousAPISecret still verifies webhooks while the secret is
	// rotated.
	PreviousAPISecret string `yaml:"previous_api_secret" secret:"true"`
	// CallType is the Stream call type of video calls, default "default".
	CallType string `yaml:"call_type"`
	// AudioCallType is the call type of audio calls; empty means CallType.
	// Stream's "audio_room" type starts calls in backstage (only hosts
	// until someone goes live), so it is not the default.
	AudioCallType string `yaml:"audio_call_type"`
	// CreatedByID is the Stream user calls are created by, default
	// "callgate" (upserted once before the first call).
	CreatedByID string `yaml:"created_by_id"`
	// APIURL is the video API base, default https://video.stream-io-api.com.
	APIURL string `yaml:"api_url"`
	// TokenTTL bounds user tokens; the shorter of it and the gateway's
	// token lifetime wins. Default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate builds the join link for a web client that takes the
	// credential in a link, over .Room (the call id), .Token, .Identity,
	// .UID (empty) and .URL (empty), plus .APIKey and .CallType.
	JoinURLTemplate string `yaml:"join_url_template"`
}

func defaultSettings() *Settings {
	return &Settings{CallType: "default", CreatedByID: "callgate", APIURL: DefaultAPIURL, TokenTTL: time.Hour}
}

// callTypeRe is what Stream accepts as a call type name.
var callTypeRe = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Validate reports what is wrong with the settings, field by field.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if strings.TrimSpace(s.APIKey) == "" {
		report("api_key", "is required (Stream Dashboard → App Access Keys)")
	}
	if strings.TrimSpace(s.APISecret) == "" {
		report("api_secret", "is required (Stream Dashboard → App Access Keys)")
	}
	if !callTypeRe.MatchString(s.CallType) {
		report("call_type", "{value} is not a Stream call type (lower-case letters, digits, _ and -)")
	}
	if s.AudioCallType != "" && !callTypeRe.MatchString(s.AudioCallType) {
		report("audio_call_type", "{value} is not a Stream call type (lower-case letters, digits, _ and -)")
	}
	if strings.TrimSpace(s.CreatedByID) == "" {
		report("created_by_id", "is required")
	}
	u, err := url.Parse(s.APIURL)
	switch {
	case s.APIURL == "":
		report("api_url", "is required")
	case err == nil && u.User != nil:
		report("api_url", "must not contain a user name or password")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		report("api_url", "must be an absolute http:// or https:// URL")
	case u.RawQuery != "" || u.Fragment != "":
		report("api_url", "must not have a query (?) or fragment (#)")
	}
	if s.TokenTTL < 0 {
		report("token_ttl", "must not be negative")
	}
	if s.JoinURLTemplate != "" {
		if _, err := template.New("join").Option("missingkey=error").Parse(s.JoinURLTemplate); err != nil {
			report("join_url_template", "is not a valid Go template: "+err.Error())
		}
	}
}

// build makes the provider. Stream signs webhooks with the API secret,
// which is always configured, so the provider always takes them.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	secrets := []string{s.APISecret}
	if s.PreviousAPISecret != "" {
		secrets = append(secrets, s.PreviousAPISecret)
	}
	return New(Config{
		APIKey: s.APIKey, Secrets: secrets, CallType: s.CallType, AudioCallType: s.AudioCallType,
		CreatedByID: s.CreatedByID, APIURL: s.APIURL, TokenTTL: s.TokenTTL,
		JoinURLTemplate: s.JoinURLTemplate, Now: deps.Now, Logger: deps.Logger,
	})
}
