package livekit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"

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
	tok, exp, err := p.mint(room.Name, req)
	if err != nil {
		return calls.Credential{}, err
	}
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

// participantMetadata is the token's metadata, which LiveKit hands to
// every client as the participant's metadata.
type participantMetadata struct {
	Role string `json:"role"`
}

// mint signs the token with protocol's AccessToken (the same code the
// LiveKit server verifies with) and returns it with its expiry.
func (p *Provider) mint(room string, req calls.CredentialRequest) (string, time.Time, error) {
	role := req.Role
	if role == "" {
		role = calls.RoleParticipant
	}
	grant := &auth.VideoGrant{RoomJoin: true, Room: room, RoomAdmin: role.IsModerator()}
	grant.SetCanPublish(role.CanPublish())
	grant.SetCanSubscribe(true)
	grant.SetCanPublishData(true)
	meta, _ := json.Marshal(participantMetadata{Role: string(role)})
	at := auth.NewAccessToken(p.key, p.secret).
		SetIdentity(req.UserID).
		SetName(req.Name).
		SetMetadata(string(meta)).
		SetVideoGrant(grant).
		SetValidFor(p.ttlFor(req))
	tok, err := at.ToJWT()
	if err != nil {
		// The library's errors never carry the secret.
		return "", time.Time{}, fmt.Errorf("%w: livekit: sign token: %w", calls.ErrProvider, err)
	}
	exp, err := expiry(tok)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: livekit: read the minted token: %w", calls.ErrProvider, err)
	}
	return tok, exp, nil
}

// expiry reads exp from a token just minted (AccessToken stamps it from
// its own clock).
func expiry(tok string) (time.Time, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return time.Time{}, err
	}
	return time.Unix(c.Exp, 0).UTC(), nil
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
