package webhooks

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Health remembers, per provider and per chat platform, when a webhook was
// last received and the last error, for the admin page. It is in memory and
// per replica: behind a load balancer each replica knows the webhooks it
// received. A nil *Health records nothing.
type Health struct {
	mu   sync.Mutex
	seen map[string]*Seen // kind + "/" + name
	now  func() time.Time
}

// Seen is what Health knows of one provider or chat platform.
type Seen struct {
	// Kind is "provider" or "chat"; Name the configured name.
	Kind, Name string
	// Last is when the last request arrived, Outcome how it went
	// ("applied", "answered", "unauthenticated", "malformed", "failed", …).
	Last    time.Time
	Outcome string
	// LastOK is the last request that was accepted.
	LastOK time.Time
	// LastError is the last refusal or failure, and when.
	LastError   string
	LastErrorAt time.Time
	Count       int64
}

// NewHealth returns an empty recorder.
func NewHealth() *Health { return &Health{seen: map[string]*Seen{}, now: time.Now} }

// Record notes one request of kind ("provider" or "chat") for name.
func (h *Health) Record(kind, name, outcome string, err error) {
	if h == nil {
		return
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seen[kind+"/"+name]
	if s == nil {
		s = &Seen{Kind: kind, Name: name}
		h.seen[kind+"/"+name] = s
	}
	s.Last, s.Outcome = now, outcome
	s.Count++
	if err == nil {
		s.LastOK = now
		return
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	s.LastError, s.LastErrorAt = msg, now
}

// Snapshot returns everything seen, providers first, then by name.
func (h *Health) Snapshot() []Seen {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	out := make([]Seen, 0, len(h.seen))
	for _, s := range h.seen {
		out = append(out, *s)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b Seen) int {
		if c := strings.Compare(b.Kind, a.Kind); c != 0 { // provider before chat
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
