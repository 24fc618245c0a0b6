// Package admin serves the admin page (/admin): live calls with their
// provider, surfaces (and each card's delivery status), roster and state;
// recent ended calls; the card outbox (pending, retrying and dead
// deliveries, with a Retry button for dead ones); and provider and chat
// platform health. The page is server-rendered HTML that reads fine without
// JavaScript (a meta refresh keeps it fresh); with JavaScript, server-sent
// events (/admin/events, woken by calls.Wake) replace the parts that
// changed.
//
// Access is its own secret (admin.token: a login form that sets a cookie,
// or Authorization: Bearer), or a header a trusted single-sign-on proxy
// sets (admin.sso_header, believed only from server.trusted_proxies). API
// keys never open it. With neither configured, nothing is registered and
// /admin is a 404.
package admin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/webhooks"
)

// DeliveryLister lists the outbox across calls (calls.Store has it).
type DeliveryLister interface {
	ListDeliveries(ctx context.Context, limit int) ([]calls.Delivery, error)
}

// Options configure the admin page.
type Options struct {
	Service   *calls.Service
	Outbox    DeliveryLister
	Wake      *calls.Wake
	Health    *webhooks.Health
	Token     string
	SSOHeader string
	// TrustedProxies are the only peers whose SSOHeader is believed.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	Now            func() time.Time
	// FailureLimit budgets wrong admin tokens (sign-in or bearer) per
	// client address; past it, 429. Default: a burst of 10, then one a
	// minute.
	FailureLimit httpserver.RateLimit
	// Done, when set, ends every event stream once closed (the gateway
	// shutting down), so a graceful shutdown does not wait on open pages.
	Done <-chan struct{}
	// Refresh is how often the live view re-renders without a wake-up
	// (health and outbox timers change without one); default 3s.
	Refresh time.Duration
}

// Enabled reports whether opts open the page at all.
func (o Options) Enabled() bool { return o.Token != "" || o.SSOHeader != "" }

const (
	cookieName = "callgate_admin"
	sessionTTL = 12 * time.Hour
)

//go:embed admin.html
var pageHTML string

//go:embed admin.js
var adminJS []byte

type handler struct {
	opts Options
	// key signs sessions and CSRF tokens: derived from the admin token, or
	// random per process when only SSO is configured (then a CSRF token is
	// valid on the replica that issued it only).
	key   []byte
	tmpl  *template.Template
	limit *httpserver.Limiter
}

// DefaultFailureLimit is Options.FailureLimit's default.
var DefaultFailureLimit = httpserver.RateLimit{Rate: 1.0 / 60, Burst: 10}

// Register adds /admin, /admin/login, /admin/logout, /admin/retry,
// /admin/events and /admin/admin.js when opts.Enabled().
func Register(e *echo.Echo, opts Options) error {
	if !opts.Enabled() {
		return nil
	}
	if opts.Service == nil || opts.Outbox == nil {
		return errors.New("admin: a service and an outbox lister are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Wake == nil {
		opts.Wake = opts.Service.Wake()
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 3 * time.Second
	}
	h := &handler{opts: opts, limit: httpserver.NewLimiter(opts.FailureLimit, DefaultFailureLimit, opts.Now)}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte("callgate admin session key\x00" + opts.Token))
		h.key = sum[:]
	} else {
		h.key = make([]byte, 32)
		if _, err := rand.Read(h.key); err != nil {
			return err
		}
	}
	var err error
	h.tmpl, err = template.New("admin").Funcs(template.FuncMap{
		"ago":   h.ago,
		"since": func(t time.Time) string { return h.ago(&t) },
		"dur":   func(d time.Duration) string { return d.Round(time.Second).String() },
	}).Parse(pageHTML)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	e.GET("/admin", h.page, h.guard)
	e.POST("/admin/login", h.login, h.guard)
	e.POST("/admin/logout", h.logout, h.guard)
	e.POST("/admin/retry", h.retry, h.guard)
	e.GET("/admin/events", h.events, h.guard)
	e.GET("/admin/admin.js", h.script)
	return nil
}

// who is an authenticated admin.
type who struct {
	name    string
	session string // what the CSRF token is bound to
	bearer  bool   // a header credential: no CSRF possible
}

