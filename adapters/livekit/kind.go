package livekit

import (
	"context"
	"io"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the livekit provider kind: `providers.<name>: {kind: livekit, ...}`.
var Kind = adapters.Provider("livekit", defaultSettings, build)

// Settings is a livekit provider block of the configuration.
type Settings struct {
	// URL is the LiveKit server clients connect to: wss://<project>.livekit.cloud
	// or a self-hosted ws(s):// (http(s):// is accepted and turned into ws(s)://
	// for clients).
	URL string `yaml:"url"`
	// APIKey and APISecret are a key pair of the project (LiveKit Cloud:
	// Settings → API keys; self-hosted: `keys:` in livekit.yaml). They sign
	// join tokens and server API calls, and verify webhooks.
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret" secret:"true"`
	// PreviousAPIKey and PreviousAPISecret keep webhooks signed by the pair
	// being rotated out valid. PreviousAPIKey defaults to APIKey (a secret
	// rotated under the same key).
	PreviousAPIKey    string `yaml:"previous_api_key"`
	PreviousAPISecret string `yaml:"previous_api_secret" secret:"true"`
	// APIURL is the HTTP base of the server API (Twirp); empty means URL with
	// wss→https, ws→http.
	APIURL string `yaml:"api_url"`
	// TokenTTL is how long a join token is valid; default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate makes a browser link from a credential, a Go template
	// over .Room .Token .UID .Identity .URL, e.g. for LiveKit Meet:
	// https://meet.livekit.io/custom?liveKitUrl={{urlquery .URL}}&token={{.Token}}
	JoinURLTemplate string `yaml:"join_url_template"`
	// E2EE returns a per-call shared key in the credential's fields
	// ("e2ee_key") for clients that enable LiveKit end-to-end encryption.
	E2EE bool `yaml:"e2ee"`
	// EmptyTimeout is how long LiveKit keeps a room nobody joined (and, on
	// servers without departure_timeout, one everybody left); zero means the
	// server's default (5 minutes on LiveKit's own servers).
	EmptyTimeout time.Duration `yaml:"empty_timeout"`
	// DepartureTimeout is how long a room stays after the last person left;
	// zero means the server's default (20 seconds).
	DepartureTimeout time.Duration `yaml:"departure_timeout"`
	// MaxParticipants caps the room; zero means no cap.
	MaxParticipants int `yaml:"max_participants"`
}

// DefaultTokenTTL is the join token lifetime when token_ttl is not set.
const DefaultTokenTTL = time.Hour

func defaultSettings() *Settings {
	return &Settings{TokenTTL: DefaultTokenTTL}
}

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). Secrets are never part of a message.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.URL == "" {
		report("url", "required: the LiveKit server URL, e.g. wss://<project>.livekit.cloud")
	} else if _, err := clientURL(s.URL); err != nil {
		if strings.Contains(s.URL, "@") {
			report("url", "must be an absolute ws://, wss://, http:// or https:// URL without a user name, query or fragment")
		} else {
			report("url", "{value} is not an absolute ws://, wss://, http:// or https:// URL without a query or fragment")
		}
	}
	if s.APIKey == "" {
		report("api_key", "required: an API key of the LiveKit project")
	} else if strings.ContainsAny(s.APIKey, " \t\r\n") {
		report("api_key", "must not contain spaces")
	}
	if s.APISecret == "" {
		report("api_secret", "required: the secret of api_key", "api_key")
	}
	if s.PreviousAPIKey != "" && s.PreviousAPISecret == "" {
		report("previous_api_secret", "required when previous_api_key is set", "previous_api_key")
	}
	if s.APIURL != "" {
		if _, err := apiBase(s.APIURL); err != nil {
			if strings.Contains(s.APIURL, "@") {
				report("api_url", "must be an absolute http:// or https:// URL without a user name, query or fragment")
			} else {
				report("api_url", "{value} is not an absolute http:// or https:// URL without a query or fragment")
			}
		}
	}
	if s.TokenTTL < 0 {
		report("token_ttl", "must not be negative")
	}
	if s.EmptyTimeout < 0 || s.EmptyTimeout > maxTimeout {
		report("empty_timeout", "must be between 0 and 24h")
	} else if s.EmptyTimeout%time.Second != 0 {
		report("empty_timeout", "must be whole seconds")
	}
	if s.DepartureTimeout < 0 || s.DepartureTimeout > maxTimeout {
		report("departure_timeout", "must be between 0 and 24h")
	} else if s.DepartureTimeout%time.Second != 0 {
		report("departure_timeout", "must be whole seconds")
	}
	if s.MaxParticipants < 0 {
		report("max_participants", "must not be negative")
	}
	if s.JoinURLTemplate != "" {
		if tmpl, err := parseJoinTemplate(s.JoinURLTemplate); err != nil {
			report("join_url_template", "is not a valid Go template: "+err.Error())
		} else if err := tmpl.Execute(io.Discard, joinData{Room: "r", Token: "t", UID: "u", Identity: "u", URL: "wss://x"}); err != nil {
			report("join_url_template", "cannot be filled in (it may use .Room .Token .UID .Identity .URL): "+err.Error())
		}
	}
}

// maxTimeout bounds room timeouts: LiveKit takes uint32 seconds, and a room
// lingering for more than a day is a typo.
const maxTimeout = 24 * time.Hour

// clientURL is the URL clients connect to: ws(s) as given, http(s) turned
// into ws(s), without a trailing slash.
func clientURL(raw string) (string, error) {
	u, err := parseBase(raw, "ws", "wss", "http", "https")
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// apiBase is the HTTP base of the server API: http(s) as given, ws(s)
// turned into http(s), without a trailing slash.
func apiBase(raw string) (string, error) {
	u, err := parseBase(raw, "ws", "wss", "http", "https")
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

type urlError string

func (e urlError) Error() string { return string(e) }

func parseBase(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, urlError("not a URL")
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	switch {
	case !ok:
		return nil, urlError("unsupported scheme")
	case u.User != nil:
		return nil, urlError("has a user name")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, urlError("has no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, urlError("has a query or fragment")
	}
	return u, nil
}

// parseJoinTemplate parses join_url_template; the template may use
// text/template's builtins, urlquery among them.
func parseJoinTemplate(s string) (*template.Template, error) {
	return template.New("join_url_template").Option("missingkey=error").Parse(s)
}

// config turns settings into the provider's Config.
func (s *Settings) config() Config {
	cfg := Config{
		URL: s.URL, APIURL: s.APIURL,
		APIKey: s.APIKey, APISecret: s.APISecret,
		TokenTTL:         s.TokenTTL,
		JoinURLTemplate:  s.JoinURLTemplate,
		E2EE:             s.E2EE,
		EmptyTimeout:     s.EmptyTimeout,
		DepartureTimeout: s.DepartureTimeout,
		MaxParticipants:  s.MaxParticipants,
	}
	if s.PreviousAPISecret != "" {
		key := s.PreviousAPIKey
		if key == "" {
			key = s.APIKey
		}
		cfg.PreviousAPIKey, cfg.PreviousAPISecret = key, s.PreviousAPISecret
	}
	return cfg
}

// build makes the provider. It always takes webhooks: LiveKit signs them
// with the API secret, which the block requires.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	cfg.Logger = deps.Logger
	return New(cfg)
}
