// Package twilio puts calls on Twilio Programmable Video.
//
// Choices and why:
//
//   - The room's UniqueName is the call id. Twilio rooms are not public:
//     joining needs an access token signed with the API key secret whose
//     video grant names the room, so a guessable name gives nobody a way in.
//   - CreateRoom is idempotent through Twilio's own rule that a UniqueName
//     is unique among in-progress rooms: a second POST /v1/Rooms with the same
//     name answers 400 with Twilio error 53113 ("Room exists"), and the
//     adapter then fetches the in-progress room by its name
//     (GET /v1/Rooms/{UniqueName}) and returns it. Creating twice never makes
//     two rooms. (Once a room is completed its name is free again; the calls
//     service never re-creates the room of an ended call.)
//   - The room's StatusCallback is this provider's webhook URL, set only when
//     an auth_token is configured: without one nothing could verify what
//     Twilio sends, and the webhook route answers 404.
//   - Access tokens are Twilio's "twilio-fpa;v=1" JWTs (HS256, signed with the
//     API key secret), laid out byte for byte as the twilio Node SDK's
//     jwt.AccessToken lays them out, with an identity and a video grant for
//     the one room. Twilio has no per-token publish permission: a listener's
//     token is the same as a participant's. The credential says
//     can_publish=false and clients must not publish; enforcing it server-side
//     would take the Track Subscription/Recording rules APIs, out of scope.
//   - Status callbacks are verified as Twilio's SDKs verify them
//     (validateRequest): X-Twilio-Signature is base64(HMAC-SHA1(auth token,
//     URL + each form parameter's name and value, names sorted)), tried over
//     the URL as received with its port removed and with the default port
//     added, with the current and the previous auth token.
//   - Twilio's error code is in the body of a 4xx answer, which httpx.Do does
//     not return; do() therefore sends through the httpx client itself and
//     maps answers to calls.TemporaryError / calls.PermanentError the same
//     way, keeping the code for the idempotency and end-room decisions.
package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// DefaultAPIURL is Twilio's Video REST API.
const DefaultAPIURL = "https://video.twilio.com"

// DefaultTokenTTL is the access token lifetime when none is configured.
const DefaultTokenTTL = time.Hour

// MaxTokenTTL is the longest lifetime Twilio accepts for an access token.
const MaxTokenTTL = 24 * time.Hour

// Twilio REST error codes the adapter acts on
// (https://www.twilio.com/docs/api/errors/<code>).
const (
	codeNotFound      = 20404 // the resource does not exist
	codeStatusInvalid = 53112 // Status cannot be applied: the room is not in-progress
	codeRoomExists    = 53113 // a room with this UniqueName is in progress
	codeRoomCompleted = 53118 // the operation cannot be done on a completed room
)

// Twilio's MaxParticipantDuration bounds, in seconds (10 minutes to 24 hours).
const (
	minParticipantDuration = 600
	maxParticipantDuration = 86400
)

// maxParticipantPages bounds how many pages of a roster RoomStatus reads.
const maxParticipantPages = 10

// Config configures a Twilio Video provider.
type Config struct {
	AccountSID   string
	APIKeySID    string
	APIKeySecret string
	// AuthTokens verify status callbacks: the current one, and during a
	// rotation the previous one. Without any, every webhook is refused.
	AuthTokens []string
	// RoomType is group (default), group-small, peer-to-peer or go.
	RoomType string
	// BaseURL is the REST API base; default DefaultAPIURL.
	BaseURL string
	// StatusCallback is where Twilio sends room events; empty for none.
	StatusCallback string
	// TokenTTL is the default access token lifetime; default DefaultTokenTTL.
	TokenTTL time.Duration
	// JoinURLTemplate builds Credential.JoinURL when set.
	JoinURLTemplate string
	// HTTP is the outbound client; default httpx.New.
	HTTP   *retryablehttp.Client
	Logger *slog.Logger
	Now    func() time.Time
}

