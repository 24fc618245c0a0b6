// Package httpserver is the HTTP plumbing every callgate surface shares: the
// Echo instance, the JSON error format, request ids, access logs, metrics,
// body limits and the health endpoints. Route handlers live in api and
// webhooks and register themselves on the Echo instance returned by New.
package httpserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callgate/callgate/calls"
)

// Error is an API error: the status and the JSON body
// {"error":{"code":"...","message":"..."}}. Messages are shown to callers
// and must never carry a secret.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as the Retry-After header (whole
	// seconds, at least 1).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// NewError returns an *Error.
func NewError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Pinger is what /readyz checks: the store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options configure New.
type Options struct {
	Logger    *slog.Logger
	BodyLimit int64 // bytes; default 1 MiB
	Ready     Pinger
	Registry  *prometheus.Registry // nil: a new one
	// TrustedProxies are the proxies whose X-Forwarded-For is believed
	// when telling a request's client address (rate limits, logs). Empty:
	// the client is the TCP peer, and X-Forwarded-For is ignored.
	TrustedProxies []netip.Prefix
	// MetricsToken, when set, is the bearer token /metrics requires.
	// Empty: /metrics is open to whoever reaches the port.
	MetricsToken string
}

// Server is the Echo instance and the metrics registry it reports to.
type Server struct {
	Echo     *echo.Echo
	Registry *prometheus.Registry
	log      *slog.Logger
}

// New returns an Echo instance with the shared middleware, error handler,
// /healthz, /readyz and /metrics.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = 1 << 20
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = ipExtractor(opts.TrustedProxies)
	s := &Server{Echo: e, Registry: opts.Registry, log: opts.Logger}
	e.HTTPErrorHandler = s.handleError

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callgate_http_requests_total",
		Help: "HTTP requests by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "callgate_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	opts.Registry.MustRegister(requests, durations)

	// observe is outermost so that panics and 413s are logged and counted too.
	e.Use(observe(opts.Logger, requests, durations), recoverPanics(opts.Logger), limitBody(opts.BodyLimit))

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if opts.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
			defer cancel()
			if err := opts.Ready.Ping(ctx); err != nil {
				opts.Logger.WarnContext(ctx, "not ready: store unreachable", "err", err)
				return NewError(http.StatusServiceUnavailable, "not_ready", "the store is not reachable")
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})), requireToken(opts.MetricsToken))
	return s
}

// handleError writes every error as the JSON error body. Errors that are not
// *Error or *echo.HTTPError are internal: logged in full, shown as a generic
// message so no internal detail (or secret) leaks.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var apiErr *Error
	var echoErr *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
	case errors.As(err, &echoErr):
		apiErr = fromEchoError(echoErr)
	default:
		s.log.ErrorContext(c.Request().Context(), "internal error", "route", c.Path(), "err", err)
		apiErr = NewError(http.StatusInternalServerError, "internal", "internal error; see the gateway log (request id %s)", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	var body ErrorBody
	body.Error.Code, body.Error.Message = apiErr.Code, apiErr.Message
	if apiErr.Status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="callgate"`)
	}
	if apiErr.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(apiErr.RetryAfter.Round(time.Second)/time.Second))))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(apiErr.Status)
		return
	}
	if err := c.JSON(apiErr.Status, body); err != nil {
		s.log.ErrorContext(c.Request().Context(), "could not write error response", "err", err)
	}
}

func fromEchoError(e *echo.HTTPError) *Error {
	msg := http.StatusText(e.Code)
	if m, ok := e.Message.(string); ok && m != "" {
		msg = m
	}
	code := map[int]string{
		http.StatusNotFound:              "not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusRequestEntityTooLarge: "body_too_large",
		http.StatusUnauthorized:          "unauthenticated",
		http.StatusBadRequest:            "bad_request",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
	}[e.Code]
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(e.Code), " ", "_"))
	}
	return &Error{Status: e.Code, Code: code, Message: strings.ToLower(msg[:1]) + msg[1:]}
}

// limitBody refuses bodies larger than limit: at once when Content-Length
// says so, and while reading otherwise (chunked bodies).
func limitBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > limit {
				return TooLarge(limit)
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}

// TooLarge is the 413 error for a body over limit bytes.
func TooLarge(limit int64) *Error {
	return NewError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", limit)
}

// IsTooLarge reports whether err came from reading past the body limit.
func IsTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// observe assigns request ids, writes one access-log line per request and
// records the metrics. It logs the path, never the query: join links carry
// tokens there.
func observe(log *slog.Logger, requests *prometheus.CounterVec, durations *prometheus.HistogramVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			rid := c.Request().Header.Get(echo.HeaderXRequestID)
			if rid == "" || len(rid) > 64 {
				rid = calls.RandomString(16)
			}
			c.Response().Header().Set(echo.HeaderXRequestID, rid)
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Inc()
			durations.WithLabelValues(route, c.Request().Method).Observe(elapsed.Seconds())
			attrs := []any{"method", c.Request().Method, "path", c.Request().URL.Path, "route", route,
				"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "request_id", rid}
			if id := CallID(c); id != "" {
				attrs = append(attrs, "call_id", id)
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			log.Log(c.Request().Context(), level, "http request", attrs...)
			return nil
		}
	}
}

// CallID returns the normalised call id named by the route, if any: every
// route that names a call calls its parameter "id".
func CallID(c echo.Context) string {
	if slices.Contains(c.ParamNames(), "id") {
		if id, err := calls.NormalizeID(c.Param("id")); err == nil {
			return id
		}
	}
	return ""
}

func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.ErrorContext(c.Request().Context(), "panic in handler", "route", c.Path(), "panic", fmt.Sprint(r))
					err = NewError(http.StatusInternalServerError, "internal", "internal error")
				}
			}()
			return next(c)
		}
	}
}

// requireToken guards a route with a bearer token (none: open), compared in
// constant time.
func requireToken(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return next(c)
			}
			scheme, got, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				return NewError(http.StatusUnauthorized, "unauthenticated", "this endpoint needs \"Authorization: Bearer <metrics token>\"")
			}
			return next(c)
		}
	}
}
