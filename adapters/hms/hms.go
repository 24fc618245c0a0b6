// Package hms puts calls on 100ms (kind "hms").
//
// Choices and why:
//
//   - Rooms: CreateRoom sends POST /v2/rooms with the call id as the room
//     name. 100ms answers a create for an existing name with that room
//     (updating it with the body), so creating twice never makes two rooms:
//     that is the idempotency on the call id. Room.Name is the name as
//     100ms returns it (webhooks carry it as room_name), Room.ProviderID its
//     room id (join tokens and the active-room API need it).
//   - Join tokens are minted locally, exactly as 100ms's server SDK does:
//     HS256 with the app secret, {access_key, type:"app", version:2,
//     room_id, role, user_id, iat, nbf, exp, jti}, iat back-dated 10 s for
//     clock skew. The role comes from the block's roles map (DefaultRoles):
//     owner and panelist are "host", listener is a receive-only "viewer".
//   - The management token (type "management") authorises REST calls; it
//     is minted for 24 h and cached until 5 minutes before it expires, and
//     dropped at once when 100ms answers 401/403 so the next call re-mints.
//   - EndRoom: POST /v2/active-rooms/{id}/end-room {reason, lock:true}.
//     lock disables the room, so nobody rejoins a call that callgate has
//     ended (links and tokens outlive the call). A 404 (no active session:
//     nobody is in the room, or it ended already) is success.
//   - RoomStatus: GET /v2/rooms/{id} first. enabled:false is a confirmed
//     "gone" (ended with lock, or disabled by an admin: nobody can join).
//     An enabled room is then asked for its peers (GET
//     /v2/active-rooms/{id}/peers): 200 is the whole roster. A 404 there
//     means "no active session", which 100ms also says before the first
//     join and after a session ended without lock, and which a flaky API or
//     a wrong api_url could answer too: it is reported as an error (do not
//     know), never as an empty room or a gone one. Empty-room detection for
//     100ms therefore comes from peer.leave.success / session.close.success
//     webhooks.
//   - Webhooks: 100ms does not sign them. It sends the secret headers the
//     admin configured with the webhook; every configured header must be
//     present with its value (compared in constant time), the current set
//     or the previous one during a rotation. With no headers configured
//     the webhook capability is absent and nothing is accepted.
package hms

