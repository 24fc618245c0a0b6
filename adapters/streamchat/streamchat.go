// Package streamchat is the chat platform kind "stream": `/call` as a
// Stream Chat custom command, the call card as a message carrying an
// attachment of type "call" (Stream's own advice for in-chat calling:
// "store the entire call object inside a message"), kept current by partial
// updates, and optionally the channel's `call` field and custom events.
//
// Stream's official Go SDK cannot be installed here, so Client is a small
// typed REST client of its own on adapters/httpx (go-retryablehttp): a
// server JWT (HS256 {"server": true} signed with the API secret) in
// Authorization, `Stream-Auth-Type: jwt` and `?api_key=`.
//
// Endpoints under /webhooks/chats/<name>/:
//
//   - "" or "commands": the app's custom_action_handler_url. Stream POSTs
//     the message being sent with the /call command ({message, user,
//     form_data}) and waits at most one second for the answer, which
//     rewrites the message. Button clicks on that message come back to the
//     same URL with form_data {"callgate_action": "<action>:<call id>"}.
//   - "events" (or "" with a body that is an event): the app's webhook_url.
//     Events are verified and acknowledged; none needs an action.
//
// Every request is verified before it is read: X-Signature is the hex
// HMAC-SHA256 of the uncompressed body under the API secret (a gzip body,
// recognised by its magic bytes, is inflated first, with a bound), compared
// in constant time against the current and, during a rotation, the
// previous secret.
//
// Choices and why:
//
//   - Two messages per call. The custom command's answer can only rewrite
//     the message being sent, and the gateway cannot tell the outbox that
//     message's id (a chat request has no field for it and the surface key
//     must stay the channel, or `/call end` and "a call is live here" would
//     stop working). So the command's message is rewritten into a short
//     line ("Ada started a video call") with a compact call attachment
//     (the call object, the join link, Join and End), shown within Stream's
//     second; and the card PostCard keeps current is the bot's own message,
//     sent once with a deterministic id (callgate-<call id>-<channel hash>)
//     and then changed only by partial update (`PUT /messages/{id}` with
//     set: text and attachments). The deterministic id makes the first post
//     idempotent: a retry after a lost answer meets "already exists" and
//     turns into a partial update of the same message.
//   - The channel's `call` field (channel_call_field) is only ever set by
//     partial update (`PATCH /channels/{type}/{id}`): a full channel update
//     would delete every custom field callgate did not send. It holds the
//     call object, ended state included, so a client can tell a live call
//     from an old one.
//   - Custom events (custom_events): call.created on the first delivery,
//     call.ended once the call is over, call.updated otherwise; each holds
//     the call object with its version, so a client drops what is older
//     than what it has. A retried delivery may repeat an event.
//   - A click cannot be answered to one person only: the handler's answer
//     rewrites the (shared) message. So a click runs (End, Accept,
//     Decline) and the message is rewritten to the call as it now is; Join
//     uses the card's join link, the stable link, which admits everyone in
//     the channel for calls started from chat. Refusals (not the owner) are
//     logged, not shown.
//   - A command the grammar rejects, `/call help` and errors are answered
//     with a message of type "error", which Stream shows to the sender only
//     and does not store. "A call is already live here" is answered with an
//     ephemeral message to the sender holding the live call and a personal
//     link.
//   - PostCard does not retry inside an attempt (the outbox does, with its
//     backoff and Retry-After); the command handler's REST calls are none:
//     ReplyChat only writes JSON.
package streamchat

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// KindName is the `kind:` of a Stream Chat block in the YAML.
const KindName = "stream"

// Defaults of the optional settings.
const (
	DefaultAPIURL      = "https://chat.stream-io-api.com"
	DefaultCommandName = "call"
	DefaultBotUserID   = "callgate"
	DefaultLocale      = "en"
	DefaultTimeout     = 10 * time.Second
)

// Settings is a Stream Chat block:
//
//	chats:
//	  stream: {kind: stream, api_key: ${STREAM_KEY}, api_secret: ${STREAM_SECRET}}
type Settings struct {
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret" secret:"true"`
	// PreviousAPISecret still verifies webhooks during a secret rotation;
	// REST calls always use APISecret.
	PreviousAPISecret string `yaml:"previous_api_secret" secret:"true"`
	// ChannelCallField also keeps the channel's `call` field current (by
	// partial update).
	ChannelCallField bool `yaml:"channel_call_field"`
	// CustomEvents also sends call.created, call.updated and call.ended
	// custom events to the channel.
	CustomEvents  bool   `yaml:"custom_events"`
	DefaultLocale string `yaml:"default_locale"`
	APIURL        string `yaml:"api_url"`
	// CommandName is the custom command's name (without '/').
	CommandName string `yaml:"command_name"`
	// BotUserID is the Stream user that sends the cards and events; it
	// must exist in the app (see README).
	BotUserID string `yaml:"bot_user_id"`
	// Timeout bounds one REST request.
	Timeout time.Duration `yaml:"timeout"`
}

