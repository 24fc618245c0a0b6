package calls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// RoomWorkerConfig configures the room worker.
type RoomWorkerConfig struct {
	Store     Store
	Providers map[string]Provider
	Wake      *Wake
	Logger    *slog.Logger
	Metrics   WorkerMetrics
	// Owner names this worker in leases; it must differ between replicas.
	Owner string
	// Policy bounds retries of temporary failures.
	Policy RetryPolicy
	// AttemptTimeout bounds one CreateRoom request; default 15s.
	AttemptTimeout time.Duration
	// Deadline bounds the whole effort from the call's creation; past it a
	// temporary failure fails the call; default 2m.
	Deadline time.Duration
	// Lease is how long a claimed job stays ours; it must exceed
	// AttemptTimeout; default AttemptTimeout + 15s.
	Lease time.Duration
	// Poll is the longest the worker sleeps without a wake-up; default 1s.
	Poll        time.Duration
	MaxDuration time.Duration
	Now         func() time.Time
}

// RoomWorker creates provider rooms for new calls, off the request path.
// Jobs live in the store (one per call without a room), so a crash or a
// cancelled request never leaves a call without a room: whoever runs next
// picks the job up when its lease expires.
type RoomWorker struct {
	cfg RoomWorkerConfig
}

// NewRoomWorker fills in defaults and returns a worker.
func NewRoomWorker(cfg RoomWorkerConfig) *RoomWorker {
	cfg.Policy = cfg.Policy.WithDefaults(DefaultRoomPolicy)
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 15 * time.Second
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 2 * time.Minute
	}
	if cfg.Lease <= cfg.AttemptTimeout {
		cfg.Lease = cfg.AttemptTimeout + 15*time.Second
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
	if cfg.Owner == "" {
		cfg.Owner = "rooms-" + RandomString(8)
	}
	return &RoomWorker{cfg: cfg}
}

// roomBatch is how many jobs one pass claims. Each job is one provider
// request; a small batch keeps leases short relative to the work.
const roomBatch = 4

// Run works until ctx ends, running `parallel` passes at once.
func (w *RoomWorker) Run(ctx context.Context, parallel int) {
	runLoop(ctx, max(parallel, 1), w.cfg.Wake, TopicRooms, w.cfg.Poll, w.RunOnce, w.cfg.Logger, "room worker")
}

// RunOnce claims due jobs and works them; it returns how many it claimed.
func (w *RoomWorker) RunOnce(ctx context.Context) (int, error) {
	now := w.cfg.Now()
	jobs, err := w.cfg.Store.ClaimRoomJobs(ctx, w.cfg.Owner, now, w.cfg.Lease, roomBatch)
	if err != nil {
		return 0, fmt.Errorf("claim room jobs: %w", err)
	}
	// The jobs of one claim are worked side by side: each is mostly a wait
	// on the provider (seconds, for some), and worked one after the other
	// the last would wait for all the others, its lease running out.
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() {
			if err := w.work(ctx, job); err != nil && !errors.Is(err, ErrLeaseLost) {
				w.cfg.Logger.ErrorContext(ctx, "room job failed", "call_id", job.CallID, "err", err)
			}
		})
	}
	wg.Wait()
	return len(jobs), nil
}