import (
	"bytes"
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
	"github.com/google/uuid"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// DefaultAPIURL is 100ms's REST API.
const DefaultAPIURL = "https://api.100ms.live"

const (
	// defaultTTL is a join token's lifetime when nothing says otherwise.
	defaultTTL = time.Hour
	// clockSkew back-dates iat/nbf as 100ms's own SDK does, so a token is
	// valid at once even where 100ms's clock runs a little behind.
	clockSkew = 10 * time.Second
	// managementTTL is the management token's lifetime (the SDK default).
	managementTTL = 24 * time.Hour
	// managementRefresh is how long before expiry a cached management
	// token is replaced.
	managementRefresh = 5 * time.Minute
	// 100ms accepts max_duration_seconds in [120, 43200].
	minDuration = 120 * time.Second
	maxDuration = 43200 * time.Second
)

// Config configures a 100ms provider.
type Config struct {
	AccessKey, AppSecret string
	TemplateID, Region   string
	// WebhookHeaders are the accepted header sets (current, previous).
	WebhookHeaders []http.Header
	// Roles overrides DefaultRoles per callgate role.
	Roles           map[calls.Role]string
	APIURL          string
	TokenTTL        time.Duration
	JoinURLTemplate string
	// HTTP is the outbound client; nil means httpx.New with defaults.
	HTTP   *retryablehttp.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// Provider is a calls.Provider for 100ms.
type Provider struct {
	accessKey  string
	secret     []byte
	signer     *hs256.Signer // signs app tokens with secret
	templateID string
	region     string
	headerSets []http.Header
	roles      map[calls.Role]string
	api        string
	ttl        time.Duration
	join       *template.Template
	http       *retryablehttp.Client
	now        func() time.Time

	mu         sync.Mutex
	mgmt       string
	mgmtExpiry time.Time

	// names remembers room id → room name for webhooks that carry only the
	// id (beam.recording.success); misses are looked up at the API.
	namesMu sync.Mutex
	names   map[string]string
}

// New validates the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.AccessKey == "" || cfg.AppSecret == "" {
		return nil, errors.New("hms: access_key and app_secret are required")
	}
	api := strings.TrimRight(strings.TrimSpace(cfg.APIURL), "/")
	if api == "" {
		api = DefaultAPIURL
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("hms: api_url must be an absolute http(s) URL without credentials")
	}
	p := &Provider{
		accessKey:  cfg.AccessKey,
		secret:     []byte(cfg.AppSecret),
		signer:     hs256.NewSigner([]byte(cfg.AppSecret)),
		templateID: cfg.TemplateID,
		region:     cfg.Region,
		api:        api,
		ttl:        cfg.TokenTTL,
		http:       cfg.HTTP,
		now:        cfg.Now,
		roles:      map[calls.Role]string{},
		names:      map[string]string{},
	}
	for r, name := range DefaultRoles {
		p.roles[r] = name
	}
	for r, name := range cfg.Roles {
		if name == "" {
			return nil, fmt.Errorf("hms: roles.%s is empty", r)
		}
		p.roles[r] = name
	}
	for i, set := range cfg.WebhookHeaders {
		if len(set) == 0 {
			return nil, fmt.Errorf("hms: webhook header set %d is empty", i)
		}
		for name, vs := range set {
			if len(vs) != 1 || vs[0] == "" {
				return nil, fmt.Errorf("hms: webhook header %s needs exactly one non-empty value", name)
			}
		}
		p.headerSets = append(p.headerSets, set.Clone())
	}
	if cfg.JoinURLTemplate != "" {
		t, err := adapters.ParseJoinTemplate(cfg.JoinURLTemplate, joinData{})
		if err != nil {
			return nil, fmt.Errorf("hms: join_url_template: %w", err)
		}
		p.join = t
	}
	if p.ttl <= 0 {
		p.ttl = defaultTTL
	}
	if p.http == nil {
		p.http = httpx.New(httpx.Options{Logger: cfg.Logger})
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// roomObject is 100ms's room as the rooms API returns it.
type roomObject struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled *bool  `json:"enabled"`
}

// createRoomBody is POST /v2/rooms.
type createRoomBody struct {
	Name               string `json:"name"`
	TemplateID         string `json:"template_id,omitempty"`
	Region             string `json:"region,omitempty"`
	MaxDurationSeconds int64  `json:"max_duration_seconds,omitempty"`
}

// CreateRoom creates (or, for an existing name, returns) the room named
// after the call.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: hms: a room needs a call id", calls.ErrInvalidInput)
	}
	// A room-strategy name (one room per channel or per person) replaces
	// the call id; 100ms returns the existing room for a name it knows.
	name := req.RoomName()
	body := createRoomBody{Name: name, TemplateID: p.templateID, Region: p.region}
	if req.MaxDuration > 0 {
		// 100ms refuses values outside its range; a limit is kept as close
		// as 100ms allows rather than failing the call.
		d := min(max(req.MaxDuration, minDuration), maxDuration)
		body.MaxDurationSeconds = int64(d / time.Second)
	}
	var out roomObject
	if err := p.call(ctx, http.MethodPost, "/v2/rooms", body, &out, "100ms create room"); err != nil {
		return calls.Room{}, err
	}
	if out.ID == "" {
		return calls.Room{}, calls.Temporary(errors.New("hms: create room: the answer has no room id"), 0)
	}
	if out.Name != "" {
		name = out.Name
	}
	p.remember(out.ID, name)
	return calls.Room{Name: name, ProviderID: out.ID}, nil
}

// EndRoom ends the active session and locks the room so nobody rejoins.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	if room.ProviderID == "" {
		// Never created at 100ms: nothing to end.
		return nil
	}
	body := map[string]any{"reason": "The call has ended", "lock": true}
	err := p.call(ctx, http.MethodPost, "/v2/active-rooms/"+url.PathEscape(room.ProviderID)+"/end-room", body, nil, "100ms end room")
	if isStatus(err, http.StatusNotFound) {
		// No active session: nobody is in the room. Lock it anyway so the
		// ended call cannot be rejoined with a token still valid.
		err = p.call(ctx, http.MethodPost, "/v2/rooms/"+url.PathEscape(room.ProviderID), map[string]any{"enabled": false}, nil, "100ms disable room")
		if isStatus(err, http.StatusNotFound) {
			return nil
		}
	}
	return err
}

