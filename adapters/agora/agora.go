// Package agora puts calls on Agora RTC (video/voice calling, interactive
// live streaming): join tokens are AccessToken2 ("007…") minted here, and
// channel status arrives through Agora's Notification Callback Service (NCS).
//
// Choices and why:
//
//   - Agora has no API to create a channel: a channel exists while someone is
//     in it, and a token decides who may join it. CreateRoom therefore only
//     names the channel, and the name is the call id. Call ids are normalised
//     to [a-z0-9_-], all of which Agora allows in channel names (letters,
//     digits, space and !#$%&()+-:;<=.>?@[]^_{}|~,), but Agora wants names
//     shorter than 64 bytes while a call id may have 64 characters: such an id
//     becomes its first 47 characters, "-" and 15 hex digits of its SHA-256
//     (63 bytes). The same id always gives the same name, so CreateRoom is
//     idempotent without asking anyone. The name need not be secret: with an
//     App Certificate enabled, Agora admits only holders of a token signed for
//     that channel.
//   - EndRoom is a no-op. Agora can kick users through its RESTful "banning
//     user privileges" (kicking-rule) API, but that API authenticates with a
//     Customer ID and Customer Secret, a credential of its own that this kind
//     does not take; it is out of scope. The call still ends in callgate, and
//     tokens expire after token_ttl.
//   - A person's numeric uid is derived, not allocated: the first four bytes
//     (big-endian) of SHA-256("callgate-agora-uid" 0x00 call-id 0x00 user-id)
//     that are not all zero. It is a uint32 other than 0 (0 would mean "any
//     uid"), the same every time the same person joins the same call (so a
//     rejoin replaces the old connection rather than adding a ghost), and
//     unrelated across calls. Webhooks report this uid as the participant's
//     identity. Two people in one call share a uid with probability about
//     n²/2³³ (one in a million for 90 people); Agora would then let the later
//     one replace the earlier one.
//   - Roles: every role that may speak gets the RTC publisher privileges (join,
//     publish audio, video and data); a listener gets join only. Agora enforces
//     the publish privileges once co-host authentication is enabled for the
//     project; without it a subscriber token still lets the client publish,
//     and the listener's restriction is only a client hint.
//   - With rtm, the same token also carries the RTM login privilege for the
//     person's user id (as Agora's RtcTokenBuilder2.buildTokenWithRtm2 does,
//     with distinct RTC uid and RTM user id); it is returned as rtm_token too.
//   - Expiry: the token and every privilege expire token_ttl after issue,
//     written as relative seconds as AccessToken2 requires.
//   - NCS webhooks are verified with Agora-Signature-V2 (hex HMAC-SHA256 of
//     the raw body) and, for apps whose callbacks only carry the older header,
//     Agora-Signature (hex HMAC-SHA1); see webhook.go.
package agora

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"text/template"
	"time"

	"github.com/callgate/callgate/calls"
)

// DefaultAPIURL is Agora's REST API. The kind makes no REST calls today (see
// the package documentation); the setting exists so a future one, and a
// proxy, has a place.
const DefaultAPIURL = "https://api.agora.io"

// DefaultTokenTTL is a token's lifetime when neither the block nor the
// request names one.
const DefaultTokenTTL = time.Hour

// MaxTokenTTL is the longest lifetime Agora honours for a privilege.
const MaxTokenTTL = 24 * time.Hour

// maxChannelLen is the longest channel name Agora accepts ("less than 64
// bytes").
const maxChannelLen = 63

// uidDomain separates the uid hash from any other use of SHA-256 on ids.
const uidDomain = "callgate-agora-uid"

