package calls

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// RunChat carries out a verified chat request from the configured chat
// platform chat, as the platform user who sent it, and reports what
// happened for the adapter to word. Domain errors (a bad command, a call
// the user may not end) are returned in the outcome, not as an error: the
// platform still gets an answer.
func (s *Service) RunChat(ctx context.Context, chat string, req ChatRequest) ChatOutcome {
	actor := ChatUserActor(chat, req.User.ID)
	surface := req.Surface
	surface.Chat = chat
	surface.Delivery = SurfaceDelivery{MessageRef: req.MessageRef}
	// A request that may start a call records its replay mark with the
	// call (startCall); any other records it before it does anything.
	if req.Replay != nil && (req.Command == nil || req.Command.Kind != CommandStart) {
		if err := s.markReplay(ctx, *req.Replay); err != nil {
			return ChatOutcome{Err: err}
		}
		req.Replay = nil
	}
	switch {
	case req.Command != nil:
		return s.runCommand(ctx, actor, surface, req)
	case req.Action != nil:
		return s.runAction(ctx, actor, req)
	}
	return ChatOutcome{}
}

func (s *Service) runCommand(ctx context.Context, actor Actor, surface Surface, req ChatRequest) ChatOutcome {
	cmd := req.Command
	switch cmd.Kind {
	case CommandHelp:
		return ChatOutcome{}
	case CommandRing:
		prefs, ok := s.cfg.Store.(RingPreferences)
		if !ok {
			return ChatOutcome{Err: fmt.Errorf("%w: this gateway cannot keep ringing preferences", ErrInvalidInput)}
		}
		if err := prefs.SetRingOptOut(ctx, actor.Chat, req.User.ID, !cmd.RingOn, s.now()); err != nil {
			return ChatOutcome{Err: err}
		}
		if cmd.RingOn {
			return ChatOutcome{Notices: []string{NoticeRingOn}}
		}
		return ChatOutcome{Notices: []string{NoticeRingOff}}
	case CommandEnd:
		call, err := s.cfg.Store.FindBySurface(ctx, surface.Key())
		if err != nil {
			return ChatOutcome{Err: fmt.Errorf("there is no call to end in this conversation: %w", err)}
		}
		ended, err := s.End(ctx, actor, call.ID)
		if err != nil {
			return ChatOutcome{Call: call, Err: err}
		}
		return ChatOutcome{Call: ended}
	}
	return s.startCall(ctx, actor, surface, req)
}

// startCall runs a command that starts a call (or offers the live one),
// and records req.Replay: with the call it creates, or on its own when it
// creates none. Nothing it does before that has an effect, so a replay is
// refused having changed nothing.
func (s *Service) startCall(ctx context.Context, actor Actor, surface Surface, req ChatRequest) ChatOutcome {
	out, marked := s.startCallUnmarked(ctx, actor, surface, req)
	if req.Replay == nil || marked {
		return out
	}
	if err := s.markReplay(ctx, *req.Replay); err != nil {
		return ChatOutcome{Err: err}
	}
	return out
}

// markReplay records a chat request's replay mark on its own; a mark
// recorded before gives an error wrapping ErrDuplicateDelivery.
func (s *Service) markReplay(ctx context.Context, mark DeliveryMark) error {
	fresh, err := s.cfg.Store.MarkOnce(ctx, mark)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("chat request %s from %s: %w", mark.ID, mark.Source, ErrDuplicateDelivery)
	}
	return nil
}