// activePeers is GET /v2/active-rooms/{id}/peers.
type activePeers struct {
	Peers map[string]struct {
		ID       string    `json:"id"`
		Name     string    `json:"name"`
		UserID   string    `json:"user_id"`
		JoinedAt time.Time `json:"joined_at"`
	} `json:"peers"`
}

// ErrNoActiveSession is RoomStatus's answer when 100ms reports no active
// session for an enabled room: not started yet, ended without lock, or a
// wrong answer. It means "do not know".
var ErrNoActiveSession = errors.New("hms: 100ms reports no active session for the room (not started, ended, or unreachable): unknown")

// RoomStatus reports what 100ms says about the room (see the package
// documentation for the rule).
func (p *Provider) RoomStatus(ctx context.Context, room calls.Room) (calls.RoomStatus, error) {
	if room.ProviderID == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: hms: the room has no 100ms id", calls.ErrInvalidInput)
	}
	var ro roomObject
	if err := p.call(ctx, http.MethodGet, "/v2/rooms/"+url.PathEscape(room.ProviderID), nil, &ro, "100ms get room"); err != nil {
		return calls.RoomStatus{}, err
	}
	if ro.Enabled == nil {
		return calls.RoomStatus{}, errors.New("hms: the room answer has no enabled flag")
	}
	if !*ro.Enabled {
		return calls.RoomStatus{Gone: true}, nil
	}
	var peers activePeers
	err := p.call(ctx, http.MethodGet, "/v2/active-rooms/"+url.PathEscape(room.ProviderID)+"/peers", nil, &peers, "100ms list peers")
	if isStatus(err, http.StatusNotFound) {
		return calls.RoomStatus{}, ErrNoActiveSession
	}
	if err != nil {
		return calls.RoomStatus{}, err
	}
	if peers.Peers == nil {
		return calls.RoomStatus{}, errors.New("hms: the peers answer has no peers object")
	}
	st := calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}
	for id, peer := range peers.Peers {
		identity := peer.UserID
		if identity == "" {
			identity = id
		}
		st.Participants = append(st.Participants, calls.Participant{Identity: identity, Name: peer.Name, JoinedAt: peer.JoinedAt})
	}
	return st, nil
}

// StreamCall is the room in Stream's retired call shape for 100ms.
func (p *Provider) StreamCall(room calls.Room) map[string]any {
	return map[string]any{"room": room.Name, "room_id": room.ProviderID, "room_name": room.Name}
}

// Role is the 100ms role a callgate role joins as.
func (p *Provider) Role(r calls.Role) string {
	if name, ok := p.roles[r]; ok {
		return name
	}
	return p.roles[calls.RoleParticipant]
}

