package calls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Actor is who asks for a change. An API key acts for anyone (Admin); a user
// token acts as exactly one user.
type Actor struct {
	UserID string
	Admin  bool
}

// ServiceConfig holds what a Service needs. Store, Providers and
// DefaultProvider are required.
type ServiceConfig struct {
	Store           Store
	Providers       map[string]Provider // by configured name
	DefaultProvider string
	Bus             *Bus         // nil: a private bus
	Logger          *slog.Logger // nil: slog.Default()
	RingTimeout     time.Duration
	MaxDuration     time.Duration // 0: unlimited
	TokenTTL        time.Duration
	// GuestJoin lets people who are not members get credentials (stable
	// join links, user tokens of non-members).
	GuestJoin bool
	// ProviderTimeout bounds each provider request, default 10s.
	ProviderTimeout time.Duration
	Now             func() time.Time
}

// Service is the call domain's use cases: create, look up, credential, end,
// ring outcomes, timers and provider status events. It is safe for
// concurrent use; consistency comes from the store's transactions.
type Service struct {
	cfg ServiceConfig
	bus *Bus
	log *slog.Logger
	now func() time.Time
}

// NewService checks cfg and returns a Service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("calls: service needs a store")
	}
	if _, ok := cfg.Providers[cfg.DefaultProvider]; !ok {
		return nil, fmt.Errorf("calls: default provider %q is not configured", cfg.DefaultProvider)
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 120 * time.Second
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.ProviderTimeout <= 0 {
		cfg.ProviderTimeout = 10 * time.Second
	}
	s := &Service{cfg: cfg, bus: cfg.Bus, log: cfg.Logger, now: cfg.Now}
	if s.bus == nil {
		s.bus = NewBus()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Bus is where every stored change is published.
func (s *Service) Bus() *Bus { return s.bus }

// TokenTTL is how long credentials and personal links last.
func (s *Service) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// GuestJoin reports whether non-members may join.
func (s *Service) GuestJoin() bool { return s.cfg.GuestJoin }

// CreateRequest asks for a call.
type CreateRequest struct {
	ID       string // empty: generated
	Type     string // "video" (default) or "audio"
	Provider string // configured provider name; empty: the default
	Title    string
	Members  []Member
	// Ring makes the members' devices ring; the call waits in ringing until
	// someone accepts, everyone declines, or the ring timeout passes.
	Ring bool
	// Surface, when set, records where the call is shown.
	Surface *Surface
}

// MaxTitleLength bounds titles so they fit on every chat card.
const MaxTitleLength = 200

// Create makes the call, or returns the existing call with the same id
// (created=false); the id is normalised first, so ids differing only in case
// name one call. The provider room is created once, by the request that
// stored the call. A provider failure leaves the call visibly failed and
// returns an error wrapping ErrProvider.
func (s *Service) Create(ctx context.Context, actor Actor, req CreateRequest) (Call, bool, error) {
	call, err := s.newCall(actor, req)
	if err != nil {
		return Call{}, false, err
	}
	events := []Event{{Kind: EventCreated, CallID: call.ID, State: StateCreated, Actor: actor.UserID, At: call.CreatedAt}}
	stored, created, err := s.cfg.Store.CreateCall(ctx, call, events)
	if err != nil {
		return Call{}, false, fmt.Errorf("create call %s: %w", call.ID, err)
	}
	if !created {
		// Re-creating a call is the idempotent common case (one call per
		// channel): only a surface the call does not show yet costs a write.
		if req.Surface != nil && !slices.Contains(stored.Surfaces, *req.Surface) {
			stored, err = s.addSurface(ctx, stored.ID, *req.Surface)
		}
		return stored, false, err
	}
	s.publish(stored, events)
	s.log.InfoContext(ctx, "call created", "call_id", stored.ID, "provider", stored.Provider, "type", stored.Type)

	room, roomErr := s.createRoom(ctx, stored)
	after, err := s.update(ctx, stored.ID, func(c *Call) ([]Event, error) {
		at := s.now()
		if roomErr != nil {
			ev, err := c.Transition(StateFailed, "provider_error", at)
			if err != nil {
				return nil, err
			}
			return []Event{ev}, nil
		}
		c.Room = room
		c.UpdatedAt = at
		out := []Event{{Kind: EventUpdated, CallID: c.ID, State: c.State, Reason: "room_created", At: at}}
		if req.Ring && slices.ContainsFunc(c.Members, func(m Member) bool { return m.UserID != c.CreatedBy }) {
			ev, err := c.Transition(StateRinging, "", at)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	})
	if err != nil {
		return Call{}, true, fmt.Errorf("create call %s: %w", stored.ID, err)
	}
	if roomErr != nil {
		return after, true, roomErr
	}
	return after, true, nil
}

func (s *Service) newCall(actor Actor, req CreateRequest) (Call, error) {
	id := NewID()
	if req.ID != "" {
		var err error
		if id, err = NormalizeID(req.ID); err != nil {
			return Call{}, err
		}
	}
	typ, err := ParseType(req.Type)
	if err != nil {
		return Call{}, err
	}
	provider := req.Provider
	if provider == "" {
		provider = s.cfg.DefaultProvider
	}
	if _, ok := s.cfg.Providers[provider]; !ok {
		return Call{}, fmt.Errorf("%w: %q is not a configured provider (configured: %s)", ErrUnknownProvider, provider, strings.Join(s.providerNames(), ", "))
	}
	title := strings.TrimSpace(req.Title)
	if len([]rune(title)) > MaxTitleLength {
		return Call{}, fmt.Errorf("%w: title is longer than %d characters", ErrInvalidInput, MaxTitleLength)
	}
	members, err := normalizeMembers(actor, req.Members)
	if err != nil {
		return Call{}, err
	}
	now := s.now().UTC()
	c := Call{
		ID: id, Type: typ, State: StateCreated, Provider: provider, Title: title,
		CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now, StateChangedAt: now,
		Members: members,
	}
	if req.Surface != nil {
		c.Surfaces = []Surface{*req.Surface}
	}
	return c, nil
}

// normalizeMembers validates members, drops duplicates (first wins) and
// makes the creating user an owner: a user who starts a call owns it.
func normalizeMembers(actor Actor, in []Member) ([]Member, error) {
	out := make([]Member, 0, len(in)+1)
	seen := map[string]bool{}
	if actor.UserID != "" {
		out = append(out, Member{UserID: actor.UserID, Role: RoleOwner})
		seen[actor.UserID] = true
	}
	for i, m := range in {
		uid := strings.TrimSpace(m.UserID)
		if uid == "" {
			return nil, fmt.Errorf("%w: members[%d].user_id is empty", ErrInvalidInput, i)
		}
		if len(uid) > 255 {
			return nil, fmt.Errorf("%w: members[%d].user_id is longer than 255 characters", ErrInvalidInput, i)
		}
		role, err := ParseRole(string(m.Role))
		if err != nil {
			return nil, fmt.Errorf("members[%d]: %w", i, err)
		}
		if seen[uid] {
			continue
		}
		seen[uid] = true
		out = append(out, Member{UserID: uid, Role: role})
	}
	return out, nil
}

func (s *Service) providerNames() []string {
	names := make([]string, 0, len(s.cfg.Providers))
	for n := range s.cfg.Providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Service) createRoom(ctx context.Context, c Call) (Room, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	room, err := s.cfg.Providers[c.Provider].CreateRoom(ctx, RoomRequest{CallID: c.ID, Type: c.Type, Title: c.Title, MaxDuration: s.cfg.MaxDuration})
	if err != nil {
		s.log.ErrorContext(ctx, "provider could not create the room", "call_id", c.ID, "provider", c.Provider, "err", err)
		return Room{}, fmt.Errorf("%w: %s could not create the room", ErrProvider, c.Provider)
	}
	return room, nil
}

func (s *Service) addSurface(ctx context.Context, id string, sf Surface) (Call, error) {
	return s.update(ctx, id, func(c *Call) ([]Event, error) {
		if !c.AddSurface(sf) {
			return nil, nil
		}
		return []Event{{Kind: EventUpdated, CallID: c.ID, State: c.State, Reason: "surface_added", At: s.now()}}, nil
	})
}

// Get returns the call; id is normalised first.
func (s *Service) Get(ctx context.Context, id string) (Call, error) {
	nid, err := NormalizeID(id)
	if err != nil {
		return Call{}, err
	}
	return s.cfg.Store.GetCall(ctx, nid)
}

// JoinRequest asks for one person's credential.
type JoinRequest struct {
	UserID string
	Name   string
	// Role, when set, overrides the member's role; only an admin may set it.
	Role Role
}

// Credential mints the provider credential for a person to join a live
// call. Members join with their role; others join as participants when
// guests are allowed. A user token may only ask for itself.
func (s *Service) Credential(ctx context.Context, actor Actor, id string, req JoinRequest) (Call, Credential, error) {
	call, err := s.Get(ctx, id)
	if err != nil {
		return Call{}, Credential{}, err
	}
	if req.UserID == "" {
		req.UserID = actor.UserID
	}
	if req.UserID == "" {
		return Call{}, Credential{}, fmt.Errorf("%w: user_id is required", ErrInvalidInput)
	}
	if !actor.Admin && req.UserID != actor.UserID {
		return Call{}, Credential{}, fmt.Errorf("%w: a user token can only get its own credential", ErrForbidden)
	}
	if call.State.Terminal() {
		return call, Credential{}, fmt.Errorf("%w: call %s is %s (%s)", ErrCallEnded, call.ID, call.State, call.EndReason)
	}
	role := RoleParticipant
	if m, ok := call.Member(req.UserID); ok {
		role = m.Role
	} else if !actor.Admin && !s.cfg.GuestJoin {
		return call, Credential{}, fmt.Errorf("%w: %s is not a member of call %s", ErrForbidden, req.UserID, call.ID)
	}
	if req.Role != "" {
		if !actor.Admin {
			return call, Credential{}, fmt.Errorf("%w: only an API key may choose a role", ErrForbidden)
		}
		role = req.Role
	}
	if call.Room.Name == "" {
		return call, Credential{}, fmt.Errorf("%w: the room for call %s is not ready yet", ErrProvider, call.ID)
	}
	provider, ok := s.cfg.Providers[call.Provider]
	if !ok {
		return call, Credential{}, fmt.Errorf("%w: call %s uses provider %q, which is no longer configured", ErrUnknownProvider, call.ID, call.Provider)
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	cred, err := provider.Credential(pctx, call.Room, CredentialRequest{
		CallID: call.ID, Type: call.Type, UserID: req.UserID, Name: req.Name, Role: role,
		TTL: s.cfg.TokenTTL, IssuedAt: s.now(),
	})
	if err != nil {
		s.log.ErrorContext(ctx, "provider could not mint a credential", "call_id", call.ID, "provider", call.Provider, "err", err)
		return call, Credential{}, fmt.Errorf("%w: %s could not issue a credential", ErrProvider, call.Provider)
	}
	return call, cred, nil
}

// End ends the call for everyone. An admin may end any call; a user only a
// call it owns. The provider room is closed after the change is stored; a
// provider failure there is logged, not returned, because the call is over
// either way.
func (s *Service) End(ctx context.Context, actor Actor, id string) (Call, error) {
	call, err := s.Get(ctx, id)
	if err != nil {
		return Call{}, err
	}
	reason := ReasonEndedByAPI
	if !actor.Admin {
		if !call.IsOwner(actor.UserID) {
			return Call{}, fmt.Errorf("%w: only the call's owner may end it", ErrForbidden)
		}
		reason = ReasonEndedByOwner
	}
	ended, err := s.transition(ctx, call.ID, actor, StateEnded, reason)
	if err != nil {
		return Call{}, err
	}
	s.endRoom(ctx, ended)
	return ended, nil
}

func (s *Service) endRoom(ctx context.Context, c Call) {
	p, ok := s.cfg.Providers[c.Provider]
	if !ok || c.Room.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ProviderTimeout)
	defer cancel()
	if err := p.EndRoom(ctx, c.Room); err != nil {
		s.log.ErrorContext(ctx, "provider could not end the room", "call_id", c.ID, "provider", c.Provider, "err", err)
	}
}

// Accept records that an invited member answered a ringing call.
func (s *Service) Accept(ctx context.Context, actor Actor, id string) (Call, error) {
	return s.answer(ctx, actor, id, StateAccepted, "")
}

// Decline records that an invited member refused a ringing call; the
// caller declining cancels it. A declined call is over.
func (s *Service) Decline(ctx context.Context, actor Actor, id string) (Call, error) {
	return s.answer(ctx, actor, id, StateRejected, ReasonDeclined)
}

func (s *Service) answer(ctx context.Context, actor Actor, id string, to State, reason string) (Call, error) {
	call, err := s.Get(ctx, id)
	if err != nil {
		return Call{}, err
	}
	if actor.UserID == "" {
		return Call{}, fmt.Errorf("%w: answering a call needs a user (a user token, or user_id with an API key)", ErrInvalidInput)
	}
	if _, ok := call.Member(actor.UserID); !ok {
		return Call{}, fmt.Errorf("%w: %s is not a member of call %s", ErrForbidden, actor.UserID, call.ID)
	}
	if call.IsOwner(actor.UserID) && to == StateRejected {
		to, reason = StateEnded, ReasonCancelled
	}
	if call.State != StateRinging {
		return Call{}, fmt.Errorf("%w: call %s is %s, not ringing", ErrInvalidTransition, call.ID, call.State)
	}
	return s.transition(ctx, call.ID, actor, to, reason)
}

func (s *Service) transition(ctx context.Context, id string, actor Actor, to State, reason string) (Call, error) {
	return s.update(ctx, id, func(c *Call) ([]Event, error) {
		ev, err := c.Transition(to, reason, s.now())
		if err != nil {
			return nil, err
		}
		ev.Actor = actor.UserID
		return []Event{ev}, nil
	})
}

// update stores a change and publishes its events.
func (s *Service) update(ctx context.Context, id string, change func(*Call) ([]Event, error)) (Call, error) {
	var events []Event
	c, err := s.cfg.Store.UpdateCall(ctx, id, func(c *Call) ([]Event, error) {
		evs, err := change(c)
		events = evs
		return evs, err
	})
	if err != nil {
		return Call{}, err
	}
	s.publish(c, events)
	for _, ev := range events {
		if ev.Kind != EventUpdated {
			s.log.InfoContext(ctx, "call changed", "call_id", c.ID, "event", ev.Kind, "state", c.State, "reason", ev.Reason)
		}
	}
	return c, nil
}

func (s *Service) publish(c Call, events []Event) {
	for _, ev := range events {
		s.bus.Publish(Notification{Event: ev, Call: c.Clone()})
	}
}

// ExpireOnce applies the timers once: ringing calls past the ring timeout
// become missed, and live calls older than the maximum duration end. It
// returns how many calls it changed.
func (s *Service) ExpireOnce(ctx context.Context) (int, error) {
	now := s.now()
	changed := 0
	ringing, err := s.cfg.Store.ListCalls(ctx, []State{StateRinging}, now.Add(-s.cfg.RingTimeout), 500)
	if err != nil {
		return 0, fmt.Errorf("list ringing calls: %w", err)
	}
	for _, c := range ringing {
		missed := false
		_, err := s.update(ctx, c.ID, func(c *Call) ([]Event, error) {
			// Re-check inside the transaction: it may have been answered
			// since, or expired by another replica.
			if c.State != StateRinging || now.Sub(c.StateChangedAt) < s.cfg.RingTimeout {
				return nil, nil
			}
			ev, err := c.Transition(StateMissed, ReasonRingTimeout, now)
			missed = err == nil
			return []Event{ev}, err
		})
		if err != nil {
			return changed, fmt.Errorf("expire ringing call %s: %w", c.ID, err)
		}
		if missed {
			changed++
		}
	}
	if s.cfg.MaxDuration <= 0 {
		return changed, nil
	}
	// A call's state_changed_at is never earlier than its creation, so every
	// call older than the limit has a state change before the cutoff too.
	live, err := s.cfg.Store.ListCalls(ctx, []State{StateCreated, StateRinging, StateAccepted, StateActive}, now.Add(-s.cfg.MaxDuration), 500)
	if err != nil {
		return changed, fmt.Errorf("list live calls: %w", err)
	}
	for _, c := range live {
		if now.Sub(c.CreatedAt) < s.cfg.MaxDuration {
			continue
		}
		endedNow := false
		ended, err := s.update(ctx, c.ID, func(c *Call) ([]Event, error) {
			if c.State.Terminal() {
				return nil, nil
			}
			ev, err := c.Transition(StateEnded, ReasonMaxDuration, now)
			endedNow = err == nil
			return []Event{ev}, err
		})
		if err != nil {
			return changed, fmt.Errorf("end call %s at its maximum duration: %w", c.ID, err)
		}
		if endedNow {
			s.endRoom(ctx, ended)
			changed++
		}
	}
	return changed, nil
}

// RunTimers applies the timers every interval until ctx ends.
func (s *Service) RunTimers(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.ExpireOnce(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "call timers failed", "err", err)
			}
		}
	}
}

