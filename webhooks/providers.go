// Package webhooks is the intake for everything that calls callgate
// unprompted: provider status webhooks today, chat commands and
// interactions as their platforms arrive. Each request is read under the
// body cap, verified the way its sender signs, parsed, and handed on; a
// request that fails any step changes nothing.
package webhooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
)

// StatusParser verifies and parses one provider's status webhooks.
type StatusParser interface {
	ParseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error)
}

// EventApplier applies parsed provider events to calls.
type EventApplier interface {
	ApplyProviderEvents(ctx context.Context, provider string, events []calls.ProviderEvent) error
}

// ProviderOptions configure the provider webhook intake.
type ProviderOptions struct {
	// Parsers by configured provider name; providers without webhooks are absent.
	Parsers map[string]StatusParser
	Applier EventApplier
	// PublicURL is the gateway's external base URL. Signatures that cover
	// the URL (Twilio) are checked against the URL the provider called,
	// which is this origin plus the request path and query.
	PublicURL string
	Logger    *slog.Logger
	Registry  prometheus.Registerer
}

// RegisterProviders adds POST /webhooks/providers/{name}.
func RegisterProviders(e *echo.Echo, opts ProviderOptions) error {
	if opts.Applier == nil {
		return errors.New("webhooks: an event applier is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	origin, err := url.Parse(opts.PublicURL)
	if err != nil {
		return err
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callgate_provider_webhooks_total",
		Help: "Provider status webhooks by provider and outcome (applied, unauthenticated, malformed, failed).",
	}, []string{"provider", "outcome"})
	if opts.Registry != nil {
		if err := opts.Registry.Register(outcomes); err != nil {
			return err
		}
	}
	h := &providerIntake{opts: opts, origin: origin, outcomes: outcomes}
	e.POST("/webhooks/providers/:name", h.handle)
	return nil
}

type providerIntake struct {
	opts     ProviderOptions
	origin   *url.URL
	outcomes *prometheus.CounterVec
}

func (h *providerIntake) handle(c echo.Context) error {
	name := c.Param("name")
	parser, ok := h.opts.Parsers[name]
	if !ok {
		return httpserver.NewError(http.StatusNotFound, "not_found", "no configured provider named %q receives webhooks", name)
	}
	r := c.Request()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return httpserver.TooLarge(mbe.Limit)
		}
		return httpserver.NewError(http.StatusBadRequest, "bad_request", "could not read the request body")
	}
	// Routes sit under the public URL's path, as join links do: a proxy in
	// front strips that prefix, so the URL the provider called is the
	// public URL plus the path we received.
	received := *h.origin
	prefix := strings.TrimSuffix(h.origin.Path, "/")
	received.Path = prefix + r.URL.Path
	received.RawPath = ""
	if r.URL.RawPath != "" {
		received.RawPath = strings.TrimSuffix(h.origin.EscapedPath(), "/") + r.URL.RawPath
	}
	received.RawQuery = r.URL.RawQuery
	ctx := r.Context()
	events, err := parser.ParseWebhook(ctx, calls.WebhookRequest{URL: received.String(), Header: r.Header, Body: body})
	switch {
	case errors.Is(err, calls.ErrWebhookUnauthenticated):
		h.outcomes.WithLabelValues(name, "unauthenticated").Inc()
		h.opts.Logger.WarnContext(ctx, "provider webhook refused", "provider", name, "err", err)
		return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "the webhook signature could not be verified")
	case errors.Is(err, calls.ErrWebhookMalformed):
		h.outcomes.WithLabelValues(name, "malformed").Inc()
		return httpserver.NewError(http.StatusBadRequest, "malformed_webhook", "%s", err)
	case err != nil:
		h.outcomes.WithLabelValues(name, "failed").Inc()
		return err
	}
	if err := h.opts.Applier.ApplyProviderEvents(ctx, name, events); err != nil {
		// 500 makes the provider retry; the delivery was not recorded.
		h.outcomes.WithLabelValues(name, "failed").Inc()
		return err
	}
	h.outcomes.WithLabelValues(name, "applied").Inc()
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "events": len(events)})
}