func (w *RoomWorker) work(ctx context.Context, job RoomJob) error {
	started := w.cfg.Now()
	call, err := w.cfg.Store.GetCall(ctx, job.CallID)
	if err != nil {
		return err
	}
	if call.Room.Name != "" || call.State.Terminal() {
		return nil // the store removed the job with that change
	}
	provider, ok := w.cfg.Providers[call.Provider]
	if !ok {
		return w.fail(ctx, call, fmt.Sprintf("provider %q is not configured any more", call.Provider), "permanent", started)
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	room, err := provider.CreateRoom(actx, RoomRequest{CallID: call.ID, Type: call.Type, Title: call.Title, MaxDuration: w.cfg.MaxDuration, Name: call.Room.Data[RoomNameKey]})
	cancel()
	if err == nil {
		return w.store(ctx, call, room, started)
	}
	if ctx.Err() != nil {
		// Shutting down: the lease runs out and another run takes over.
		return ctx.Err()
	}
	w.cfg.Logger.WarnContext(ctx, "provider could not create the room", "call_id", call.ID, "provider", call.Provider, "attempt", job.Attempts+1, "err", err)
	var perm *PermanentError
	if errors.As(err, &perm) {
		return w.fail(ctx, call, fmt.Sprintf("%s refused to create the room: %s", call.Provider, perm.Reason), "permanent", started)
	}
	failed := job.Attempts + 1
	var temp *TemporaryError
	retryAfter := time.Duration(0)
	if errors.As(err, &temp) {
		retryAfter = temp.RetryAfter
	}
	next := w.cfg.Now().Add(w.cfg.Policy.Backoff(failed, retryAfter))
	if w.cfg.Policy.GiveUp(failed) || next.Sub(job.CreatedAt) > w.cfg.Deadline {
		return w.fail(ctx, call, fmt.Sprintf("%s could not create the room after %d attempts (temporary failures)", call.Provider, failed), "exhausted", started)
	}
	w.cfg.Metrics.RoomJobDone("retry", w.cfg.Now().Sub(started))
	return w.cfg.Store.RescheduleRoomJob(ctx, RoomJobOutcome{
		CallID: call.ID, Owner: w.cfg.Owner, NextAttemptAt: next,
		LastError: "temporary failure: " + truncate(err.Error(), 300),
	})
}

// store records the room. The check runs on the locked call: a call that
// ended while its room was being created gets no room, and the room is
// closed again.
func (w *RoomWorker) store(ctx context.Context, call Call, room Room, started time.Time) error {
	stale := false
	_, err := w.cfg.Store.UpdateCall(ctx, call.ID, nil, func(c *Call) ([]Event, error) {
		if c.Room.Name != "" || c.State.Terminal() {
			stale = c.Room.Name == ""
			return nil, nil
		}
		c.Room = room
		c.UpdatedAt = w.cfg.Now()
		return []Event{{Kind: EventUpdated, CallID: c.ID, State: c.State, Reason: "room_created", At: c.UpdatedAt}}, nil
	})
	if err != nil {
		return fmt.Errorf("store room of call %s: %w", call.ID, err)
	}
	if stale {
		if p, ok := w.cfg.Providers[call.Provider]; ok {
			ectx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
			defer cancel()
			if err := p.EndRoom(ectx, room); err != nil {
				w.cfg.Logger.WarnContext(ctx, "could not close the room of a call that ended meanwhile", "call_id", call.ID, "err", err)
			}
		}
	}
	w.cfg.Metrics.RoomJobDone("created", w.cfg.Now().Sub(started))
	w.cfg.Wake.Notify()
	w.cfg.Logger.InfoContext(ctx, "room created", "call_id", call.ID, "provider", call.Provider, "room", room.Name)
	return nil
}

// fail makes the call failed with reason (for admins; never the
// provider's own reply text).
func (w *RoomWorker) fail(ctx context.Context, call Call, reason, outcome string, started time.Time) error {
	_, err := w.cfg.Store.UpdateCall(ctx, call.ID, nil, func(c *Call) ([]Event, error) {
		if c.Room.Name != "" || c.State.Terminal() {
			return nil, nil
		}
		c.Room.Error = reason
		ev, err := c.Transition(StateFailed, ReasonProviderError, w.cfg.Now())
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	})
	if err != nil {
		return fmt.Errorf("fail call %s: %w", call.ID, err)
	}
	w.cfg.Metrics.RoomJobDone(outcome, w.cfg.Now().Sub(started))
	w.cfg.Wake.Notify()
	w.cfg.Logger.ErrorContext(ctx, "call failed: no room", "call_id", call.ID, "provider", call.Provider, "reason", reason)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WorkerMetrics receives what the workers did, for Prometheus.
type WorkerMetrics interface {
	// RoomJobDone: outcome is created, retry, permanent or exhausted.
	RoomJobDone(outcome string, took time.Duration)
	// DeliveryDone: outcome is delivered, retry, deferred or dead;
	// latency is from the call change to the delivery (delivered only).
	DeliveryDone(chat, outcome string, latency time.Duration)
}

type noMetrics struct{}

func (noMetrics) RoomJobDone(string, time.Duration)          {}
func (noMetrics) DeliveryDone(string, string, time.Duration) {}

// wakeGap is the least time between the start of an empty pass and the
// next pass a wake-up starts (see runLoop).
const wakeGap = 5 * time.Millisecond

// runLoop runs pass in `parallel` goroutines until ctx ends. Each loops
// straight on while passes find work, and otherwise sleeps until a wake-up
// or poll. Errors are logged and retried on the next poll.
//
// Only the first goroutine listens to wake: a change wakes one pass, not
// `parallel` of them (under load, most wake-ups find nothing new, and
// each pass costs a query). A pass that finds work wakes the others, so
// a burst still gets every goroutine.
//
// A wake-up that follows an empty pass within wakeGap waits out the rest
// of it: under a webhook load every change wakes the listener, and a pass
// per change was thousands of "anything due?" queries a second that found
// nothing (a tenth of the gateway's CPU). Cards are paced far slower than
// that, and a room job is picked up at most wakeGap later.
func runLoop(ctx context.Context, parallel int, wake *Wake, topic Topic, poll time.Duration, pass func(context.Context) (int, error), log *slog.Logger, what string) {
	done := make(chan struct{})
	helpers := NewWake()
	for i := range parallel {
		go func() {
			defer func() { done <- struct{}{} }()
			// The first goroutine listens for the topic; the others are
			// woken by a pass that found work.
			var woken <-chan struct{}
			var stop func()
			if i == 0 {
				woken, stop = wake.SubscribeTo(topic)
			} else {
				woken, stop = helpers.Subscribe()
			}
			defer stop()
			t := time.NewTimer(0)
			defer t.Stop()
			gap := time.NewTimer(0)
			defer gap.Stop()
			for {
				passed := time.Now()
				n, err := pass(ctx)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					log.ErrorContext(ctx, what+" pass failed", "err", err)
				}
				if n > 0 && err == nil {
					helpers.Local()
					continue
				}
				t.Reset(poll)
				select {
				case <-ctx.Done():
					return
				case <-woken:
					if wait := wakeGap - time.Since(passed); wait > 0 {
						gap.Reset(wait)
						select {
						case <-ctx.Done():
							return
						case <-gap.C:
						}
					}
				case <-t.C:
				}
			}
		}()
	}
	for range parallel {
		<-done
	}
}
