package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
)

// Stream's retired third-party calling endpoints: POST
// /channels/{type}/{id}/call creates (or returns) a call and the creator's
// token; POST /calls/{id} returns a token for the caller. Shapes follow the
// seed document and stream-chat-js's types (CreateCallResponse,
// GetCallTokenResponse), where the call carries a provider-named object:
// agora {channel}, hms {room} — and here jitsi and the other kinds too.

type streamCreateRequest struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Options map[string]any `json:"options"`
	UserID  string         `json:"user_id"`
}

type streamCall struct {
	ID       string
	Provider string
	Kind     map[string]any
}

// MarshalJSON puts the provider object under the provider's name, as
// Stream did ({"id":…, "provider":"agora", "agora":{"channel":…}}).
func (s streamCall) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"id": s.ID, "provider": s.Provider, s.Provider: s.Kind})
}

// streamChannelPart is what Stream allowed in channel types and ids.
var streamChannelPart = regexp.MustCompile(`^[a-zA-Z0-9@_!-]{1,64}$`)

func (h *Handler) streamCreateCall(c echo.Context) error {
	started := h.now()
	ctype, cid := c.Param("type"), c.Param("channel")
	if !streamChannelPart.MatchString(ctype) || !streamChannelPart.MatchString(cid) {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "channel type and id may contain only letters, digits and @ _ ! -, at most 64 characters")
	}
	var req streamCreateRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	title, _ := req.Options["title"].(string)
	if err := firstInvalid(calls.ValidateUserID("user_id", req.UserID), calls.ValidateTitle("options.title", title)); err != nil {
		return err
	}
	// Stream required the id; callgate's own API generates one, but the
	// contract is kept: the same id must always reach the same call.
	if strings.TrimSpace(req.ID) == "" {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "id is required")
	}
	if req.Type == "" {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "type is required (\"video\" or \"audio\")")
	}
	actor, err := principalOf(c).actor(req.UserID)
	if err != nil {
		return callError(err)
	}
	call, created, err := h.opts.Service.Create(c.Request().Context(), actor, calls.CreateRequest{
		ID: req.ID, Type: req.Type, Title: title,
		Surfaces: []calls.Surface{{Chat: calls.StreamAPIChat, Channel: ctype + ":" + cid}},
	})
	if err != nil {
		return callError(err)
	}
	// Stream's contract hands out the room with the call, so this endpoint
	// waits (up to rooms.wait) for the worker to create it.
	if call, err = h.opts.Service.AwaitRoom(c.Request().Context(), call); err != nil {
		return callError(err)
	}
	resp := map[string]any{"call": h.streamCall(call)}
	// The token is for the user who created the call; an API key that names
	// no user gets the call without one.
	if actor.UserID != "" {
		_, cred, link, err := h.credential(c, actor, call.ID, calls.JoinRequest{UserID: actor.UserID})
		if err != nil {
			return err
		}
		addStreamToken(resp, cred, h.personalLink(call.ID, link.token))
	}
	resp["duration"] = streamDuration(h.now().Sub(started))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, resp)
}

func (h *Handler) streamCallToken(c echo.Context) error {
	started := h.now()
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	if err := firstInvalid(calls.ValidateUserID("user_id", req.UserID)); err != nil {
		return err
	}
	actor, err := principalOf(c).actor(req.UserID)
	if err != nil {
		return callError(err)
	}
	if actor.UserID == "" {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "user_id is required with an API key")
	}
	call, cred, link, err := h.credential(c, actor, c.Param("id"), calls.JoinRequest{UserID: actor.UserID})
	if err != nil {
		return err
	}
	resp := map[string]any{}
	addStreamToken(resp, cred, h.personalLink(call.ID, link.token))
	resp["duration"] = streamDuration(h.now().Sub(started))
	return c.JSON(http.StatusOK, resp)
}

// StreamCallShaper is an optional provider capability: the provider's
// object in Stream's call shape (agora {channel}, hms {room_id,
// room_name}). Providers without it get {room}.
type StreamCallShaper interface {
	StreamCall(room calls.Room) map[string]any
}

func (h *Handler) streamCall(c calls.Call) streamCall {
	obj := map[string]any{"room": c.Room.Name}
	if p, ok := h.opts.Service.Provider(c.Provider); ok {
		if shaper, ok := p.(StreamCallShaper); ok {
			obj = shaper.StreamCall(c.Room)
		}
	}
	return streamCall{ID: c.ID, Provider: h.opts.ProviderKinds[c.Provider], Kind: obj}
}

// addStreamToken sets token and the provider's extra top-level fields
// (agora_uid, agora_app_id) that Stream's response carried, plus callgate's
// personal join link for clients that only open URLs.
func addStreamToken(resp map[string]any, cred calls.Credential, joinURL string) {
	resp["token"] = cred.Token
	resp["join_url"] = joinURL
	for k, v := range cred.Fields {
		if strings.HasPrefix(k, "agora_") {
			resp[k] = v
		}
	}
}

// streamDuration formats like Stream's "duration" field ("1.23ms").
func streamDuration(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}