// startCallUnmarked is startCall but for a replay mark it did not record
// with a call: marked reports whether req.Replay was recorded (or found
// recorded before, which the outcome's ErrDuplicateDelivery says).
func (s *Service) startCallUnmarked(ctx context.Context, actor Actor, surface Surface, req ChatRequest) (out ChatOutcome, marked bool) {
	cmd := req.Command
	mentions, notices, err := s.ringable(ctx, actor.Chat, cmd.Mentions)
	if err != nil {
		return ChatOutcome{Err: err}, false
	}
	if len(cmd.Mentions) > 0 && len(mentions) == 0 {
		return ChatOutcome{Notices: notices, Err: fmt.Errorf("%w: the people you mentioned asked not to be rung by name", ErrInvalidInput)}, false
	}
	members := make([]Member, 0, len(mentions))
	surfaces := []Surface{surface}
	for _, m := range mentions {
		members = append(members, Member{UserID: actor.Chat + ":" + m, Role: RoleParticipant})
		// Each person rung gets the card in a direct message, which
		// follows the call (ringing, answered, cancelled, missed) through
		// the outbox like the channel's card.
		if m != req.User.ID {
			surfaces = append(surfaces, Surface{Chat: surface.Chat, Workspace: surface.Workspace, Channel: DirectPrefix + m})
		}
	}
	key := chatCallKey(actor.Chat, req.DeliveryID)
	if !cmd.New && len(members) == 0 {
		// One live call per conversation: a second /call offers the live
		// one. Two people typing /call at once (on any replica) get one
		// call: both derive the new call's key from the conversation's
		// latest call, so both creates name the same key.
		latest, err := s.cfg.Store.LatestOnSurface(ctx, surface.Key())
		switch {
		case err == nil && !latest.State.Terminal():
			if err := Authorize(actor, &latest, ActionView); err != nil {
				return ChatOutcome{Err: err}, false
			}
			return ChatOutcome{Call: latest}, false
		case err == nil:
			key = successorKey(surface.Key(), latest.ID)
		case errors.Is(err, ErrNotFound):
			key = successorKey(surface.Key(), "")
		default:
			return ChatOutcome{Err: err}, false
		}
	}
	guests := true
	call, created, marked, err := s.create(ctx, actor, CreateRequest{
		// A platform that repeats a delivery repeats its id: deriving the
		// call's key from it (or from the conversation) makes the repeat
		// find the call it created. The id itself is a new one (NewID).
		Key:  key,
		Type: string(cmd.Type), Provider: cmd.Provider, Title: cmd.Title,
		Members: members, Ring: len(members) > 0, Guests: &guests,
		Surfaces: surfaces, RoomName: roomName(req.RoomStrategy, surface, actor),
		Replay: req.Replay,
	})
	return ChatOutcome{Call: call, Created: created, Err: err, Notices: notices}, marked
}

// ringable drops the mentions of people who opted out of being rung, and
// says so in a notice.
func (s *Service) ringable(ctx context.Context, chat string, mentions []string) ([]string, []string, error) {
	prefs, ok := s.cfg.Store.(RingPreferences)
	if !ok || len(mentions) == 0 {
		return mentions, nil, nil
	}
	out, err := prefs.RingOptOuts(ctx, chat, mentions)
	if err != nil {
		return nil, nil, err
	}
	kept := make([]string, 0, len(mentions))
	for _, m := range mentions {
		if !out[m] {
			kept = append(kept, m)
		}
	}
	if len(kept) < len(mentions) {
		return kept, []string{NoticeNotRung}, nil
	}
	return kept, nil, nil
}

func (s *Service) runAction(ctx context.Context, actor Actor, req ChatRequest) ChatOutcome {
	var (
		call Call
		err  error
	)
	switch req.Action.Kind {
	case "end":
		call, err = s.End(ctx, actor, req.Action.CallID)
	case "accept":
		call, err = s.Accept(ctx, actor, req.Action.CallID)
	case "decline":
		call, err = s.Decline(ctx, actor, req.Action.CallID)
	case "join":
		// The caller mints the personal link once it knows the actor may
		// see the call.
		call, err = s.View(ctx, actor, req.Action.CallID)
		if err == nil {
			err = Authorize(actor, &call, ActionJoin)
		}
		if err == nil && call.State.Terminal() {
			err = fmt.Errorf("%w: this call is over", ErrCallEnded)
		}
	default:
		err = fmt.Errorf("%w: unknown action %q", ErrInvalidInput, req.Action.Kind)
	}
	return ChatOutcome{Call: call, Err: err}
}

// roomName is the provider room a chat's strategy asks for: one per
// conversation (per_channel) or per caller (per_user), as a name every
// provider accepts (lowercase hex behind a prefix, 25 characters) that
// reveals neither the conversation nor the person; "" for per_call.
func roomName(strategy RoomStrategy, surface Surface, actor Actor) string {
	var seed string
	switch strategy {
	case RoomPerChannel:
		k := surface.Key()
		seed = "channel\x00" + k.Chat + "\x00" + k.Workspace + "\x00" + k.Channel
	case RoomPerUser:
		seed = "user\x00" + actor.UserID
	default:
		return ""
	}
	sum := sha256.Sum256([]byte("callgate-room\x00" + seed))
	return "cg" + string(strategy[4]) + hex.EncodeToString(sum[:11])
}

// successorKey is the create key (CreateOptions.Key) of the call that
// follows `previous` in a conversation: a hash of the two, so every
// replica that sees the same latest call derives the same key.
func successorKey(k SurfaceKey, previous string) string {
	sum := sha256.Sum256([]byte("callgate-next\x00" + k.Chat + "\x00" + k.Workspace + "\x00" + k.Channel + "\x00" + previous))
	return hex.EncodeToString(sum[:10])
}

// chatCallKey derives a call's create key from a platform delivery id, so
// that a repeated delivery finds the call; "" (no key) without one.
func chatCallKey(chat, deliveryID string) string {
	if deliveryID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("callgate-chat\x00" + chat + "\x00" + deliveryID))
	return hex.EncodeToString(sum[:10])
}
