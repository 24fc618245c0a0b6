package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
)

// callJSON is the call object every endpoint returns.
type callJSON struct {
	ID           string              `json:"id"`
	Type         calls.Type          `json:"type"`
	State        calls.State         `json:"state"`
	Provider     string              `json:"provider"`
	ProviderKind string              `json:"provider_kind"`
	Title        string              `json:"title"`
	CreatedBy    string              `json:"created_by,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	UpdatedAt    time.Time           `json:"updated_at"`
	EndedAt      *time.Time          `json:"ended_at"`
	EndReason    *string             `json:"end_reason"`
	JoinURL      string              `json:"join_url"`
	Guests       bool                `json:"guests"`
	Room         roomJSON            `json:"room"`
	Members      []calls.Member      `json:"members"`
	Participants []calls.Participant `json:"participants"`
	Surfaces     []surfaceJSON       `json:"surfaces"`
	Recordings   []calls.Recording   `json:"recordings"`
}

// roomJSON says where the provider room stands. error (why it could not be
// created) is for server keys only.
type roomJSON struct {
	Status string `json:"status"` // preparing, ready, failed
	Name   string `json:"name,omitempty"`
	Error  string `json:"error,omitempty"`
}

// surfaceJSON is a place the call is shown and its card's delivery state.
type surfaceJSON struct {
	Chat           string     `json:"chat"`
	Workspace      string     `json:"workspace,omitempty"`
	ConversationID string     `json:"conversation_id,omitempty"`
	Status         string     `json:"status"` // delivered, pending, retrying, dead
	WantedVersion  int64      `json:"wanted_version"`
	ShownVersion   int64      `json:"shown_version"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	DeadAt         *time.Time `json:"dead_at,omitempty"`
}

type callResponse struct {
	Call callJSON `json:"call"`
}

func (h *Handler) callJSON(c calls.Call, admin bool) callJSON {
	out := callJSON{
		ID: c.ID, Type: c.Type, State: c.State, Provider: c.Provider, ProviderKind: h.opts.ProviderKinds[c.Provider],
		Title: c.Title, CreatedBy: c.CreatedBy,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, EndedAt: c.EndedAt,
		JoinURL:      h.stableLink(c.ID),
		Guests:       c.Guests,
		Room:         roomJSON{Status: c.RoomStatus(), Name: c.Room.Name},
		Members:      c.Members,
		Participants: c.Participants,
		Surfaces:     []surfaceJSON{},
		Recordings:   c.Recordings,
	}
	if out.Recordings == nil {
		out.Recordings = []calls.Recording{}
	}
	if admin {
		out.Room.Error = c.Room.Error
	}
	for _, sf := range c.Surfaces {
		d := sf.Delivery
		sj := surfaceJSON{
			Chat: sf.Chat, Workspace: sf.Workspace, ConversationID: sf.Channel, Status: d.Status(),
			WantedVersion: d.Wanted, ShownVersion: d.Shown, Attempts: d.Attempts, DeadAt: d.DeadAt,
		}
		if d.Status() == "retrying" {
			t := d.NextAttemptAt
			sj.NextAttemptAt = &t
		}
		if admin {
			sj.LastError = d.LastError
		}
		out.Surfaces = append(out.Surfaces, sj)
	}
	if c.EndReason != "" {
		out.EndReason = &c.EndReason
	}
	// Empty lists are [] rather than null, so clients can iterate blindly.
	if out.Members == nil {
		out.Members = []calls.Member{}
	}
	if out.Participants == nil {
		out.Participants = []calls.Participant{}
	}
	return out
}

func (h *Handler) stableLink(id string) string {
	return h.opts.PublicURL + "/join/" + url.PathEscape(id)
}

type createCallRequest struct {
	ID       string         `json:"id"`
	Type     string         `json:"type"`
	Provider string         `json:"provider"`
	Title    string         `json:"title"`
	Members  []calls.Member `json:"members"`
	Ring     bool           `json:"ring"`
	// Guests admits people who are not members through the stable link;
	// by default only calls with a generated id do.
	Guests *bool `json:"guests"`
	// Surfaces are chat conversations to show the call in, on configured
	// chat platforms.
	Surfaces []surfaceRequest `json:"surfaces"`
	// UserID lets an API key create a call on behalf of a user, who then
	// owns it; user-token callers always own what they create.
	UserID string `json:"user_id"`
}

type surfaceRequest struct {
	Chat           string `json:"chat"`
	Workspace      string `json:"workspace"`
	ConversationID string `json:"conversation_id"`
}

// maxSurfaces bounds the surfaces one request may add.
const maxSurfaces = 20

