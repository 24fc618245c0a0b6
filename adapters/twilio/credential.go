package twilio

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// tokenHeader is the access token's JOSE header, in the order the twilio
// Node SDK (jsonwebtoken) writes it.
const tokenHeader = `{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}`

var tokenHeaderB64 = base64.RawURLEncoding.EncodeToString([]byte(tokenHeader))

// accessClaims is the access token payload, fields in the twilio Node
// SDK's order (jti, grants, iat, exp, iss, sub), so that for the same
// inputs and time the token is the SDK's byte for byte.
type accessClaims struct {
	JTI    string `json:"jti"`
	Grants grants `json:"grants"`
	IAT    int64  `json:"iat"`
	EXP    int64  `json:"exp"`
	ISS    string `json:"iss"`
	SUB    string `json:"sub"`
}

type grants struct {
	Identity string     `json:"identity"`
	Video    videoGrant `json:"video"`
}

type videoGrant struct {
	Room string `json:"room,omitempty"`
}

// Credential mints an access token for one person: identity = the user id
// (status callbacks carry it back as ParticipantIdentity), a video grant
// for the room. Twilio tokens carry no role or display name: every role
// gets the same grant, and Fields.can_publish tells the client whether the
// person may publish (false for listeners; enforced by the client).
func (p *Provider) Credential(ctx context.Context, rm calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("twilio: credential: %w", err)
	}
	if rm.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: twilio: the room has no name", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: twilio: an access token needs an identity", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: twilio: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = p.ttl
	}
	ttl = min(ttl, MaxTokenTTL)
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	token, expires := p.mint(rm.Name, req.UserID, issued, ttl)
	cred := calls.Credential{
		Token:     token,
		ExpiresAt: expires,
		Fields: map[string]any{
			"room":        rm.Name,
			"identity":    req.UserID,
			"can_publish": req.Role.CanPublish(),
		},
	}
	if p.joinTmpl != nil {
		// The keys are joinSample's.
		var b strings.Builder
		err := p.joinTmpl.Execute(&b, map[string]string{
			"Room": rm.Name, "Token": token, "UID": req.UserID, "Identity": req.UserID, "URL": rm.URL,
		})
		if err != nil {
			return calls.Credential{}, fmt.Errorf("twilio: join_url_template: %w", err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// mint signs an access token valid from issued (whole seconds, as Twilio
// reads them) for ttl.
func (p *Provider) mint(roomName, identity string, issued time.Time, ttl time.Duration) (string, time.Time) {
	iat := issued.Unix()
	exp := iat + int64(ttl/time.Second)
	claims := hs256.Buffer()
	*claims = appendClaims(*claims, &accessClaims{
		JTI:    p.keySID + "-" + strconv.FormatInt(iat, 10),
		Grants: grants{Identity: identity, Video: videoGrant{Room: roomName}},
		IAT:    iat, EXP: exp, ISS: p.keySID, SUB: p.accountSID,
	})
	return p.signer.Sign(tokenHeaderB64, claims), time.Unix(exp, 0).UTC()
}

// appendClaims writes c as a json.Encoder with SetEscapeHTML(false) does
// (JSON.stringify leaves '<', '>' and '&' alone), without the reflection
// that cost more than the signature; TestClaimsMatchEncodingJSON and
// FuzzClaims hold it to that.
func appendClaims(b []byte, c *accessClaims) []byte {
	b = append(b, `{"jti":`...)
	b = hs256.AppendString(b, c.JTI, false)
	b = append(b, `,"grants":{"identity":`...)
	b = hs256.AppendString(b, c.Grants.Identity, false)
	b = append(b, `,"video":{`...)
	if c.Grants.Video.Room != "" {
		b = append(b, `"room":`...)
		b = hs256.AppendString(b, c.Grants.Video.Room, false)
	}
	b = append(b, `}},"iat":`...)
	b = strconv.AppendInt(b, c.IAT, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.EXP, 10)
	b = append(b, `,"iss":`...)
	b = hs256.AppendString(b, c.ISS, false)
	b = append(b, `,"sub":`...)
	b = hs256.AppendString(b, c.SUB, false)
	return append(b, '}')
}

// joinSample is the data join_url_template is executed with (every key),
// for checking a template at start-up.
var joinSample = map[string]string{"Room": "", "Token": "", "UID": "", "Identity": "", "URL": ""}
