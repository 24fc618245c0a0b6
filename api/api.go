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
	Logger        *slog.Logger
	Now           func() time.Time
	// REST serves /v1 and Stream's endpoints; without it only join links
	// and the OpenAPI document are served (api.enabled: false).
	REST bool
}

// Handler serves the API.
type Handler struct {
	opts      Options
	keyHashes []keyHash
	log       *slog.Logger
	now       func() time.Time
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
	for _, k := range opts.Keys {
		h.keyHashes = append(h.keyHashes, keyHash{name: k.Name, sum: sha256.Sum256([]byte(k.Secret))})
	}

	e.GET("/openapi.yaml", serveOpenAPI)
	e.GET("/join/:id", h.join)

	if !opts.REST {
		return h, nil
	}
	v1 := e.Group("/v1", h.authenticate)
	v1.POST("/calls", h.createCall)
	v1.GET("/calls/:id", h.getCall)
	v1.POST("/calls/:id/token", h.callToken)
	v1.POST("/calls/:id/end", h.endCall)
	v1.POST("/calls/:id/accept", h.acceptCall)
	v1.POST("/calls/:id/decline", h.declineCall)

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

// actor returns who the request acts as: a user-token caller is always that
// user; an API key may name the user it acts for.
func (p principal) actor(userID string) calls.Actor {
	if p.admin() {
		return calls.Actor{Admin: true, UserID: userID}
	}
	return calls.Actor{UserID: p.userID}
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
			return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "missing Authorization header; send \"Authorization: Bearer <api key or user token>\"")
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
				return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "invalid user token: %s", err)
			}
			c.Set(principalKey, principal{userID: userID})
			return next(c)
		}
		return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "invalid API key or user token")
	}
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
}

// callError maps domain errors to API errors; anything else is internal.
// Domain error messages are written to be shown: they carry no secrets.
func callError(err error) error {
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return &httpserver.Error{Status: d.status, Code: d.code, Message: err.Error()}
		}
	}
	return err
}
