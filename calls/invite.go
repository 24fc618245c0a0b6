package calls

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// This file holds the ringing operations the WebSocket handshake API adds
// to the service: inviting someone into a call, answering such an
// invitation, and merging a ringing direct call into the call its callee
// is already in. They are additive: every change goes through the same
// store transaction and Authorize as the rest of the service.

// ReasonMerged ends a ringing call whose callee merged its caller into the
// call they were in.
const ReasonMerged = "merged"

// ReasonInvited marks the ringing event of a person invited into a call
// that is already under way (the event's Identity is who is rung).
const ReasonInvited = "invited"

// ErrAlreadyAccepted is returned when a user answers a call they already
// accepted (on another device).
var ErrAlreadyAccepted = errors.New("already accepted")

// Invite rings userID into the call: a member who may answer it (or a
// server key) adds them as a participant, and a ringing event naming them
// (Identity) is stored. Inviting a member again rings them again.
func (s *Service) Invite(ctx context.Context, actor Actor, id, userID string) (Call, error) {
	if err := ValidateUserID("targetUser", userID); err != nil {
		return Call{}, err
	}
	if userID == "" {
		return Call{}, fmt.Errorf("%w: targetUser is required", ErrInvalidInput)
	}
	nid, err := NormalizeID(id)
	if err != nil {
		return Call{}, err
	}
	return s.update(ctx, nid, func(c *Call) ([]Event, error) {
		if err := Authorize(actor, c, ActionAnswer); err != nil {
			return nil, err
		}
		if c.State.Terminal() {
			return nil, fmt.Errorf("%w: call %s is %s (%s)", ErrCallEnded, c.ID, c.State, c.EndReason)
		}
		if i := c.memberIndex(userID); i < 0 {
			c.Members = append(c.Members, Member{UserID: userID, Role: RoleParticipant})
		} else if c.Members[i].Answer == AnswerDeclined {
			// Rung again: they may answer again.
			c.Members[i].Answer = ""
		}
		c.UpdatedAt = s.now()
		return []Event{{Kind: EventRinging, CallID: c.ID, State: c.State, Actor: actor.UserID, Identity: userID, Reason: ReasonInvited, At: c.UpdatedAt}}, nil
	})
}

// AcceptInvite records that a member accepted an invitation into a call
// under way (accepted or active): an accepted event naming them, the
// call's state unchanged. A ringing call is answered with Accept instead.
// A member who already accepted (on another device, however close in time)
// gets ErrAlreadyAccepted: the check runs on the locked call.
func (s *Service) AcceptInvite(ctx context.Context, actor Actor, id string) (Call, error) {
	if actor.UserID == "" {
		return Call{}, fmt.Errorf("%w: answering a call needs a user", ErrInvalidInput)
	}
	nid, err := NormalizeID(id)
	if err != nil {
		return Call{}, err
	}
	return s.update(ctx, nid, func(c *Call) ([]Event, error) {
		if err := Authorize(actor, c, ActionAnswer); err != nil {
			return nil, err
		}
		if c.State.Terminal() {
			return nil, fmt.Errorf("%w: call %s is %s (%s)", ErrCallEnded, c.ID, c.State, c.EndReason)
		}
		if c.State != StateAccepted && c.State != StateActive {
			return nil, fmt.Errorf("%w: call %s is %s", ErrInvalidTransition, c.ID, c.State)
		}
		i := c.memberIndex(actor.UserID)
		if i < 0 {
			// A server key answering for someone who is not a member
			// (Authorize let it) makes them one.
			c.Members = append(c.Members, Member{UserID: actor.UserID, Role: RoleParticipant})
			i = len(c.Members) - 1
		}
		if c.Members[i].Answer == AnswerAccepted {
			return nil, fmt.Errorf("%w: call %s was accepted on another device", ErrAlreadyAccepted, c.ID)
		}
		c.Members[i].Answer = AnswerAccepted
		c.UpdatedAt = s.now()
		return []Event{{Kind: EventAccepted, CallID: c.ID, State: c.State, Actor: actor.UserID, Identity: actor.UserID, At: c.UpdatedAt}}, nil
	})
}

// Merge answers the ringing call requestID by moving its caller into the
// call intoID, which the actor (the callee) is a member of: requestID ends
// (merged) and its creator becomes a participant of intoID, with an
// updated event naming them (Identity, reason merged). It returns the call
// merged into.
func (s *Service) Merge(ctx context.Context, actor Actor, requestID, intoID string) (Call, error) {
	into, err := s.View(ctx, actor, intoID)
	if err != nil {
		return Call{}, err
	}
	if err := Authorize(actor, &into, ActionAnswer); err != nil {
		return Call{}, err
	}
	if into.State.Terminal() {
		return Call{}, fmt.Errorf("%w: call %s is %s (%s)", ErrCallEnded, into.ID, into.State, into.EndReason)
	}
	if into.ID == mustNormalize(requestID) {
		return Call{}, fmt.Errorf("%w: a call cannot be merged into itself", ErrInvalidInput)
	}
	var caller string
	_, err = s.changeAs(ctx, actor, requestID, ActionAnswer, func(c *Call) (State, string, error) {
		if c.State != StateRinging {
			return "", "", fmt.Errorf("%w: call %s is %s, not ringing", ErrInvalidTransition, c.ID, c.State)
		}
		if c.IsOwner(actor.UserID) {
			return "", "", fmt.Errorf("%w: only the person rung may merge a call", ErrForbidden)
		}
		caller = c.CreatedBy
		return StateEnded, ReasonMerged, nil
	})
	if err != nil {
		return Call{}, err
	}
	if caller == "" {
		return into, nil
	}
	return s.update(ctx, into.ID, func(c *Call) ([]Event, error) {
		if c.State.Terminal() {
			return nil, fmt.Errorf("%w: call %s is %s (%s)", ErrCallEnded, c.ID, c.State, c.EndReason)
		}
		if _, ok := c.Member(caller); !ok {
			c.Members = append(c.Members, Member{UserID: caller, Role: RoleParticipant})
		}
		c.UpdatedAt = s.now()
		return []Event{{Kind: EventUpdated, CallID: c.ID, State: c.State, Actor: actor.UserID, Identity: caller, Reason: ReasonMerged, At: c.UpdatedAt}}, nil
	})
}

func mustNormalize(id string) string {
	n, err := NormalizeID(id)
	if err != nil {
		return id
	}
	return n
}

// Events returns the call's stored events after seq, for whoever may see
// the call.
func (s *Service) Events(ctx context.Context, actor Actor, id string, after int64) ([]Event, error) {
	c, err := s.View(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.Events(ctx, c.ID, after)
}

// RingTimeout is how long a call rings before it is missed.
func (s *Service) RingTimeout() time.Duration { return s.cfg.RingTimeout }
