// Package streamvideo puts calls on Stream Video (getstream.io).
//
// Choices and why:
//
//   - Server requests authenticate as Stream's server SDKs do: an HS256 JWT
//     {"server": true} signed with the API secret, sent raw in
//     Authorization with "stream-auth-type: jwt", and ?api_key= on every
//     URL. The token has no expiry (Stream's SDKs mint it the same way), so
//     it is minted once.
//   - The room is the Stream call {call_type}:{call id}, made with
//     get-or-create (POST /api/v2/video/call/{type}/{id}), which returns the
//     existing call for an id that exists: CreateRoom is idempotent by
//     Stream's own semantics. The creator is a system user (created_by_id,
//     default "callgate"), upserted once before the first call because
//     Stream refers to users that must exist.
//   - A join credential is a call token: the user token claims Stream's SDKs
//     mint ({user_id, iat, exp}) plus call_cids [the call] and role, as
//     generateCallToken does, so the person gets their role in this call
//     without a members request at click time. Roles: owner and panelist →
//     "admin" (end call, mute others, record), listener → "user", everyone
//     else → "call_member". In the "default" call type "user" may still
//     publish; use a call type whose "user" role lacks send-audio/send-video
//     (e.g. "livestream") when listeners must not speak.
//   - EndRoom is mark_ended (POST …/mark_ended); 404 means there is nothing
//     to end. RoomStatus reads the call: ended_at set is a confirmed "gone";
//     its session's participants are the roster.
package streamvideo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// DefaultAPIURL is Stream's video API edge.
const DefaultAPIURL = "https://video.stream-io-api.com"

// clockSkew back-dates iat, as Stream's SDKs do (one second), a little
// more so a Stream edge whose clock runs behind accepts a fresh token.
const clockSkew = 5 * time.Second

// Config configures a Stream Video provider.
type Config struct {
	APIKey string
	// Secrets are the API secret and, while rotating, the previous one;
	// the first signs, all verify webhooks.
	Secrets         []string
	CallType        string
	AudioCallType   string
	CreatedByID     string
	APIURL          string
	TokenTTL        time.Duration
	JoinURLTemplate string
	Now             func() time.Time
	Logger          *slog.Logger
	HTTP            httpx.Options
}

// Provider is a calls.Provider for Stream Video.
type Provider struct {
	apiKey      string
	secret      []byte
	signer      *hs256.Signer // signs call tokens with secret
	webhook     [][]byte
	callType    string
	audioType   string
	createdBy   string
	apiURL      string
	ttl         time.Duration
	join        *template.Template
	now         func() time.Time
	http        *retryablehttp.Client
	serverToken string

	mu          sync.Mutex
	creatorDone bool
}

// New validates the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.APIKey == "" || len(cfg.Secrets) == 0 || cfg.Secrets[0] == "" {
		return nil, errors.New("streamvideo: api_key and api_secret are required")
	}
	p := &Provider{
		apiKey: cfg.APIKey, secret: []byte(cfg.Secrets[0]), signer: hs256.NewSigner([]byte(cfg.Secrets[0])), callType: cfg.CallType, audioType: cfg.AudioCallType,
		createdBy: cfg.CreatedByID, ttl: cfg.TokenTTL, now: cfg.Now,
	}
	for i, s := range cfg.Secrets {
		if s == "" {
			return nil, fmt.Errorf("streamvideo: secret %d is empty", i)
		}
		p.webhook = append(p.webhook, []byte(s))
	}
	if p.callType == "" {
		p.callType = "default"
	}
	if p.audioType == "" {
		p.audioType = p.callType
	}
	if p.createdBy == "" {
		p.createdBy = "callgate"
	}
	raw := cfg.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("streamvideo: api_url must be an absolute http(s) URL without credentials, query or fragment")
	}
	p.apiURL = strings.TrimRight(raw, "/")
	if cfg.JoinURLTemplate != "" {
		if p.join, err = template.New("join").Option("missingkey=error").Parse(cfg.JoinURLTemplate); err != nil {
			return nil, fmt.Errorf("streamvideo: join_url_template: %w", err)
		}
	}
	if p.now == nil {
		p.now = time.Now
	}
	// {"server": true} with no iat or exp, as the SDKs' JWTServerToken.
	p.serverToken, err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true}).SignedString(p.secret)
	if err != nil {
		return nil, fmt.Errorf("streamvideo: server token: %w", err)
	}
	if cfg.HTTP.Logger == nil {
		cfg.HTTP.Logger = cfg.Logger
	}
	p.http = httpx.New(cfg.HTTP)
	return p, nil
}

