package calls

import (
	"sync"
	"sync/atomic"
	"time"
)

// EventKind is the vocabulary clients see, from the Capacitor seed's
// CallState, plus active (the provider session started) and failed.
type EventKind string

const (
	EventCreated  EventKind = "created"
	EventRinging  EventKind = "ringing"
	EventAccepted EventKind = "accepted"
	EventRejected EventKind = "rejected"
	EventMissed   EventKind = "missed"
	EventActive   EventKind = "active"
	EventJoined   EventKind = "joined"
	EventLeft     EventKind = "left"
	EventEnded    EventKind = "ended"
	EventFailed   EventKind = "failed"
	// EventUpdated covers changes that are neither state nor roster: a
	// surface added, a room created at the provider.
	EventUpdated EventKind = "updated"
)

// Event is one change to a call. Every change produces one, is stored with
// the change in the same transaction, and is then published to subscribers
// (cards, WebSocket, outbound webhooks).
type Event struct {
	Seq      int64     `json:"seq,omitempty"` // store-assigned, increasing
	Kind     EventKind `json:"kind"`
	CallID   string    `json:"call_id"`
	State    State     `json:"state"`
	Actor    string    `json:"actor,omitempty"`    // the user who caused it, when known
	Identity string    `json:"identity,omitempty"` // the participant, for joined/left
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// Notification is what subscribers receive: the event and the call as it
// was right after the change.
type Notification struct {
	Event Event
	Call  Call
}

// Bus fans events out to in-process subscribers. Publishing never blocks on
// a slow subscriber: each has a buffer, and a full buffer drops the
// notification for that subscriber and counts it, because the durable copy
// is in the store's event log.
type Bus struct {
	mu      sync.RWMutex
	subs    map[int]chan Notification
	next    int
	dropped atomic.Int64
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[int]chan Notification{}} }

// Subscribe returns a channel of notifications and a function that ends the
// subscription and closes the channel.
func (b *Bus) Subscribe(buffer int) (<-chan Notification, func()) {
	ch := make(chan Notification, buffer)
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = ch
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, id)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Dropped counts notifications a full subscriber buffer refused.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Publish delivers n to every subscriber that has room for it.
func (b *Bus) Publish(n Notification) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, ch := range b.subs {
		select {
		case ch <- n:
		default:
			b.dropped.Add(1)
		}
	}
}
