// Package discord is the chat platform kind "discord": `/call` as a Discord
// application command received at an HTTP interactions endpoint, and the
// call shown in the channel as a bot message (an embed with buttons) that
// the card outbox keeps current until the call is over.
//
// Wire (see README.md beside this file for the admin's setup):
//
//   - In: Discord POSTs every interaction to
//     <public_url>/webhooks/chats/<name>/interactions (or the chat's URL
//     itself), signed with Ed25519 over X-Signature-Timestamp + raw body.
//     ParseChat verifies the signature with the application's public key
//     (and the previous one during a rotation), refuses a timestamp older or
//     newer than max_age, and refuses a signature it has already accepted
//     within that window (Discord never redelivers an interaction, so a
//     second copy is a replay). Every refusal is a 401: Discord probes the
//     endpoint with bad signatures and removes an endpoint that accepts one.
//   - PING (type 1) is answered {"type":1}. `/call start|end|help`
//     (APPLICATION_COMMAND, typed options, see Commands) becomes a
//     calls.Command built from the options, never from parsed text.
//     Button clicks (MESSAGE_COMPONENT, custom_id "callgate:<action>:<call
//     id>") become calls.ChatAction.
//   - ReplyChat answers inside Discord's 3 seconds with an interaction
//     response: ephemeral (flags 64) words for the person who typed or
//     clicked, in the locale Discord reports for them, or a deferred update
//     (type 6) for End/Accept/Decline clicks, whose effect the card shows.
//   - Out: PostCard posts the card as the bot's own channel message
//     (POST /channels/{channel}/messages) and edits it
//     (PATCH /channels/{channel}/messages/{id}). The interaction response is
//     never the card: its token dies after 15 minutes and calls last longer.
//
// Choices and why:
//
//   - REST calls go straight through adapters/httpx (go-retryablehttp) with
//     no retries inside an attempt, not through discordgo's Session: its
//     requester sleeps on a 429 and retries itself, which would hold the
//     outbox's lease and hide Discord's retry_after from the outbox, and its
//     endpoints are package variables that api_url could not change.
//     discordgo provides the wire types (interactions, embeds, buttons,
//     allowed mentions) and constants.
//   - Rate limits: a 429's retry_after (JSON, float seconds; the
//     X-RateLimit-Reset-After header otherwise) becomes calls.Temporary with
//     that wait, global or per route. A success that leaves a route's bucket
//     empty (X-RateLimit-Remaining: 0) is remembered: the next PostCard to
//     that route returns Temporary with the time left instead of spending a
//     request on a certain 429 (each 429 counts towards Discord's
//     10,000-invalid-requests ban). The outbox then defers the delivery and
//     keeps only the latest version, so no edit is lost.
//   - Every message and response carries allowed_mentions {"parse": []},
//     and every user-provided value is markdown-escaped (Escape): no title
//     or name can ping @everyone, @here, a role or a user, or make a link.
//     The only mentions rendered are <@id> of Discord users the gateway
//     knows by their snowflake (the caller), which never ping.
package discord

import (
	"context"
	"encoding/hex"
	"errors"
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

// KindName is the `kind:` of a Discord chat in the YAML.
const KindName = "discord"

// Defaults of the optional settings.
const (
	DefaultAPIURL  = "https://discord.com/api/v10"
	DefaultMaxAge  = 5 * time.Minute
	DefaultTimeout = 10 * time.Second
	// MaxMaxAge bounds max_age: a longer window only helps replays.
	MaxMaxAge = time.Hour
)

// Settings is a Discord chat's YAML block:
//
//	chats:
//	  discord:
//	    application_id: "1234567890"
//	    public_key: ${DISCORD_PUBLIC_KEY}
//	    bot_token: ${DISCORD_BOT_TOKEN}
type Settings struct {
	// ApplicationID is the application's id (Developer Portal, General
	// Information).
	ApplicationID string `yaml:"application_id"`
	// PublicKey verifies interactions: 64 hex digits.
	PublicKey string `yaml:"public_key"`
	// PreviousPublicKey still verifies interactions while switching to
	// another application's key.
	PreviousPublicKey string `yaml:"previous_public_key"`
	// BotToken authenticates the bot's REST calls (cards, register).
	BotToken string `yaml:"bot_token" secret:"true"`
	// GuildID, when set, is where `callgate discord register` installs the
	// commands (at once, for testing) instead of globally.
	GuildID string `yaml:"guild_id"`
	// DefaultLocale is the language of cards (en, fr, de, es), and of
	// replies to people whose Discord locale is none of these.
	DefaultLocale string `yaml:"default_locale"`
	// APIURL is Discord's REST base URL.
	APIURL string `yaml:"api_url"`
	// MaxAge bounds how old (or how far in the future) an interaction's
	// timestamp may be.
	MaxAge time.Duration `yaml:"max_age"`
	// Timeout bounds one REST request.
	Timeout time.Duration `yaml:"timeout"`
}

// NewSettings returns settings holding the defaults.
func NewSettings() *Settings {
	return &Settings{DefaultLocale: "en", APIURL: DefaultAPIURL, MaxAge: DefaultMaxAge, Timeout: DefaultTimeout}
}

// Validate reports every problem with the settings by YAML field name,
// never quoting the bot token.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.ApplicationID == "" {
		report("application_id", "required (Developer Portal → your application → General Information → Application ID)")
	} else if !isSnowflake(s.ApplicationID) {
		report("application_id", "must be the application's numeric id")
	}
	if s.PublicKey == "" {
		report("public_key", "required (Developer Portal → General Information → Public Key)")
	} else if _, err := parsePublicKey(s.PublicKey); err != nil {
		report("public_key", err.Error())
	}
	if s.PreviousPublicKey != "" {
		if _, err := parsePublicKey(s.PreviousPublicKey); err != nil {
			report("previous_public_key", err.Error())
		}
	}
	if s.BotToken == "" {
		report("bot_token", "required (Developer Portal → Bot → Reset Token): cards are posted as the bot")
	} else if strings.ContainsAny(s.BotToken, " \t\r\n") {
		report("bot_token", "must not contain white space (paste the token alone, without \"Bot \")")
	}
	if s.GuildID != "" && !isSnowflake(s.GuildID) {
		report("guild_id", "must be a server's numeric id")
	}
	if !templates.IsBuiltinLang(s.DefaultLocale) {
		report("default_locale", "must be one of "+strings.Join(templates.BuiltinLangs, ", "))
	}
	if _, err := adapters.ParseBaseURL(s.APIURL); err != nil {
		report("api_url", err.Error())
	}
	switch {
	case s.MaxAge <= 0:
		report("max_age", "must be positive")
	case s.MaxAge > MaxMaxAge:
		report("max_age", fmt.Sprintf("must be at most %s", MaxMaxAge))
	}
	if s.Timeout <= 0 {
		report("timeout", "must be positive")
	}
}