// NewSettings returns settings holding the defaults.
func NewSettings() *Settings {
	return &Settings{
		DefaultLocale: DefaultLocale, APIURL: DefaultAPIURL, CommandName: DefaultCommandName,
		BotUserID: DefaultBotUserID, Timeout: DefaultTimeout,
	}
}

// Validate reports every problem by YAML field; no message holds a secret.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.APIKey == "" {
		report("api_key", "required")
	} else if strings.ContainsFunc(s.APIKey, badIDRune) {
		report("api_key", "must not contain spaces or control characters")
	}
	if s.APISecret == "" {
		report("api_secret", "required")
	}
	if s.PreviousAPISecret != "" && s.APISecret == "" {
		report("previous_api_secret", "set only together with api_secret, during a rotation")
	}
	if !templates.IsBuiltinLang(s.DefaultLocale) {
		report("default_locale", "must be one of "+strings.Join(templates.BuiltinLangs, ", "))
	}
	if _, err := adapters.ParseBaseURL(s.APIURL); err != nil {
		report("api_url", err.Error())
	}
	if s.CommandName == "" || strings.ContainsFunc(s.CommandName, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		report("command_name", "must be a command name of lowercase letters, digits, '-' or '_', without '/'")
	}
	if s.BotUserID == "" || len(s.BotUserID) > 255 || strings.ContainsFunc(s.BotUserID, badIDRune) {
		report("bot_user_id", "must be a Stream user id (no spaces, at most 255 bytes)")
	}
	if s.Timeout <= 0 {
		report("timeout", "must be positive")
	}
}

func badIDRune(r rune) bool { return r <= ' ' || r == 0x7f }

// Kind is the descriptor cmd/callgate lists.
var Kind = adapters.Chat(KindName, NewSettings, func(_ context.Context, s *Settings, deps adapters.Deps) (calls.ChatIntake, error) {
	return New(s, deps)
})

// App is one configured Stream Chat app: calls.ChatIntake, calls.CardPoster
// and calls.DestinationLimiter.
type App struct {
	name         string
	key          string
	secrets      [][]byte
	client       *Client
	command      string
	locale       string
	bot          string
	channelField bool
	events       bool
	templates    *templates.Set
	isProvider   func(string) bool
	now          func() time.Time
	log          *slog.Logger
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
	var problems []string
	s.Validate(func(field, message string, _ ...string) { problems = append(problems, field+": "+message) })
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	a := &App{
		name: deps.Name, key: s.APIKey, secrets: [][]byte{[]byte(s.APISecret)}, command: s.CommandName,
		locale: s.DefaultLocale, bot: s.BotUserID, channelField: s.ChannelCallField, events: s.CustomEvents,
		templates: deps.Templates, isProvider: deps.IsProvider, now: deps.Now, log: deps.Logger,
	}
	if a.name == "" {
		a.name = KindName
	}
	if s.PreviousAPISecret != "" {
		a.secrets = append(a.secrets, []byte(s.PreviousAPISecret))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.templates == nil {
		t, err := templates.Load("")
		if err != nil {
			return nil, err
		}
		a.templates = t
	}
	// No retries inside one card attempt: the outbox retries durably.
	hc := httpx.New(httpx.Options{Timeout: s.Timeout, RetryMax: -1, Logger: deps.Logger})
	a.client = NewClient(s.APIURL, s.APIKey, s.APISecret, hc)
	return a, nil
}

// Client returns the REST client the app uses.
func (a *App) Client() *Client { return a.client }

// Destination paces cards per channel.
func (a *App) Destination(s calls.Surface) string { return s.Channel }

// httpClient is what Client needs of retryablehttp.
type httpClient = *retryablehttp.Client

func newRequest(ctx context.Context, method, rawURL string, body []byte) (*retryablehttp.Request, error) {
	return retryablehttp.NewRequestWithContext(ctx, method, rawURL, body)
}
