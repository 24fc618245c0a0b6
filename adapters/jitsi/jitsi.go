// Package jitsi puts calls on Jitsi Meet: the public meet.jit.si, a
// self-hosted deployment (optionally with token auth), or 8x8's JaaS for
// status webhooks.
//
// Choices and why:
//
//   - Jitsi has no API to create a room: a room exists while someone is in it.
//     CreateRoom therefore only picks a name. The name is the call id plus ten
//     random characters, because on a public deployment anyone who knows the
//     name can walk in, and call ids may be guessable ("call-123").
//   - CreateRoom is not idempotent on the call id in the sense of returning the
//     same name twice: each call returns a fresh random name. The calls service
//     creates a call once (idempotent on its id) and stores the room it got, so
//     a second name is never used. Deriving the name from the id would make it
//     guessable again on deployments without a secret to key a hash with.
//   - Without an AppID the deployment is treated as public: the join link is
//     the room URL and nobody gets a token. With AppID/AppSecret, Credential
//     mints the HS256 JWT that Jitsi's prosody token plugin verifies; its
//     context.user.moderator is what gives owners and panelists moderator
//     rights.
//   - Per-person options (audio-only, listener, display name) travel in the URL
//     fragment using Jitsi's own syntax: "key=value" pairs joined by "&", each
//     value percent-encoded JSON (jitsi-meet's parseURLParams decodes and
//     JSON-parses every value). A fragment never reaches the server, so it
//     cannot leak into access logs. These are client-side hints: Jitsi cannot
//     stop a listener from unmuting.
//   - EndRoom is a no-op: Jitsi has no REST API to close a room. The call still
//     ends in callgate (its card and state say so); people already in the room
//     stay until they leave.
//   - JaaS (8x8) is token auth with RS256: with jaas_app_id, jaas_key_id and
//     jaas_private_key set, every link carries a JWT signed with the API
//     key's private key, kid "<AppID>/<key id>", aud "jitsi", iss "chat",
//     sub the AppID, context.user.moderator "true" for owners and
//     panelists, and context.features (recording, livestreaming,
//     transcription) for them only; rooms live at https://8x8.vc/<AppID>/
//     (see jaas.go). Self-hosted HS256 and public Jitsi are unchanged.
//   - Status webhooks are JaaS's (8x8 Jitsi as a Service): signed with
//     HMAC-SHA256 in X-Jaas-Signature ("t=<unix>,v1=<base64>", Stripe style).
//     The signature is checked against every configured secret so a secret can
//     be rotated without dropping deliveries, only the v1 scheme counts (the
//     docs ask to ignore the others against downgrade attacks), and the signed
//     timestamp must lie within five minutes of now so a captured delivery
//     cannot be replayed later. Without a secret nothing is accepted.
package jitsi

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// DefaultBaseURL is the public Jitsi Meet deployment.
const DefaultBaseURL = "https://meet.jit.si"

// DefaultAudience is the JWT "aud" Jitsi's token plugin expects by default.
const DefaultAudience = "jitsi"

// joinData is what join_url_template is executed with.
type joinData struct {
	Room, Token, UID, Identity, URL string
}

// defaultTTL is used when a credential request names no lifetime: a token
// must expire, and an hour covers joining late without outliving the call by
// much.
const defaultTTL = time.Hour

// roomSuffixLen is the number of random characters appended to the call id in
// a room name: 10 characters of a 31-letter alphabet are about 50 bits, far
// beyond what anyone can enumerate against a public deployment.
const roomSuffixLen = 10

// Config configures a Jitsi provider.
type Config struct {
	// BaseURL is the deployment's address, e.g. https://meet.example.com or,
	// for JaaS, https://8x8.vc/vpaas-magic-cookie-…; default DefaultBaseURL.
	BaseURL string
	// AppID and AppSecret enable token auth (HS256 JWT, iss = AppID). Both or
	// neither; without them the deployment is used as a public one.
	AppID     string
	AppSecret string
	// Audience is the JWT "aud"; default DefaultAudience.
	Audience string
	// Subject is the JWT "sub", the XMPP domain; default the host of BaseURL.
	Subject string
	// WebhookSecrets are the JaaS webhook signing secrets. Two may be valid
	// while one is rotated. Without any, every webhook is rejected.
	WebhookSecrets []string
	// JaaSAppID, JaaSKeyID and JaaSPrivateKey select 8x8's JaaS (all
	// three or none; exclusive with AppID/AppSecret): RS256 tokens with
	// kid "<AppID>/<key id>", rooms under BaseURL/<AppID>/, BaseURL
	// defaulting to JaaSBaseURL.
	JaaSAppID      string
	JaaSKeyID      string
	JaaSPrivateKey *rsa.PrivateKey
	// Now returns the current time; nil means time.Now. Tests pin it.
	Now func() time.Time
	// TokenTTL, when set, caps credential lifetimes.
	TokenTTL time.Duration
	// JoinURLTemplate, when set, builds join links (see Settings).
	JoinURLTemplate string
}