// Credential mints a 100ms app token for one person.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if err := ctx.Err(); err != nil {
		return calls.Credential{}, fmt.Errorf("hms: credential: %w", err)
	}
	if room.ProviderID == "" {
		return calls.Credential{}, fmt.Errorf("%w: hms: the room has no 100ms room id", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: hms: a credential needs a user id", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: hms: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	// token_ttl bounds the lifetime; a shorter one asked for wins.
	ttl := adapters.TokenTTL(req.TTL, p.ttl)
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	expires := issued.Add(ttl).Truncate(time.Second)
	role := p.Role(req.Role)
	token, err := p.AppToken(room.ProviderID, role, req.UserID, issued, expires)
	if err != nil {
		return calls.Credential{}, err
	}
	cred := calls.Credential{
		Token:     token,
		ExpiresAt: expires,
		Fields:    map[string]any{"room_id": room.ProviderID, "room_name": room.Name, "role": role},
	}
	if p.join != nil {
		var b strings.Builder
		err := p.join.Execute(&b, joinData{Room: room.Name, RoomID: room.ProviderID, Role: role, Token: token, UID: req.UserID, Identity: req.UserID, URL: room.URL})
		if err != nil {
			return calls.Credential{}, fmt.Errorf("%w: hms: join_url_template: %w", calls.ErrProvider, err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// AppToken signs a join token as 100ms's server SDK does.
func (p *Provider) AppToken(roomID, role, userID string, issued, expires time.Time) (string, error) {
	iat := issued.Add(-clockSkew).Unix()
	claims := hs256.Buffer()
	*claims = appendAppClaims(*claims, p.accessKey, roomID, role, userID, uuid.NewString(), iat, expires.Unix())
	return p.signer.Sign(hs256.Header, claims), nil
}

// appendAppClaims writes an app token's claims as json.Marshal writes
// them for the jwt.MapClaims golang-jwt would sign (keys sorted, HTML
// escaped), without the reflection that cost several HMACs;
// TestAppClaimsMatchEncodingJSON and FuzzAppClaims hold it to that.
func appendAppClaims(b []byte, accessKey, roomID, role, userID, jti string, iat, exp int64) []byte {
	b = append(b, `{"access_key":`...)
	b = hs256.AppendString(b, accessKey, true)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"jti":`...)
	b = hs256.AppendString(b, jti, true)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"role":`...)
	b = hs256.AppendString(b, role, true)
	b = append(b, `,"room_id":`...)
	b = hs256.AppendString(b, roomID, true)
	b = append(b, `,"type":"app","user_id":`...)
	b = hs256.AppendString(b, userID, true)
	return append(b, `,"version":2}`...)
}

// managementToken returns a cached management token, minting one when
// none is cached or it expires within managementRefresh.
func (p *Provider) managementToken() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.mgmt != "" && now.Add(managementRefresh).Before(p.mgmtExpiry) {
		return p.mgmt, nil
	}
	iat := now.Add(-clockSkew)
	exp := iat.Add(managementTTL)
	token, err := p.sign(jwt.MapClaims{
		"access_key": p.accessKey,
		"type":       "management",
		"version":    2,
		"iat":        iat.Unix(),
		"nbf":        iat.Unix(),
		"exp":        exp.Unix(),
		"jti":        uuid.NewString(),
	})
	if err != nil {
		return "", err
	}
	p.mgmt, p.mgmtExpiry = token, exp
	return token, nil
}

// forgetManagementToken drops the cached token after 100ms refused it.
func (p *Provider) forgetManagementToken(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mgmt == token {
		p.mgmt, p.mgmtExpiry = "", time.Time{}
	}
}

func (p *Provider) sign(claims jwt.MapClaims) (string, error) {
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(p.secret)
	if err != nil {
		// The jwt library's errors never carry the key.
		return "", fmt.Errorf("%w: hms: sign token: %w", calls.ErrProvider, err)
	}
	return token, nil
}

// call sends one REST request with the management token and decodes a 2xx
// answer into out (when not nil).
func (p *Provider) call(ctx context.Context, method, path string, body, out any, what string) error {
	token, err := p.managementToken()
	if err != nil {
		return err
	}
	var raw []byte
	if body != nil {
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("hms: %s: %w", what, err)
		}
	}
	var rdr any
	if raw != nil {
		rdr = bytes.NewReader(raw)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, p.api+path, rdr)
	if err != nil {
		return fmt.Errorf("hms: %s: %w", what, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	answer, _, err := httpx.Do(p.http, req, what)
	if err != nil {
		if isStatus(err, http.StatusUnauthorized) || isStatus(err, http.StatusForbidden) {
			p.forgetManagementToken(token)
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return calls.Temporary(fmt.Errorf("hms: %s: the answer is not the expected JSON: %w", what, err), 0)
	}
	return nil
}

// isStatus reports whether err is httpx's PermanentError for that status.
func isStatus(err error, code int) bool { return httpx.Status(err) == code }

// remember keeps a room id → name pair for webhooks that carry only the id.
func (p *Provider) remember(id, name string) {
	if id == "" || name == "" {
		return
	}
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	if len(p.names) >= maxRemembered {
		// Bounded: forget everything rather than grow; misses are looked
		// up at the API.
		clear(p.names)
	}
	p.names[id] = name
}

const maxRemembered = 10000

// roomName finds the name of a room from its id: remembered, or asked of
// the API.
func (p *Provider) roomName(ctx context.Context, id string) (string, error) {
	p.namesMu.Lock()
	name, ok := p.names[id]
	p.namesMu.Unlock()
	if ok {
		return name, nil
	}
	var ro roomObject
	if err := p.call(ctx, http.MethodGet, "/v2/rooms/"+url.PathEscape(id), nil, &ro, "100ms get room"); err != nil {
		return "", err
	}
	if ro.Name == "" {
		return "", errors.New("hms: the room answer has no name")
	}
	p.remember(id, ro.Name)
	return ro.Name, nil
}
