package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/templates"
)

// maxGuestName bounds the display name a guest may pass in ?name=.
const maxGuestName = 64

// join sends a person to the call at its provider. With ?t= it is a
// personal link: the signed token says who they are and expires. Without,
// it is the stable link on the call card: anyone holding it joins as a
// guest participant, if guests are allowed. A call that is over, a link that
// expired or was tampered with, get a page that says so, never a join.
func (h *Handler) join(c echo.Context) error {
	lang := h.opts.Pages.Language(c.Request().Header.Get("Accept-Language"))
	// The URL may carry a token: keep it out of caches and Referer headers.
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	ctx := c.Request().Context()

	id, err := calls.NormalizeID(c.Param("id"))
	if err != nil {
		return h.page(c, http.StatusNotFound, lang, "not_found", "")
	}
	actor := calls.Actor{UserID: "guest-" + calls.RandomString(10)}
	req := calls.JoinRequest{UserID: actor.UserID, Name: strings.TrimSpace(c.QueryParam("name"))}
	if len([]rune(req.Name)) > maxGuestName {
		req.Name = string([]rune(req.Name)[:maxGuestName])
	}
	if tok := c.QueryParam("t"); tok != "" {
		claims, err := h.opts.Links.Verify(tok)
		switch {
		case errors.Is(err, joinlink.ErrExpired):
			return h.page(c, http.StatusForbidden, lang, "expired", "")
		case err != nil || claims.CallID != id:
			return h.page(c, http.StatusForbidden, lang, "invalid", "")
		}
		// The link was signed for this person by a request that was allowed
		// to ask for their credential, so it carries that permission.
		actor = calls.Actor{UserID: claims.UserID, Admin: true}
		req = calls.JoinRequest{UserID: claims.UserID, Name: claims.Name}
	}
	call, cred, err := h.opts.Service.Credential(ctx, actor, id, req)
	switch {
	case errors.Is(err, calls.ErrNotFound):
		return h.page(c, http.StatusNotFound, lang, "not_found", "")
	case errors.Is(err, calls.ErrCallEnded):
		return h.page(c, http.StatusGone, lang, "ended", call.Title)
	case errors.Is(err, calls.ErrForbidden):
		return h.page(c, http.StatusForbidden, lang, "personal_only", call.Title)
	case err != nil:
		h.log.ErrorContext(ctx, "join failed", "call_id", id, "err", err)
		return h.page(c, http.StatusBadGateway, lang, "unavailable", call.Title)
	case cred.JoinURL == "":
		return h.page(c, http.StatusOK, lang, "no_web", call.Title)
	}
	return c.Redirect(http.StatusFound, cred.JoinURL)
}

func (h *Handler) page(c echo.Context, status int, lang, kind, title string) error {
	html, err := h.opts.Pages.RenderPage(templates.Page{Lang: lang, Kind: kind, CallTitle: title})
	if err != nil {
		return err
	}
	// The pages are static text: no scripts, no framing, no sniffing.
	hdr := c.Response().Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	return c.HTMLBlob(status, html)
}
