// Package voiplink is the chat platform kind "voiplink": a generic,
// signed-JSON contract for a chat app of your own (or one callgate has no
// dedicated adapter for) that shows calls as messages carrying an
// application/voip-link part, the custom message type Layer's "Integrating
// with voice or video providers" guide describes: a message part whose MIME
// type is application/voip-link and whose body is the link to the call.
//
// Two directions, one signature scheme (see Sign and Verify, and README.md
// beside this file for the contract written for an app developer):
//
//   - In: the app POSTs each `/call …` command a user typed to
//     /webhooks/chats/<name> as JSON ({"conversation_id", "sender", "text"}),
//     signed with HMAC-SHA256 over "<unix timestamp>.<raw body>". The answer
//     (ReplyChat) is the message to show in the conversation.
//   - Out: whenever a call shown in a conversation changes, PostCard POSTs
//     the call as a message to the app's callback_url, signed the same way
//     with the current secret, with a delivery id that is the same on every
//     retry and a version that only grows.
//
// Choices and why:
//
//   - The signature covers the timestamp and the raw body, not the headers
//     or the URL: proxies rewrite both, and everything that matters is in the
//     body. Several "v1=" values may be sent (comma-separated) so an app can
//     sign with two secrets during a rotation; the gateway accepts both its
//     current and its previous secret, and compares in constant time.
//   - Verification comes before parsing: nothing in an unauthenticated body is
//     looked at. A timestamp more than max_skew away from now, either way, is
//     refused after the signature is checked, so only a holder of the secret
//     learns about clock skew.
//   - The command body is decoded strictly: unknown fields, duplicate keys
//     (which two JSON parsers could read differently), keys in another case,
//     invalid UTF-8, control characters and ids longer than 255 bytes are all
//     refused as malformed, because a signed body that one reader takes one
//     way and another reader another way is a way around the signature.
//   - A command the grammar rejects is not a malformed webhook: the request
//     is authentic and well-formed, the user just typed something else.
//     ParseChat returns it without a Command (nothing runs) and ReplyChat
//     answers 200 with a message that says what to type instead.
//   - PostCard uses go-retryablehttp with RetryMax 0: the durable outbox
//     already retries with backoff, counts attempts, keeps the last error,
//     honours Retry-After and paces each destination. Retrying inside one
//     attempt as well would hold the outbox's lease longer, multiply the load
//     on an app that is already failing, and hide the app's Retry-After from
//     the outbox. Redirects are not followed (a POST turned into a GET is
//     never what the app wants); the callback must be the final address.
//   - The message reference PostCard returns is the app's "message_id" when
//     its 2xx answer holds one, else the one kept from before, else empty:
//     the app always gets the same POST, so the reference only serves to
//     tell the app which of its messages to update (the callback's
//     "message_id"); an app that keeps none keys its message by conversation
//     and call id instead. The conversation id is not used as a fallback,
//     because echoing it back as "message_id" would name a message that
//     does not exist.
//   - A command's delivery id may come in the body ("delivery_id", signed)
//     or in the X-Callgate-Delivery header (not signed: the scheme signs
//     only the timestamp and the body); both must agree when both are sent. Either only dedupes honest retries: the replay window is what
//     stops a captured request.
//   - Errors name the callback's host, never its path or query (which may
//     carry a token) and never a secret.
package voiplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// KindName is the `kind:` of a voiplink chat in the YAML.
const KindName = "voiplink"

// Defaults of the optional settings.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxSkew = 5 * time.Minute
)

// MinSecretLength is the shortest secret accepted, in bytes.
const MinSecretLength = 16

// Settings is a voiplink chat's YAML block:
//
//	chats:
//	  acme: {kind: voiplink, secret: ${ACME_SECRET}, callback_url: https://chat.acme.example/callgate}
type Settings struct {
	// Secret signs callbacks and verifies commands (at least 16 bytes).
	Secret string `yaml:"secret" secret:"true"`
	// PreviousSecret still verifies commands during a rotation; callbacks
	// are always signed with Secret.
	PreviousSecret string `yaml:"previous_secret" secret:"true"`
	// CallbackURL is where cards are POSTed: an absolute http(s) URL.
	CallbackURL string `yaml:"callback_url"`
	// Timeout bounds one callback request; default DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSkew is how far a command's timestamp may lie from now, either
	// way; default DefaultMaxSkew.
	MaxSkew time.Duration `yaml:"max_skew"`
}