// ApplyProviderEvents applies status events from the configured provider
// name. Deliveries already applied are skipped; events for rooms callgate
// did not create are ignored. An error means nothing from the failing event
// on was applied and the provider should retry.
func (s *Service) ApplyProviderEvents(ctx context.Context, provider string, events []ProviderEvent) error {
	for _, ev := range events {
		if err := s.applyProviderEvent(ctx, provider, ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) applyProviderEvent(ctx context.Context, provider string, ev ProviderEvent) error {
	call, err := s.cfg.Store.FindByRoom(ctx, provider, ev.Room)
	if errors.Is(err, ErrNotFound) {
		s.log.InfoContext(ctx, "provider event for a room callgate does not know", "provider", provider, "room", ev.Room, "kind", ev.Kind)
		return nil
	}
	if err != nil {
		return fmt.Errorf("find call for room %s: %w", ev.Room, err)
	}
	if ev.DeliveryID != "" {
		fresh, err := s.cfg.Store.MarkDelivery(ctx, provider, ev.DeliveryID, s.now())
		if err != nil {
			return fmt.Errorf("deduplicate delivery: %w", err)
		}
		if !fresh {
			s.log.DebugContext(ctx, "duplicate provider delivery skipped", "call_id", call.ID, "delivery_id", ev.DeliveryID)
			return nil
		}
	}
	at := ev.At
	if at.IsZero() {
		at = s.now()
	}
	_, err = s.update(ctx, call.ID, func(c *Call) ([]Event, error) {
		return applyToCall(c, ev, at)
	})
	if err != nil && ev.DeliveryID != "" {
		// The delivery was marked but not applied: forget it so the
		// provider's retry is applied instead of skipped.
		if ferr := s.cfg.Store.ForgetDelivery(context.WithoutCancel(ctx), provider, ev.DeliveryID); ferr != nil {
			s.log.ErrorContext(ctx, "could not forget a failed delivery", "call_id", call.ID, "delivery_id", ev.DeliveryID, "err", ferr)
		}
	}
	if err != nil {
		return fmt.Errorf("apply %s to call %s: %w", ev.Kind, call.ID, err)
	}
	return nil
}

// applyToCall turns one provider event into changes of the call. Events
// that arrive after the call is over change nothing.
func applyToCall(c *Call, ev ProviderEvent, at time.Time) ([]Event, error) {
	if c.State.Terminal() {
		return nil, nil
	}
	var out []Event
	goLive := func() error {
		if c.State == StateActive {
			return nil
		}
		e, err := c.Transition(StateActive, "", at)
		if err == nil {
			out = append(out, e)
		}
		return err
	}
	switch ev.Kind {
	case ProviderRoomStarted:
		// A room that exists is not yet a call in progress; wait for people.
	case ProviderParticipantJoined:
		if e, changed := c.MarkPresence(ev.Identity, ev.Name, true, ev.Seq, at); changed {
			if err := goLive(); err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	case ProviderParticipantLeft:
		if e, changed := c.MarkPresence(ev.Identity, ev.Name, false, ev.Seq, at); changed {
			out = append(out, e)
		}
	case ProviderRoomEnded:
		e, err := c.Transition(StateEnded, ReasonRoomFinished, at)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