func (h *Handler) surfaces(in []surfaceRequest) ([]calls.Surface, error) {
	if len(in) > maxSurfaces {
		return nil, httpserver.NewError(http.StatusBadRequest, "invalid_request", "at most %d surfaces", maxSurfaces)
	}
	out := make([]calls.Surface, 0, len(in))
	for i, s := range in {
		if !h.opts.Chats[s.Chat] {
			return nil, httpserver.NewError(http.StatusBadRequest, "invalid_request", "surfaces[%d].chat: %q is not a configured chat platform", i, s.Chat)
		}
		if s.ConversationID == "" || len(s.ConversationID) > 255 || len(s.Workspace) > 255 {
			return nil, httpserver.NewError(http.StatusBadRequest, "invalid_request", "surfaces[%d]: conversation_id is required and, like workspace, at most 255 characters", i)
		}
		out = append(out, calls.Surface{Chat: s.Chat, Workspace: s.Workspace, Channel: s.ConversationID})
	}
	return out, nil
}

func (h *Handler) createCall(c echo.Context) error {
	var req createCallRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	checks := []error{calls.ValidateUserID("user_id", req.UserID), calls.ValidateTitle("title", req.Title)}
	for i, m := range req.Members {
		checks = append(checks, calls.ValidateUserID(fmt.Sprintf("members[%d].user_id", i), m.UserID))
	}
	if err := firstInvalid(checks...); err != nil {
		return err
	}
	p := principalOf(c)
	actor, err := p.actor(req.UserID)
	if err != nil {
		return callError(err)
	}
	surfaces, err := h.surfaces(req.Surfaces)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if req.Ring && actor.UserID != "" {
		// A user who blocked the caller is not rung by any API (the
		// WebSocket API refuses it with 10011). Busy is not checked here:
		// an app ringing over REST decides about call waiting itself.
		var callees []string
		for _, m := range req.Members {
			if m.UserID != actor.UserID {
				callees = append(callees, m.UserID)
			}
		}
		ctx = calls.WithAvailabilityCheck(ctx, calls.AvailabilityCheck{Caller: actor.UserID, Callees: callees})
	}
	call, created, err := h.opts.Service.Create(ctx, actor, calls.CreateRequest{
		ID: req.ID, Type: req.Type, Provider: req.Provider, Title: req.Title, Members: req.Members, Ring: req.Ring,
		Guests: req.Guests, Surfaces: surfaces,
	})
	if err != nil {
		return callError(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, callResponse{Call: h.callJSON(call, p.admin())})
}

func (h *Handler) getCall(c echo.Context) error {
	p := principalOf(c)
	actor, err := p.actor("")
	if err != nil {
		return callError(err)
	}
	call, err := h.opts.Service.View(c.Request().Context(), actor, c.Param("id"))
	if err != nil {
		return callError(err)
	}
	return c.JSON(http.StatusOK, callResponse{Call: h.callJSON(call, p.admin())})
}

type retryRequest struct {
	Chat           string `json:"chat"`
	Workspace      string `json:"workspace"`
	ConversationID string `json:"conversation_id"`
}

// retryDeliveries revives dead card deliveries of the call: all of them, or
// the surface named.
func (h *Handler) retryDeliveries(c echo.Context) error {
	var req retryRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	p := principalOf(c)
	actor, err := p.actor("")
	if err != nil {
		return callError(err)
	}
	var only *calls.SurfaceKey
	if req.Chat != "" {
		only = &calls.SurfaceKey{Chat: req.Chat, Workspace: req.Workspace, Channel: req.ConversationID}
	}
	call, err := h.opts.Service.RetryDeliveries(c.Request().Context(), actor, c.Param("id"), only)
	if err != nil {
		return callError(err)
	}
	return c.JSON(http.StatusOK, callResponse{Call: h.callJSON(call, p.admin())})
}

type tokenRequest struct {
	UserID string     `json:"user_id"`
	Name   string     `json:"name"`
	Role   calls.Role `json:"role"`
}

type tokenResponse struct {
	CallID       string         `json:"call_id"`
	UserID       string         `json:"user_id"`
	Provider     string         `json:"provider"`
	ProviderKind string         `json:"provider_kind"`
	JoinURL      string         `json:"join_url"`
	ExpiresAt    time.Time      `json:"expires_at"`
	Token        string         `json:"token,omitempty"`
	Fields       map[string]any `json:"fields,omitempty"`
}

func (h *Handler) callToken(c echo.Context) error {
	var req tokenRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	if err := firstInvalid(calls.ValidateUserID("user_id", req.UserID), calls.ValidateDisplayName("name", req.Name)); err != nil {
		return err
	}
	if req.Role != "" {
		if _, err := calls.ParseRole(string(req.Role)); err != nil {
			return callError(err)
		}
	}
	p := principalOf(c)
	actor, err := p.actor(req.UserID)
	if err != nil {
		return callError(err)
	}
	call, cred, link, err := h.credential(c, actor, c.Param("id"), calls.JoinRequest{UserID: req.UserID, Name: req.Name, Role: req.Role})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenResponse{
		CallID: call.ID, UserID: link.UserID, Provider: call.Provider, ProviderKind: h.opts.ProviderKinds[call.Provider],
		JoinURL: h.personalLink(call.ID, link.token), ExpiresAt: link.Expiry,
		Token: cred.Token, Fields: cred.Fields,
	})
}

