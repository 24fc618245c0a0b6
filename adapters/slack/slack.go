// Package slack is the chat platform kind "slack": `/call` as a Slack slash
// command, the call as a Block Kit card the bot posts and keeps current
// (or, in native mode, as Slack's own call cell through the Calls API), and
// an OAuth v2 install flow for many workspaces.
//
// Endpoints, under /webhooks/chats/<name>/:
//
//   - commands: the slash command (form-encoded, signed). Answered at once
//     with an ephemeral JSON message for the person who typed it; the card
//     in the channel is the bot's own message, posted and edited by PostCard
//     through the gateway's outbox.
//   - interactions: button clicks (form field payload = block_actions JSON,
//     signed). Acked with an empty 200 within Slack's 3 s; what the person
//     should see (their personal join link, "only the owner can end it") is
//     POSTed to the payload's response_url as an ephemeral message, because
//     Slack ignores the body of an interaction ack.
//   - events: the Events API (signed JSON): url_verification is answered
//     with the challenge; app_uninstalled and tokens_revoked remove the
//     workspace's stored token. The event_id is the delivery id, so Slack's
//     retries (X-Slack-Retry-Num) are recognised as the same delivery.
//   - install (GET): the "Add to Slack" page, sending the browser to Slack's
//     OAuth v2 authorize URL with the scopes and a signed, expiring state.
//   - oauth (GET): Slack's redirect back: the state is verified, the code is
//     exchanged with oauth.v2.access, and the workspace's bot token is stored
//     sealed (AES-256-GCM with token_encryption_key) in the gateway's store.
//
// Choices and why:
//
//   - Signatures are verified here, not with slack-go's SecretsVerifier,
//     which reads the wall clock itself: the same algorithm (v0, HMAC-SHA256
//     over "v0:<ts>:<body>", constant-time compare, 5-minute window) with the
//     gateway's clock, so the official vector can be checked, and with two
//     secrets during a rotation.
//   - Ephemeral answers to clicks go through response_url rather than
//     chat.postEphemeral: response_url needs no token and works in channels
//     the bot is not a member of (where chat.postEphemeral answers
//     not_in_channel), in DMs and in private channels. It is posted after the
//     ack, off the request path, and only to an https *.slack.com host.
//   - The API client is slack-go's, given an httpx client with no retries of
//     its own: the outbox retries durably and honours Slack's Retry-After,
//     which an inner retry would hide.
//   - User text (titles, names) is escaped with Slack's rules (&, <, >) and
//     sent in text objects with verbatim set, so it can never become a
//     <!channel>, a mention or a link; people the gateway knows as Slack
//     users of this chat are shown as <@U…> mentions built from their ids.
package slack

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// KindName is the `kind:` of a Slack chat in the YAML.
const KindName = "slack"

// DefaultAPIURL is Slack's Web API base.
const DefaultAPIURL = "https://slack.com/api/"

// DefaultScopes are the bot scopes the app asks for.
var DefaultScopes = []string{"commands", "chat:write", "calls:write", "calls:read", "im:write", "users:read"}

// Settings is a Slack chat's YAML block. A single workspace:
//
//	chats:
//	  slack: {signing_secret: ${SLACK_SIGNING_SECRET}, bot_token: ${SLACK_BOT_TOKEN}}
//
// Many workspaces (installed through /webhooks/chats/slack/install):
//
//	chats:
//	  slack: {signing_secret: ..., client_id: ..., client_secret: ..., token_encryption_key: ...}
type Settings struct {
	// SigningSecret verifies every request Slack sends.
	SigningSecret string `yaml:"signing_secret" secret:"true"`
	// PreviousSigningSecret still verifies requests during a rotation.
	PreviousSigningSecret string `yaml:"previous_signing_secret" secret:"true"`
	// BotToken (xoxb-…) is the token of a single workspace; when set, it is
	// used for every workspace and no install flow is offered.
	BotToken string `yaml:"bot_token" secret:"true"`
	// ClientID and ClientSecret are the app's OAuth credentials, for the
	// install flow.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// TokenEncryptionKey seals the installed workspaces' bot tokens at rest
	// and signs the OAuth state: 32 bytes, base64 or hex.
	TokenEncryptionKey string `yaml:"token_encryption_key" secret:"true"`
	// NativeCalls shows calls with Slack's Calls API (Slack draws its own
	// call cell) instead of a Block Kit card.
	NativeCalls bool `yaml:"native_calls"`
	// DefaultLocale is the language of cards and answers: en, fr, de or es.
	DefaultLocale string `yaml:"default_locale"`
	// APIURL is Slack's Web API base (a test server's, in tests).
	APIURL string `yaml:"api_url"`
	// Scopes are the bot scopes the install flow and the manifest ask for.
	Scopes []string `yaml:"scopes"`
	// Timeout bounds one Slack API request.
	Timeout time.Duration `yaml:"timeout"`
	// CheckMembership re-checks, before answering a Join click with a
	// personal link, that the person is still in the card's channel
	// (conversations.members; needs the channels:read and groups:read
	// scopes). A failed check refuses the link.
	CheckMembership bool `yaml:"check_membership"`
}

