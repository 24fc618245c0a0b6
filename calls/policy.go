package calls

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is how the gateway retries work that failed temporarily:
// card deliveries and provider room creation. It is the one place the
// backoff rules live; its knobs are in the YAML (delivery: and rooms:).
type RetryPolicy struct {
	// MinBackoff is the delay before the first retry, doubling with each
	// further failure up to MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAttempts bounds the attempts; after the last one fails the work
	// is given up: a delivery is parked as dead, a room creation fails the
	// call.
	MaxAttempts int
}

// DefaultDeliveryPolicy retries a card for about 20 minutes before parking
// it: long enough to ride out a platform outage, short enough that a dead
// card is noticed the same day.
var DefaultDeliveryPolicy = RetryPolicy{MinBackoff: time.Second, MaxBackoff: 5 * time.Minute, MaxAttempts: 10}

// DefaultRoomPolicy retries room creation briefly: a person is waiting.
var DefaultRoomPolicy = RetryPolicy{MinBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxAttempts: 6}

// WithDefaults fills the zero knobs from def.
func (p RetryPolicy) WithDefaults(def RetryPolicy) RetryPolicy {
	if p.MinBackoff <= 0 {
		p.MinBackoff = def.MinBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = def.MaxBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = def.MaxAttempts
	}
	return p
}

// GiveUp reports whether failed attempts so far exhaust the budget.
func (p RetryPolicy) GiveUp(failed int) bool { return failed >= p.MaxAttempts }

// Backoff returns how long to wait after the failed-th consecutive failure
// (1 for the first). The exponential delay gets "equal jitter" (half fixed,
// half random) so that many clients failing together do not retry
// together. retryAfter, what the remote asked for, is a floor: the retry is
// never earlier than it, with up to 10% jitter on top.
func (p RetryPolicy) Backoff(failed int, retryAfter time.Duration) time.Duration {
	d := p.MinBackoff
	for i := 1; i < failed && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > 0 && d < retryAfter {
		d = retryAfter + rand.N(retryAfter/10+1)
	}
	return d
}