type personalLink struct {
	joinlink.Claims
	token string
}

// credential mints the provider credential and a personal join link that
// expires with it.
func (h *Handler) credential(c echo.Context, actor calls.Actor, id string, req calls.JoinRequest) (calls.Call, calls.Credential, personalLink, error) {
	call, cred, err := h.opts.Service.Credential(c.Request().Context(), actor, id, req)
	if err != nil {
		return call, cred, personalLink{}, callError(err)
	}
	userID := req.UserID
	if userID == "" {
		userID = actor.UserID
	}
	claims := joinlink.Claims{CallID: call.ID, UserID: userID, Name: req.Name, Expiry: cred.ExpiresAt}
	if claims.Expiry.IsZero() {
		claims.Expiry = h.now().Add(h.opts.Service.TokenTTL())
	}
	tok, err := h.opts.Links.Sign(claims)
	if err != nil {
		return call, cred, personalLink{}, err
	}
	return call, cred, personalLink{Claims: claims, token: tok}, nil
}

func (h *Handler) personalLink(id, token string) string {
	return h.stableLink(id) + "?t=" + url.QueryEscape(token)
}

type actorRequest struct {
	UserID string `json:"user_id"`
}

func (h *Handler) endCall(c echo.Context) error {
	return h.change(c, h.opts.Service.End)
}

func (h *Handler) acceptCall(c echo.Context) error {
	return h.change(c, h.opts.Service.Accept)
}

func (h *Handler) declineCall(c echo.Context) error {
	return h.change(c, h.opts.Service.Decline)
}

type changeFunc func(ctx context.Context, actor calls.Actor, id string) (calls.Call, error)

func (h *Handler) change(c echo.Context, fn changeFunc) error {
	var req actorRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	if err := firstInvalid(calls.ValidateUserID("user_id", req.UserID)); err != nil {
		return err
	}
	p := principalOf(c)
	actor, err := p.actor(req.UserID)
	if err != nil {
		return callError(err)
	}
	call, err := fn(c.Request().Context(), actor, c.Param("id"))
	if err != nil {
		return callError(err)
	}
	return c.JSON(http.StatusOK, callResponse{Call: h.callJSON(call, p.admin())})
}

// firstInvalid returns the first failed input check as an API error (400
// invalid_request naming the field), or nil.
func firstInvalid(checks ...error) error {
	for _, err := range checks {
		if err != nil {
			return callError(err)
		}
	}
	return nil
}

// listResponse is a page of the call history.
type listResponse struct {
	Calls []historyJSON `json:"calls"`
	// Next is the cursor of the next page; absent on the last.
	Next string `json:"next,omitempty"`
}

// historyJSON is a call in the history: the call object plus how long it
// lasted.
type historyJSON struct {
	callJSON
	// DurationSeconds is from creation to the end (to now while live).
	DurationSeconds int64 `json:"duration_seconds"`
}

// listCalls is the call history: GET /v1/calls?chat=&workspace=&conversation_id=&user_id=&state=&since=&until=&limit=&cursor=
func (h *Handler) listCalls(c echo.Context) error {
	p := principalOf(c)
	actor, err := p.actor("")
	if err != nil {
		return callError(err)
	}
	qp := c.QueryParams()
	q := calls.SearchQuery{
		Chat: qp.Get("chat"), Workspace: qp.Get("workspace"), Channel: qp.Get("conversation_id"),
		UserID: qp.Get("user_id"), Cursor: qp.Get("cursor"),
	}
	for _, st := range qp["state"] {
		if !slices.Contains(calls.States, calls.State(st)) {
			return httpserver.NewError(http.StatusBadRequest, "invalid_request", "state %q is not a call state", st)
		}
		q.States = append(q.States, calls.State(st))
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if v := qp.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return httpserver.NewError(http.StatusBadRequest, "invalid_request", "%s must be an RFC 3339 time such as 2026-05-01T12:00:00Z", name)
			}
			*dst = t
		}
	}
	if v := qp.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return httpserver.NewError(http.StatusBadRequest, "invalid_request", "limit must be between 1 and 200")
		}
		q.Limit = n
	}
	if q.Limit == 0 {
		q.Limit = 50
	}
	found, next, err := h.opts.Service.Search(c.Request().Context(), actor, q)
	if err != nil {
		return callError(err)
	}
	now := h.now()
	out := listResponse{Calls: []historyJSON{}, Next: next}
	for _, call := range found {
		end := now
		if call.EndedAt != nil {
			end = *call.EndedAt
		}
		out.Calls = append(out.Calls, historyJSON{callJSON: h.callJSON(call, p.admin()), DurationSeconds: int64(max(end.Sub(call.CreatedAt), 0) / time.Second)})
	}
	return c.JSON(http.StatusOK, out)
}