// NewSettings returns settings holding the defaults.
func NewSettings() *Settings {
	return &Settings{
		DefaultLocale: "en",
		APIURL:        DefaultAPIURL,
		Scopes:        append([]string(nil), DefaultScopes...),
		Timeout:       10 * time.Second,
	}
}

// Validate reports every problem by YAML field name, never quoting a secret.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.SigningSecret == "" {
		report("signing_secret", "required: the app's Signing Secret (Basic Information → App Credentials)")
	}
	if s.PreviousSigningSecret != "" && s.SigningSecret == "" {
		report("previous_signing_secret", "set only together with signing_secret, during a rotation")
	}
	if s.BotToken != "" && !strings.HasPrefix(s.BotToken, "xoxb-") {
		report("bot_token", "must be a bot token (xoxb-…)")
	}
	installs := s.ClientID != "" || s.ClientSecret != ""
	switch {
	case s.BotToken == "" && !installs:
		report("bot_token", "set bot_token for one workspace, or client_id, client_secret and token_encryption_key to install in many", "signing_secret")
	case installs && s.ClientID == "":
		report("client_id", "required with client_secret", "client_secret")
	case installs && s.ClientSecret == "":
		report("client_secret", "required with client_id", "client_id")
	}
	if installs && s.BotToken == "" && s.TokenEncryptionKey == "" {
		report("token_encryption_key", "required to store installed workspaces' tokens: 32 random bytes, base64 or hex (openssl rand -base64 32)", "client_id")
	}
	if s.TokenEncryptionKey != "" {
		if _, err := parseKey(s.TokenEncryptionKey); err != nil {
			report("token_encryption_key", err.Error())
		}
	}
	if !templates.IsBuiltinLang(s.DefaultLocale) {
		report("default_locale", "must be one of "+strings.Join(templates.BuiltinLangs, ", "))
	}
	if _, err := parseAPIURL(s.APIURL); err != nil {
		report("api_url", err.Error())
	}
	if len(s.Scopes) == 0 {
		report("scopes", "must not be empty (commands and chat:write at least)")
	}
	for i, sc := range s.Scopes {
		if sc == "" || strings.ContainsAny(sc, " ,\t\n") {
			report(fmt.Sprintf("scopes[%d]", i), "must be one scope name without spaces or commas")
		}
	}
	if s.Timeout <= 0 {
		report("timeout", "must be positive")
	}
}

// parseKey reads a 32-byte key written as base64 (standard or URL, padded
// or not) or as 64 hex digits. Errors never repeat the value.
func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must be 32 bytes (this is %d): openssl rand -base64 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes written as base64 or 64 hex digits: openssl rand -base64 32")
}

// parseAPIURL checks api_url and returns it ending in a slash.
func parseAPIURL(raw string) (string, error) {
	if _, err := adapters.ParseBaseURL(raw); err != nil {
		return "", err
	}
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	return raw, nil
}

// Kind is the descriptor cmd/callgate lists.
var Kind = adapters.Chat(KindName, NewSettings, func(_ context.Context, s *Settings, deps adapters.Deps) (calls.ChatIntake, error) {
	return New(s, deps)
})

