package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
)

// ProviderReceiver verifies and parses one provider's status webhooks. It
// returns the events found and, when the provider expects one, the reply
// (Zoom's endpoint.url_validation answer). Errors wrap
// calls.ErrWebhookUnauthenticated or calls.ErrWebhookMalformed.
type ProviderReceiver interface {
	ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error)
}

// EventApplier applies parsed provider events to calls.
type EventApplier interface {
	ApplyProviderEvents(ctx context.Context, provider string, events []calls.ProviderEvent) error
}

// ProviderOptions configure the provider webhook intake.
type ProviderOptions struct {
	// Receivers by configured provider name; providers without webhooks
	// are absent.
	Receivers map[string]ProviderReceiver
	Applier   EventApplier
	// PublicURL is the gateway's external base URL. Signatures that cover
	// the URL (Twilio) are checked against the URL the provider called.
	PublicURL string
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	// Health, when set, remembers the last webhook and error per provider.
	Health *Health
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
	h := &providerIntake{opts: opts, origin: origin, outcomes: outcomes, refusals: newRefusalLog(opts.Logger, nil)}
	e.POST("/webhooks/providers/:name", h.handle)
	return nil
}

type providerIntake struct {
	opts     ProviderOptions
	origin   *url.URL
	outcomes *prometheus.CounterVec
	refusals *refusalLog
}

func (h *providerIntake) handle(c echo.Context) error {
	name := c.Param("name")
	receiver, ok := h.opts.Receivers[name]
	if !ok {
		return httpserver.NewError(http.StatusNotFound, "not_found", "no configured provider named %q receives webhooks", name)
	}
	req, err := received(c, h.origin)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	hook, err := receiver.ReceiveWebhook(ctx, req)
	if outcome, refused := refusal(err); refused != nil {
		h.outcomes.WithLabelValues(name, outcome).Inc()
		h.opts.Health.Record("provider", name, outcome, err)
		h.refusals.warn(ctx, refusalKey{"provider", name, outcome}, "provider webhook refused", "provider", name, "outcome", outcome, "err", err)
		return refused
	}
	if err != nil {
		h.outcomes.WithLabelValues(name, "failed").Inc()
		h.opts.Health.Record("provider", name, "failed", err)
		return err
	}
	// Each event is applied with its delivery mark in one transaction; the
	// answer goes out only once every change is durable.
	if err := h.opts.Applier.ApplyProviderEvents(ctx, name, hook.Events); err != nil {
		// 500 makes the provider retry; what was not applied was not marked.
		h.outcomes.WithLabelValues(name, "failed").Inc()
		h.opts.Health.Record("provider", name, "failed", err)
		return err
	}
	h.outcomes.WithLabelValues(name, "applied").Inc()
	h.opts.Health.Record("provider", name, "applied", nil)
	if hook.Reply != nil {
		return reply(c, *hook.Reply)
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "events": len(hook.Events)})
}
