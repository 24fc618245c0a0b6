// Package zoom puts calls on Zoom Meetings through a Server-to-Server OAuth
// app.
//
// Choices and why:
//
//   - Authentication is Server-to-Server OAuth: POST {oauth_url}/oauth/token
//     ?grant_type=account_credentials&account_id=… with HTTP Basic
//     client_id:client_secret. The access token (an hour) is cached until a
//     minute before it expires, shared by every request, and fetched again
//     once when the API answers 401 (revoked, or the app's scopes changed).
//   - Meetings are scheduled meetings (type 2) starting now, with
//     join_before_host and no waiting room, so whoever clicks first is in.
//     Not instant meetings (type 1): they cannot be found again by listing
//     the host's meetings, which is what makes CreateRoom idempotent (below),
//     and Zoom forgets them as soon as they end.
//   - Zoom has no idempotency key. Every meeting carries the agenda
//     "callgate:<call id>"; CreateRoom first lists the host's scheduled
//     meetings and returns the one with that agenda if it exists, so a retry
//     after a lost answer (timeout, crash between Zoom's 201 and our store)
//     does not make a second meeting. The remaining window is two CreateRoom
//     runs for one call at the very same time, which the room worker's lease
//     prevents.
//   - The host link (start_url) is a host credential carrying a ZAK that
//     lasts about two hours. It is never stored: Credential for the owner
//     fetches the meeting (GET /meetings/{id} returns a fresh start_url) at
//     click time. Everyone else gets the join_url (with the passcode
//     embedded, as Zoom makes it); Zoom links cannot carry a role, so a
//     listener is not stopped from unmuting.
//   - EndRoom ends the meeting (PUT /meetings/{id}/status {action: end}) and
//     then deletes it, because a scheduled meeting with join_before_host can
//     otherwise be started again from its link after the call is over.
//     Recordings survive the deletion. "Not found" is success.
//   - RoomStatus is conservative: only a meeting Zoom reports as "finished"
//     is gone. A 404 (3001 "not found or has expired") is also what a wrong
//     account or a flaky edge answers, so it is an error, not "gone"; and an
//     ended scheduled meeting goes back to "waiting", which says nothing.
package zoom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

// Defaults for the endpoints.
const (
	DefaultOAuthURL = "https://zoom.us"
	DefaultAPIURL   = "https://api.zoom.us/v2"
)

// startURLLifetime is how long Zoom's start_url (its ZAK) stays valid.
const startURLLifetime = 2 * time.Hour

// tokenMargin is how long before its expiry a cached access token is
// replaced, so a request never leaves with a token about to lapse.
const tokenMargin = time.Minute

// defaultDuration is the scheduled length of a meeting when the call sets
// no limit; Zoom does not end a meeting when it runs over.
const defaultDuration = 60 * time.Minute

// agendaPrefix marks a meeting as callgate's for one call id.
const agendaPrefix = "callgate:"

// maxListPages bounds the idempotency lookup (300 meetings a page).
const maxListPages = 10

// Config configures a Zoom provider.
type Config struct {
	AccountID, ClientID, ClientSecret string
	// WebhookSecrets are the webhook secret tokens; two while rotating.
	WebhookSecrets []string
	UserID         string
	OAuthURL       string
	APIURL         string
	TokenTTL       time.Duration
	// JoinURLTemplate, when set, rewrites join links.
	JoinURLTemplate string
	Now             func() time.Time
	Logger          *slog.Logger
	// HTTP shapes the outbound client (tests shorten the waits).
	HTTP httpx.Options
}

// Provider is a calls.Provider for Zoom Meetings.
type Provider struct {
	accountID, clientID, clientSecret string
	userID                            string
	oauthURL, apiURL                  string
	ttl                               time.Duration
	join                              *template.Template
	webhook                           [][]byte
	now                               func() time.Time
	http                              *retryablehttp.Client

	mu        sync.Mutex
	token     string
	expiresAt time.Time
}

