package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/ws"
)

// tokenFromQuery lets browsers, which cannot set headers on a WebSocket
// handshake, send the credential as ?token= (or ?access_token=).
func tokenFromQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Header.Get(echo.HeaderAuthorization) == "" {
			q := r.URL.Query()
			if t := firstNonEmpty(q.Get("token"), q.Get("access_token")); t != "" {
				r.Header.Set(echo.HeaderAuthorization, "Bearer "+t)
			}
		}
		return next(c)
	}
}

// websocket upgrades GET /v1/ws for the authenticated user (a user token,
// or an API key naming the user with ?user_id=); package ws runs the rest.
func (h *Handler) websocket(c echo.Context) error {
	q := c.QueryParams()
	actor, err := principalOf(c).actor(q.Get("user_id"))
	if err != nil {
		return callError(err)
	}
	if actor.UserID == "" {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "an API key must name the user it connects as with ?user_id=")
	}
	name, image := q.Get("name"), q.Get("image_url")
	if err := firstInvalid(calls.ValidateUserID("user_id", actor.UserID), calls.ValidateTitle("name", name), calls.ValidateTitle("image_url", image)); err != nil {
		return err
	}
	if len([]rune(name)) > 64 || len(image) > 2048 {
		return httpserver.NewError(http.StatusBadRequest, "invalid_request", "name is at most 64 characters and image_url at most 2048 bytes")
	}
	last := firstNonEmpty(q.Get("last_event_id"), c.Request().Header.Get("Last-Event-ID"))
	return h.opts.WebSocket.Serve(c.Response(), c.Request(), actor.UserID, ws.Profile{Name: strings.TrimSpace(name), ImageURL: image}, last)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
