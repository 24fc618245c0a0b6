// Package daily puts calls on Daily (daily.co, kind "daily").
//
// Choices and why:
//
//   - Rooms: POST /rooms {name, privacy, properties{exp, eject_at_room_exp}}.
//     A private room (the default) is named after the call: nobody joins
//     it without a meeting token, so the name need not be secret. A public
//     room is joinable by anyone who knows its URL, so its name is the call
//     id plus ten characters of HMAC-SHA256(api_key, call id): unguessable
//     yet the same on every attempt. Idempotency: Daily answers 400 "... already
//     exists" for a taken name; CreateRoom then GETs /rooms/{name} and
//     returns that room, so a retry never makes a second one.
//   - exp is the call's maximum duration from now, or a day without one;
//     with eject_at_room_exp Daily ejects everyone then. A room is the
//     call's, so it must not stay joinable for ever.
//   - Credential: POST /meeting-tokens, one token per person and click.
//     owner and panelist get is_owner (Daily's moderator); a listener's
//     token has permissions.canSend=false (Daily enforces it server-side)
//     and starts with the microphone off; audio calls start with the camera
//     off. exp comes from token_ttl. user_id (at most 36 characters at
//     Daily) is the callgate user id, so webhooks and presence name the
//     member. The join link is join_url_template, by default
//     <room url>?t=<token>.
//   - EndRoom: DELETE /rooms/{name}; a 404 (already deleted) is success.
//   - RoomStatus: GET /rooms/{name}. Daily removes a room only when it is
//     deleted, so Daily's own JSON "not-found" answer for a room callgate
//     created is a confirmed "gone"; so is a room whose exp has passed
//     (everyone was ejected and nobody can join). Any other 404 (a proxy's
//     page, a wrong api_url), 5xx or timeout is "unknown". A live room's
//     roster is GET /rooms/{name}/presence, listed in full.
//   - Webhooks: X-Webhook-Signature = base64(HMAC-SHA256(base64decode(hmac),
//     X-Webhook-Timestamp + "." + raw body)), compared in constant time with
//     the current and the previous secret; the timestamp must lie within
//     five minutes of now. Daily's endpoint check when a webhook is created
//     (a POST whose body is {"test":"test"}) is answered 200 with no
//     events, signed or not: it carries nothing to apply.
package daily

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

// DefaultAPIURL is Daily's REST API.
const DefaultAPIURL = "https://api.daily.co/v1"

const (
	defaultTTL = time.Hour
	// defaultRoomLife is a room's exp when the call has no maximum
	// duration.
	defaultRoomLife = 24 * time.Hour
	// maxUserID is Daily's limit on a meeting token's user_id.
	maxUserID = 36
	// publicSuffixLen is the HMAC characters appended to a public room's
	// name (40 bits of hex).
	publicSuffixLen = 10
)

// Config configures a Daily provider.
type Config struct {
	APIKey string
	// Domain is your-team.daily.co, for room URLs Daily's answer lacks.
	Domain string
	// WebhookHMAC are the base64 hmac secrets (current, previous).
	WebhookHMAC     []string
	Privacy         string
	APIURL          string
	TokenTTL        time.Duration
	JoinURLTemplate string
	HTTP            *retryablehttp.Client
	Now             func() time.Time
	Logger          *slog.Logger
}

// Provider is a calls.Provider for Daily.
type Provider struct {
	apiKey  string
	domain  string
	secrets [][]byte
	privacy string
	api     string
	ttl     time.Duration
	join    *template.Template
	http    *retryablehttp.Client
	now     func() time.Time
}

// New validates the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("daily: api_key is required")
	}
	api := strings.TrimRight(strings.TrimSpace(cfg.APIURL), "/")
	if api == "" {
		api = DefaultAPIURL
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("daily: api_url must be an absolute http(s) URL without credentials")
	}
	p := &Provider{apiKey: cfg.APIKey, domain: cfg.Domain, privacy: cfg.Privacy, api: api, ttl: cfg.TokenTTL, http: cfg.HTTP, now: cfg.Now}
	for i, s := range cfg.WebhookHMAC {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("daily: webhook hmac secret %d is not base64", i)
		}
		p.secrets = append(p.secrets, key)
	}
	switch p.privacy {
	case "":
		p.privacy = "private"
	case "private", "public":
	default:
		return nil, fmt.Errorf("daily: privacy %q is not private or public", p.privacy)
	}
	tmpl := cfg.JoinURLTemplate
	if tmpl == "" {
		tmpl = DefaultJoinURLTemplate
	}
	if p.join, err = adapters.ParseJoinTemplate(tmpl, joinData{}); err != nil {
		return nil, fmt.Errorf("daily: join_url_template: %w", err)
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

// roomObject is Daily's room.
type roomObject struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url"`
	Privacy string `json:"privacy"`
	Config  struct {
		Exp *float64 `json:"exp"`
	} `json:"config"`
}