// Config configures an Agora provider.
type Config struct {
	// AppID and AppCertificate are the project's (32 hex characters each).
	AppID          string
	AppCertificate string
	// RTM adds the RTM login privilege for the person's user id to tokens.
	RTM bool
	// TokenTTL is the token lifetime; 0 uses the request's TTL, and that
	// being 0 too, DefaultTokenTTL.
	TokenTTL time.Duration
	// JoinURLTemplate, when set, makes a join link from .Room .Token .UID
	// .Identity .URL .AppID (text/template).
	JoinURLTemplate string
	// NCSSecrets verify NCS webhooks; two may be valid during a rotation.
	NCSSecrets []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Provider is a calls.Provider for Agora. It does not take webhooks; the
// value build returns when an NCS secret is configured does.
type Provider struct {
	appID   string
	cert    string
	rtm     bool
	ttl     time.Duration
	joinURL *template.Template
	ncs     [][]byte
	now     func() time.Time
}

// New checks the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	if !isHex32(cfg.AppID) {
		return nil, errors.New("agora: app_id must be 32 hexadecimal characters")
	}
	if !isHex32(cfg.AppCertificate) {
		return nil, errors.New("agora: app_certificate must be 32 hexadecimal characters")
	}
	if cfg.TokenTTL < 0 || cfg.TokenTTL > MaxTokenTTL {
		return nil, fmt.Errorf("agora: token_ttl %s is not between 0 and %s", cfg.TokenTTL, MaxTokenTTL)
	}
	p := &Provider{appID: cfg.AppID, cert: cfg.AppCertificate, rtm: cfg.RTM, ttl: cfg.TokenTTL, now: cfg.Now}
	if cfg.JoinURLTemplate != "" {
		t, err := template.New("join_url_template").Option("missingkey=error").Parse(cfg.JoinURLTemplate)
		if err != nil {
			return nil, fmt.Errorf("agora: join_url_template: %w", err)
		}
		p.joinURL = t
	}
	for i, s := range cfg.NCSSecrets {
		if s == "" {
			return nil, fmt.Errorf("agora: ncs secret %d is empty", i)
		}
		p.ncs = append(p.ncs, []byte(s))
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// ChannelName is the Agora channel of a call: the call id, or for an id of
// 64 characters a 63-byte name derived from it (see the package
// documentation).
func ChannelName(callID string) string {
	if len(callID) <= maxChannelLen {
		return callID
	}
	sum := sha256.Sum256([]byte(callID))
	return callID[:47] + "-" + hex.EncodeToString(sum[:])[:15]
}

// UID is the numeric Agora uid of a user in a call: never 0, the same for
// the same (call, user). See the package documentation for the derivation.
func UID(callID, userID string) uint32 {
	h := sha256.New()
	h.Write([]byte(uidDomain))
	h.Write([]byte{0})
	h.Write([]byte(callID))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	sum := h.Sum(nil)
	for i := 0; i+4 <= len(sum); i += 4 {
		if v := binary.BigEndian.Uint32(sum[i:]); v != 0 {
			return v
		}
	}
	return 1 // all 32 bytes zero: not going to happen, but never 0
}

// InstantRooms is true: a room is a name, made without a request, so a
// call gets it in the transaction that stores the call
// (calls.InstantRoomProvider).
func (p *Provider) InstantRooms() bool { return true }

// CreateRoom names the call's channel; Agora creates channels as people
// join. Idempotent: the name is a function of the call id.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if err := ctx.Err(); err != nil {
		return calls.Room{}, fmt.Errorf("agora: create room: %w", err)
	}
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: agora: a channel needs a call id", calls.ErrInvalidInput)
	}
	if req.Name != "" {
		// A chat's room strategy: one persistent channel per conversation
		// or person (Agora channels exist by name).
		return calls.Room{Name: req.Name}, nil
	}
	return calls.Room{Name: ChannelName(req.CallID)}, nil
}

// EndRoom does nothing: kicking people needs Agora's RESTful API with a
// Customer ID and Secret, which this kind does not take. Tokens expire.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	return nil
}

// StreamCall is the call's provider object in Stream's call shape:
// {"agora": {"channel": …}}.
func (p *Provider) StreamCall(room calls.Room) map[string]any {
	return map[string]any{"channel": room.Name}
}

// joinLinkData is what join_url_template sees.
type joinLinkData struct {
	Room     string
	Token    string
	UID      uint32
	Identity string
	URL      string
	AppID    string
}

// Credential mints one person's AccessToken2 for the call's channel.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("agora: credential: %w", err)
	}
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: agora: the room has no channel name", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: agora: a token needs a user id", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: agora: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	ttl := p.ttl
	if ttl == 0 {
		ttl = req.TTL
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	ttl = min(ttl, MaxTokenTTL)
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	if issued.Unix() <= 0 || issued.Unix() > math.MaxUint32 {
		return calls.Credential{}, fmt.Errorf("%w: agora: issue time %s does not fit a token", calls.ErrInvalidInput, issued.UTC().Format(time.RFC3339))
	}
	expire := uint32(ttl / time.Second)
	if expire == 0 {
		expire = 1
	}

	// The uid is keyed by the call; a request without one falls back to the
	// channel, which names the call as well.
	callID := req.CallID
	if callID == "" {
		callID = room.Name
	}
	uid := UID(callID, req.UserID)

	salt, err := newSalt()
	if err != nil {
		return calls.Credential{}, fmt.Errorf("%w: %w", calls.ErrProvider, err)
	}
	tok := accessToken{
		AppID: p.appID, Certificate: p.cert,
		IssueTs: uint32(issued.Unix()), Expire: expire, Salt: salt,
		Services: []tokenService{rtcService(room.Name, uid, req.Role.CanPublish(), expire)},
	}
	if p.rtm {
		tok.Services = append(tok.Services, rtmService(req.UserID, expire))
	}
	token, err := tok.build()
	if err != nil {
		return calls.Credential{}, fmt.Errorf("%w: %w", calls.ErrInvalidInput, err)
	}

	cred := calls.Credential{
		Token:     token,
		ExpiresAt: time.Unix(int64(tok.IssueTs)+int64(expire), 0).UTC(),
		Fields: map[string]any{
			"agora_app_id": p.appID,
			"agora_uid":    uid,
			"channel":      room.Name,
		},
	}
	if p.rtm {
		cred.Fields["rtm_token"] = token
		cred.Fields["rtm_user_id"] = req.UserID
	}
	if p.joinURL != nil {
		var b bytes.Buffer
		data := joinLinkData{Room: room.Name, Token: token, UID: uid, Identity: req.UserID, URL: room.URL, AppID: p.appID}
		if err := p.joinURL.Execute(&b, data); err != nil {
			// The error names the template's field, never a value.
			return calls.Credential{}, fmt.Errorf("%w: agora: join_url_template: %w", calls.ErrProvider, err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// ResolveIdentity maps the numeric uid Agora's webhooks report back to the
// call member it was minted for (calls.IdentityResolver): uids are derived
// from (call id, user id), so each member's uid is recomputed and compared.
// Guests, who are not members, keep their uid.
func (p *Provider) ResolveIdentity(c *calls.Call, identity string) (string, bool) {
	for _, m := range c.Members {
		if strconv.FormatUint(uint64(UID(c.ID, m.UserID)), 10) == identity {
			return m.UserID, true
		}
	}
	return "", false
}