// parsePublicKey decodes an Ed25519 public key in hex; errors never quote it.
func parsePublicKey(h string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(h))
	if err != nil {
		return nil, errors.New("must be hex (64 digits, as the Developer Portal shows it)")
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("must be 32 bytes (64 hex digits), not %d", len(k))
	}
	return k, nil
}

// isSnowflake reports whether s is a Discord id: 1 to 20 ASCII digits.
func isSnowflake(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Kind is the descriptor cmd/callgate lists.
var Kind = adapters.Chat(KindName, NewSettings, func(_ context.Context, s *Settings, deps adapters.Deps) (calls.ChatIntake, error) {
	return New(s, deps)
})

// App is one configured Discord application. It implements
// calls.ChatIntake, calls.CardPoster and calls.DestinationLimiter.
type App struct {
	name       string
	appID      string
	keys       [][]byte // current first
	token      string
	api        string // without trailing slash
	apiHost    string
	lang       string
	maxAge     time.Duration
	client     *retryablehttp.Client
	now        func() time.Time
	log        *slog.Logger
	tpl        *templates.Set
	isProvider func(string) bool

	replays *replayCache
	limits  *bucketTracker
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
	name := deps.Name
	if name == "" {
		name = KindName
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("chat %s: %s", name, strings.Join(problems, "; "))
	}
	u, _ := adapters.ParseBaseURL(s.APIURL)
	a := &App{
		name:       name,
		appID:      s.ApplicationID,
		token:      s.BotToken,
		api:        strings.TrimRight(s.APIURL, "/"),
		apiHost:    u.Host,
		lang:       s.DefaultLocale,
		maxAge:     s.MaxAge,
		now:        deps.Now,
		log:        deps.Logger,
		tpl:        deps.Templates,
		isProvider: deps.IsProvider,
	}
	k, _ := parsePublicKey(s.PublicKey)
	a.keys = append(a.keys, k)
	if s.PreviousPublicKey != "" {
		k, _ := parsePublicKey(s.PreviousPublicKey)
		a.keys = append(a.keys, k)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.tpl == nil {
		tpl, err := templates.Load("")
		if err != nil {
			return nil, fmt.Errorf("chat %s: %w", name, err)
		}
		a.tpl = tpl
	}
	// No retries inside one attempt: the outbox retries durably and must
	// see Discord's retry_after; a 429 retried blindly also counts towards
	// Discord's invalid-request ban.
	a.client = httpx.New(httpx.Options{Timeout: s.Timeout, RetryMax: -1})
	a.replays = newReplayCache(a.maxAge)
	a.limits = newBucketTracker()
	return a, nil
}

// SetHTTPClient replaces the REST client (tests, a proxy).
func (a *App) SetHTTPClient(c *retryablehttp.Client) { a.client = c }

// Destination is the rate-limit key of a surface: the channel, which is
// what Discord's message routes are bucketed by.
func (a *App) Destination(s calls.Surface) string { return s.Channel }

// replayCache remembers the signatures accepted within the replay window.
type replayCache struct {
	mu     sync.Mutex
	window time.Duration
	seen   map[string]time.Time // signature hex → interaction timestamp
}

// maxReplayEntries bounds the cache; past it, the oldest half is dropped
// (the signature and timestamp checks still hold).
const maxReplayEntries = 100_000

func newReplayCache(window time.Duration) *replayCache {
	return &replayCache{window: window, seen: map[string]time.Time{}}
}

// fresh records sig and reports whether it had not been seen.
func (c *replayCache) fresh(sig string, ts, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[sig]; ok {
		return false
	}
	if len(c.seen) >= maxReplayEntries {
		cut := now.Add(-c.window)
		for k, t := range c.seen {
			if t.Before(cut) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxReplayEntries {
			n := 0
			for k := range c.seen {
				delete(c.seen, k)
				if n++; n >= maxReplayEntries/2 {
					break
				}
			}
		}
	}
	c.seen[sig] = ts
	return true
}
