package calls

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ReconcilerConfig configures the reconciler.
type ReconcilerConfig struct {
	Store     Store
	Providers map[string]Provider
	Wake      *Wake
	Logger    *slog.Logger
	// Grace is how long a call must have been quiet (no change stored)
	// before its provider is asked about it, and the least time between two
	// questions about one call; default 2m.
	Grace time.Duration
	// Batch bounds the provider questions per pass; default 20.
	Batch int
	// Timeout bounds one question; default 10s.
	Timeout time.Duration
	Now     func() time.Time
}

// Reconciler keeps calls true when a provider's webhooks stop arriving (a
// misconfigured URL, an outage): for quiet live calls it asks providers
// that can tell (RoomStatusReporter) what the room looks like. A confirmed
// "gone" ends the call (room_gone); a listed roster that drifted from the
// call's is corrected. An ambiguous answer (an error, a timeout) changes
// nothing. It asks about each call at most once per grace period and at
// most Batch calls per pass, so it never hammers a provider.
type Reconciler struct {
	cfg ReconcilerConfig

	mu sync.Mutex
	// asked remembers when each call was last asked about, so one call is
	// asked at most once per grace period even if it stays quiet.
	asked map[string]time.Time
}

// NewReconciler fills in defaults.
func NewReconciler(cfg ReconcilerConfig) *Reconciler {
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Wake == nil {
		cfg.Wake = NewWake()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, asked: map[string]time.Time{}}
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.ErrorContext(ctx, "reconciliation failed", "err", err)
			}
		}
	}
}

// RunOnce asks about quiet calls once and returns how many it changed.
func (r *Reconciler) RunOnce(ctx context.Context) (int, error) {
	now := r.cfg.Now()
	quiet, err := r.cfg.Store.ListCalls(ctx, ListQuery{
		States: []State{StateCreated, StateAccepted, StateActive}, By: ByUpdate,
		Before: now.Add(-r.cfg.Grace), Limit: r.cfg.Batch * 4,
	})
	if err != nil {
		return 0, err
	}
	r.forget(now)
	asked, changed := 0, 0
	for _, c := range quiet {
		reporter, ok := r.cfg.Providers[c.Provider].(RoomStatusReporter)
		if !ok || c.Room.Name == "" || !r.due(c.ID, now) {
			continue
		}
		if asked++; asked > r.cfg.Batch {
			break
		}
		qctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		st, err := reporter.RoomStatus(qctx, c.Room)
		cancel()
		if err != nil {
			r.cfg.Logger.DebugContext(ctx, "room status unknown; nothing changed", "call_id", c.ID, "provider", c.Provider, "err", err)
			continue
		}
		seen := c.UpdatedAt
		after, err := r.cfg.Store.UpdateCall(ctx, c.ID, nil, func(cur *Call) ([]Event, error) {
			// A change since the question (a webhook after all) wins.
			if !cur.UpdatedAt.Equal(seen) || cur.State.Terminal() {
				return nil, nil
			}
			return reconcile(cur, st, now)
		})
		if err != nil {
			return changed, err
		}
		if after.Version != c.Version {
			changed++
			r.cfg.Wake.Notify()
			r.cfg.Logger.InfoContext(ctx, "call reconciled with its provider", "call_id", c.ID, "state", after.State, "participants", len(after.Participants))
		}
	}
	return changed, nil
}

// reconcile applies a provider's answer to the call.
func reconcile(c *Call, st RoomStatus, now time.Time) ([]Event, error) {
	if st.Gone {
		ev, err := c.Transition(StateEnded, ReasonRoomGone, now)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	}
	if !st.Listed {
		return nil, nil
	}
	var out []Event
	listed := map[string]Participant{}
	for _, p := range st.Participants {
		listed[p.Identity] = p
	}
	// Seq 0: a listing has no place in the provider's own ordering, so it
	// neither overrides nor blocks the webhooks that come after it.
	for _, p := range slices.Clone(c.Participants) {
		if _, ok := listed[p.Identity]; !ok {
			if ev, changed := c.MarkPresence(p.Identity, p.Name, false, 0, now); changed {
				out = append(out, ev)
			}
		}
	}
	for _, p := range st.Participants {
		if ev, changed := c.MarkPresence(p.Identity, p.Name, true, 0, now); changed {
			if c.State != StateActive {
				live, err := c.Transition(StateActive, "", now)
				if err != nil {
					return nil, err
				}
				out = append(out, live)
			}
			ev.State = c.State
			out = append(out, ev)
		}
	}
	return out, nil
}

func (r *Reconciler) due(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.asked[id]; ok && now.Sub(last) < r.cfg.Grace {
		return false
	}
	r.asked[id] = now
	return true
}

// forget drops memories older than a grace period; they no longer matter.
func (r *Reconciler) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.asked {
		if now.Sub(at) >= r.cfg.Grace {
			delete(r.asked, id)
		}
	}
}
