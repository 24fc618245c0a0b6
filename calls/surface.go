package calls

import (
	"fmt"
	"strings"
	"time"
)

// Surface is one place a call is shown: a conversation on a configured
// chat platform. Chat, Workspace and Channel together are its stable key;
// everything else about it is delivery state, kept by the store and changed
// only by the card outbox (never by a call change).
type Surface struct {
	// Chat is the configured chat platform name (`chats.<name>` in the
	// YAML), or a built-in name such as "stream-api" for Stream's retired
	// calling endpoints.
	Chat string `json:"chat"`
	// Workspace is the team, guild or installation, when the platform has one.
	Workspace string `json:"workspace,omitempty"`
	// Channel is the conversation the card is posted in ("type:id" for Stream).
	Channel string `json:"channel,omitempty"`

	// Delivery is the card's delivery state. It is read-only for the
	// domain: stores fill it in when they read a call and ignore it when
	// they write one.
	Delivery SurfaceDelivery `json:"delivery"`
}

// SurfaceKey is a surface's identity.
type SurfaceKey struct {
	Chat, Workspace, Channel string
}

// Key returns the surface's stable key.
func (s Surface) Key() SurfaceKey { return SurfaceKey{s.Chat, s.Workspace, s.Channel} }

// String renders the key for logs and delivery ids.
func (k SurfaceKey) String() string {
	parts := []string{k.Chat, k.Workspace, k.Channel}
	return strings.Join(parts, "/")
}

// SurfaceDelivery is the outbox state of one surface.
type SurfaceDelivery struct {
	// Wanted is the call version the surface should show; Shown the version
	// it last showed. Wanted > Shown means an update is owed.
	Wanted int64 `json:"wanted_version"`
	Shown  int64 `json:"shown_version"`
	// MessageRef is the platform's reference to the posted card (a message
	// id, "channel:ts" on Slack), empty until the first post.
	MessageRef string `json:"message_ref,omitempty"`
	// Attempts counts failed attempts since the last success.
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastError     string     `json:"last_error,omitempty"`
	DeadAt        *time.Time `json:"dead_at,omitempty"`
}

// Status summarises the delivery state: "delivered", "pending",
// "retrying" or "dead".
func (d SurfaceDelivery) Status() string {
	switch {
	case d.DeadAt != nil:
		return "dead"
	case d.Wanted <= d.Shown:
		return "delivered"
	case d.Attempts > 0:
		return "retrying"
	}
	return "pending"
}

// DeliveryID identifies one delivery of a surface at a call version. It is
// the same on every retry of that delivery and differs for a newer version,
// so a receiver can drop a repeat.
func DeliveryID(callID string, key SurfaceKey, version int64) string {
	return fmt.Sprintf("%s:%s:%d", callID, hashKey(key), version)
}

// Delivery is one surface the outbox worker must bring up to date, as
// claimed from the store under a lease.
type Delivery struct {
	CallID  string
	Surface Surface
	// Owner and LeaseUntil are the lease the claim took; recording the
	// outcome fails with ErrLeaseLost once another worker took it over.
	Owner      string
	LeaseUntil time.Time
}

// DeliveryOutcome is what a worker records after trying a delivery.
type DeliveryOutcome struct {
	CallID string
	Key    SurfaceKey
	Owner  string
	// Delivered is set on success: Shown becomes Version (unless it is
	// already higher), MessageRef replaces the stored one when not empty,
	// Attempts and LastError are cleared.
	Delivered  bool
	Version    int64
	MessageRef string
	// On failure: Attempts is incremented unless Deferred (a rate limit
	// made the worker wait, which is not a failure), LastError set,
	// NextAttemptAt set, and DeadAt set when Dead.
	Deferred      bool
	LastError     string
	NextAttemptAt time.Time
	Dead          bool
	At            time.Time
}

// DeliveryCounts counts surfaces by delivery status, for metrics.
type DeliveryCounts struct {
	Pending, Retrying, Dead int64
}

// RoomJob is a call whose provider room is still to be created. The store
// keeps one for every call that is not terminal and has no room, created
// with the call and removed in the transaction that stores the room or
// ends the call.
type RoomJob struct {
	CallID        string
	Attempts      int
	CreatedAt     time.Time
	NextAttemptAt time.Time
	LastError     string
	Owner         string
	LeaseUntil    time.Time
}

// RoomJobOutcome reschedules a room job after a temporary failure.
type RoomJobOutcome struct {
	CallID        string
	Owner         string
	NextAttemptAt time.Time
	LastError     string
}

// DeliveryMark records a webhook delivery (provider or chat platform) in
// the transaction that applies it, so a redelivery is recognised.
type DeliveryMark struct {
	Source string // the configured provider or chat name
	ID     string // the sender's delivery or event id
	At     time.Time
}
