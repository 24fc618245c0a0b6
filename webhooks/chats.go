package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// ChatRunner carries out verified chat requests. When a request carries a
// replay mark (calls.ChatRequest.Replay), the runner records it, and
// answers a replay with an error wrapping calls.ErrDuplicateDelivery.
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
	// RoomStrategies are the chats' room_strategy settings by chat name
	// (absent: per_call).
	RoomStrategies map[string]calls.RoomStrategy
	// LinkTTL is how long a personal link minted for a click lasts.
	LinkTTL   time.Duration
	PublicURL string
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
	// Health, when set, remembers the last request and error per chat.
	Health *Health
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
	h := &chatIntake{opts: opts, origin: origin, outcomes: outcomes, refusals: newRefusalLog(opts.Logger, opts.Now)}
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
	refusals *refusalLog
}

// handle serves a chat request and notes how it went in Health.
func (h *chatIntake) handle(c echo.Context) error {
	err := h.serve(c)
	if _, known := h.opts.Chats[c.Param("name")]; known {
		outcome := "answered"
		if err != nil {
			outcome = "refused"
			var he *echo.HTTPError
			var ge *httpserver.Error
			if !errors.As(err, &he) && !errors.As(err, &ge) {
				outcome = "failed"
			}
		}
		h.opts.Health.Record("chat", c.Param("name"), outcome, err)
	}
	return err
}

// replayed refuses a signed request received before.
func (h *chatIntake) replayed(ctx context.Context, name string) error {
	h.outcomes.WithLabelValues(name, "replayed").Inc()
	h.refusals.warn(ctx, refusalKey{"chat", name, "replayed"}, "chat request refused: replayed", "chat", name)
	return httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "this signed request was received before")
}

func (h *chatIntake) serve(c echo.Context) error {
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
		h.refusals.warn(ctx, refusalKey{"chat", name, outcome}, "chat request refused", "chat", name, "outcome", outcome, "err", err)
		return refused
	}
	if err != nil {
		h.outcomes.WithLabelValues(name, "failed").Inc()
		return err
	}
	if parsed.ReplayKey != "" && h.opts.Replays != nil {
		sum := sha256.Sum256([]byte(parsed.ReplayKey))
		mark := calls.DeliveryMark{Source: "replay:" + name, ID: hex.EncodeToString(sum[:]), At: h.opts.Now()}
		if parsed.Reply == nil {
			// The runner records it: a /call in the transaction that
			// stores the call (one write, not two), anything else before
			// it does anything.
			parsed.Replay = &mark
		} else {
			// A challenge never reaches the runner.
			fresh, err := h.opts.Replays.MarkOnce(ctx, mark)
			if err != nil {
				h.outcomes.WithLabelValues(name, "failed").Inc()
				return err
			}
			if !fresh {
				return h.replayed(ctx, name)
			}
		}
	}
	if parsed.Reply != nil {
		h.outcomes.WithLabelValues(name, "challenge").Inc()
		return reply(c, *parsed.Reply)
	}
	parsed.RoomStrategy = h.opts.RoomStrategies[name]
	out := h.opts.Runner.RunChat(ctx, name, parsed)
	if parsed.Replay != nil && errors.Is(out.Err, calls.ErrDuplicateDelivery) {
		return h.replayed(ctx, name)
	}
	if out.Call.ID != "" {
		out.JoinURL = h.opts.Links.Stable(out.Call.ID)
	}
	// The person who clicked Join or Accept, or who started or found the
	// call, gets a link signed for them alone.
	click := parsed.Action != nil && (parsed.Action.Kind == "join" || parsed.Action.Kind == "accept")
	wantsLink := click || (parsed.Command != nil && parsed.Command.Kind == calls.CommandStart)
	if out.Err == nil && out.Call.ID != "" && wantsLink && !out.Call.State.Terminal() && click {
		out.Err = h.stillMember(ctx, name, intake, parsed, out.Call)
	}
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

// membershipTimeout bounds the platform's answer to "is this person
// still in the conversation?".
const membershipTimeout = 2 * time.Second

// stillMember re-checks, where the platform can tell (the adapter is a
// calls.ChannelMembership), that the person clicking Join on a card still
// belongs to the conversation the card is in. People the call names as
// members (the caller, people rung) are not asked about: the call admits
// them whoever's channel it is. A platform that cannot answer (an error, a
// timeout) gets a refusal, not a link: a link is a door that stays open
// for its whole lifetime, and the person can click again.
func (h *chatIntake) stillMember(ctx context.Context, name string, intake calls.ChatIntake, req calls.ChatRequest, call calls.Call) error {
	mc, ok := intake.(calls.ChannelMembership)
	if !ok || req.Surface.Channel == "" {
		return nil
	}
	if _, direct := req.Surface.DirectUser(); direct {
		return nil
	}
	userID := calls.ChatUserActor(name, req.User.ID).UserID
	for _, m := range call.Members {
		if m.UserID == userID {
			return nil
		}
	}
	surface := req.Surface
	surface.Chat = name
	cctx, cancel := context.WithTimeout(ctx, membershipTimeout)
	defer cancel()
	member, err := mc.IsMember(cctx, surface, req.User.ID)
	if err != nil {
		h.opts.Logger.WarnContext(ctx, "chat membership could not be checked; no link given", "chat", name, "err", err)
		return fmt.Errorf("%w: could not confirm that you are in this conversation; try again in a moment", calls.ErrForbidden)
	}
	if !member {
		return fmt.Errorf("%w: you are not in this conversation any more", calls.ErrForbidden)
	}
	return nil
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
