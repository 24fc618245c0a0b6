package calls

import "sync"

// Wake tells workers that work may be due, so they need not wait for their
// next poll. It is only a hint: workers poll anyway, and nothing depends on
// a signal arriving. Signals coalesce: a subscriber that is busy sees one
// pending signal however many were sent.
//
// Across replicas, a Wake is fed by the store's notifications (PostgreSQL
// LISTEN/NOTIFY), see package store.
type Wake struct {
	mu   sync.Mutex
	subs map[int]wakeSub
	next int
	// relay, when set, also tells other replicas (pg_notify).
	relay func()
}

// Topic says what a change may have made due, so that a worker is woken
// only for work it does: every provider webhook woke the room worker, which
// then asked the store for room jobs no participant event ever queues.
type Topic uint8

const (
	// TopicCards: a card may owe an update (a change of a call that may
	// have surfaces, a retry).
	TopicCards Topic = 1 << iota
	// TopicRooms: a room job may be due (a new call without a room).
	TopicRooms
	// TopicCalls: a call changed (its events, its room): what the
	// WebSocket hub, the admin page and requests waiting for a room watch.
	TopicCalls
	// AllTopics is every topic: what Notify and Subscribe mean.
	AllTopics = TopicCards | TopicRooms | TopicCalls
)

type wakeSub struct {
	ch     chan struct{}
	topics Topic
}

// NewWake returns a Wake with no subscribers.
func NewWake() *Wake { return &Wake{subs: map[int]wakeSub{}} }

// SetRelay makes Notify also call relay, which tells other replicas.
func (w *Wake) SetRelay(relay func()) {
	w.mu.Lock()
	w.relay = relay
	w.mu.Unlock()
}

// Subscribe returns a channel that receives a signal after every Notify,
// and a function that ends the subscription.
func (w *Wake) Subscribe() (<-chan struct{}, func()) { return w.SubscribeTo(AllTopics) }

// SubscribeTo is Subscribe for the notifications of the given topics only.
func (w *Wake) SubscribeTo(topics Topic) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	id := w.next
	w.next++
	w.subs[id] = wakeSub{ch: ch, topics: topics}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
	}
}

// Notify signals every subscriber here and, when a relay is set, every
// other replica.
func (w *Wake) Notify() { w.NotifyOf(AllTopics) }

// NotifyOf signals the subscribers here to any of the topics and, when a
// relay is set, every other replica (whose subscribers all hear it: the
// relay carries no topics, and a wake-up too many costs one query).
func (w *Wake) NotifyOf(topics Topic) {
	w.local(topics)
	w.mu.Lock()
	relay := w.relay
	w.mu.Unlock()
	if relay != nil {
		relay()
	}
}

// Local signals the subscribers of this process only; the store's listener
// calls it for notifications from other replicas.
func (w *Wake) Local() { w.local(AllTopics) }

func (w *Wake) local(topics Topic) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sub := range w.subs {
		if sub.topics&topics == 0 {
			continue
		}
		select {
		case sub.ch <- struct{}{}:
		default:
		}
	}
}
