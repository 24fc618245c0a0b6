package api

import (
	"context"
	"net/http"
	"net/url"
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
	Members      []calls.Member      `json:"members"`
	Participants []calls.Participant `json:"participants"`
	Surfaces     []calls.Surface     `json:"surfaces"`
}

type callResponse struct {
	Call callJSON `json:"call"`
}

func (h *Handler) callJSON(c calls.Call) callJSON {
	out := callJSON{
		ID: c.ID, Type: c.Type, State: c.State, Provider: c.Provider, ProviderKind: h.opts.ProviderKinds[c.Provider],
		Title: c.Title, CreatedBy: c.CreatedBy,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, EndedAt: c.EndedAt,
		JoinURL:      h.stableLink(c.ID),
		Members:      c.Members,
		Participants: c.Participants,
		Surfaces:     c.Surfaces,
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
	if out.Surfaces == nil {
		out.Surfaces = []calls.Surface{}
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
	// UserID lets an API key create a call on behalf of a user, who then
	// owns it; user-token callers always own what they create.
	UserID string `json:"user_id"`
}

func (h *Handler) createCall(c echo.Context) error {
	var req createCallRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	p := principalOf(c)
	if !p.admin() && req.UserID != "" && req.UserID != p.userID {
		return httpserver.NewError(http.StatusForbidden, "forbidden", "a user token cannot create calls for another user")
	}
	call, created, err := h.opts.Service.Create(c.Request().Context(), p.actor(req.UserID), calls.CreateRequest{
		ID: req.ID, Type: req.Type, Provider: req.Provider, Title: req.Title, Members: req.Members, Ring: req.Ring,
		Surface: &calls.Surface{Platform: "api"},
	})
	if err != nil {
		return callError(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, callResponse{Call: h.callJSON(call)})
}

func (h *Handler) getCall(c echo.Context) error {
	call, err := h.opts.Service.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return callError(err)
	}
	p := principalOf(c)
	if !p.admin() {
		if _, member := call.Member(p.userID); !member && !h.opts.Service.GuestJoin() {
			return httpserver.NewError(http.StatusForbidden, "forbidden", "%s is not a member of call %s", p.userID, call.ID)
		}
	}
	return c.JSON(http.StatusOK, callResponse{Call: h.callJSON(call)})
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
	if req.Role != "" {
		if _, err := calls.ParseRole(string(req.Role)); err != nil {
			return callError(err)
		}
	}
	p := principalOf(c)
	call, cred, link, err := h.credential(c, p.actor(req.UserID), c.Param("id"), calls.JoinRequest{UserID: req.UserID, Name: req.Name, Role: req.Role})
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
	p := principalOf(c)
	if !p.admin() && req.UserID != "" && req.UserID != p.userID {
		return httpserver.NewError(http.StatusForbidden, "forbidden", "a user token acts only as its own user")
	}
	call, err := fn(c.Request().Context(), p.actor(req.UserID), c.Param("id"))
	if err != nil {
		return callError(err)
	}
	return c.JSON(http.StatusOK, callResponse{Call: h.callJSON(call)})
}