// Provider is a calls.Provider for Jitsi Meet.
type Provider struct {
	base     string // scheme://host[/path], no trailing slash
	domain   string // host[:port] of base, what Jitsi's IFrame API calls "domain"
	appID    string
	signer   *hs256.Signer // the app secret's; nil without token auth
	audience string
	subject  string
	webhook  [][]byte
	now      func() time.Time
	// JaaS, when jaasKey is set.
	jaasApp string
	jaasKid string
	jaasKey *rsa.PrivateKey
	// maxTTL caps credential lifetimes (token_ttl); zero: no cap of its own.
	maxTTL time.Duration
	// join, when set, builds join links (join_url_template).
	join *template.Template
}

// New validates the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	jaas := cfg.JaaSAppID != "" || cfg.JaaSKeyID != "" || cfg.JaaSPrivateKey != nil
	if jaas && (cfg.JaaSAppID == "" || cfg.JaaSKeyID == "" || cfg.JaaSPrivateKey == nil) {
		return nil, errors.New("jitsi: jaas_app_id, jaas_key_id and jaas_private_key must be set together")
	}
	if jaas && cfg.AppID != "" {
		return nil, errors.New("jitsi: JaaS and self-hosted token auth (app_id, app_secret) are exclusive")
	}
	raw := strings.TrimSpace(cfg.BaseURL)
	if raw == "" || (jaas && strings.TrimRight(raw, "/") == DefaultBaseURL) {
		raw = DefaultBaseURL
		if jaas {
			raw = JaaSBaseURL
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("jitsi: base_url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("jitsi: base_url %q must be an absolute http or https URL", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("jitsi: base_url %q has no host", raw)
	}
	// Credentials in the URL would end up in every join link and card.
	if u.User != nil {
		return nil, errors.New("jitsi: base_url must not contain a user name or password")
	}
	// Room names are appended to the path; a query or fragment would end up
	// in front of them.
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("jitsi: base_url %q must not have a query or fragment", raw)
	}
	if (cfg.AppID == "") != (cfg.AppSecret == "") {
		return nil, errors.New("jitsi: app_id and app_secret must be set together (token auth) or both left empty (public Jitsi)")
	}
	secrets := make([][]byte, 0, len(cfg.WebhookSecrets))
	for i, s := range cfg.WebhookSecrets {
		if s == "" {
			return nil, fmt.Errorf("jitsi: webhook_secrets[%d] is empty", i)
		}
		secrets = append(secrets, []byte(s))
	}

	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	// JaaS rooms live under /<AppID>/; an api_url that already names the
	// tenant is kept as it is.
	if jaas && !strings.HasSuffix(u.Path, "/"+cfg.JaaSAppID) {
		u.Path += "/" + cfg.JaaSAppID
	}
	p := &Provider{
		base:     u.Scheme + "://" + u.Host + u.EscapedPath(),
		domain:   u.Host,
		appID:    cfg.AppID,
		audience: cfg.Audience,
		subject:  cfg.Subject,
		webhook:  secrets,
		now:      cfg.Now,
	}
	if cfg.AppSecret != "" {
		p.signer = hs256.NewSigner([]byte(cfg.AppSecret))
	}
	p.maxTTL = cfg.TokenTTL
	if cfg.JoinURLTemplate != "" {
		t, err := adapters.ParseJoinTemplate(cfg.JoinURLTemplate, joinData{})
		if err != nil {
			return nil, fmt.Errorf("jitsi: join_url_template: %w", err)
		}
		p.join = t
	}
	if p.audience == "" {
		p.audience = DefaultAudience
	}
	if p.subject == "" {
		// Prosody compares "sub" with its XMPP domain, which has no port.
		p.subject = u.Hostname()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if jaas {
		p.jaasApp = cfg.JaaSAppID
		p.jaasKid = jaasKid(cfg.JaaSAppID, cfg.JaaSKeyID)
		p.jaasKey = cfg.JaaSPrivateKey
		p.subject = cfg.JaaSAppID
	}
	return p, nil
}

// roomURL is the public address of a room. The name is path-escaped so an odd
// name (spaces, "?", "#", "/") cannot change the URL's structure.
func (p *Provider) roomURL(name string) string {
	return p.base + "/" + url.PathEscape(name)
}

// InstantRooms is true: a room is a name, made without a request, so a
// call gets it in the transaction that stores the call
// (calls.InstantRoomProvider).
func (p *Provider) InstantRooms() bool { return true }

// CreateRoom picks a fresh, unguessable room name for the call; Jitsi creates
// the room itself when the first person joins. It is not idempotent on
// req.CallID (see the package documentation): the service stores the room it
// gets the first time.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if err := ctx.Err(); err != nil {
		return calls.Room{}, fmt.Errorf("jitsi: create room: %w", err)
	}
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: jitsi: a room needs a call id", calls.ErrInvalidInput)
	}
	name := req.CallID + "-" + calls.RandomString(roomSuffixLen)
	if req.Name != "" {
		// The chat's room strategy names a persistent room (per channel
		// or per person): Jitsi rooms exist by name, so this is reuse.
		name = req.Name
	}
	return calls.Room{Name: name, URL: p.roomURL(name)}, nil
}

// EndRoom does nothing: Jitsi has no API to close a room. The call still ends
// in callgate; people in the room stay until they leave, and the room
// disappears with the last of them.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	return nil
}