// Provider is a Twilio Video provider.
type Provider struct {
	accountSID     string
	keySID         string
	keySecret      []byte
	signer         *hs256.Signer // signs access tokens with keySecret
	authTokens     [][]byte
	roomType       string
	base           string
	statusCallback string
	ttl            time.Duration
	joinTmpl       *template.Template
	client         *retryablehttp.Client
	now            func() time.Time

	// names maps room SIDs to unique names, for callbacks that carry only
	// the SID (composition callbacks). Bounded; a miss is resolved with
	// GET /v1/Rooms/{Sid}.
	mu    sync.Mutex
	names map[string]string
}

// maxNames bounds the SID → name cache; it is cleared when full.
const maxNames = 4096

// New checks the configuration and builds the provider.
func New(cfg Config) (*Provider, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("twilio: account_sid is not an Account SID (AC followed by 32 hex characters)")
	}
	if !apiKeySIDPattern.MatchString(cfg.APIKeySID) {
		return nil, errors.New("twilio: api_key_sid is not an API key SID (SK followed by 32 hex characters)")
	}
	if cfg.APIKeySecret == "" {
		return nil, errors.New("twilio: api_key_secret is required")
	}
	if cfg.RoomType == "" {
		cfg.RoomType = "group"
	}
	if !validRoomType(cfg.RoomType) {
		return nil, fmt.Errorf("twilio: room type %q is not one of %s", cfg.RoomType, strings.Join(RoomTypes, ", "))
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultAPIURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("twilio: api_url is not an absolute http(s) URL")
	}
	switch {
	case cfg.TokenTTL == 0:
		cfg.TokenTTL = DefaultTokenTTL
	case cfg.TokenTTL < 0 || cfg.TokenTTL > MaxTokenTTL:
		return nil, fmt.Errorf("twilio: token_ttl %s is outside (0, 24h]", cfg.TokenTTL)
	}
	p := &Provider{
		accountSID: cfg.AccountSID, keySID: cfg.APIKeySID, keySecret: []byte(cfg.APIKeySecret),
		signer:   hs256.NewSigner([]byte(cfg.APIKeySecret)),
		roomType: cfg.RoomType, base: strings.TrimSuffix(cfg.BaseURL, "/"),
		statusCallback: cfg.StatusCallback, ttl: cfg.TokenTTL,
		client: cfg.HTTP, now: cfg.Now, names: map[string]string{},
	}
	for _, t := range cfg.AuthTokens {
		if t != "" {
			p.authTokens = append(p.authTokens, []byte(t))
		}
	}
	if cfg.JoinURLTemplate != "" {
		if p.joinTmpl, err = adapters.ParseJoinTemplate(cfg.JoinURLTemplate, joinSample); err != nil {
			return nil, fmt.Errorf("twilio: join_url_template: %w", err)
		}
	}
	if p.client == nil {
		p.client = httpx.New(httpx.Options{Logger: cfg.Logger})
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// room is the part of Twilio's Room resource the adapter reads.
type room struct {
	SID        string `json:"sid"`
	UniqueName string `json:"unique_name"`
	Status     string `json:"status"`
}

// CreateRoom creates the call's room (POST /v1/Rooms), or returns the
// in-progress room of that name when Twilio says it exists (error 53113).
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: twilio: the call has no id", calls.ErrInvalidInput)
	}
	// A room-strategy name (one room per channel or per person) replaces
	// the call id; an in-progress room of that name is reused (53113).
	unique := req.RoomName()
	form := url.Values{
		"UniqueName": {unique},
		"Type":       {p.roomType},
	}
	if p.statusCallback != "" {
		form.Set("StatusCallback", p.statusCallback)
		form.Set("StatusCallbackMethod", http.MethodPost)
	}
	if req.MaxDuration > 0 {
		// Twilio refuses values outside 10 minutes..24 hours; the call's
		// own timer ends it anyway, this only bounds a forgotten client.
		secs := int64((req.MaxDuration + time.Second - 1) / time.Second)
		secs = min(max(secs, minParticipantDuration), maxParticipantDuration)
		form.Set("MaxParticipantDuration", strconv.FormatInt(secs, 10))
	}
	body, terr, err := p.do(ctx, http.MethodPost, "/v1/Rooms", form, "twilio create room")
	if terr != nil && terr.Code == codeRoomExists {
		var gerr *apiError
		body, gerr, err = p.do(ctx, http.MethodGet, "/v1/Rooms/"+url.PathEscape(req.CallID), nil, "twilio fetch existing room")
		if gerr != nil && gerr.HTTPStatus == http.StatusNotFound {
			// The room completed between the two requests and its name is
			// free again: creating anew is worth another try.
			err = calls.Temporary(fmt.Errorf("twilio create room: room %s existed, then was gone: %w", req.CallID, err), 0)
		}
	}
	if err != nil {
		return calls.Room{}, err
	}
	var r room
	if err := json.Unmarshal(body, &r); err != nil || r.SID == "" {
		return calls.Room{}, calls.Temporary(fmt.Errorf("twilio create room: the answer is not a Room resource%s", httpx.Snippet(body)), 0)
	}
	name := r.UniqueName
	if name == "" {
		name = req.CallID
	}
	p.remember(r.SID, name)
	return calls.Room{Name: name, ProviderID: r.SID}, nil
}