// App is one configured Slack app. It implements calls.ChatIntake,
// calls.CardPoster and calls.DestinationLimiter.
type App struct {
	name       string
	webhookURL string
	secrets    [][]byte // current first
	botToken   string
	clientID   string
	clientSec  string
	key        []byte // token_encryption_key; nil without installs
	native     bool
	membership bool
	lang       string
	apiURL     string
	scopes     []string
	now        func() time.Time
	log        *slog.Logger
	isProvider func(string) bool
	texts      *templates.Set
	installs   calls.InstallationStore
	// api calls Slack's Web API (no retries: the outbox retries);
	// responder posts to response_url (a few quick retries).
	api       *retryablehttp.Client
	responder *retryablehttp.Client
	// responseURLAllowed says whether a response_url may be posted to.
	responseURLAllowed func(*url.URL) bool
	// inflight counts ephemeral answers still being posted.
	inflight sync.WaitGroup
}

var (
	_ calls.ChatIntake         = (*App)(nil)
	_ calls.CardPoster         = (*App)(nil)
	_ calls.DestinationLimiter = (*App)(nil)
)

// New validates the settings and builds the app.
func New(s *Settings, deps adapters.Deps) (*App, error) {
	if s == nil {
		s = NewSettings()
	}
	name := deps.Name
	if name == "" {
		name = KindName
	}
	var problems []string
	s.Validate(func(field, message string, _ ...string) { problems = append(problems, field+": "+message) })
	if len(problems) > 0 {
		return nil, fmt.Errorf("chat %s: %s", name, strings.Join(problems, "; "))
	}
	apiURL, _ := parseAPIURL(s.APIURL)
	a := &App{
		name:       name,
		webhookURL: strings.TrimRight(deps.WebhookURL, "/"),
		secrets:    [][]byte{[]byte(s.SigningSecret)},
		botToken:   s.BotToken,
		clientID:   s.ClientID,
		clientSec:  s.ClientSecret,
		native:     s.NativeCalls,
		membership: s.CheckMembership,
		lang:       s.DefaultLocale,
		apiURL:     apiURL,
		scopes:     append([]string(nil), s.Scopes...),
		now:        deps.Now,
		log:        deps.Logger,
		isProvider: deps.IsProvider,
		texts:      deps.Templates,
		installs:   deps.Installations,
	}
	if a.webhookURL == "" && deps.PublicURL != "" {
		a.webhookURL = strings.TrimRight(deps.PublicURL, "/") + "/webhooks/chats/" + name
	}
	if s.PreviousSigningSecret != "" {
		a.secrets = append(a.secrets, []byte(s.PreviousSigningSecret))
	}
	if s.TokenEncryptionKey != "" {
		a.key, _ = parseKey(s.TokenEncryptionKey)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.texts == nil {
		t, err := templates.Load("")
		if err != nil {
			return nil, fmt.Errorf("chat %s: %w", name, err)
		}
		a.texts = t
	}
	if a.botToken == "" && a.installs == nil {
		return nil, fmt.Errorf("chat %s: installs need the gateway's store (no installation store was given)", name)
	}
	a.api = httpx.New(httpx.Options{Timeout: s.Timeout, RetryMax: -1, Logger: a.log})
	a.responder = httpx.New(httpx.Options{Timeout: 5 * time.Second, RetryMax: 2, Logger: a.log})
	a.responseURLAllowed = slackHost
	return a, nil
}

// slackHost accepts the response_url Slack hands out: https on slack.com
// or one of its subdomains (hooks.slack.com).
func slackHost(u *url.URL) bool {
	h := strings.ToLower(u.Hostname())
	return u.Scheme == "https" && u.User == nil && (h == "slack.com" || strings.HasSuffix(h, ".slack.com"))
}

// Destination is the rate-limit key of a surface: the channel in its
// workspace (chat.update allows about one edit per second per channel).
func (a *App) Destination(s calls.Surface) string {
	return a.name + "/" + s.Workspace + "/" + s.Channel
}

// Wait blocks until the ephemeral answers being posted in the background
// are done (for tests and graceful shutdown).
func (a *App) Wait() { a.inflight.Wait() }

// endpoint is a URL under this chat's webhook URL.
func (a *App) endpoint(path string) string { return a.webhookURL + "/" + path }
