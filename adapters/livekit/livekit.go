// Package livekit is the LiveKit provider: rooms through LiveKit's server
// API (Twirp RoomService), join credentials as LiveKit access tokens, and
// status webhooks verified as LiveKit signs them. It works with LiveKit
// Cloud and self-hosted livekit-server alike; the wire is
// github.com/livekit/protocol's.
package livekit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"text/template"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/adapters/internal/hs256"
	"github.com/callgate/callgate/calls"
)

// Config is what New needs; Settings.config builds it from YAML.
type Config struct {
	URL, APIURL       string
	APIKey, APISecret string
	// PreviousAPIKey/PreviousAPISecret: a second pair accepted on webhooks
	// during a rotation.
	PreviousAPIKey, PreviousAPISecret string
	TokenTTL                          time.Duration
	JoinURLTemplate                   string
	E2EE                              bool
	EmptyTimeout, DepartureTimeout    time.Duration
	MaxParticipants                   int
	Now                               func() time.Time
	Logger                            *slog.Logger
	// HTTP is the outbound client; nil means httpx.New.
	HTTP *retryablehttp.Client
}

// Provider is a configured LiveKit project.
type Provider struct {
	wsURL   string // what clients connect to
	apiBase string // the HTTP base of the server API
	key     string
	secret  string
	signer  *hs256.Signer // signs join tokens with secret
	// webhookKeys are the secrets accepted on webhooks, by API key.
	webhookKeys map[string][][]byte
	ttl         time.Duration
	joinTmpl    *template.Template
	e2ee        bool
	emptyTO     uint32
	departureTO uint32
	maxPart     uint32
	now         func() time.Time

	http  *retryablehttp.Client
	rooms lkproto.RoomService
}

// adminTokenTTL is the lifetime of the token on each server API request.
const adminTokenTTL = 10 * time.Minute

// New checks cfg and builds the provider.
func New(cfg Config) (*Provider, error) {
	ws, err := clientURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("livekit: url: %w", err)
	}
	apiRaw := cfg.APIURL
	if apiRaw == "" {
		apiRaw = cfg.URL
	}
	base, err := apiBase(apiRaw)
	if err != nil {
		return nil, fmt.Errorf("livekit: api_url: %w", err)
	}
	if cfg.APIKey == "" || cfg.APISecret == "" {
		return nil, errors.New("livekit: api_key and api_secret are required")
	}
	p := &Provider{
		wsURL: ws, apiBase: base,
		key: cfg.APIKey, secret: cfg.APISecret, signer: hs256.NewSigner([]byte(cfg.APISecret)),
		webhookKeys: map[string][][]byte{cfg.APIKey: {[]byte(cfg.APISecret)}},
		ttl:         cfg.TokenTTL,
		e2ee:        cfg.E2EE,
		emptyTO:     seconds(cfg.EmptyTimeout),
		departureTO: seconds(cfg.DepartureTimeout),
		maxPart:     uint32(max(0, min(cfg.MaxParticipants, 1<<31))),
		now:         cfg.Now,
		http:        cfg.HTTP,
	}
	if cfg.PreviousAPISecret != "" {
		k := cfg.PreviousAPIKey
		if k == "" {
			k = cfg.APIKey
		}
		p.webhookKeys[k] = append(p.webhookKeys[k], []byte(cfg.PreviousAPISecret))
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.JoinURLTemplate != "" {
		if p.joinTmpl, err = parseJoinTemplate(cfg.JoinURLTemplate); err != nil {
			return nil, fmt.Errorf("livekit: join_url_template: %w", err)
		}
	}
	if p.http == nil {
		p.http = httpx.New(httpx.Options{Logger: cfg.Logger})
	}
	// The generated Twirp client speaks JSON (proto field names) over the
	// retrying client: 5xx, 429 and network errors are retried inside one
	// call, within httpx's bounded budget.
	p.rooms = lkproto.NewRoomServiceJSONClient(p.apiBase, p.http.StandardClient())
	return p, nil
}

func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d, maxTimeout) / time.Second)
}

