// Package api is callgate's HTTP surface for apps and people: the REST API
// under /v1, Stream's retired calling endpoints (so apps built on them can
// point here instead), the join links, and the OpenAPI document.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/ws"
)

// Key is one server API key.
type Key struct {
	Name   string
	Secret string
}

// Options are the API's dependencies.
type Options struct {
	Service *calls.Service
	Keys    []Key
	// UserTokenSecrets verify user tokens; the first is current, the rest
	// stay valid during rotation. Empty disables user tokens.
	UserTokenSecrets [][]byte
	// PublicURL is the gateway's external base URL, without trailing slash.
	PublicURL string
	Links     *joinlink.Signer
	Pages     *templates.Set
	// ProviderKinds maps configured provider names to adapter kinds
	// ("jitsi", "agora", …), which Stream's contract reports.
	ProviderKinds map[string]string
	// Chats names the configured chat platforms a call may be shown on
	// (`surfaces` in POST /v1/calls).
	Chats  map[string]bool
	Logger *slog.Logger
	Now    func() time.Time
	// REST serves /v1 and Stream's endpoints; without it only join links
	// and the OpenAPI document are served (api.enabled: false).
	REST bool
	// AuthFailureLimit budgets failed authentications (missing, wrong or
	// expired API keys and user tokens) per client address; past it the
	// API answers 429. Requests that authenticate never consume it.
	// Default: a burst of 20, then one every 5 s.
	AuthFailureLimit httpserver.RateLimit
	// JoinLimit budgets failed join-link visits (unknown or refused ids,
	// expired or altered links) per client address; past it /join answers
	// a 429 page. Joins that succeed never consume it. Default: a burst of
	// 30, then one every 2 s.
	JoinLimit httpserver.RateLimit
	// WebSocket, when set, serves GET /v1/ws (package ws).
	WebSocket *ws.Hub
}

// Default rate limits, for the zero fields of Options' limits.
var (
	DefaultAuthFailureLimit = httpserver.RateLimit{Rate: 0.2, Burst: 20}
	DefaultJoinLimit        = httpserver.RateLimit{Rate: 0.5, Burst: 30}
)

// Handler serves the API.
type Handler struct {
	opts      Options
	keyHashes []keyHash
	log       *slog.Logger
	now       func() time.Time
	authLimit *httpserver.Limiter
	joinLimit *httpserver.Limiter
}

type keyHash struct {
	name string
	sum  [sha256.Size]byte
}

// Register adds every API route to e.
func Register(e *echo.Echo, opts Options) (*Handler, error) {
	if opts.Service == nil || opts.Links == nil || opts.Pages == nil {
		return nil, errors.New("api: service, link signer and pages are required")
	}
	if opts.REST && len(opts.Keys) == 0 && len(opts.UserTokenSecrets) == 0 {
		return nil, errors.New("api: at least one API key or user token secret is required")
	}
	h := &Handler{opts: opts, log: opts.Logger, now: opts.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	h.authLimit = httpserver.NewLimiter(opts.AuthFailureLimit, DefaultAuthFailureLimit, h.now)
	h.joinLimit = httpserver.NewLimiter(opts.JoinLimit, DefaultJoinLimit, h.now)
	for _, k := range opts.Keys {
		h.keyHashes = append(h.keyHashes, keyHash{name: k.Name, sum: sha256.Sum256([]byte(k.Secret))})
	}

	e.GET("/openapi.yaml", serveOpenAPI)
	e.GET("/join/:id", h.join)
	e.GET("/assets/:name", h.asset)

	if !opts.REST {
		return h, nil
	}
	v1 := e.Group("/v1", h.authenticate)
	v1.POST("/calls", h.createCall)
	v1.GET("/calls", h.listCalls)
	v1.GET("/calls/:id", h.getCall)
	v1.POST("/calls/:id/token", h.callToken)
	v1.POST("/calls/:id/end", h.endCall)
	v1.POST("/calls/:id/accept", h.acceptCall)
	v1.POST("/calls/:id/decline", h.declineCall)
	v1.POST("/calls/:id/deliveries/retry", h.retryDeliveries)

	if opts.WebSocket != nil {
		e.GET("/v1/ws", h.websocket, tokenFromQuery, h.authenticate)
	}

	// Stream's retired third-party calling endpoints, same paths and shapes.
	e.POST("/channels/:type/:channel/call", h.streamCreateCall, h.authenticate)
	e.POST("/calls/:id", h.streamCallToken, h.authenticate)
	return h, nil
}

// principal is who authenticated a request.
type principal struct {
	key    string // API key name, for API-key callers
	userID string // for user-token callers
}

func (p principal) admin() bool { return p.key != "" }

// actor is who the request acts as: a user-token caller is always that
// user; an API key may name the user it acts for. calls.Actor.ActFor holds
// the rule; a user token naming someone else is refused there.
func (p principal) actor(userID string) (calls.Actor, error) {
	base := calls.UserActor(p.userID)
	if p.admin() {
		base = calls.APIKeyActor("")
	}
	return base.ActFor(userID)
}

const principalKey = "callgate.principal"

func principalOf(c echo.Context) principal {
	p, _ := c.Get(principalKey).(principal)
	return p
}

// authenticate accepts "Authorization: Bearer <credential>" and, as Stream's
// clients send it, the bare credential. The credential is an API key or a
// user token (an HS256 JWT with user_id and exp).
func (h *Handler) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := strings.TrimSpace(c.Request().Header.Get(echo.HeaderAuthorization))
		if raw == "" {
			return h.authFailed(c, httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "missing Authorization header; send \"Authorization: Bearer <api key or user token>\""))
		}
		if scheme, rest, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "bearer") {
			raw = strings.TrimSpace(rest)
		}
		if name, ok := h.matchKey(raw); ok {
			c.Set(principalKey, principal{key: name})
			return next(c)
		}
		if strings.Count(raw, ".") == 2 && len(h.opts.UserTokenSecrets) > 0 {
			userID, err := h.verifyUserToken(raw)
			if err != nil {
				return h.authFailed(c, httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "invalid user token: %s", err))
			}
			// The token is genuine but its user id cannot be stored: the
			// app's backend minted a bad one, which is a request error.
			if err := firstInvalid(calls.ValidateUserID("the user token's user_id claim", userID)); err != nil {
				return err
			}
			c.Set(principalKey, principal{userID: userID})
			return next(c)
		}
		return h.authFailed(c, httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "invalid API key or user token"))
	}
}

