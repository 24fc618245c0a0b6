package livekit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// joinData is what join_url_template sees.
type joinData struct {
	Room, Token, UID, Identity, URL string
}

// Credential mints a LiveKit access token for one person and role: HS256
// with the API secret, iss = API key, sub = identity = the user id, the
// display name, and a video grant for this room only. Listeners cannot
// publish media; owners and panelists are room admins (they can mute and
// remove others). Everyone can subscribe and send data messages (chat).
// The role is in the participant metadata for clients to show.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("livekit: credential: %w", err)
	}
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: livekit: the room has no name", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: livekit: a join token needs a user id", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: livekit: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	tok, exp := p.mint(room.Name, req)
	cred := calls.Credential{
		Token:     tok,
		ExpiresAt: exp,
		Fields:    map[string]any{"url": p.wsURL, "room": room.Name, "identity": req.UserID},
	}
	if p.e2ee {
		cred.Fields["e2ee_key"] = p.e2eeKey(room.Name)
	}
	if p.joinTmpl != nil {
		var b strings.Builder
		if err := p.joinTmpl.Execute(&b, joinData{Room: room.Name, Token: tok, UID: req.UserID, Identity: req.UserID, URL: p.wsURL}); err != nil {
			return calls.Credential{}, fmt.Errorf("%w: livekit: join_url_template: %w", calls.ErrProvider, err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// ttlFor is the token lifetime: token_ttl from the block, else the
// gateway's, else DefaultTokenTTL.
func (p *Provider) ttlFor(req calls.CredentialRequest) time.Duration {
	switch {
	case p.ttl > 0:
		return p.ttl
	case req.TTL > 0:
		return req.TTL
	}
	return DefaultTokenTTL
}

// mint signs the join token and returns it with its expiry. It writes
// exactly what protocol's AccessToken.ToJWT wrote for these grants (the
// same code the LiveKit server verifies with: golang-jwt HS256 over
// json.Marshal of RegisteredClaims and ClaimGrants), without the
// reflection that cost over ten HMACs; TestMintMatchesAccessToken holds it
// to that. The clock is the wall clock, as AccessToken's.
func (p *Provider) mint(room string, req calls.CredentialRequest) (string, time.Time) {
	return p.mintAt(room, req, time.Now())
}

func (p *Provider) mintAt(room string, req calls.CredentialRequest, now time.Time) (string, time.Time) {
	role := req.Role
	if role == "" {
		role = calls.RoleParticipant
	}
	exp := now.Add(p.ttlFor(req))
	claims := hs256.Buffer()
	*claims = appendClaims(*claims, p.key, room, req.UserID, req.Name, role, now.Unix(), exp.Unix())
	return p.signer.Sign(hs256.Header, claims), time.Unix(exp.Unix(), 0).UTC()
}

// appendClaims writes the claims in the order and form json.Marshal gives
// protocol's tokenClaims (jwt.RegisteredClaims then auth.ClaimGrants,
// empty fields omitted, HTML escaped): iss, sub, exp, nbf, iat, identity,
// name, video, metadata. The grant is callgate's: join this room only,
// publish unless a listener, subscribe and send data always, room admin
// for moderators. The metadata is {"role":…} as a JSON string, which
// LiveKit hands every client as the participant's metadata.
// TestClaimsMatchEncodingJSON and FuzzClaims hold it to json.Marshal.
func appendClaims(b []byte, key, room, identity, name string, role calls.Role, iat, exp int64) []byte {
	b = append(b, `{"iss":`...)
	b = hs256.AppendString(b, key, true)
	if identity != "" {
		b = append(b, `,"sub":`...)
		b = hs256.AppendString(b, identity, true)
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	if identity != "" {
		b = append(b, `,"identity":`...)
		b = hs256.AppendString(b, identity, true)
	}
	if name != "" {
		b = append(b, `,"name":`...)
		b = hs256.AppendString(b, name, true)
	}
	b = append(b, `,"video":{`...)
	if role.IsModerator() {
		b = append(b, `"roomAdmin":true,`...)
	}
	b = append(b, `"roomJoin":true`...)
	if room != "" {
		b = append(b, `,"room":`...)
		b = hs256.AppendString(b, room, true)
	}
	b = append(b, `,"canPublish":`...)
	b = strconv.AppendBool(b, role.CanPublish())
	b = append(b, `,"canSubscribe":true,"canPublishData":true},"metadata":`...)
	// The metadata is itself JSON ({"role":…}, HTML escaped as
	// json.Marshal writes it), carried as a string.
	var meta [64]byte
	m := append(meta[:0], `{"role":`...)
	m = hs256.AppendString(m, string(role), true)
	m = append(m, '}')
	b = hs256.AppendString(b, string(m), true)
	return append(b, '}')
}

// e2eeKey is the room's shared end-to-end encryption passphrase: the same
// for everyone in the call, derived from the API secret so nothing needs
// storing, and useless for recovering the secret. It changes when the
// secret is rotated, so rotate between calls.
func (p *Provider) e2eeKey(room string) string {
	mac := hmac.New(sha256.New, []byte(p.secret))
	mac.Write([]byte("callgate livekit e2ee\x00"))
	mac.Write([]byte(room))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
