package calls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// OutboxConfig configures the card outbox.
type OutboxConfig struct {
	Store Store
	// Posters by configured chat name. A surface whose chat has no poster
	// (Stream's retired endpoints, a chat removed from the YAML) is marked
	// shown without sending anything.
	Posters map[string]CardPoster
	// JoinURL returns the stable join link of a call.
	JoinURL func(callID string) string
	Wake    *Wake
	Logger  *slog.Logger
	Metrics WorkerMetrics
	// Owner names this worker in leases; it must differ between replicas.
	Owner  string
	Policy RetryPolicy
	// Rate and Burst pace deliveries per destination (a chat platform's
	// webhook URL, a channel): at most Burst at once, then Rate a second.
	// Zero Rate means 1/s, zero Burst means 3.
	Rate  float64
	Burst int
	// Timeout bounds one delivery request; default 10s.
	Timeout time.Duration
	// Lease must exceed Timeout; default Timeout + 20s.
	Lease time.Duration
	Poll  time.Duration
	Now   func() time.Time
}

// Outbox keeps every card up to date with its call. A call change bumps
// the version each of its surfaces should show (in the change's own
// transaction); the outbox claims surfaces that owe an update, renders the
// newest state of the call and posts or edits the card. Ten changes in a
// second therefore cost one delivery of the newest state. A failure is
// retried with backoff, honouring Retry-After, until the attempt budget is
// spent; then the surface is parked as dead until someone retries it.
type Outbox struct {
	cfg OutboxConfig

	mu       sync.Mutex
	limiters map[string]*limiterEntry
	// slots holds, for each surface that pacing deferred, the time its
	// destination's limiter set aside for it. The surface comes back at
	// that time and is sent on its slot without asking the limiter again.
	// Why: a cancelled reservation made every waiting surface compete for
	// the next token, so with a hundred cards waiting on one app each was
	// claimed and deferred (two writes) dozens of times per card sent;
	// with kept slots each waits once, in order.
	slots map[slotKey]time.Time
	// slotsAdded counts slots made since the last sweep of abandoned ones.
	slotsAdded int
}

type slotKey struct {
	dest   string
	callID string
	key    SurfaceKey
}

// slotAbandoned is how long after its time a slot is kept for a surface
// that did not come back (another replica took it, the store lost the
// lease); its token stays spent, which only errs on the slow side.
const slotAbandoned = time.Minute

type limiterEntry struct {
	lim  *rate.Limiter
	used time.Time
}