// New validates the configuration and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.AccountID == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("zoom: account_id, client_id and client_secret are required")
	}
	p := &Provider{
		accountID: cfg.AccountID, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret,
		userID: cfg.UserID, ttl: cfg.TokenTTL, now: cfg.Now,
	}
	if p.userID == "" {
		p.userID = "me"
	}
	var err error
	if p.oauthURL, err = baseURL("oauth_url", cfg.OAuthURL, DefaultOAuthURL); err != nil {
		return nil, err
	}
	if p.apiURL, err = baseURL("api_url", cfg.APIURL, DefaultAPIURL); err != nil {
		return nil, err
	}
	if cfg.JoinURLTemplate != "" {
		if p.join, err = template.New("join").Option("missingkey=error").Parse(cfg.JoinURLTemplate); err != nil {
			return nil, fmt.Errorf("zoom: join_url_template: %w", err)
		}
	}
	for i, s := range cfg.WebhookSecrets {
		if s == "" {
			return nil, fmt.Errorf("zoom: webhook secret %d is empty", i)
		}
		p.webhook = append(p.webhook, []byte(s))
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.HTTP.Logger == nil {
		cfg.HTTP.Logger = cfg.Logger
	}
	p.http = httpx.New(cfg.HTTP)
	return p, nil
}

func baseURL(field, raw, def string) (string, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("zoom: %s must be an absolute http(s) URL without credentials, query or fragment", field)
	}
	return strings.TrimRight(raw, "/"), nil
}

// accessToken returns the cached access token or fetches one.
func (p *Provider) accessToken(ctx context.Context, refresh bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !refresh && p.token != "" && p.now().Before(p.expiresAt) {
		return p.token, nil
	}
	q := url.Values{"grant_type": {"account_credentials"}, "account_id": {p.accountID}}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, p.oauthURL+"/oauth/token?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("zoom: oauth request: %w", err)
	}
	req.SetBasicAuth(p.clientID, p.clientSecret)
	req.Header.Set("Accept", "application/json")
	body, _, err := httpx.Do(p.http, req, "zoom oauth token")
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", calls.Permanentf("zoom oauth token at %s: the answer holds no access_token", req.URL.Host)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	p.token = tok.AccessToken
	p.expiresAt = p.now().Add(life - tokenMargin)
	return p.token, nil
}

