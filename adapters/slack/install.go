package slack

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/callgate/callgate/calls"
)

// StateTTL is how long an install link's state is accepted.
const StateTTL = 10 * time.Minute

// AuthorizeURL is Slack's OAuth v2 consent page.
const AuthorizeURL = "https://slack.com/oauth/v2/authorize"

// installable tells whether the install flow is configured.
func (a *App) installable() bool {
	return a.clientID != "" && a.clientSec != "" && a.key != nil && a.installs != nil
}

// installURL is Slack's authorize URL for a fresh state.
func (a *App) installURL() (string, error) {
	state, err := a.newState()
	if err != nil {
		return "", err
	}
	q := url.Values{
		"client_id":    {a.clientID},
		"scope":        {strings.Join(a.scopes, ",")},
		"redirect_uri": {a.endpoint(PathOAuth)},
		"state":        {state},
	}
	return AuthorizeURL + "?" + q.Encode(), nil
}

// installPage answers GET install: a 302 to Slack's consent screen, with a
// small page holding the link for clients that do not follow redirects.
func (a *App) installPage(calls.WebhookRequest) (calls.ChatRequest, error) {
	if !a.installable() {
		return calls.ChatRequest{}, malformed("this Slack app is configured for one workspace (bot_token): there is nothing to install")
	}
	u, err := a.installURL()
	if err != nil {
		return calls.ChatRequest{}, err
	}
	e := html.EscapeString(u)
	body := page("Add callgate to Slack",
		`<meta http-equiv="refresh" content="0;url=`+e+`">`,
		`<p><a href="`+e+`">Add to Slack</a></p><p>Opening Slack… If nothing happens, follow the link.</p>`)
	return calls.ChatRequest{Reply: &calls.WebhookReply{
		Status: http.StatusFound, ContentType: "text/html; charset=utf-8", Body: body,
		Header: http.Header{"Location": {u}, "Cache-Control": {"no-store"}},
	}}, nil
}

// oauthCallback answers GET oauth, where Slack sends the browser back:
// the state must be ours and fresh, the code is exchanged for the bot
// token, and the token is stored sealed for the team.
func (a *App) oauthCallback(ctx context.Context, req calls.WebhookRequest) (calls.ChatRequest, error) {
	if !a.installable() {
		return calls.ChatRequest{}, malformed("this Slack app is configured for one workspace (bot_token): there is nothing to install")
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return calls.ChatRequest{}, malformed("unreadable URL")
	}
	q := u.Query()
	if err := a.checkState(q.Get("state")); err != nil {
		return calls.ChatRequest{}, err
	}
	if e := q.Get("error"); e != "" {
		return htmlReply(http.StatusOK, "Not installed", "<p>Slack did not install the app ("+html.EscapeString(truncate(e, 64))+").</p>"), nil
	}
	code := q.Get("code")
	if code == "" || len(code) > 512 {
		return calls.ChatRequest{}, malformed("the OAuth redirect has no code")
	}
	resp, err := slack.GetOAuthV2ResponseContext(ctx, a.api.StandardClient(), a.clientID, a.clientSec, code,
		a.endpoint(PathOAuth), slack.OAuthOptionAPIURL(a.apiURL))
	if err != nil {
		a.log.WarnContext(ctx, "slack oauth.v2.access failed", "err", a.apiError("oauth.v2.access", err))
		return htmlReply(http.StatusBadGateway, "Not installed", "<p>Slack did not accept the installation. Start again from the install link.</p>"), nil
	}
	team := resp.Team.ID
	if err := checkID("team.id", team); err != nil {
		return calls.ChatRequest{}, err
	}
	if !strings.HasPrefix(resp.AccessToken, "xoxb-") {
		return htmlReply(http.StatusBadGateway, "Not installed", "<p>Slack gave no bot token; check the app's bot scopes.</p>"), nil
	}
	sealed, err := a.seal(team, []byte(resp.AccessToken))
	if err != nil {
		return calls.ChatRequest{}, err
	}
	data := map[string]string{"team_name": truncate(resp.Team.Name, 255), "bot_user_id": resp.BotUserID, "app_id": resp.AppID, "scope": truncate(resp.Scope, 1000)}
	if resp.Enterprise.ID != "" {
		data["enterprise_id"] = resp.Enterprise.ID
	}
	if err := a.installs.PutInstallation(ctx, calls.Installation{
		Chat: a.name, Workspace: team, Secret: sealed, Data: data, UpdatedAt: a.now(),
	}); err != nil {
		return calls.ChatRequest{}, err
	}
	a.log.InfoContext(ctx, "slack workspace installed", "team", team)
	return htmlReply(http.StatusOK, "Installed", "<p>callgate is installed in <b>"+html.EscapeString(resp.Team.Name)+
		"</b>. Type <code>/call</code> in a channel to start a call.</p>"), nil
}

