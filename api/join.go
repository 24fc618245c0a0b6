package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/templates"
)

// join sends a person to the call at its provider. With ?t= it is a
// personal link: the signed token says who they are and expires. Without,
// it is the stable link on the call card: anyone holding it joins as a
// guest participant, if guests are allowed. A call that is over, a link that
// expired or was tampered with, get a page that says so, never a join.
//
// Pages tell a visitor only what the visitor may know. Only a valid personal
// link shows the call's title. Where guests are not admitted, a stranger
// with the stable link learns nothing: an unknown id, an invalid id, an
// ended call and a live call that needs a personal link all get the same
// 404 page, so ids cannot be probed. Where guests are admitted, the id is
// the invitation, so an ended call says it has ended (without its title).
func (h *Handler) join(c echo.Context) error {
	lang := h.opts.Pages.Language(c.Request().Header.Get("Accept-Language"))
	// The URL may carry a token: keep it out of caches and Referer headers.
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	ctx := c.Request().Context()
	// A client that has failed too often is turned away before the id is
	// looked at, so guessing gets no answer at all.
	if wait, blocked := h.joinLimit.Blocked(httpserver.ClientKey(c)); blocked {
		httpserver.RetryAfter(c, wait)
		return h.renderPage(c, http.StatusTooManyRequests, lang, "rate_limited", "")
	}
	hidden := func() error { return h.page(c, http.StatusNotFound, lang, "not_found", "") }

	id, err := calls.NormalizeID(c.Param("id"))
	if err != nil {
		return hidden()
	}
	actor := calls.Actor{Kind: calls.ActorGuest, UserID: "guest-" + calls.RandomString(10)}
	// A guest's name is typed by anyone: it is cleaned (control characters
	// and invalid UTF-8 dropped) and cut to calls.MaxDisplayNameLength
	// rather than refused, so a long name never costs a guest the call.
	req := calls.JoinRequest{UserID: actor.UserID, Name: calls.SanitizeDisplayName(c.QueryParam("name"))}
	personal := false
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
		actor = calls.Actor{Kind: calls.ActorJoinLink, UserID: claims.UserID}
		req = calls.JoinRequest{UserID: claims.UserID, Name: calls.SanitizeDisplayName(claims.Name)}
		personal = true
	}
	call, cred, err := h.opts.Service.Credential(ctx, actor, id, req)
	title := ""
	if personal {
		title = call.Title
	}
	switch {
	case errors.Is(err, calls.ErrNotFound):
		return hidden()
	case errors.Is(err, calls.ErrCallEnded):
		if !personal && !h.guestsAdmitted(call) {
			return hidden()
		}
		return h.endedPage(c, lang, call, title)
	case errors.Is(err, calls.ErrForbidden):
		// Only a guest is refused: the call exists, but a stranger may not
		// learn that.
		return hidden()
	case errors.Is(err, calls.ErrRoomNotReady):
		// The room is still being created: come back shortly.
		c.Response().Header().Set("Retry-After", "2")
		c.Response().Header().Set("Refresh", "2")
		return h.page(c, http.StatusServiceUnavailable, lang, "preparing", title)
	case err != nil:
		h.log.ErrorContext(ctx, "join failed", "call_id", id, "err", err)
		return h.renderJoin(c, http.StatusBadGateway, templates.Page{Lang: lang, Kind: "unavailable", CallTitle: title, ErrorID: "UNABLE_TO_CONNECT"})
	case cred.JoinURL == "":
		return h.page(c, http.StatusOK, lang, "no_web", title)
	}
	// Not a redirect: a page checks the browser (WebRTC, camera and
	// microphone) first, then sends the visitor on. The provider's URL is in
	// the page only, never in a log line or a header.
	return h.renderJoin(c, http.StatusOK, templates.Page{
		Lang: lang, Kind: "join", CallTitle: title, CallID: call.ID,
		JoinURL: cred.JoinURL, Type: call.Type,
	})
}

// endedPage says a call is over to someone allowed to know it: how it
// ended, how long it lasted and who was in it, in the words of its card.
func (h *Handler) endedPage(c echo.Context, lang string, call calls.Call, title string) error {
	kind := "ended"
	switch call.State {
	case calls.StateMissed, calls.StateRejected:
		kind = "missed"
	case calls.StateFailed:
		kind = "failed"
	}
	card := h.opts.Pages.Card(templates.CardInput{Call: call, Lang: lang, Now: h.now()})
	p := templates.Page{Lang: lang, Kind: kind, CallTitle: title, CallID: call.ID, Summary: card.Summary}
	// Who was in it: everyone who ever joined, as the roster marks remember
	// them (the roster itself is empty once everyone left).
	people := card.People
	if len(people) == 0 {
		for id := range call.Seqs {
			people = append(people, id)
		}
		slices.Sort(people)
	}
	if len(people) > 0 {
		if len(people) > templates.MaxNames {
			people = append(people[:templates.MaxNames:templates.MaxNames], "…")
		}
		p.People = strings.ReplaceAll(h.opts.Pages.Text(lang, "ended.people"), "{names}", strings.Join(people, ", "))
	}
	return h.renderJoin(c, http.StatusGone, p)
}

// renderJoin answers a page that runs the join script: its CSP admits that
// one embedded file by a nonce fresh for each response, and nothing else.
func (h *Handler) renderJoin(c echo.Context, status int, p templates.Page) error {
	p.Nonce = calls.RandomString(22)
	html, err := h.opts.Pages.RenderPage(p)
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+p.Nonce+"'; style-src 'nonce-"+p.Nonce+"'; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	if status >= 400 && status < 500 {
		if wait, ok := h.joinLimit.Charge(httpserver.ClientKey(c)); !ok {
			httpserver.RetryAfter(c, wait)
			return h.renderPage(c, http.StatusTooManyRequests, p.Lang, "rate_limited", "")
		}
	}
	return c.HTMLBlob(status, html)
}

// asset serves the pages' embedded scripts and styles.
func (h *Handler) asset(c echo.Context) error {
	name := c.Param("name")
	b, ok := templates.Asset(name)
	if !ok {
		return echo.ErrNotFound
	}
	ctype := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".js"):
		ctype = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		ctype = "text/css; charset=utf-8"
	}
	hdr := c.Response().Header()
	hdr.Set("Cache-Control", "public, max-age=300")
	hdr.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, ctype, b)
}

// guestsAdmitted reports whether a guest with the stable link would have
// been let into call while it was live: then the id itself is the
// invitation, and its holder may learn that the call has ended.
func (h *Handler) guestsAdmitted(c calls.Call) bool { return c.Guests }

// page answers a join page. A refusal (4xx) is charged to the client's
// join budget; the one that spends it becomes the 429 page.
func (h *Handler) page(c echo.Context, status int, lang, kind, title string) error {
	if status >= 400 && status < 500 {
		if wait, ok := h.joinLimit.Charge(httpserver.ClientKey(c)); !ok {
			httpserver.RetryAfter(c, wait)
			status, kind, title = http.StatusTooManyRequests, "rate_limited", ""
		}
	}
	return h.renderPage(c, status, lang, kind, title)
}

func (h *Handler) renderPage(c echo.Context, status int, lang, kind, title string) error {
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
