package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
)

// ChatRunner carries out verified chat requests.
type ChatRunner interface {
	RunChat(ctx context.Context, chat string, req calls.ChatRequest) calls.ChatOutcome
}

// ReplayGuard remembers signed requests already received.
type ReplayGuard interface {
	MarkOnce(ctx context.Context, mark calls.DeliveryMark) (fresh bool, err error)
}

// ChatOptions configure the chat platform intake.
type ChatOptions struct {
	// Replays, when set, refuses a signed request seen before (by its
	// ChatRequest.ReplayKey), across every replica sharing the store.
	Replays ReplayGuard
	// Chats by configured chat name.
	Chats  map[string]calls.ChatIntake
	Runner ChatRunner
	// Links builds the stable and personal join links chat answers carry.
	Links joinlink.Links
	// LinkTTL is how long a personal link minted for a click lasts.
	LinkTTL   time.Duration
	PublicURL string
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
}

// RegisterChats adds POST /webhooks/chats/{name} and
// /webhooks/chats/{name}/{path…}; the adapter is told the path after the
// name ("" for the first form), so one platform may have several endpoints
// (commands, interactions, events).
func RegisterChats(e *echo.Echo, opts ChatOptions) error {
	if opts.Runner == nil {
		return errors.New("webhooks: a chat runner is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LinkTTL <= 0 {
		opts.LinkTTL = time.Hour
	}
	origin, err := url.Parse(opts.PublicURL)
	if err != nil {
		return err
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callgate_chat_requests_total",
		Help: "Chat platform requests by chat and outcome (answered, challenge, unauthenticated, malformed, failed).",
	}, []string{"chat", "outcome"})
	if opts.Registry != nil {
		if err := opts.Registry.Register(outcomes); err != nil {
			return err
		}
	}
	h := &chatIntake{opts: opts, origin: origin, outcomes: outcomes}
	// GET serves what a browser opens (an install page, an OAuth
	// redirect); the adapter decides what each path accepts.
	for _, m := range []string{http.MethodPost, http.MethodGet} {
		e.Add(m, "/webhooks/chats/:name", h.handle)
		e.Add(m, "/webhooks/chats/:name/*", h.handle)
	}
	return nil
}

type chatIntake struct {
	opts     ChatOptions
	origin   *url.URL
	outcomes *prometheus.CounterVec
}

func (h *chatIntake) handle(c echo.Context) error {
	name := c.Param("name")
	intake, ok := h.opts.Chats[name]
	if !ok {
		return httpserver.NewError(http.StatusNotFound, "not_found", "no configured chat platform named %q", name)
	}
	req, err := received(c, h.origin)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	path := strings.Trim(c.Param("*"), "/")
	parsed, err := intake.ParseChat(ctx, path, req)
	if outcome, refused := refusal(err); refused != nil {
		h.outcomes.WithLabelValues(name, outcome).Inc()
		h.opts.Logger.WarnContext(ctx, "chat request refused", "chat", name, "outcome", outcome, "err", err)
		return refused
	}
	if err != nil {
		h.outcomes.WithLabelValues(name, "failed").Inc()
		return err
	}
	if parsed.ReplayKey != "" && h.opts.Replays != nil {
		sum := sha256.Sum256([]byte(parsed.ReplayKey))
		fresh, err := h.opts.Replays.MarkOnce(ctx, calls.DeliveryMark{Source: "replay:" + name, ID: hex.EncodeToString(sum[:]), At: h.opts.Now()})
		if err != nil {
			h.outcomes.WithLabelValues(name, "failed").Inc()
			return err
		}
		if !fresh {
			h.outcomes.WithLabelValues(name, "replayed").Inc()
			h.opts.Logger.WarnContext(ctx, "chat request refused: replayed", "chat", name)
			return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "this signed request was received before")
		}
	}
	if parsed.Reply != nil {
		h.outcomes.WithLabelValues(name, "challenge").Inc()
		return reply(c, *parsed.Reply)
	}
	out := h.opts.Runner.RunChat(ctx, name, parsed)
	if out.Call.ID != "" {
		out.JoinURL = h.opts.Links.Stable(out.Call.ID)
	}
	// The person who clicked Join, or who started or found the call, gets
	// a link signed for them alone.
	wantsLink := (parsed.Action != nil && parsed.Action.Kind == "join") ||
		(parsed.Command != nil && parsed.Command.Kind == calls.CommandStart)
	if out.Err == nil && out.Call.ID != "" && wantsLink && !out.Call.State.Terminal() {
		out.PersonalURL, out.Err = h.opts.Links.Personal(joinlink.Claims{
			CallID: out.Call.ID, UserID: calls.ChatUserActor(name, parsed.User.ID).UserID,
			Name: parsed.User.Name, Expiry: h.opts.Now().Add(h.opts.LinkTTL),
		})
	}
	if out.Err != nil && !isDomainError(out.Err) {
		// Not the user's doing (the store is down): let the platform retry
		// where it does, and say nothing about internals.
		h.outcomes.WithLabelValues(name, "failed").Inc()
		h.opts.Logger.ErrorContext(ctx, "chat request failed", "chat", name, "err", out.Err)
		return out.Err
	}
	answer, err := intake.ReplyChat(ctx, parsed, out)
	if err != nil {
		h.outcomes.WithLabelValues(name, "failed").Inc()
		return err
	}
	h.outcomes.WithLabelValues(name, "answered").Inc()
	return reply(c, answer)
}

// domainErrors are the errors whose messages are written for users.
var domainErrors = []error{
	calls.ErrInvalidID, calls.ErrInvalidInput, calls.ErrNotFound, calls.ErrInvalidTransition,
	calls.ErrCallEnded, calls.ErrForbidden, calls.ErrUnknownProvider, calls.ErrProvider, calls.ErrRoomNotReady,
}

func isDomainError(err error) bool {
	for _, d := range domainErrors {
		if errors.Is(err, d) {
			return true
		}
	}
	return false
}
