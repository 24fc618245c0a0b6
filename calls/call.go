package calls

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Type is the media a call starts with.
type Type string

const (
	TypeVideo Type = "video"
	TypeAudio Type = "audio"
)

// ParseType accepts "video" or "audio"; an empty string means video, the
// default of every chat integration callgate replaces.
func ParseType(s string) (Type, error) {
	switch Type(s) {
	case "", TypeVideo:
		return TypeVideo, nil
	case TypeAudio:
		return TypeAudio, nil
	}
	return "", fmt.Errorf("%w: type must be \"video\" or \"audio\", got %q", ErrInvalidInput, s)
}

// Role is a member's permission level in a call, from the videochat handshake
// API, highest first. Provider roles (moderator, publisher, subscriber) derive
// from it.
type Role string

const (
	RoleOwner       Role = "owner"
	RolePanelist    Role = "panelist"
	RolePresenter   Role = "presenter"
	RoleCoPresenter Role = "co-presenter"
	RolePromoted    Role = "promoted"
	RoleParticipant Role = "participant"
	RoleListener    Role = "listener"
)

// Roles lists every role, highest permission first.
var Roles = []Role{RoleOwner, RolePanelist, RolePresenter, RoleCoPresenter, RolePromoted, RoleParticipant, RoleListener}

// ParseRole accepts one of Roles; an empty string means participant.
func ParseRole(s string) (Role, error) {
	if s == "" {
		return RoleParticipant, nil
	}
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	return "", fmt.Errorf("%w: role %q is not one of owner, panelist, presenter, co-presenter, promoted, participant, listener", ErrInvalidInput, s)
}

// IsModerator reports whether the role may moderate the room at the provider
// (mute others, end the call): owners and panelists.
func (r Role) IsModerator() bool { return r == RoleOwner || r == RolePanelist }

// CanPublish reports whether the role may send audio or video. Listeners only
// receive.
func (r Role) CanPublish() bool { return r != RoleListener }

// Member is a person invited to or owning a call.
type Member struct {
	UserID string `json:"user_id"`
	Role   Role   `json:"role"`
	// Answer is how the member answered the ring or an invitation into
	// the call: empty until they do. It is changed only inside the
	// transaction that records the answer, so it is what guards "first
	// accept wins" and a group ring's per-member declines.
	Answer Answer `json:"answer,omitempty"`
}

// Answer is a member's answer to a ring or an invitation.
type Answer string

const (
	AnswerAccepted Answer = "accepted"
	AnswerDeclined Answer = "declined"
)

// memberIndex is the position of the user in Members, or -1.
func (c *Call) memberIndex(userID string) int {
	if userID == "" {
		return -1
	}
	return slices.IndexFunc(c.Members, func(m Member) bool { return m.UserID == userID })
}

// awaitingAnswer reports whether an invited member (one who is not an
// owner) has not declined: a group ring keeps ringing while one has.
func (c *Call) awaitingAnswer() bool {
	for _, m := range c.Members {
		if !c.IsOwner(m.UserID) && m.Answer != AnswerDeclined {
			return true
		}
	}
	return false
}

// Participant is a person in the call right now, as the provider reports it.
type Participant struct {
	Identity string    `json:"identity"`
	Name     string    `json:"name,omitempty"`
	JoinedAt time.Time `json:"joined_at"`
}

// Room is what a provider created for a call: enough to mint credentials,
// build join links and match status webhooks back to the call.
type Room struct {
	// Name is the provider's room or channel name; status webhooks carry it.
	Name string `json:"name"`
	// ProviderID is the provider's own id for the room where it has one
	// (Twilio RM…, 100ms room id, Zoom meeting id).
	ProviderID string `json:"provider_id,omitempty"`
	// URL is the room's public address where the provider has one.
	URL string `json:"url,omitempty"`
	// Data keeps provider-specific facts (a meeting password, a region).
	Data map[string]string `json:"data,omitempty"`
	// Error says, for an admin, why the room could not be created (the
	// call is then failed). It never holds the provider's raw reply.
	Error string `json:"error,omitempty"`
}

// RoomStatus is where the room stands: "preparing" (a worker is creating
// it), "ready", or "failed".
func (c *Call) RoomStatus() string {
	switch {
	case c.Room.Name != "":
		return "ready"
	case c.State.Terminal():
		return "failed"
	}
	return "preparing"
}

// Call is the aggregate every flow reads and changes.
type Call struct {
	ID        string
	Type      Type
	State     State
	Provider  string // the configured provider name, not its kind
	Title     string
	CreatedBy string // user id, empty when created by an API key without one
	Room      Room
	CreatedAt time.Time
	UpdatedAt time.Time
	// StateChangedAt is when State last changed; ring timeouts count from it.
	StateChangedAt time.Time
	EndedAt        *time.Time
	EndReason      string

	// Guests lets people who are not members join through the stable
	// link. It is set when the call is created: by default only for calls
	// whose id the gateway generated (unguessable), or when the creator
	// asked for it.
	Guests bool

	Members []Member
	// Participants are the people in the call now, ordered by JoinedAt
	// then Identity.
	Participants []Participant
	Surfaces     []Surface
	// Recordings are the recordings and transcripts the provider reported.
	Recordings []Recording
	// EmptySince is when the call's room last became empty or left with
	// one person; nil while two or more are in it, and once it is over.
	// calls.end_when_empty counts from it.
	EmptySince *time.Time

	// Seqs keeps, per participant identity, the highest provider sequence
	// number applied and whether that event left the person present. It is
	// what keeps a late "joined" from resurrecting someone who already left.
	Seqs map[string]RosterMark

	// Version increases with every stored change.
	Version int64
}