var (
	errUnauthenticated = errors.New("admin: not signed in")
	errWrongToken      = errors.New("admin: wrong token")
)

// authenticate tells who is asking: a trusted proxy's SSO header, the
// bearer token, or the session cookie, in that order. A wrong bearer token
// (an API key, say) is refused, not ignored.
func (h *handler) authenticate(c echo.Context) (who, error) {
	r := c.Request()
	if h.opts.SSOHeader != "" {
		if user := strings.TrimSpace(r.Header.Get(h.opts.SSOHeader)); user != "" && h.fromTrustedProxy(r) {
			return who{name: "sso:" + user, session: "sso:" + user}, nil
		}
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if ok && h.tokenMatches(tok) {
			return who{name: "token", session: "bearer", bearer: true}, nil
		}
		return who{}, errWrongToken
	}
	if ck, err := r.Cookie(cookieName); err == nil && h.opts.Token != "" {
		if sid, ok := h.verifySession(ck.Value); ok {
			return who{name: "token", session: sid}, nil
		}
	}
	return who{}, errUnauthenticated
}

// fromTrustedProxy reports whether the TCP peer is a configured proxy. The
// peer, not echo's RealIP: RealIP names the client behind the proxy.
func (h *handler) fromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// guard turns away a client that spent its failure budget, and charges a
// wrong token to it.
func (h *handler) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := httpserver.ClientKey(c)
		if wait, blocked := h.limit.Blocked(key); blocked {
			httpserver.RetryAfter(c, wait)
			return echo.NewHTTPError(http.StatusTooManyRequests, "too many wrong admin tokens: wait, then try again")
		}
		return next(c)
	}
}

// failed charges a wrong token to the client's budget.
func (h *handler) failed(c echo.Context) {
	if wait, ok := h.limit.Charge(httpserver.ClientKey(c)); !ok {
		httpserver.RetryAfter(c, wait)
	}
}

// signedIn authenticates a request that needs it: 401 without a session,
// and a wrong token is charged to the client.
func (h *handler) signedIn(c echo.Context) (who, error) {
	w, err := h.authenticate(c)
	if errors.Is(err, errWrongToken) {
		h.failed(c)
	}
	if err != nil {
		return who{}, echo.NewHTTPError(http.StatusUnauthorized, "sign in first")
	}
	return w, nil
}

func (h *handler) tokenMatches(tok string) bool {
	if h.opts.Token == "" {
		return false
	}
	a := sha256.Sum256([]byte(tok))
	b := sha256.Sum256([]byte(h.opts.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (h *handler) mac(parts ...string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie value: id.expiry.mac.
func (h *handler) newSession() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b) + "." + fmt.Sprint(h.opts.Now().Add(sessionTTL).Unix())
	return id + "." + h.mac("session", id)
}

func (h *handler) verifySession(v string) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	id, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(h.mac("session", id))) {
		return "", false
	}
	var exp int64
	if _, err := fmt.Sscan(id[strings.LastIndexByte(id, '.')+1:], &exp); err != nil || h.opts.Now().Unix() > exp {
		return "", false
	}
	return id, true
}

// csrf is the form token of a session: an HMAC of it, so it needs no
// storage and cannot be made without the key.
func (h *handler) csrf(w who) string { return h.mac("csrf", w.session) }

func (h *handler) security(c echo.Context, nonce string) {
	hdr := c.Response().Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
}

func (h *handler) page(c echo.Context) error {
	w, err := h.authenticate(c)
	nonce := calls.RandomString(22)
	h.security(c, nonce)
	if errors.Is(err, errWrongToken) {
		h.failed(c)
	}
	if err != nil {
		return h.render(c, http.StatusUnauthorized, "login", map[string]any{"Nonce": nonce, "TokenLogin": h.opts.Token != "", "Failed": c.QueryParam("failed") != ""})
	}
	v, err := h.view(c.Request().Context(), w)
	if err != nil {
		return err
	}
	v.Nonce = nonce
	return h.render(c, http.StatusOK, "page", v)
}