type createRoomBody struct {
	Name       string         `json:"name"`
	Privacy    string         `json:"privacy"`
	Properties roomProperties `json:"properties"`
}

type roomProperties struct {
	Exp            int64 `json:"exp"`
	EjectAtRoomExp bool  `json:"eject_at_room_exp"`
}

// RoomName is the Daily room name of a call: the call id for private
// rooms, the call id and a keyed suffix for public ones.
func (p *Provider) RoomName(callID string) string {
	if p.privacy != "public" {
		return callID
	}
	m := hmac.New(sha256.New, []byte(p.apiKey))
	m.Write([]byte("callgate daily room\x00" + callID))
	return callID + "-" + hex.EncodeToString(m.Sum(nil))[:publicSuffixLen]
}

// CreateRoom creates the call's room, or returns it when it exists.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: daily: a room needs a call id", calls.ErrInvalidInput)
	}
	life := defaultRoomLife
	if req.MaxDuration > 0 {
		life = req.MaxDuration
	}
	// A room-strategy name (one room per channel or per person) replaces
	// the call id; Daily's "already exists" makes it reused.
	base := req.RoomName()
	name := p.RoomName(base)
	body := createRoomBody{Name: name, Privacy: p.privacy, Properties: roomProperties{Exp: p.now().Add(life).Unix(), EjectAtRoomExp: true}}
	var out roomObject
	err := p.call(ctx, http.MethodPost, "/rooms", body, &out, "Daily create room")
	if isStatus(err, http.StatusBadRequest) && strings.Contains(err.Error(), "already exists") {
		// Created by an earlier attempt whose answer was lost: take it.
		out = roomObject{}
		err = p.call(ctx, http.MethodGet, "/rooms/"+url.PathEscape(name), nil, &out, "Daily get room")
	}
	if err != nil {
		return calls.Room{}, err
	}
	if out.Name == "" {
		return calls.Room{}, calls.Temporary(errors.New("daily: create room: the answer has no room name"), 0)
	}
	return calls.Room{Name: out.Name, ProviderID: out.ID, URL: p.roomURL(out)}, nil
}

// roomURL is Daily's URL for the room, or https://<domain>/<name>.
func (p *Provider) roomURL(r roomObject) string {
	if r.URL != "" {
		return r.URL
	}
	if p.domain == "" {
		return ""
	}
	return "https://" + p.domain + "/" + url.PathEscape(r.Name)
}

// EndRoom deletes the room; a room already gone is fine.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	if room.Name == "" {
		return nil
	}
	err := p.call(ctx, http.MethodDelete, "/rooms/"+url.PathEscape(room.Name), nil, nil, "Daily delete room")
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// presence is GET /rooms/{name}/presence. Daily's docs show camelCase
// fields and its generated SDKs snake_case; both are read.
type presence struct {
	TotalCount *int `json:"total_count"`
	Data       []struct {
		ID        string   `json:"id"`
		UserID    string   `json:"userId"`
		UserIDS   string   `json:"user_id"`
		UserName  string   `json:"userName"`
		UserNameS string   `json:"user_name"`
		JoinTime  flexTime `json:"joinTime"`
		JoinTimeS flexTime `json:"join_time"`
	} `json:"data"`
}

// RoomStatus reports what Daily says about the room (see the package
// documentation for the rule).
func (p *Provider) RoomStatus(ctx context.Context, room calls.Room) (calls.RoomStatus, error) {
	if room.Name == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: daily: the room has no name", calls.ErrInvalidInput)
	}
	path := "/rooms/" + url.PathEscape(room.Name)
	var ro roomObject
	err := p.call(ctx, http.MethodGet, path, nil, &ro, "Daily get room")
	if isStatus(err, http.StatusNotFound) && strings.Contains(err.Error(), `"not-found"`) {
		return calls.RoomStatus{Gone: true}, nil
	}
	if err != nil {
		return calls.RoomStatus{}, err
	}
	if ro.Name == "" {
		return calls.RoomStatus{}, errors.New("daily: the room answer has no name")
	}
	if ro.Config.Exp != nil && *ro.Config.Exp > 0 && !p.now().Before(time.Unix(int64(*ro.Config.Exp), 0)) {
		return calls.RoomStatus{Gone: true}, nil
	}
	var pr presence
	if err := p.call(ctx, http.MethodGet, path+"/presence", nil, &pr, "Daily room presence"); err != nil {
		return calls.RoomStatus{}, err
	}
	if pr.TotalCount == nil && pr.Data == nil {
		return calls.RoomStatus{}, errors.New("daily: the presence answer has neither total_count nor data")
	}
	st := calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}
	for _, d := range pr.Data {
		id := firstNonEmpty(d.UserID, d.UserIDS, d.ID)
		if id == "" {
			continue
		}
		joined := time.Time(d.JoinTime)
		if joined.IsZero() {
			joined = time.Time(d.JoinTimeS)
		}
		st.Participants = append(st.Participants, calls.Participant{Identity: id, Name: firstNonEmpty(d.UserName, d.UserNameS), JoinedAt: joined})
	}
	return st, nil
}