// authorized returns ctx carrying the Authorization header for one server
// API request: a short-lived token with the grants RoomService checks
// (roomCreate for Create/DeleteRoom, roomList for ListRooms, roomAdmin on
// the room for ListParticipants).
func (p *Provider) authorized(ctx context.Context, room string) (context.Context, error) {
	tok, err := auth.NewAccessToken(p.key, p.secret).
		SetVideoGrant(&auth.VideoGrant{RoomCreate: true, RoomList: true, RoomAdmin: true, Room: room}).
		SetValidFor(adminTokenTTL).
		ToJWT()
	if err != nil {
		return ctx, fmt.Errorf("%w: livekit: sign the server API token: %w", calls.ErrProvider, err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return twirp.WithHTTPRequestHeaders(ctx, h)
}

// roomMetadata is what callgate puts in the room's metadata, visible to
// participants' clients.
type roomMetadata struct {
	CallID string `json:"callgate_call_id"`
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
}

// CreateRoom creates the call's room through RoomService.CreateRoom. The
// room is named after the call id: LiveKit rooms are not public (joining
// takes a token this gateway signs), so the name needs nothing
// unguessable. It is idempotent because LiveKit's CreateRoom on a name
// that exists returns the existing room instead of making a second one.
func (p *Provider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	if req.CallID == "" {
		return calls.Room{}, fmt.Errorf("%w: livekit: the call has no id", calls.ErrInvalidInput)
	}
	// A room-strategy name (one room per channel or per person) replaces
	// the call id; CreateRoom on that name returns the room when it lives.
	name := req.RoomName()
	meta, _ := json.Marshal(roomMetadata{CallID: req.CallID, Type: string(req.Type), Title: req.Title})
	ctx, err := p.authorized(ctx, name)
	if err != nil {
		return calls.Room{}, err
	}
	r, err := p.rooms.CreateRoom(ctx, &lkproto.CreateRoomRequest{
		Name:             name,
		EmptyTimeout:     p.emptyTO,
		DepartureTimeout: p.departureTO,
		MaxParticipants:  p.maxPart,
		Metadata:         string(meta),
	})
	if err != nil {
		return calls.Room{}, p.apiError("livekit create room", err)
	}
	if r.GetName() != name {
		return calls.Room{}, calls.Permanentf("livekit create room: the server answered with room %q instead of %q", r.GetName(), name)
	}
	return calls.Room{Name: r.GetName(), ProviderID: r.GetSid()}, nil
}

// EndRoom deletes the room, disconnecting everyone (RoomService.DeleteRoom).
// A room that is already gone (not_found) is not an error.
func (p *Provider) EndRoom(ctx context.Context, room calls.Room) error {
	if room.Name == "" {
		return nil
	}
	ctx, err := p.authorized(ctx, room.Name)
	if err != nil {
		return err
	}
	if _, err := p.rooms.DeleteRoom(ctx, &lkproto.DeleteRoomRequest{Room: room.Name}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return p.apiError("livekit delete room", err)
	}
	return nil
}

// RoomStatus reports the room's roster (RoomService.ListParticipants) and
// whether it is gone.
//
// Gone is decided like this. LiveKit deletes a room on DeleteRoom and when
// it has been empty for empty_timeout/departure_timeout; it never hides
// one. So for a room callgate created, LiveKit saying it has no such room
// is a confirmed "gone". LiveKit says it two ways: a Twirp not_found error
// (a Twirp JSON error body; a bare 404 from a proxy in front is ambiguous
// and stays an error), or, because livekit-server answers ListParticipants
// for an unknown room with an empty list rather than not_found, an empty
// list followed by ListRooms{names: [room]} without the room. Timeouts,
// 5xx and every other error are "do not know".
func (p *Provider) RoomStatus(ctx context.Context, room calls.Room) (calls.RoomStatus, error) {
	if room.Name == "" {
		return calls.RoomStatus{}, fmt.Errorf("%w: livekit: the room has no name", calls.ErrInvalidInput)
	}
	actx, err := p.authorized(ctx, room.Name)
	if err != nil {
		return calls.RoomStatus{}, err
	}
	res, err := p.rooms.ListParticipants(actx, &lkproto.ListParticipantsRequest{Room: room.Name})
	if err != nil {
		if isNotFound(err) {
			return calls.RoomStatus{Gone: true}, nil
		}
		return calls.RoomStatus{}, p.apiError("livekit list participants", err)
	}
	st := calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}
	for _, pi := range res.GetParticipants() {
		if !counts(pi) {
			continue
		}
		st.Participants = append(st.Participants, calls.Participant{
			Identity: pi.GetIdentity(), Name: pi.GetName(), JoinedAt: joinedAt(pi),
		})
	}
	if len(res.GetParticipants()) > 0 {
		return st, nil
	}
	// An empty list: an empty room, or no room at all.
	rooms, err := p.rooms.ListRooms(actx, &lkproto.ListRoomsRequest{Names: []string{room.Name}})
	if err != nil {
		return calls.RoomStatus{}, p.apiError("livekit list rooms", err)
	}
	for _, r := range rooms.GetRooms() {
		if r.GetName() == room.Name {
			return st, nil
		}
	}
	return calls.RoomStatus{Gone: true}, nil
}

// counts reports whether a participant is a person in the call: egress
// (recorders) and ingress participants are machinery.
func counts(pi *lkproto.ParticipantInfo) bool {
	switch pi.GetKind() {
	case lkproto.ParticipantInfo_EGRESS, lkproto.ParticipantInfo_INGRESS:
		return false
	}
	return pi.GetIdentity() != ""
}

func joinedAt(pi *lkproto.ParticipantInfo) time.Time {
	if ms := pi.GetJoinedAtMs(); ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	if s := pi.GetJoinedAt(); s > 0 {
		return time.Unix(s, 0).UTC()
	}
	return time.Time{}
}

// isNotFound reports a Twirp not_found the LiveKit server itself sent (a
// 404 from something in front of it is not an answer about the room).
func isNotFound(err error) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == twirp.NotFound && te.Meta("http_error_from_intermediary") == ""
}