func htmlReply(status int, title, body string) calls.ChatRequest {
	return calls.ChatRequest{Reply: &calls.WebhookReply{Status: status, ContentType: "text/html; charset=utf-8", Body: page(title, "", body)}}
}

func page(title, head, body string) []byte {
	return []byte(`<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>` +
		html.EscapeString(title) + `</title>` + head + `</head><body><h1>` + html.EscapeString(title) + `</h1>` + body + `</body></html>`)
}

// subkey derives a key for one purpose from token_encryption_key.
func (a *App) subkey(purpose string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("callgate slack " + purpose))
	return m.Sum(nil)
}

// newState is base64url(expiry (8 bytes) | nonce (16)) "." base64url(MAC),
// the MAC keyed from token_encryption_key and bound to the chat's name.
func (a *App) newState() (string, error) {
	payload := make([]byte, 24)
	binary.BigEndian.PutUint64(payload, uint64(a.now().Add(StateTTL).Unix()))
	if _, err := rand.Read(payload[8:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(a.stateMAC(payload)), nil
}

func (a *App) stateMAC(payload []byte) []byte {
	m := hmac.New(sha256.New, a.subkey("oauth state"))
	m.Write([]byte(a.name))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

func (a *App) checkState(state string) error {
	p64, m64, ok := strings.Cut(state, ".")
	if !ok || len(state) > 200 {
		return unauthenticated("the OAuth state is missing or not ours")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || len(payload) != 24 || !hmac.Equal(sig, a.stateMAC(payload)) {
		return unauthenticated("the OAuth state is not ours")
	}
	if exp := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0); a.now().After(exp) {
		return unauthenticated("the OAuth state has expired: start again from the install link")
	}
	return nil
}

// seal encrypts a workspace's token with AES-256-GCM; the team id is the
// additional data, so a sealed token only opens for its own workspace.
// The result is nonce | ciphertext.
func (a *App) seal(team string, secret []byte) ([]byte, error) {
	gcm, err := a.gcm()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(secret)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, secret, a.aad(team)), nil
}

func (a *App) unseal(team string, sealed []byte) ([]byte, error) {
	gcm, err := a.gcm()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, errors.New("sealed token too short")
	}
	n := gcm.NonceSize()
	return gcm.Open(nil, sealed[:n], sealed[n:], a.aad(team))
}

func (a *App) aad(team string) []byte {
	return []byte("callgate slack token\x00" + a.name + "\x00" + team)
}

func (a *App) gcm() (cipher.AEAD, error) {
	if a.key == nil {
		return nil, errors.New("no token_encryption_key")
	}
	block, err := aes.NewCipher(a.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// token is the bot token to act in a workspace with: bot_token, or the
// workspace's installation, unsealed.
func (a *App) token(ctx context.Context, team string) (string, error) {
	if a.botToken != "" {
		return a.botToken, nil
	}
	if a.installs == nil || team == "" {
		return "", calls.Permanentf("no Slack token for workspace %q: set bot_token or install the app", team)
	}
	in, err := a.installs.GetInstallation(ctx, a.name, team)
	if errors.Is(err, calls.ErrNotFound) {
		return "", calls.Permanentf("the app is not installed in Slack workspace %s: install it at %s", team, a.endpoint(PathInstall))
	}
	if err != nil {
		return "", calls.Temporary(fmt.Errorf("reading the Slack installation of %s: %w", team, err), 0)
	}
	tok, err := a.unseal(team, in.Secret)
	if err != nil {
		return "", calls.Permanentf("the stored token of Slack workspace %s cannot be opened (token_encryption_key changed?): install the app again", team)
	}
	return string(tok), nil
}