// NewOutbox fills in defaults and returns an outbox.
func NewOutbox(cfg OutboxConfig) *Outbox {
	cfg.Policy = cfg.Policy.WithDefaults(DefaultDeliveryPolicy)
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Lease <= cfg.Timeout {
		cfg.Lease = cfg.Timeout + 20*time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Wake == nil {
		cfg.Wake = NewWake()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JoinURL == nil {
		cfg.JoinURL = func(string) string { return "" }
	}
	if cfg.Owner == "" {
		cfg.Owner = "outbox-" + RandomString(8)
	}
	return &Outbox{cfg: cfg, limiters: map[string]*limiterEntry{}, slots: map[slotKey]time.Time{}}
}

// outboxBatch is how many surfaces one pass claims.
const outboxBatch = 8

// Run delivers until ctx ends, with `parallel` passes at once.
func (o *Outbox) Run(ctx context.Context, parallel int) {
	runLoop(ctx, max(parallel, 1), o.cfg.Wake, TopicCards, o.cfg.Poll, o.RunOnce, o.cfg.Logger, "outbox")
}

// RunOnce claims due surfaces and delivers them; it returns how many it
// claimed.
func (o *Outbox) RunOnce(ctx context.Context) (int, error) {
	ds, err := o.cfg.Store.ClaimDeliveries(ctx, o.cfg.Owner, o.cfg.Now(), o.cfg.Lease, outboxBatch)
	if err != nil {
		return 0, fmt.Errorf("claim deliveries: %w", err)
	}
	for _, d := range ds {
		if err := o.deliver(ctx, d); err != nil && !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
			o.cfg.Logger.ErrorContext(ctx, "card delivery could not be recorded", "call_id", d.CallID, "surface", d.Surface.Key().String(), "err", err)
		}
	}
	return len(ds), nil
}

func (o *Outbox) deliver(ctx context.Context, d Delivery) error {
	key := d.Surface.Key()
	outcome := DeliveryOutcome{CallID: d.CallID, Key: key, Owner: o.cfg.Owner}
	poster, ok := o.cfg.Posters[key.Chat]
	if !ok {
		outcome.Delivered, outcome.Version, outcome.At = true, d.Surface.Delivery.Wanted, o.cfg.Now()
		return o.cfg.Store.RecordDelivery(ctx, outcome)
	}
	dest := key.Chat
	if dl, ok := poster.(DestinationLimiter); ok {
		dest = key.Chat + "|" + dl.Destination(d.Surface)
	}
	// Pacing is decided before the call is read: a busy call's card is
	// deferred many times over, and reading its roster each time would
	// be wasted.
	if wait := o.reserve(dest, d.CallID, key); wait > 0 {
		// Pacing is not failure: the attempt budget is untouched.
		outcome.Deferred, outcome.NextAttemptAt, outcome.At = true, o.cfg.Now().Add(wait), o.cfg.Now()
		outcome.LastError = d.Surface.Delivery.LastError
		o.cfg.Metrics.DeliveryDone(key.Chat, "deferred", 0)
		return o.cfg.Store.RecordDelivery(ctx, outcome)
	}
	call, err := o.cfg.Store.GetCall(ctx, d.CallID)
	if err != nil {
		return err
	}
	// The newest state is sent whatever version was asked for: versions
	// only ever grow, and a card shows the call as it is.
	if call.Surfaces != nil {
		if cur, ok := call.Surface(key); ok {
			d.Surface = cur
		}
	}
	pctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	ref, err := poster.PostCard(pctx, CardDelivery{
		Call: call, Surface: d.Surface, Version: call.Version,
		DeliveryID: DeliveryID(call.ID, key, call.Version), JoinURL: o.cfg.JoinURL(call.ID),
	})
	cancel()
	now := o.cfg.Now()
	outcome.At = now
	if err == nil {
		outcome.Delivered, outcome.Version, outcome.MessageRef = true, call.Version, ref
		o.cfg.Metrics.DeliveryDone(key.Chat, "delivered", now.Sub(call.UpdatedAt))
		return o.cfg.Store.RecordDelivery(ctx, outcome)
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease expires and the delivery is tried again
	}
	failed := d.Surface.Delivery.Attempts + 1
	var perm *PermanentError
	var temp *TemporaryError
	retryAfter := time.Duration(0)
	switch {
	case errors.As(err, &perm):
		outcome.LastError = perm.Reason
		outcome.Dead = true
	case errors.As(err, &temp):
		retryAfter = temp.RetryAfter
		outcome.LastError = truncate(err.Error(), 300)
	default:
		outcome.LastError = truncate(err.Error(), 300)
	}
	if o.cfg.Policy.GiveUp(failed) {
		outcome.Dead = true
		outcome.LastError = fmt.Sprintf("gave up after %d attempts: %s", failed, outcome.LastError)
	}
	outcome.NextAttemptAt = now.Add(o.cfg.Policy.Backoff(failed, retryAfter))
	result := "retry"
	if outcome.Dead {
		result = "dead"
	}
	o.cfg.Metrics.DeliveryDone(key.Chat, result, 0)
	o.cfg.Logger.WarnContext(ctx, "card delivery failed", "call_id", call.ID, "surface", key.String(), "attempt", failed, "dead", outcome.Dead, "err", err)
	return o.cfg.Store.RecordDelivery(ctx, outcome)
}

// reserve returns 0 when the surface may be sent now, having taken a
// token from the destination's limiter, or how long until the slot the
// limiter set aside for it.
func (o *Outbox) reserve(dest, callID string, key SurfaceKey) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.cfg.Now()
	sk := slotKey{dest: dest, callID: callID, key: key}
	if at, ok := o.slots[sk]; ok {
		if wait := at.Sub(now); wait > 0 {
			return wait
		}
		delete(o.slots, sk)
		return 0
	}
	e, ok := o.limiters[dest]
	if !ok {
		// Bound the table: a destination idle for a minute whose bucket
		// is full again (no slot still set aside) is as good as new, so
		// forgetting it changes nothing.
		if len(o.limiters) > 10000 {
			for k, v := range o.limiters {
				if now.Sub(v.used) > time.Minute && v.lim.TokensAt(now) >= float64(o.cfg.Burst) {
					delete(o.limiters, k)
				}
			}
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(o.cfg.Rate), o.cfg.Burst)}
		o.limiters[dest] = e
	}
	e.used = now
	r := e.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return 0
	}
	o.slots[sk] = now.Add(d)
	if o.slotsAdded++; o.slotsAdded >= 1024 {
		o.slotsAdded = 0
		for k, at := range o.slots {
			if now.Sub(at) > slotAbandoned {
				delete(o.slots, k)
			}
		}
	}
	return d
}