// EndRoom completes the room (POST /v1/Rooms/{Sid} Status=completed). A
// room that is not found or no longer in progress is already over.
func (p *Provider) EndRoom(ctx context.Context, rm calls.Room) error {
	id := roomID(rm)
	if id == "" {
		return nil
	}
	_, terr, err := p.do(ctx, http.MethodPost, "/v1/Rooms/"+url.PathEscape(id), url.Values{"Status": {"completed"}}, "twilio end room")
	if terr != nil {
		switch {
		case terr.HTTPStatus == http.StatusNotFound, terr.Code == codeNotFound,
			terr.Code == codeStatusInvalid, terr.Code == codeRoomCompleted:
			return nil
		}
	}
	return err
}

// participant is the part of Twilio's Participant resource the adapter reads.
type participant struct {
	Identity  string `json:"identity"`
	StartTime string `json:"start_time"`
}

// RoomStatus asks Twilio about the room (GET /v1/Rooms/{Sid}): completed or
// failed is a confirmed "gone"; in progress, the connected participants are
// listed (GET /v1/Rooms/{Sid}/Participants?Status=connected). Anything else,
// including a 404, is an error: "do not know".
func (p *Provider) RoomStatus(ctx context.Context, rm calls.Room) (calls.RoomStatus, error) {
	id := roomID(rm)
	if id == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: twilio: the room has neither a SID nor a name", calls.ErrInvalidInput)
	}
	body, _, err := p.do(ctx, http.MethodGet, "/v1/Rooms/"+url.PathEscape(id), nil, "twilio room status")
	if err != nil {
		return calls.RoomStatus{}, err
	}
	var r room
	if err := json.Unmarshal(body, &r); err != nil {
		return calls.RoomStatus{}, fmt.Errorf("twilio room status: the answer is not a Room resource: %w", err)
	}
	switch r.Status {
	case "completed", "failed":
		return calls.RoomStatus{Gone: true}, nil
	case "in-progress":
	default:
		return calls.RoomStatus{}, fmt.Errorf("twilio room status: unknown room status %q", r.Status)
	}
	if r.SID != "" {
		id = r.SID
	}
	path := "/v1/Rooms/" + url.PathEscape(id) + "/Participants?Status=connected&PageSize=100"
	var out []calls.Participant
	for page := 0; ; page++ {
		if page == maxParticipantPages {
			// A roster this large is not read whole: say nothing about it.
			return calls.RoomStatus{Participants: out}, nil
		}
		body, _, err := p.do(ctx, http.MethodGet, path, nil, "twilio list participants")
		if err != nil {
			return calls.RoomStatus{}, err
		}
		var list struct {
			Participants []participant `json:"participants"`
			Meta         struct {
				NextPageURL string `json:"next_page_url"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return calls.RoomStatus{}, fmt.Errorf("twilio list participants: the answer is not a participant list: %w", err)
		}
		for _, pa := range list.Participants {
			joined, _ := time.Parse(time.RFC3339, pa.StartTime)
			out = append(out, calls.Participant{Identity: pa.Identity, JoinedAt: joined.UTC()})
		}
		if list.Meta.NextPageURL == "" {
			break
		}
		// Follow the next page on the configured base, never on a host
		// named in an answer (the request carries the API key).
		next, err := url.Parse(list.Meta.NextPageURL)
		if err != nil {
			return calls.RoomStatus{}, fmt.Errorf("twilio list participants: next_page_url is not a URL: %w", err)
		}
		path = next.RequestURI()
	}
	if out == nil {
		out = []calls.Participant{}
	}
	return calls.RoomStatus{Listed: true, Participants: out}, nil
}

// roomID is how the REST API addresses a room: its SID, or its unique name
// (valid while it is in progress).
func roomID(rm calls.Room) string {
	if rm.ProviderID != "" {
		return rm.ProviderID
	}
	return rm.Name
}

func (p *Provider) remember(sid, name string) {
	if sid == "" || name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.names) >= maxNames {
		clear(p.names)
	}
	p.names[sid] = name
}

// roomName resolves a room SID to its unique name, from memory or from
// GET /v1/Rooms/{Sid} (completed rooms stay readable by SID).
func (p *Provider) roomName(ctx context.Context, sid string) (string, error) {
	p.mu.Lock()
	name, ok := p.names[sid]
	p.mu.Unlock()
	if ok {
		return name, nil
	}
	body, _, err := p.do(ctx, http.MethodGet, "/v1/Rooms/"+url.PathEscape(sid), nil, "twilio fetch room")
	if err != nil {
		return "", err
	}
	var r room
	if err := json.Unmarshal(body, &r); err != nil || r.UniqueName == "" {
		return "", fmt.Errorf("twilio fetch room: the answer has no unique_name")
	}
	p.remember(sid, r.UniqueName)
	return r.UniqueName, nil
}

// apiError is Twilio's error body
// ({"code": 53113, "message": "Room exists", "more_info": …, "status": 400})
// with the HTTP status it came with.
type apiError struct {
	HTTPStatus int
	Code       int    `json:"code"`
	Message    string `json:"message"`
}

// maxBody bounds what is read of an answer.
const maxBody = 1 << 20

// do sends one request with the API key as Basic auth: form-encoded for
// POST, as is for GET (path may carry a query). It returns the body of a
// 2xx answer; otherwise a typed error as httpx.Do makes them (network
// errors, 408, 429 and 5xx temporary after the client's bounded retries,
// the rest permanent with an admin-readable reason) and, for answers that
// are not retried, Twilio's error code.
func (p *Provider) do(ctx context.Context, method, path string, form url.Values, what string) ([]byte, *apiError, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	req.SetBasicAuth(p.keySID, string(p.keySecret))
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	host := req.URL.Host
	resp, err := p.client.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, calls.Temporary(fmt.Errorf("%s at %s: %w", what, host, err), 0)
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		if rerr != nil {
			return nil, nil, calls.Temporary(fmt.Errorf("%s at %s: reading the answer: %w", what, host, rerr), 0)
		}
		return raw, nil, nil
	}
	remote := fmt.Errorf("HTTP %d%s", code, httpx.Snippet(raw))
	if httpx.Retryable(code) {
		return nil, nil, calls.Temporary(fmt.Errorf("%s at %s: %w", what, host, remote), httpx.RetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	te := &apiError{HTTPStatus: code}
	_ = json.NewDecoder(bytes.NewReader(raw)).Decode(te)
	reason := fmt.Sprintf("%s at %s: %s (HTTP %d", what, host, meaning(code, te.Code), code)
	if te.Code != 0 {
		reason += fmt.Sprintf(", Twilio error %d", te.Code)
	}
	return nil, te, calls.Permanent(reason+")", remote)
}

// meaning words a refusal for an admin.
func meaning(status, code int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "the credentials were refused; check account_sid, api_key_sid and api_key_secret"
	case status == http.StatusForbidden:
		return "the API key lacks the permission for this; use a Standard or Main API key"
	case code == 53100 || code == 53101:
		return "Twilio refused the room name"
	case code == codeRoomExists:
		return "a room with this name is already in progress"
	case status == http.StatusNotFound:
		return "not found; check api_url and the ids in the YAML"
	case status >= 300 && status < 400:
		return "redirected; set api_url to the final address"
	}
	return "refused the request"
}