// RosterMark is the last roster event applied for one identity.
type RosterMark struct {
	Seq     int64 `json:"seq"`
	Present bool  `json:"present"`
}

// Member returns the member with the user id, if any.
func (c *Call) Member(userID string) (Member, bool) {
	for _, m := range c.Members {
		if m.UserID == userID {
			return m, true
		}
	}
	return Member{}, false
}

// IsOwner reports whether the user created the call or holds the owner role.
func (c *Call) IsOwner(userID string) bool {
	if userID == "" {
		return false
	}
	if c.CreatedBy == userID {
		return true
	}
	m, ok := c.Member(userID)
	return ok && m.Role == RoleOwner
}

// AddSurface records a place the call is shown, once per key.
func (c *Call) AddSurface(s Surface) bool {
	if c.HasSurface(s.Key()) {
		return false
	}
	// Delivery state is the store's, but for a message that already
	// exists and becomes the card (ChatRequest.MessageRef).
	s.Delivery = SurfaceDelivery{MessageRef: s.Delivery.MessageRef}
	c.Surfaces = append(c.Surfaces, s)
	return true
}

// NeedsRoom reports whether the call still waits for its provider room:
// it has none and is not over. A store keeps a room job for such a call.
func (c *Call) NeedsRoom() bool { return c.Room.Name == "" && !c.State.Terminal() }

// HasSurface reports whether the call is shown on the surface.
func (c *Call) HasSurface(k SurfaceKey) bool {
	return slices.ContainsFunc(c.Surfaces, func(s Surface) bool { return s.Key() == k })
}

// Surface returns the surface with the key.
func (c *Call) Surface(k SurfaceKey) (Surface, bool) {
	i := slices.IndexFunc(c.Surfaces, func(s Surface) bool { return s.Key() == k })
	if i < 0 {
		return Surface{}, false
	}
	return c.Surfaces[i], true
}

// Clone returns a deep copy, so a caller can mutate a call without touching
// one held elsewhere.
func (c Call) Clone() Call {
	c.Members = slices.Clone(c.Members)
	c.Participants = slices.Clone(c.Participants)
	c.Surfaces = slices.Clone(c.Surfaces)
	c.Recordings = slices.Clone(c.Recordings)
	if c.EndedAt != nil {
		t := *c.EndedAt
		c.EndedAt = &t
	}
	if c.EmptySince != nil {
		t := *c.EmptySince
		c.EmptySince = &t
	}
	// maps.Clone copies the map's tables whole, several times faster than
	// inserting entry by entry: Seqs is the largest part of a busy call,
	// and every stored change clones it.
	if c.Room.Data != nil {
		c.Room.Data = maps.Clone(c.Room.Data)
	}
	if c.Seqs != nil {
		c.Seqs = maps.Clone(c.Seqs)
	}
	return c
}

// StoredTime is t as stores keep it: UTC, to the microsecond (PostgreSQL's
// precision), so a call returned by a write equals the same call read back.
func StoredTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Canonical returns a deep copy of c in the form stores return calls: times
// through StoredTime, empty lists and maps nil.
func (c Call) Canonical() Call {
	c = c.Clone()
	c.Canonicalize()
	return c
}

// Canonicalize puts c, which the caller owns, in the form stores return
// calls (see Canonical) without copying it first.
func (c *Call) Canonicalize() {
	c.CreatedAt = StoredTime(c.CreatedAt)
	c.UpdatedAt = StoredTime(c.UpdatedAt)
	c.StateChangedAt = StoredTime(c.StateChangedAt)
	if c.EndedAt != nil {
		t := StoredTime(*c.EndedAt)
		c.EndedAt = &t
	}
	if c.EmptySince != nil {
		t := StoredTime(*c.EmptySince)
		c.EmptySince = &t
	}
	for i := range c.Participants {
		c.Participants[i].JoinedAt = StoredTime(c.Participants[i].JoinedAt)
	}
	if len(c.Members) == 0 {
		c.Members = nil
	}
	if len(c.Participants) == 0 {
		c.Participants = nil
	}
	if len(c.Surfaces) == 0 {
		c.Surfaces = nil
	}
	if len(c.Recordings) == 0 {
		c.Recordings = nil
	}
	for i := range c.Recordings {
		c.Recordings[i].At = StoredTime(c.Recordings[i].At)
	}
	if len(c.Room.Data) == 0 {
		c.Room.Data = nil
	}
	if len(c.Seqs) == 0 {
		c.Seqs = nil
	}
}