// call sends one API request with the bearer token; a 401 fetches a new
// token and repeats the request once.
func (p *Provider) call(ctx context.Context, method, path string, in any, what string) ([]byte, error) {
	var raw []byte
	if in != nil {
		var err error
		if raw, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("zoom: %s: %w", what, err)
		}
	}
	for attempt := 0; ; attempt++ {
		token, err := p.accessToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		var body any
		if raw != nil {
			body = raw
		}
		req, err := retryablehttp.NewRequestWithContext(ctx, method, p.apiURL+path, body)
		if err != nil {
			return nil, fmt.Errorf("zoom: %s: %w", what, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json")
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		out, _, err := httpx.Do(p.http, req, what)
		if err != nil && attempt == 0 && status(err) == http.StatusUnauthorized {
			continue
		}
		return out, err
	}
}

// status is the HTTP status of a refusal httpx.Do classified as
// permanent, or 0. httpx words every refusal "… (HTTP <code>)".
func status(err error) int { return httpx.Status(err) }

// meeting is what callgate reads of Zoom's meeting object. The id is a
// number in REST answers and a string in webhooks.
type meeting struct {
	ID       json.Number `json:"id"`
	UUID     string      `json:"uuid"`
	Topic    string      `json:"topic"`
	Agenda   string      `json:"agenda"`
	Status   string      `json:"status"`
	JoinURL  string      `json:"join_url"`
	StartURL string      `json:"start_url"`
	Password string      `json:"password"`
}

type meetingSettings struct {
	JoinBeforeHost bool   `json:"join_before_host"`
	JBHTime        int    `json:"jbh_time"`
	WaitingRoom    bool   `json:"waiting_room"`
	HostVideo      bool   `json:"host_video"`
	ParticipantVid bool   `json:"participant_video"`
	ApprovalType   int    `json:"approval_type"`
	Audio          string `json:"audio"`
}

type createMeeting struct {
	Topic     string          `json:"topic"`
	Type      int             `json:"type"`
	StartTime string          `json:"start_time"`
	Duration  int             `json:"duration"`
	Timezone  string          `json:"timezone"`
	Agenda    string          `json:"agenda"`
	Settings  meetingSettings `json:"settings"`
}

// CreateRoom returns the call's meeting, creating it when the host has none
// for this call id (see the package documentation on idempotency).
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: zoom: a room needs a call id", calls.ErrInvalidInput)
	}
	// A room-strategy name (one meeting per channel or per person) is the
	// tag instead of the call id, so the meeting is found and reused.
	tag := req.RoomName()
	agenda := agendaPrefix + tag
	found, err := p.findMeeting(ctx, agenda)
	if err != nil {
		return calls.Room{}, err
	}
	if found != "" {
		m, err := p.getMeeting(ctx, found)
		if err != nil {
			return calls.Room{}, err
		}
		return roomOf(m), nil
	}

	topic := req.Title
	if topic == "" {
		topic = "Call " + req.CallID
	}
	if r := []rune(topic); len(r) > 200 {
		topic = string(r[:200])
	}
	dur := req.MaxDuration
	if dur <= 0 {
		dur = defaultDuration
	}
	video := req.Type != calls.TypeAudio
	body := createMeeting{
		Topic: topic, Type: 2, StartTime: p.now().UTC().Format("2006-01-02T15:04:05Z"),
		Duration: int((dur + time.Minute - 1) / time.Minute), Timezone: "UTC", Agenda: agenda,
		Settings: meetingSettings{
			JoinBeforeHost: true, JBHTime: 0, WaitingRoom: false,
			HostVideo: video, ParticipantVid: video, ApprovalType: 2, Audio: "both",
		},
	}
	out, err := p.call(ctx, http.MethodPost, "/users/"+url.PathEscape(p.userID)+"/meetings", body, "zoom create meeting")
	if err != nil {
		return calls.Room{}, err
	}
	var m meeting
	if err := json.Unmarshal(out, &m); err != nil || m.ID == "" {
		return calls.Room{}, calls.Permanentf("zoom create meeting: the answer holds no meeting id")
	}
	return roomOf(m), nil
}

func roomOf(m meeting) calls.Room {
	id := m.ID.String()
	room := calls.Room{Name: id, ProviderID: id, URL: m.JoinURL, Data: map[string]string{}}
	if m.Password != "" {
		room.Data["password"] = m.Password
	}
	if m.UUID != "" {
		room.Data["uuid"] = m.UUID
	}
	return room
}