// apiError maps a Twirp client error onto the gateway's typed errors:
// network failures, timeouts, 5xx and 429 (after httpx's retries) are
// calls.TemporaryError; refusals are calls.PermanentError with a reason
// for an admin. Twirp messages are the server's and never hold the
// request's token.
func (p *Provider) apiError(what string, err error) error {
	var te twirp.Error
	if !errors.As(err, &te) {
		return calls.Temporary(fmt.Errorf("%s: %w", what, err), 0)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return calls.Temporary(fmt.Errorf("%s: %w", what, err), 0)
	}
	status := 0
	if s := te.Meta("status_code"); s != "" {
		status, _ = strconv.Atoi(s)
	}
	if status == 0 {
		status = twirp.ServerHTTPStatusFromErrorCode(te.Code())
	}
	remote := fmt.Errorf("twirp %s (HTTP %d): %s", te.Code(), status, te.Msg())
	switch te.Code() {
	case twirp.Canceled, twirp.DeadlineExceeded, twirp.Unavailable, twirp.ResourceExhausted,
		twirp.Internal, twirp.Unknown, twirp.Aborted, twirp.DataLoss:
		if te.Code() == twirp.Internal || te.Code() == twirp.Unknown {
			// The client also reports a redirect as Internal and a 4xx from
			// something in front of the server as Unknown: those are
			// refusals, not blips.
			if status >= 300 && status < 500 && !httpx.Retryable(status) {
				break
			}
		}
		return calls.Temporary(fmt.Errorf("%s at %s: %w", what, p.apiBase, remote), 0)
	}
	return calls.Permanent(fmt.Sprintf("%s at %s: %s", what, p.apiBase, meaning(te.Code(), status)), remote)
}

// meaning words a refusal for an admin.
func meaning(code twirp.ErrorCode, status int) string {
	switch {
	case code == twirp.Unauthenticated || status == http.StatusUnauthorized:
		return "the API key or secret was refused; check api_key and api_secret in the YAML (HTTP 401)"
	case code == twirp.PermissionDenied || status == http.StatusForbidden:
		return "the API key lacks the permission for this (HTTP 403)"
	case code == twirp.BadRoute || code == twirp.Unimplemented:
		return fmt.Sprintf("the server API was not found; check url/api_url point at a LiveKit server (HTTP %d)", status)
	case code == twirp.NotFound:
		return "the room was not found (HTTP 404)"
	case code == twirp.InvalidArgument || code == twirp.Malformed || code == twirp.OutOfRange:
		return fmt.Sprintf("the request was refused as invalid (HTTP %d)", status)
	case status >= 300 && status < 400:
		return fmt.Sprintf("redirected; set api_url to the final address (HTTP %d)", status)
	}
	return fmt.Sprintf("refused the request: %s (HTTP %d)", code, status)
}

// StreamCall is the room in Stream's retired call shape (api.StreamCallShaper):
// `livekit: {room, sid, url}` — what a LiveKit client needs besides the token.
func (p *Provider) StreamCall(room calls.Room) map[string]any {
	out := map[string]any{"room": room.Name, "url": p.wsURL}
	if room.ProviderID != "" {
		out["sid"] = room.ProviderID
	}
	return out
}
