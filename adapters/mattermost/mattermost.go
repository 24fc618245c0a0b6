// Package mattermost is the chat platform kind "mattermost": `/call` as a
// custom slash command, the call card as a bot post with message
// attachments whose buttons are integration actions, kept current through
// the REST API (`PATCH`-style `PUT /api/v4/posts/{id}/patch`) and final
// when the call ends.
//
// Endpoints under /webhooks/chats/<name>/:
//
//   - "commands": Mattermost's slash command request (Slack's field names,
//     form-encoded; POST, or GET with the fields in the query when the
//     command is set to GET). Mattermost signs nothing: it sends the
//     command's token in the `token` field and in `Authorization: Token …`,
//     compared here in constant time with command_token and, during a
//     rotation, previous_command_token.
//   - "actions": a button click (integration action), JSON {user_id,
//     channel_id, team_id, post_id, context}. Its context was written by
//     callgate when it drew the card: {action, call_id, sig} where sig is
//     hex HMAC-SHA256(action_secret, "callgate-mattermost-action" NUL
//     action NUL call_id NUL channel_id). The signature is checked in
//     constant time against the channel the click claims to come from.
//     Mattermost keeps integration contexts on the server (clients never
//     see them), so a valid context only comes from Mattermost itself.
//
// Choices and why:
//
//   - The card is the bot's own post (bot_token), not the slash command's
//     answer: an in_channel answer is posted as the user and cannot be
//     edited by the bot later. The command is answered with an ephemeral
//     line for the person who typed it (with their personal join link).
//   - Join is an integration action too (Mattermost buttons cannot be
//     links): the click is answered with an ephemeral personal link only
//     the clicker sees. The card's title links the stable join link.
//   - Every value a user wrote (title, names) is escaped for Mattermost's
//     markdown and its '@' defused, so no @channel, @all, @here, @someone,
//     link or image comes of it.
//   - Mattermost user ids are opaque, so the card's "Started by" name is
//     looked up once per user (GET /api/v4/users/{id}) and cached; a failed
//     lookup shows the id and does not fail the card.
//   - PostCard does not retry inside an attempt; the outbox retries.
package mattermost

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// KindName is the `kind:` of a Mattermost block.
const KindName = "mattermost"

// Defaults.
const (
	DefaultLocale  = "en"
	DefaultTimeout = 10 * time.Second
	// MinActionSecretLength is the shortest action_secret accepted.
	MinActionSecretLength = 16
)

// Settings is a Mattermost block:
//
//	chats:
//	  mattermost: {kind: mattermost, command_token: ..., bot_token: ..., action_secret: ..., api_url: https://mm.example.com}
type Settings struct {
	CommandToken         string `yaml:"command_token" secret:"true"`
	PreviousCommandToken string `yaml:"previous_command_token" secret:"true"`
	BotToken             string `yaml:"bot_token" secret:"true"`
	// APIURL is the Mattermost server (its Site URL).
	APIURL string `yaml:"api_url"`
	// ActionSecret signs the buttons' contexts; required because every
	// live card has buttons.
	ActionSecret  string        `yaml:"action_secret" secret:"true"`
	DefaultLocale string        `yaml:"default_locale"`
	Timeout       time.Duration `yaml:"timeout"`
}

// NewSettings returns the defaults.
func NewSettings() *Settings {
	return &Settings{DefaultLocale: DefaultLocale, Timeout: DefaultTimeout}
}

// Validate reports every problem by field; never a secret.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.CommandToken == "" {
		report("command_token", "required (the slash command's token)")
	}
	if s.PreviousCommandToken != "" && s.CommandToken == "" {
		report("previous_command_token", "set only together with command_token, during a rotation")
	}
	if s.BotToken == "" {
		report("bot_token", "required (the bot account's access token, which posts the cards)")
	}
	switch {
	case s.ActionSecret == "":
		report("action_secret", "required (signs the card buttons; any random string of 16 bytes or more)")
	case len(s.ActionSecret) < MinActionSecretLength:
		report("action_secret", fmt.Sprintf("must be at least %d bytes", MinActionSecretLength))
	}
	if s.APIURL == "" {
		report("api_url", "required (the Mattermost server, https://mm.example.com)")
	} else if _, err := adapters.ParseBaseURL(s.APIURL); err != nil {
		report("api_url", err.Error())
	}
	if !templates.IsBuiltinLang(s.DefaultLocale) {
		report("default_locale", "must be one of "+strings.Join(templates.BuiltinLangs, ", "))
	}
	if s.Timeout <= 0 {
		report("timeout", "must be positive")
	}
}

// Kind is the descriptor cmd/callgate lists.
var Kind = adapters.Chat(KindName, NewSettings, func(_ context.Context, s *Settings, deps adapters.Deps) (calls.ChatIntake, error) {
	return New(s, deps)
})

// App is one configured Mattermost server: calls.ChatIntake,
// calls.CardPoster and calls.DestinationLimiter.
type App struct {
	name         string
	tokens       [][]byte
	botToken     string
	base         string
	actionSecret []byte
	actionsURL   string
	locale       string
	templates    *templates.Set
	isProvider   func(string) bool
	http         *retryablehttp.Client
	now          func() time.Time
	log          *slog.Logger

	mu    sync.Mutex
	names map[string]string // user id → username, bounded
	bot   string            // the bot's user id, once looked up
}

var (
	_ calls.ChatIntake         = (*App)(nil)
	_ calls.CardPoster         = (*App)(nil)
	_ calls.DestinationLimiter = (*App)(nil)
	_ calls.ChannelMembership  = (*App)(nil)
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
		name: deps.Name, tokens: [][]byte{[]byte(s.CommandToken)}, botToken: s.BotToken,
		base: strings.TrimRight(s.APIURL, "/"), actionSecret: []byte(s.ActionSecret),
		actionsURL: deps.WebhookURL + "/actions", locale: s.DefaultLocale, templates: deps.Templates,
		isProvider: deps.IsProvider, now: deps.Now, log: deps.Logger, names: map[string]string{},
	}
	if a.name == "" {
		a.name = KindName
	}
	if deps.WebhookURL == "" {
		a.actionsURL = deps.PublicURL + "/webhooks/chats/" + a.name + "/actions"
	}
	if s.PreviousCommandToken != "" {
		a.tokens = append(a.tokens, []byte(s.PreviousCommandToken))
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
	a.http = httpx.New(httpx.Options{Timeout: s.Timeout, RetryMax: -1, Logger: deps.Logger})
	return a, nil
}

// Destination paces cards per channel.
func (a *App) Destination(s calls.Surface) string { return s.Channel }