func (h *handler) render(c echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

func (h *handler) login(c echo.Context) error {
	h.security(c, calls.RandomString(22))
	if !h.tokenMatches(c.FormValue("token")) {
		h.failed(c)
		h.opts.Logger.WarnContext(c.Request().Context(), "admin login refused", "client", c.RealIP())
		return c.Redirect(http.StatusSeeOther, "/admin?failed=1")
	}
	c.SetCookie(&http.Cookie{
		Name: cookieName, Value: h.newSession(), Path: "/admin", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
	return c.Redirect(http.StatusSeeOther, "/admin")
}

func (h *handler) logout(c echo.Context) error {
	w, err := h.signedIn(c)
	if err != nil {
		return err
	}
	if err := h.checkCSRF(c, w); err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: cookieName, Value: "", Path: "/admin", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return c.Redirect(http.StatusSeeOther, "/admin")
}

func (h *handler) checkCSRF(c echo.Context, w who) error {
	if w.bearer {
		return nil
	}
	got := c.FormValue("csrf")
	if got == "" || !hmac.Equal([]byte(got), []byte(h.csrf(w))) {
		return echo.NewHTTPError(http.StatusForbidden, "missing or wrong CSRF token: reload the admin page")
	}
	return nil
}

// retry revives a dead delivery (or every dead one of a call without a
// chat named).
func (h *handler) retry(c echo.Context) error {
	h.security(c, calls.RandomString(22))
	w, err := h.signedIn(c)
	if err != nil {
		return err
	}
	if err := h.checkCSRF(c, w); err != nil {
		return err
	}
	var only *calls.SurfaceKey
	if chat := c.FormValue("chat"); chat != "" {
		only = &calls.SurfaceKey{Chat: chat, Workspace: c.FormValue("workspace"), Channel: c.FormValue("channel")}
	}
	actor := calls.Actor{Kind: calls.ActorSystem, UserID: "admin:" + w.name}
	id := c.FormValue("call")
	if _, err := h.opts.Service.RetryDeliveries(c.Request().Context(), actor, id, only); err != nil {
		if errors.Is(err, calls.ErrNotFound) || errors.Is(err, calls.ErrInvalidInput) {
			return echo.NewHTTPError(http.StatusNotFound, "no such call or surface")
		}
		return err
	}
	h.opts.Logger.InfoContext(c.Request().Context(), "admin retried deliveries", "call_id", id, "admin", w.name)
	if strings.Contains(c.Request().Header.Get("Accept"), "application/json") {
		return c.JSON(http.StatusOK, map[string]any{"ok": true})
	}
	return c.Redirect(http.StatusSeeOther, "/admin#outbox")
}

func (h *handler) script(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", adminJS)
}

// events streams the page's sections as server-sent events: one "update"
// event (a JSON object of section id → HTML) whenever a section changed,
// woken by calls.Wake and every Refresh.
func (h *handler) events(c echo.Context) error {
	w, err := h.signedIn(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	woken, stop := h.opts.Wake.Subscribe()
	defer stop()
	res := c.Response()
	// The server's write timeout is for ordinary requests, not a stream.
	_ = http.NewResponseController(res.Writer).SetWriteDeadline(time.Time{})
	hdr := res.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	res.WriteHeader(http.StatusOK)
	last := map[string]string{}
	tick := time.NewTicker(h.opts.Refresh)
	defer tick.Stop()
	for {
		v, err := h.view(ctx, w)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.opts.Logger.WarnContext(ctx, "admin events: render failed", "err", err)
		} else {
			changed := map[string]string{}
			for _, name := range []string{"live", "ended", "outbox", "health"} {
				var buf bytes.Buffer
				if err := h.tmpl.ExecuteTemplate(&buf, name, v); err != nil {
					return err
				}
				if s := buf.String(); s != last[name] {
					changed[name], last[name] = s, s
				}
			}
			var msg []byte
			if len(changed) > 0 {
				b, _ := json.Marshal(changed)
				msg = append(append([]byte("event: update\ndata: "), b...), "\n\n"...)
			} else {
				msg = []byte(": idle\n\n")
			}
			if _, err := res.Write(msg); err != nil {
				return nil
			}
			res.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.opts.Done:
			return nil
		case <-woken:
			// Let a burst of changes settle into one render.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		case <-tick.C:
		}
	}
}
