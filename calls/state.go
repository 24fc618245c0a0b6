package calls

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is where a call is in its life.
//
//	created ──► ringing ──► accepted ──► active ──► ended
//	   │           ├──► rejected             ▲
//	   │           ├──► missed               │
//	   └───────────┴─────────────────────────┘
//
// Any state that is not terminal may also go to ended (hung up, cancelled) or
// failed (the provider could not host it). The LivePerson view maps these to
// INVITED (created, ringing), ACCEPTED (accepted, active) and CLOSED (the rest).
type State string

const (
	StateCreated  State = "created"
	StateRinging  State = "ringing"
	StateAccepted State = "accepted"
	StateRejected State = "rejected"
	StateMissed   State = "missed"
	StateActive   State = "active"
	StateEnded    State = "ended"
	StateFailed   State = "failed"
)

// States lists every state in lifecycle order.
var States = []State{StateCreated, StateRinging, StateAccepted, StateRejected, StateMissed, StateActive, StateEnded, StateFailed}

var transitions = map[State][]State{
	StateCreated:  {StateRinging, StateActive, StateEnded, StateFailed},
	StateRinging:  {StateAccepted, StateRejected, StateMissed, StateActive, StateEnded, StateFailed},
	StateAccepted: {StateActive, StateEnded, StateFailed},
	StateActive:   {StateEnded, StateFailed},
}

// Terminal reports whether nothing can follow the state. A terminal call
// carries an end reason and can no longer be joined.
func (s State) Terminal() bool {
	switch s {
	case StateRejected, StateMissed, StateEnded, StateFailed:
		return true
	}
	return false
}

// CanBecome reports whether the state machine allows s → next.
func (s State) CanBecome(next State) bool { return slices.Contains(transitions[s], next) }

// LivePerson maps the state to the LivePerson session view.
func (s State) LivePerson() string {
	switch s {
	case StateCreated, StateRinging:
		return "INVITED"
	case StateAccepted, StateActive:
		return "ACCEPTED"
	}
	return "CLOSED"
}

// End reasons stored with terminal states.
const (
	ReasonEndedByAPI   = "ended_by_api"
	ReasonEndedByOwner = "ended_by_owner"
	ReasonRoomFinished = "room_finished"
	ReasonDeclined     = "declined"
	ReasonRingTimeout  = "ring_timeout"
	ReasonMaxDuration  = "max_duration"
	ReasonCancelled    = "cancelled"
	// ReasonEmpty: the room was empty, or held one person, for
	// calls.end_when_empty.
	ReasonEmpty = "empty"
	// ReasonRoomGone: the provider confirmed the room is over while the
	// call still looked live (its webhooks stopped).
	ReasonRoomGone = "room_gone"
	// ReasonProviderError: the provider could not host the call; the
	// room's Error says why, for admins.
	ReasonProviderError = "provider_error"
)

// Transition moves the call to next, or fails with ErrInvalidTransition
// (ErrCallEnded when the call is already over). Terminal states need a reason.
func (c *Call) Transition(next State, reason string, at time.Time) (Event, error) {
	if c.State.Terminal() {
		return Event{}, fmt.Errorf("%w: call %s is already %s (%s)", ErrCallEnded, c.ID, c.State, c.EndReason)
	}
	if !c.State.CanBecome(next) {
		return Event{}, fmt.Errorf("%w: a %s call cannot become %s", ErrInvalidTransition, c.State, next)
	}
	if next.Terminal() && reason == "" {
		return Event{}, fmt.Errorf("%w: moving to %s needs a reason", ErrInvalidTransition, next)
	}
	c.State = next
	c.StateChangedAt = at
	c.UpdatedAt = at
	if next.Terminal() {
		t := at
		c.EndedAt = &t
		c.EndReason = reason
		// Nobody is in a call that is over, whatever webhooks are still in flight.
		c.Participants = nil
		c.EmptySince = nil
	}
	return Event{Kind: stateEventKind[next], CallID: c.ID, State: next, Reason: reason, At: at}, nil
}

var stateEventKind = map[State]EventKind{
	StateRinging:  EventRinging,
	StateAccepted: EventAccepted,
	StateRejected: EventRejected,
	StateMissed:   EventMissed,
	StateActive:   EventActive,
	StateEnded:    EventEnded,
	StateFailed:   EventFailed,
}

// MarkPresence applies one roster change reported by a provider: identity
// joined (present) or left. seq is the provider's ordering number for the
// identity (Agora clientSeq, Twilio SequenceNumber, an event timestamp); an
// event whose seq is not newer than the last one applied for that identity is
// stale and ignored, so a late "joined" never resurrects someone who left. A
// seq of 0 means the provider gives no order and the event always applies.
//
// It reports the roster event and whether the roster changed.
func (c *Call) MarkPresence(identity, name string, present bool, seq int64, at time.Time) (Event, bool) {
	if c.State.Terminal() {
		return Event{}, false
	}
	if c.Seqs == nil {
		c.Seqs = map[string]RosterMark{}
	}
	if last, ok := c.Seqs[identity]; ok && seq != 0 && seq <= last.Seq {
		return Event{}, false
	}
	if seq != 0 {
		c.Seqs[identity] = RosterMark{Seq: seq, Present: present}
	}
	i := slices.IndexFunc(c.Participants, func(p Participant) bool { return p.Identity == identity })
	kind := EventJoined
	switch {
	case present && i >= 0:
		return Event{}, false
	case present:
		p := Participant{Identity: identity, Name: name, JoinedAt: StoredTime(at)}
		// Keep the roster ordered by join time, then identity, the order
		// stores read it back in.
		j, _ := slices.BinarySearchFunc(c.Participants, p, compareParticipants)
		c.Participants = slices.Insert(c.Participants, j, p)
	case i < 0:
		return Event{}, false
	default:
		c.Participants = slices.Delete(c.Participants, i, i+1)
		kind = EventLeft
	}
	c.UpdatedAt = at
	c.trackEmptiness(at)
	return Event{Kind: kind, CallID: c.ID, State: c.State, Identity: identity, At: at}, true
}

// trackEmptiness keeps EmptySince: set when the room holds at most one
// person, cleared when two or more are in it.
func (c *Call) trackEmptiness(at time.Time) {
	switch {
	case len(c.Participants) >= 2:
		c.EmptySince = nil
	case c.EmptySince == nil:
		t := at
		c.EmptySince = &t
	}
}

func compareParticipants(a, b Participant) int {
	if c := a.JoinedAt.Compare(b.JoinedAt); c != 0 {
		return c
	}
	return strings.Compare(a.Identity, b.Identity)
}
