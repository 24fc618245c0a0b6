package calls

import (
	"context"
	"net/http"
	"time"
)

// Provider hosts the media of a call. Each adapter (jitsi, livekit, agora,
// …) implements it; the service calls it and never the adapter directly.
type Provider interface {
	// CreateRoom prepares the room for a call. It must be idempotent on
	// req.CallID: creating a room that exists returns it.
	CreateRoom(ctx context.Context, req RoomRequest) (Room, error)
	// Credential mints what one person needs to join the room with the role.
	Credential(ctx context.Context, room Room, req CredentialRequest) (Credential, error)
	// EndRoom closes the room and disconnects everyone; ending a room that is
	// already gone is not an error.
	EndRoom(ctx context.Context, room Room) error
}

// RoomRequest describes the room a call needs.
type RoomRequest struct {
	CallID      string
	Type        Type
	Title       string
	MaxDuration time.Duration // zero means no limit
	// Name is the room name the gateway suggests (a chat's room_strategy:
	// one persistent room per channel or per person); empty means the
	// provider derives its own. A provider that names rooms uses it, and
	// reuses the room when it exists already.
	Name string
}

// RoomName is the name a provider that names rooms gives this one: the
// suggested Name when there is one (the room is then reused), else the
// call id.
func (r RoomRequest) RoomName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.CallID
}

// InstantRoomProvider is an optional provider capability: its rooms are
// names (a Jitsi room, an Agora channel), so CreateRoom does no I/O and
// cannot fail for a passing reason. Such a call gets its room in the
// transaction that stores it, when InstantRooms says so: no room job, no
// second write of the call, and the first card and ring carry the room.
// Providers whose rooms are made by a request (Twilio, 100ms, Daily, …)
// leave it unimplemented and go through the room worker.
type InstantRoomProvider interface {
	InstantRooms() bool
}

// RoomNameKey is where a call keeps its suggested room name (Room.Data)
// until the room worker has created the room.
const RoomNameKey = "callgate_room_name"

// RoomStrategy is how a chat's calls get provider rooms.
type RoomStrategy string

const (
	// RoomPerCall (the default) gives every call a new room.
	RoomPerCall RoomStrategy = "per_call"
	// RoomPerChannel gives a conversation one persistent room.
	RoomPerChannel RoomStrategy = "per_channel"
	// RoomPerUser gives each caller a personal room.
	RoomPerUser RoomStrategy = "per_user"
)

// CredentialRequest is one person asking to join.
type CredentialRequest struct {
	CallID   string
	Type     Type
	UserID   string
	Name     string
	Role     Role
	TTL      time.Duration
	IssuedAt time.Time
}

// Credential is what a person needs to join a room at the provider.
type Credential struct {
	// JoinURL opens the call in a browser, when the provider has web links.
	JoinURL string
	// Token is the provider's join token, when it uses one.
	Token     string
	ExpiresAt time.Time
	// Fields are provider-specific values a client SDK needs (app id, room,
	// numeric uid, server URL), returned to API callers as they are.
	Fields map[string]any
}

// WebhookRequest is a provider status webhook as it arrived: the URL as
// received (Twilio signs it), the headers and the raw body (every provider
// signs the raw bytes).
type WebhookRequest struct {
	// Method is the HTTP method (POST, or GET for OAuth redirects and
	// install pages).
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// ProviderEventKind is the normalised vocabulary of provider status webhooks.
type ProviderEventKind string

const (
	ProviderRoomStarted       ProviderEventKind = "room_started"
	ProviderRoomEnded         ProviderEventKind = "room_ended"
	ProviderParticipantJoined ProviderEventKind = "participant_joined"
	ProviderParticipantLeft   ProviderEventKind = "participant_left"
	// ProviderRecordingReady: a recording, composition or transcript of
	// the room can be fetched (Recording says what and where).
	ProviderRecordingReady ProviderEventKind = "recording_ready"
)

// Recording is a recording or transcript a provider made of a call.
type Recording struct {
	// Kind is "recording", "composition" (a mixed recording) or "transcript".
	Kind string `json:"kind"`
	// URL is where to fetch or watch it, when the provider gives one.
	URL string `json:"url,omitempty"`
	// ProviderID is the provider's id for it (a recording or egress id).
	ProviderID string        `json:"provider_id,omitempty"`
	Duration   time.Duration `json:"duration,omitempty"`
	At         time.Time     `json:"at"`
}

// RoomStatusReporter is an optional provider capability: what the provider
// says about a room now, so the gateway can reconcile a call whose
// webhooks stopped. An error means "do not know" and changes nothing.
type RoomStatusReporter interface {
	RoomStatus(ctx context.Context, room Room) (RoomStatus, error)
}

// RoomStatus is a provider's answer about one room.
type RoomStatus struct {
	// Gone is a confirmed "this room is over": closed, completed, deleted.
	// It is the only answer that ends a call; a provider whose API cannot
	// tell "gone" from "never existed" or "flaky" must leave it false.
	Gone bool
	// Listed says Participants is the room's whole roster now.
	Listed       bool
	Participants []Participant
}

// ProviderEvent is one status change reported by a provider.
type ProviderEvent struct {
	// DeliveryID identifies the delivery for deduplication (a notice id, an
	// idempotency key); empty when the provider gives none.
	DeliveryID string
	Kind       ProviderEventKind
	// Room is the provider's room name, as in Room.Name.
	Room     string
	Identity string
	Name     string
	// Seq orders events for one identity; 0 when the provider gives no order.
	Seq int64
	At  time.Time
	// Recording is set for ProviderRecordingReady.
	Recording *Recording
}

// IdentityResolver is an optional provider capability for providers whose
// webhooks name participants by an identity of the provider's own (Agora's
// numeric uid) rather than the user id the credential was minted for: it
// maps such an identity back to the call member it belongs to, so rosters
// and cards show members, not numbers.
type IdentityResolver interface {
	ResolveIdentity(c *Call, identity string) (userID string, ok bool)
}