type tokenBody struct {
	Properties tokenProperties `json:"properties"`
}

type tokenProperties struct {
	RoomName      string       `json:"room_name"`
	UserName      string       `json:"user_name,omitempty"`
	UserID        string       `json:"user_id"`
	IsOwner       bool         `json:"is_owner"`
	Exp           int64        `json:"exp"`
	StartVideoOff bool         `json:"start_video_off,omitempty"`
	StartAudioOff bool         `json:"start_audio_off,omitempty"`
	Permissions   *permissions `json:"permissions,omitempty"`
}

type permissions struct {
	CanSend bool `json:"canSend"`
}

// Credential asks Daily for a meeting token for one person.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: daily: the room has no name", calls.ErrInvalidInput)
	}
	if req.UserID == "" {
		return calls.Credential{}, fmt.Errorf("%w: daily: a credential needs a user id", calls.ErrInvalidInput)
	}
	if utf8.RuneCountInString(req.UserID) > maxUserID {
		return calls.Credential{}, fmt.Errorf("%w: daily: user id %q is longer than Daily's %d-character limit", calls.ErrInvalidInput, req.UserID, maxUserID)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: daily: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	// token_ttl bounds the lifetime; a shorter one asked for wins.
	ttl := adapters.TokenTTL(req.TTL, p.ttl)
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	expires := issued.Add(ttl).Truncate(time.Second)
	props := tokenProperties{
		RoomName: room.Name, UserName: req.Name, UserID: req.UserID,
		IsOwner:       req.Role.IsModerator(),
		Exp:           expires.Unix(),
		StartVideoOff: req.Type == calls.TypeAudio || !req.Role.CanPublish(),
		StartAudioOff: !req.Role.CanPublish(),
	}
	if !req.Role.CanPublish() {
		props.Permissions = &permissions{CanSend: false}
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := p.call(ctx, http.MethodPost, "/meeting-tokens", tokenBody{Properties: props}, &out, "Daily meeting token"); err != nil {
		return calls.Credential{}, err
	}
	if out.Token == "" {
		return calls.Credential{}, calls.Temporary(errors.New("daily: meeting token: the answer has no token"), 0)
	}
	roomURL := room.URL
	if roomURL == "" {
		roomURL = p.roomURL(roomObject{Name: room.Name})
	}
	cred := calls.Credential{
		Token:     out.Token,
		ExpiresAt: expires,
		Fields:    map[string]any{"room_name": room.Name, "room_url": roomURL},
	}
	if roomURL != "" {
		var b strings.Builder
		if err := p.join.Execute(&b, joinData{Room: room.Name, Token: out.Token, UID: req.UserID, Identity: req.UserID, URL: roomURL}); err != nil {
			return calls.Credential{}, fmt.Errorf("%w: daily: join_url_template: %w", calls.ErrProvider, err)
		}
		cred.JoinURL = b.String()
	}
	return cred, nil
}

// call sends one REST request with the API key and decodes a 2xx answer
// into out (when not nil).
func (p *Provider) call(ctx context.Context, method, path string, body, out any, what string) error {
	var rdr any
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("daily: %s: %w", what, err)
		}
		rdr = bytes.NewReader(raw)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, p.api+path, rdr)
	if err != nil {
		return fmt.Errorf("daily: %s: %w", what, err)
	}
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	answer, _, err := httpx.Do(p.http, req, what)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return calls.Temporary(fmt.Errorf("daily: %s: the answer is not the expected JSON: %w", what, err), 0)
	}
	return nil
}

// isStatus reports whether err is httpx's PermanentError for that status.
func isStatus(err error, code int) bool { return httpx.Status(err) == code }

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// flexTime reads a time as Daily writes it in different places: an ISO
// 8601 string or Unix seconds. Anything else is the zero time: a join time
// is informative, never a reason to refuse an answer.
type flexTime time.Time

func (t *flexTime) UnmarshalJSON(raw []byte) error {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
			*t = flexTime(v.UTC())
		}
		return nil
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil && f > 0 && f < 1e11 {
		*t = flexTime(unixFloat(f))
	}
	return nil
}

// unixFloat converts Unix seconds with a fraction (Daily's event_ts) to a
// time, to the millisecond.
func unixFloat(f float64) time.Time {
	return time.UnixMilli(int64(math.Round(f * 1000))).UTC()
}