// NewSettings returns settings holding the defaults.
func NewSettings() *Settings {
	return &Settings{Timeout: DefaultTimeout, MaxSkew: DefaultMaxSkew}
}

// Validate reports every problem with the settings by YAML field name. A
// message never contains a secret, nor the callback URL (its query may hold
// a token).
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	switch {
	case s.Secret == "":
		report("secret", "required")
	case len(s.Secret) < MinSecretLength:
		report("secret", fmt.Sprintf("must be at least %d bytes", MinSecretLength))
	}
	switch {
	case s.PreviousSecret != "" && s.Secret == "":
		report("previous_secret", "set only together with secret, during a rotation")
	case s.PreviousSecret != "" && len(s.PreviousSecret) < MinSecretLength:
		report("previous_secret", fmt.Sprintf("must be at least %d bytes", MinSecretLength))
	}
	if s.CallbackURL == "" {
		report("callback_url", "required")
	} else if _, err := parseCallbackURL(s.CallbackURL); err != nil {
		report("callback_url", err.Error())
	}
	if s.Timeout <= 0 {
		report("timeout", "must be positive")
	}
	if s.MaxSkew <= 0 {
		report("max_skew", "must be positive")
	}
}

// parseCallbackURL checks the callback URL; its errors never repeat it.
func parseCallbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("has no host")
	}
	if u.User != nil {
		return nil, errors.New("must not contain a user name or password (the signature authenticates the gateway)")
	}
	if u.Fragment != "" {
		return nil, errors.New("must not have a fragment")
	}
	return u, nil
}

// Kind is the descriptor cmd/callgate lists.
var Kind = adapters.Chat(KindName, NewSettings, func(_ context.Context, s *Settings, deps adapters.Deps) (calls.ChatIntake, error) {
	return New(s, deps)
})

// App is one configured voiplink chat app. It implements calls.ChatIntake,
// calls.CardPoster and calls.DestinationLimiter.
type App struct {
	name     string
	secrets  [][]byte // current first
	callback string
	host     string
	maxSkew  time.Duration
	client   *retryablehttp.Client
	now      func() time.Time
	log      *slog.Logger
	// isProvider tells whether a command word names a configured provider;
	// nil means none does (the word becomes part of the title).
	isProvider func(string) bool
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
		name := deps.Name
		if name == "" {
			name = KindName
		}
		return nil, fmt.Errorf("chat %s: %s", name, strings.Join(problems, "; "))
	}
	u, _ := parseCallbackURL(s.CallbackURL)
	a := &App{
		name:     deps.Name,
		secrets:  [][]byte{[]byte(s.Secret)},
		callback: s.CallbackURL,
		host:     u.Host,
		maxSkew:  s.MaxSkew,
		now:      deps.Now,
		log:      deps.Logger,
		// Commands may name a configured provider ("/call daily Standup").
		isProvider: deps.IsProvider,
	}
	if s.PreviousSecret != "" {
		a.secrets = append(a.secrets, []byte(s.PreviousSecret))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = s.Timeout
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.client = &retryablehttp.Client{
		HTTPClient: hc,
		Logger:     nil, // its messages carry the URL; errors are reported by PostCard instead
		RetryMax:   0,
		CheckRetry: func(context.Context, *http.Response, error) (bool, error) { return false, nil },
		Backoff:    retryablehttp.DefaultBackoff,
		// Hand back the response or the transport error as is, so PostCard
		// maps the status itself and no message carries the URL.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return a, nil
}

// SetProviderPredicate tells ParseChat which command words name configured
// providers (`/call daily Standup`). Without one, such a word is part of the
// title. Call it before serving requests.
func (a *App) SetProviderPredicate(isProvider func(string) bool) { a.isProvider = isProvider }

// Destination is the rate-limit key of every surface of this app: the
// callback URL's host, so cards are paced per app.
func (a *App) Destination(calls.Surface) string { return a.host }