// call sends one server request.
func (p *Provider) call(ctx context.Context, method, path string, in any, what string) ([]byte, error) {
	var body any
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("streamvideo: %s: %w", what, err)
		}
		body = raw
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, p.apiURL+path+"?api_key="+url.QueryEscape(p.apiKey), body)
	if err != nil {
		return nil, fmt.Errorf("streamvideo: %s: %w", what, err)
	}
	req.Header.Set("Authorization", p.serverToken)
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	out, _, err := httpx.Do(p.http, req, what)
	return out, err
}

// status is the HTTP status of a permanent refusal from httpx.Do, or 0.
func status(err error) int { return httpx.Status(err) }

func callPath(callType, id string) string {
	return "/api/v2/video/call/" + url.PathEscape(callType) + "/" + url.PathEscape(id)
}

// ensureCreator upserts the system user calls are created by, once.
func (p *Provider) ensureCreator(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.creatorDone {
		return nil
	}
	body := map[string]any{"users": map[string]any{p.createdBy: map[string]any{"id": p.createdBy, "name": "callgate"}}}
	if _, err := p.call(ctx, http.MethodPost, "/api/v2/users", body, "stream upsert call creator"); err != nil {
		return err
	}
	p.creatorDone = true
	return nil
}

type callResponse struct {
	Call struct {
		CID     string     `json:"cid"`
		ID      string     `json:"id"`
		Type    string     `json:"type"`
		EndedAt *time.Time `json:"ended_at"`
		Session *struct {
			EndedAt      *time.Time `json:"ended_at"`
			Participants []struct {
				JoinedAt time.Time `json:"joined_at"`
				User     struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"user"`
			} `json:"participants"`
		} `json:"session"`
	} `json:"call"`
}

// CreateRoom gets or creates the Stream call for the call id.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: streamvideo: a room needs a call id", calls.ErrInvalidInput)
	}
	if err := p.ensureCreator(ctx); err != nil {
		return calls.Room{}, err
	}
	callType := p.callType
	if req.Type == calls.TypeAudio {
		callType = p.audioType
	}
	data := map[string]any{
		"created_by_id": p.createdBy,
		"custom":        map[string]any{"callgate_id": req.CallID},
	}
	if req.MaxDuration > 0 {
		data["settings_override"] = map[string]any{"limits": map[string]any{"max_duration_seconds": int(req.MaxDuration / time.Second)}}
	}
	body := map[string]any{"video": req.Type != calls.TypeAudio, "data": data}
	// A chat's room strategy names the call: get-or-create makes it the
	// persistent room of a conversation or a person.
	id := req.RoomName()
	out, err := p.call(ctx, http.MethodPost, callPath(callType, id), body, "stream get-or-create call")
	if err != nil {
		return calls.Room{}, err
	}
	var res callResponse
	if err := json.Unmarshal(out, &res); err != nil || res.Call.ID == "" {
		return calls.Room{}, calls.Permanentf("stream get-or-create call: the answer holds no call")
	}
	cid := res.Call.CID
	if cid == "" {
		cid = callType + ":" + res.Call.ID
	}
	return calls.Room{Name: res.Call.ID, ProviderID: cid, Data: map[string]string{"call_type": callType}}, nil
}

func (p *Provider) roomType(room calls.Room) string {
	if t := room.Data["call_type"]; t != "" {
		return t
	}
	if t, _, ok := strings.Cut(room.ProviderID, ":"); ok && t != "" {
		return t
	}
	return p.callType
}

// role maps a callgate role onto Stream's built-in call roles.
func role(r calls.Role) string {
	switch {
	case r.IsModerator():
		return "admin"
	case !r.CanPublish():
		return "user"
	}
	return "call_member"
}

// Credential mints the person's call token.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("streamvideo: credential: %w", err)
	}
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: streamvideo: the room has no call id", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: streamvideo: a token needs a user id", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: streamvideo: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	expires := issued.Add(adapters.TokenTTL(req.TTL, p.ttl))
	callType := p.roomType(room)
	callRole := role(req.Role)
	token := p.userToken(req.UserID, callType+":"+room.Name, callRole, issued, expires)
	cred := calls.Credential{
		Token: token, ExpiresAt: expires,
		Fields: map[string]any{"api_key": p.apiKey, "call_type": callType, "call_id": room.Name, "user_id": req.UserID, "role": callRole},
	}
	if p.join != nil {
		var b strings.Builder
		data := map[string]any{"Room": room.Name, "Token": token, "UID": "", "Identity": req.UserID, "URL": room.URL, "APIKey": p.apiKey, "CallType": callType}
		if err := p.join.Execute(&b, data); err != nil {
			return calls.Credential{}, fmt.Errorf("streamvideo: join_url_template: %w", err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// userToken is generateCallToken's JWT: {user_id, iat, exp, call_cids, role}.
func (p *Provider) userToken(userID, cid, role string, issued, expires time.Time) string {
	claims := hs256.Buffer()
	*claims = appendUserClaims(*claims, userID, cid, role, issued.Add(-clockSkew).Unix(), expires.Unix())
	return p.signer.Sign(hs256.Header, claims)
}

// appendUserClaims writes a call token's claims as json.Marshal writes the
// jwt.MapClaims golang-jwt would sign (keys sorted, HTML escaped), without
// the reflection that cost several HMACs; TestUserClaimsMatchEncodingJSON
// and FuzzUserClaims hold it to that.
func appendUserClaims(b []byte, userID, cid, role string, iat, exp int64) []byte {
	b = append(b, `{"call_cids":[`...)
	b = hs256.AppendString(b, cid, true)
	b = append(b, `],"exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"role":`...)
	b = hs256.AppendString(b, role, true)
	b = append(b, `,"user_id":`...)
	b = hs256.AppendString(b, userID, true)
	return append(b, '}')
}

// EndRoom marks the call ended, which disconnects everyone.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	if room.Name == "" {
		return nil
	}
	_, err := p.call(ctx, http.MethodPost, callPath(p.roomType(room), room.Name)+"/mark_ended", nil, "stream end call")
	if status(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// RoomStatus reads the call: ended is gone; its session is the roster.
func (p *Provider) RoomStatus(ctx context.Context, room calls.Room) (calls.RoomStatus, error) {
	if room.Name == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: streamvideo: the room has no call id", calls.ErrInvalidInput)
	}
	out, err := p.call(ctx, http.MethodGet, callPath(p.roomType(room), room.Name), nil, "stream get call")
	if err != nil {
		return calls.RoomStatus{}, err
	}
	var res callResponse
	if err := json.Unmarshal(out, &res); err != nil || res.Call.ID == "" {
		return calls.RoomStatus{}, calls.Permanentf("stream get call: the answer holds no call")
	}
	if res.Call.EndedAt != nil && !res.Call.EndedAt.IsZero() {
		return calls.RoomStatus{Gone: true}, nil
	}
	st := calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}
	if s := res.Call.Session; s != nil && s.EndedAt == nil {
		for _, pt := range s.Participants {
			st.Participants = append(st.Participants, calls.Participant{Identity: pt.User.ID, Name: pt.User.Name, JoinedAt: pt.JoinedAt})
		}
	}
	return st, nil
}

// StreamCall is the call in Stream's retired call shape.
func (p *Provider) StreamCall(room calls.Room) map[string]any {
	return map[string]any{"call_type": p.roomType(room), "call_id": room.Name, "cid": p.roomType(room) + ":" + room.Name}
}
