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
	subs map[int]chan struct{}
	next int
	// relay, when set, also tells other replicas (pg_notify).
	relay func()
}

// NewWake returns a Wake with no subscribers.
func NewWake() *Wake { return &Wake{subs: map[int]chan struct{}{}} }

// SetRelay makes Notify also call relay, which tells other replicas.
func (w *Wake) SetRelay(relay func()) {
	w.mu.Lock()
	w.relay = relay
	w.mu.Unlock()
}

// Subscribe returns a channel that receives a signal after Notify, and a
// function that ends the subscription.
func (w *Wake) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	id := w.next
	w.next++
	w.subs[id] = ch
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
	}
}

// Notify signals every subscriber here and, when a relay is set, every
// other replica.
func (w *Wake) Notify() {
	w.Local()
	w.mu.Lock()
	relay := w.relay
	w.mu.Unlock()
	if relay != nil {
		relay()
	}
}

// Local signals the subscribers of this process only; the store's listener
// calls it for notifications from other replicas.
func (w *Wake) Local() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
