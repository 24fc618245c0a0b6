package jitsi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// clockSkew back-dates a token's nbf so a Jitsi server whose clock runs a
// little behind ours still accepts a token minted just now.
const clockSkew = 10 * time.Second

// Credential returns the join link for one person. With token auth it carries
// a freshly minted JWT as ?jwt=; per-person options follow in the fragment.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("jitsi: credential: %w", err)
	}
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: jitsi: the room has no name", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: jitsi: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	if p.maxTTL > 0 && ttl > p.maxTTL {
		ttl = p.maxTTL
	}
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	expires := issued.Add(ttl)

	cred := calls.Credential{
		ExpiresAt: expires,
		Fields:    map[string]any{"room": room.Name, "domain": p.domain},
	}
	link := p.roomURL(room.Name)

	if p.jaasKey != nil {
		cred.Fields["app_id"] = p.jaasApp
		// The IFrame API's roomName for JaaS is "<AppID>/<room>".
		cred.Fields["room_name"] = p.jaasApp + "/" + room.Name
	}
	if p.tokenAuth() {
		mint := p.mint
		if p.jaasKey != nil {
			mint = p.mintJaaS
		}
		token, err := mint(room.Name, req, issued, expires)
		if err != nil {
			return calls.Credential{}, err
		}
		cred.Token = token
		cred.Fields["jwt"] = token
		// A JWT is base64url segments joined by dots: nothing to escape, but
		// escaping keeps the link valid whatever the library emits.
		link += "?jwt=" + url.QueryEscape(token)
	}

	var frag []string
	if req.Type == calls.TypeAudio {
		frag = append(frag, "config.startWithVideoMuted=true")
	}
	if !req.Role.CanPublish() {
		frag = append(frag, "config.startWithAudioMuted=true")
	}
	// With a token the name comes from context.user.name; on public Jitsi
	// the fragment is the only way to pre-fill it.
	if !p.tokenAuth() && req.Name != "" {
		frag = append(frag, "userInfo.displayName="+fragmentValue(req.Name))
	}
	if len(frag) > 0 {
		link += "#" + strings.Join(frag, "&")
	}
	cred.JoinURL = link
	if p.join != nil {
		var b strings.Builder
		data := joinData{Room: room.Name, Token: cred.Token, UID: req.UserID, Identity: req.UserID, URL: link}
		if err := p.join.Execute(&b, data); err != nil {
			return calls.Credential{}, fmt.Errorf("jitsi: join_url_template: %w", err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// tokenAuth reports whether join links carry a token (self-hosted token
// auth or JaaS).
func (p *Provider) tokenAuth() bool { return p.appID != "" || p.jaasKey != nil }

// mint signs the HS256 token Jitsi's token plugin verifies. "aud" is a
// plain string as in Jitsi's token examples (jwt.RegisteredClaims would
// write an array).
func (p *Provider) mint(room string, req calls.CredentialRequest, issued, expires time.Time) (string, error) {
	claims := hs256.Buffer()
	*claims = p.appendClaims(*claims, room, req, issued, expires)
	return p.signer.Sign(hs256.Header, claims), nil
}

// appendClaims writes the token's claims as json.Marshal writes them for
// the jwt.MapClaims golang-jwt would sign (keys sorted at every level,
// HTML escaped), without the reflection over nested maps that cost over
// ten HMACs; TestClaimsMatchEncodingJSON and FuzzClaims hold it to that.
func (p *Provider) appendClaims(b []byte, room string, req calls.CredentialRequest, issued, expires time.Time) []byte {
	b = append(b, `{"aud":`...)
	b = hs256.AppendString(b, p.audience, true)
	b = append(b, `,"context":{"user":{"id":`...)
	b = hs256.AppendString(b, req.UserID, true)
	b = append(b, `,"moderator":`...)
	b = strconv.AppendBool(b, req.Role.IsModerator())
	b = append(b, `,"name":`...)
	b = hs256.AppendString(b, req.Name, true)
	b = append(b, `}},"exp":`...)
	b = strconv.AppendInt(b, expires.Unix(), 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, issued.Unix(), 10)
	b = append(b, `,"iss":`...)
	b = hs256.AppendString(b, p.appID, true)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, issued.Add(-clockSkew).Unix(), 10)
	b = append(b, `,"room":`...)
	b = hs256.AppendString(b, room, true)
	b = append(b, `,"sub":`...)
	b = hs256.AppendString(b, p.subject, true)
	return append(b, '}')
}

// fragmentValue encodes s for Jitsi's URL-fragment config syntax: a JSON
// string (jitsi-meet JSON-parses every value, so a bare name would not
// parse), percent-encoded so "&", "=" and "#" cannot end the value early.
// Spaces become %20, not "+", because the client decodes with
// decodeURIComponent.
func fragmentValue(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		// Marshalling a string cannot fail; invalid UTF-8 is replaced.
		b = []byte(`""`)
	}
	j := string(b)
	// jitsi-meet replaces typographic quotes with ASCII ones before it
	// JSON-parses a value; left as they are, a name like “Bob” would end its
	// JSON string early. As \u escapes they come through unchanged.
	j = strings.NewReplacer(
		"\u2018", `\u2018`, "\u2019", `\u2019`,
		"\u201c", `\u201c`, "\u201d", `\u201d`,
	).Replace(j)
	return strings.ReplaceAll(url.QueryEscape(j), "+", "%20")
}