// authFailed charges a failed authentication to the client's budget: the
// 401 while there is budget left, a 429 with Retry-After once it is spent.
// Only failures are charged, and a good credential is checked before the
// budget, so a client that authenticates is never limited.
func (h *Handler) authFailed(c echo.Context, err *httpserver.Error) error {
	if wait, ok := h.authLimit.Charge(httpserver.ClientKey(c)); !ok {
		return httpserver.RateLimited(c, wait, "failed authentications")
	}
	return err
}

// matchKey compares the candidate with every key in constant time, hashing
// both sides first so neither length nor content leaks through timing, and
// without stopping at the first match.
func (h *Handler) matchKey(candidate string) (string, bool) {
	sum := sha256.Sum256([]byte(candidate))
	found := ""
	for _, k := range h.keyHashes {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			found = k.name
		}
	}
	return found, found != ""
}

type userTokenClaims struct {
	UserID string `json:"user_id"`
	jwt.RegisteredClaims
}

func (h *Handler) verifyUserToken(raw string) (string, error) {
	var lastErr error
	for _, secret := range h.opts.UserTokenSecrets {
		var claims userTokenClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(h.now),
		)
		if err == nil {
			if strings.TrimSpace(claims.UserID) == "" {
				return "", errors.New("it has no user_id claim")
			}
			return claims.UserID, nil
		}
		if errors.Is(err, jwt.ErrTokenExpired) {
			return "", errors.New("it has expired")
		}
		if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			return "", errors.New("it has no exp claim")
		}
		lastErr = err
	}
	if errors.Is(lastErr, jwt.ErrTokenSignatureInvalid) {
		return "", errors.New("signature does not match")
	}
	return "", fmt.Errorf("it cannot be verified")
}

// domainErrors maps domain errors to statuses and codes, most specific first.
var domainErrors = []struct {
	err    error
	status int
	code   string
}{
	{calls.ErrInvalidID, http.StatusBadRequest, "invalid_id"},
	{calls.ErrInvalidInput, http.StatusBadRequest, "invalid_request"},
	{calls.ErrUnknownProvider, http.StatusBadRequest, "unknown_provider"},
	{calls.ErrNotFound, http.StatusNotFound, "not_found"},
	{calls.ErrCallEnded, http.StatusConflict, "call_ended"},
	{calls.ErrInvalidTransition, http.StatusConflict, "invalid_transition"},
	{calls.ErrForbidden, http.StatusForbidden, "forbidden"},
	{calls.ErrProvider, http.StatusBadGateway, "provider_error"},
	{calls.ErrRoomNotReady, http.StatusServiceUnavailable, "room_not_ready"},
	{calls.ErrUnavailable, http.StatusConflict, "user_unavailable"},
}

// callError maps domain errors to API errors; anything else is internal.
// Domain error messages are written to be shown: they carry no secrets.
func callError(err error) error {
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			e := &httpserver.Error{Status: d.status, Code: d.code, Message: err.Error()}
			if d.status == http.StatusServiceUnavailable {
				// The room is being created: ask to come back shortly.
				e.RetryAfter = time.Second
			}
			return e
		}
	}
	return err
}