// findMeeting looks for the host's scheduled meeting with the agenda.
func (p *Provider) findMeeting(ctx context.Context, agenda string) (string, error) {
	next := ""
	for page := 0; page < maxListPages; page++ {
		q := url.Values{"type": {"scheduled"}, "page_size": {"300"}}
		if next != "" {
			q.Set("next_page_token", next)
		}
		out, err := p.call(ctx, http.MethodGet, "/users/"+url.PathEscape(p.userID)+"/meetings?"+q.Encode(), nil, "zoom list meetings")
		if err != nil {
			return "", err
		}
		var list struct {
			NextPageToken string    `json:"next_page_token"`
			Meetings      []meeting `json:"meetings"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			return "", calls.Permanentf("zoom list meetings: the answer is not a meeting list")
		}
		for _, m := range list.Meetings {
			if m.Agenda == agenda && m.ID != "" {
				return m.ID.String(), nil
			}
		}
		if list.NextPageToken == "" {
			return "", nil
		}
		next = list.NextPageToken
	}
	return "", nil
}

func (p *Provider) getMeeting(ctx context.Context, id string) (meeting, error) {
	out, err := p.call(ctx, http.MethodGet, "/meetings/"+url.PathEscape(id), nil, "zoom get meeting")
	if err != nil {
		return meeting{}, err
	}
	var m meeting
	if err := json.Unmarshal(out, &m); err != nil || m.ID == "" {
		return meeting{}, calls.Permanentf("zoom get meeting: the answer holds no meeting")
	}
	return m, nil
}

// Credential returns the link one person joins with: the start_url, minted
// now, for the owner (Zoom makes them host); the join_url for everyone else.
func (p *Provider) Credential(ctx context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	if room.Name == "" {
		return calls.Credential{}, fmt.Errorf("%w: zoom: the room has no meeting id", calls.ErrInvalidInput)
	}
	if req.TTL < 0 {
		return calls.Credential{}, fmt.Errorf("%w: zoom: credential lifetime %s is negative", calls.ErrInvalidInput, req.TTL)
	}
	issued := req.IssuedAt
	if issued.IsZero() {
		issued = p.now()
	}
	ttl := adapters.TokenTTL(req.TTL, p.ttl)
	link := room.URL
	password := room.Data["password"]
	if req.Role == calls.RoleOwner {
		m, err := p.getMeeting(ctx, room.Name)
		if err != nil {
			return calls.Credential{}, err
		}
		if m.StartURL == "" {
			return calls.Credential{}, calls.Permanentf("zoom get meeting: the answer holds no start_url for the host")
		}
		link = m.StartURL
		ttl = min(ttl, startURLLifetime)
		if m.Password != "" {
			password = m.Password
		}
	}
	if link == "" {
		return calls.Credential{}, fmt.Errorf("%w: zoom: the room has no join link", calls.ErrInvalidInput)
	}
	if p.join != nil {
		var b strings.Builder
		data := map[string]any{"Room": room.Name, "Token": "", "UID": "", "Identity": req.UserID, "URL": link}
		if err := p.join.Execute(&b, data); err != nil {
			return calls.Credential{}, fmt.Errorf("zoom: join_url_template: %w", err)
		}
		link = b.String()
	}
	fields := map[string]any{"meeting_id": room.Name}
	if password != "" {
		fields["password"] = password
	}
	return calls.Credential{JoinURL: link, ExpiresAt: issued.Add(ttl), Fields: fields}, nil
}

// EndRoom ends the meeting and deletes it so its link cannot start it
// again; a meeting Zoom no longer knows is already over.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	if room.Name == "" {
		return nil
	}
	path := "/meetings/" + url.PathEscape(room.Name)
	_, err := p.call(ctx, http.MethodPut, path+"/status", map[string]string{"action": "end"}, "zoom end meeting")
	switch code := status(err); {
	case err == nil, code == http.StatusNotFound:
	case code == http.StatusBadRequest:
		// 3xxx "meeting is not in progress" and the like: nothing to end.
	default:
		return err
	}
	_, err = p.call(ctx, http.MethodDelete, path, nil, "zoom delete meeting")
	switch code := status(err); {
	case err == nil, code == http.StatusNotFound, code == http.StatusBadRequest:
		// 400 is 3002/3007 (in progress, already ended): the meeting is
		// over either way; the link stays but the call is closed.
		return nil
	}
	return err
}

// RoomStatus reports a meeting as gone only when Zoom says "finished".
func (p *Provider) RoomStatus(ctx context.Context, room calls.Room) (calls.RoomStatus, error) {
	if room.Name == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: zoom: the room has no meeting id", calls.ErrInvalidInput)
	}
	m, err := p.getMeeting(ctx, room.Name)
	if err != nil {
		return calls.RoomStatus{}, err
	}
	return calls.RoomStatus{Gone: m.Status == "finished"}, nil
}
