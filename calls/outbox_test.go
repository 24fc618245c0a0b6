package calls_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// recordingPoster is a chat platform whose answers a test scripts. It keeps
// every delivery it was sent.
type recordingPoster struct {
	mu     sync.Mutex
	got    []calls.CardDelivery
	script []error
}

func (p *recordingPoster) PostCard(_ context.Context, d calls.CardDelivery) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, d)
	if len(p.script) > 0 {
		err := p.script[0]
		p.script = p.script[1:]
		if err != nil {
			return "", err
		}
	}
	return "msg-1", nil
}

func (p *recordingPoster) deliveries() []calls.CardDelivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]calls.CardDelivery(nil), p.got...)
}

type outboxFixture struct {
	fixture
	poster *recordingPoster
	outbox *calls.Outbox
}

func newOutboxFixture(t *testing.T) outboxFixture {
	f := newFixture(t, calls.ServiceConfig{})
	p := &recordingPoster{}
	o := calls.NewOutbox(calls.OutboxConfig{
		Store: f.store, Posters: map[string]calls.CardPoster{"acme": p}, Logger: quiet, Owner: "o1",
		JoinURL: func(id string) string { return "https://gw.test/join/" + id },
		Now:     func() time.Time { return *f.now.Load() },
		Rate:    1000, Burst: 1000,
	})
	return outboxFixture{fixture: f, poster: p, outbox: o}
}

func (f outboxFixture) deliver(t *testing.T) {
	t.Helper()
	for range 50 {
		n, err := f.outbox.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("deliveries never ran out")
}

var acme = calls.Surface{Chat: "acme", Channel: "conv-1"}

// Ten changes before the outbox runs cost one delivery, of the newest state.
func TestOutboxCoalescesToTheNewestState(t *testing.T) {
	f := newOutboxFixture(t)
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "busy", Surfaces: []calls.Surface{acme}})
	f.work(t)
	for i := range 10 {
		f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "room-busy", Identity: string(rune('a' + i)), Seq: 1}})
	}
	f.deliver(t)
	got := f.poster.deliveries()
	c, _ := f.svc.Get(ctx, "busy")
	if len(got) != 1 || got[0].Version != c.Version || len(got[0].Call.Participants) != 10 {
		t.Fatalf("%d deliveries, first at version %d with %d people; call at version %d", len(got), got[0].Version, len(got[0].Call.Participants), c.Version)
	}
	if got[0].JoinURL != "https://gw.test/join/busy" || got[0].DeliveryID != calls.DeliveryID("busy", acme.Key(), c.Version) {
		t.Fatalf("delivery %+v", got[0])
	}
	sf, _ := c.Surface(acme.Key())
	if sf.Delivery.Shown != c.Version || sf.Delivery.MessageRef != "msg-1" || sf.Delivery.Status() != "delivered" {
		t.Fatalf("surface after delivery: %+v", sf.Delivery)
	}
	// The next change edits the same message.
	f.svc.End(ctx, admin, "busy")
	f.deliver(t)
	got = f.poster.deliveries()
	if len(got) != 2 || got[1].Surface.Delivery.MessageRef != "msg-1" || got[1].Call.State != calls.StateEnded {
		t.Fatalf("second delivery %+v", got[len(got)-1])
	}
}

// Three 500s then a 200: delivered once, every try with the same delivery
// id, each retry after its backoff.
func TestOutboxRetriesWithTheSameDeliveryID(t *testing.T) {
	f := newOutboxFixture(t)
	ctx := context.Background()
	fail := calls.Temporary(errors.New("HTTP 500"), 0)
	f.poster.script = []error{fail, fail, fail}
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "shaky", Surfaces: []calls.Surface{acme}})
	for range 4 {
		f.deliver(t)
		c, _ := f.svc.Get(ctx, "shaky")
		if sf, _ := c.Surface(acme.Key()); sf.Delivery.Status() == "retrying" && sf.Delivery.NextAttemptAt.After(*f.now.Load()) {
			f.deliver(t) // not due yet: nothing happens
		}
		f.advance(10 * time.Second)
	}
	got := f.poster.deliveries()
	if len(got) != 4 {
		t.Fatalf("%d tries, want 4", len(got))
	}
	for _, d := range got {
		if d.DeliveryID != got[0].DeliveryID {
			t.Fatalf("delivery ids differ across retries: %q vs %q", d.DeliveryID, got[0].DeliveryID)
		}
	}
	c, _ := f.svc.Get(ctx, "shaky")
	if sf, _ := c.Surface(acme.Key()); sf.Delivery.Status() != "delivered" || sf.Delivery.Attempts != 0 {
		t.Fatalf("after success: %+v", sf.Delivery)
	}
}

func TestOutboxHonoursRetryAfter(t *testing.T) {
	f := newOutboxFixture(t)
	ctx := context.Background()
	f.poster.script = []error{calls.Temporary(errors.New("HTTP 429"), 2*time.Second)}
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "paced", Surfaces: []calls.Surface{acme}})
	f.deliver(t)
	f.advance(1900 * time.Millisecond)
	f.deliver(t)
	if n := len(f.poster.deliveries()); n != 1 {
		t.Fatalf("%d tries before Retry-After passed", n)
	}
	f.advance(time.Second)
	f.deliver(t)
	if n := len(f.poster.deliveries()); n != 2 {
		t.Fatalf("%d tries after Retry-After, want 2", n)
	}
}

// Down for longer than the budget: parked as dead and visible; delivered
// after a retry request. A permanent refusal parks at once.
func TestOutboxParksDeadDeliveriesUntilRetried(t *testing.T) {
	f := newOutboxFixture(t)
	ctx := context.Background()
	for range 10 {
		f.poster.script = append(f.poster.script, calls.Temporary(errors.New("connection refused"), 0))
	}
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "down", Surfaces: []calls.Surface{acme}})
	for range 12 {
		f.deliver(t)
		f.advance(10 * time.Minute)
	}
	c, _ := f.svc.Get(ctx, "down")
	sf, _ := c.Surface(acme.Key())
	if sf.Delivery.Status() != "dead" || sf.Delivery.LastError == "" {
		t.Fatalf("after the budget: %+v", sf.Delivery)
	}
	tries := len(f.poster.deliveries())
	counts, _ := f.store.CountDeliveries(ctx)
	if counts.Dead != 1 {
		t.Fatalf("counts %+v", counts)
	}
	f.advance(time.Hour)
	f.deliver(t)
	if len(f.poster.deliveries()) != tries {
		t.Fatal("a dead delivery was tried again without a retry request")
	}
	if _, err := f.svc.RetryDeliveries(ctx, admin, "down", nil); err != nil {
		t.Fatal(err)
	}
	f.deliver(t)
	c, _ = f.svc.Get(ctx, "down")
	if sf, _ := c.Surface(acme.Key()); sf.Delivery.Status() != "delivered" {
		t.Fatalf("after retry: %+v", sf.Delivery)
	}

	f.poster.script = []error{calls.Permanentf("the app refused the card (HTTP %d)", http.StatusForbidden)}
	f.svc.End(ctx, admin, "down")
	f.deliver(t)
	c, _ = f.svc.Get(ctx, "down")
	if sf, _ := c.Surface(acme.Key()); sf.Delivery.Status() != "dead" || sf.Delivery.LastError != "the app refused the card (HTTP 403)" {
		t.Fatalf("after a permanent refusal: %+v", sf.Delivery)
	}
}

// Pacing per destination defers a delivery without spending attempts.
func TestOutboxPacesPerDestination(t *testing.T) {
	f := newOutboxFixture(t)
	f.outbox = calls.NewOutbox(calls.OutboxConfig{
		Store: f.store, Posters: map[string]calls.CardPoster{"acme": f.poster}, Logger: quiet, Owner: "o1",
		Now: func() time.Time { return *f.now.Load() }, Rate: 1, Burst: 1,
	})
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "a", Surfaces: []calls.Surface{acme}})
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "b", Surfaces: []calls.Surface{acme}})
	f.deliver(t)
	if n := len(f.poster.deliveries()); n != 1 {
		t.Fatalf("%d deliveries within one second to one destination, want 1", n)
	}
	for _, id := range []string{"a", "b"} {
		c, _ := f.svc.Get(ctx, id)
		if sf, _ := c.Surface(acme.Key()); sf.Delivery.Attempts != 0 {
			t.Fatalf("pacing spent an attempt: %+v", sf.Delivery)
		}
	}
	f.advance(time.Second)
	f.deliver(t)
	if n := len(f.poster.deliveries()); n != 2 {
		t.Fatalf("%d deliveries after a second, want 2", n)
	}
}

// deferralCounter counts the deliveries the outbox records as deferred by
// pacing, per call.
type deferralCounter struct {
	*store.SQL
	mu       sync.Mutex
	deferred map[string]int
}

func (c *deferralCounter) RecordDelivery(ctx context.Context, o calls.DeliveryOutcome) error {
	if o.Deferred {
		c.mu.Lock()
		c.deferred[o.CallID]++
		c.mu.Unlock()
	}
	return c.SQL.RecordDelivery(ctx, o)
}

// Twenty cards waiting on one destination that allows 10 a second: each
// is deferred once, to a slot of its own, and they go out in the order
// they were first claimed, never faster than the pace. (Cancelling the
// reservation of a deferred card made every waiting card compete for the
// next token: each was claimed and deferred again and again, two writes
// each time, for every card sent.)
func TestOutboxPacedCardsWaitOnceForASlotOfTheirOwn(t *testing.T) {
	f := newOutboxFixture(t)
	counter := &deferralCounter{SQL: f.store, deferred: map[string]int{}}
	f.outbox = calls.NewOutbox(calls.OutboxConfig{
		Store: counter, Posters: map[string]calls.CardPoster{"acme": f.poster}, Logger: quiet, Owner: "o1",
		Now: func() time.Time { return *f.now.Load() }, Rate: 10, Burst: 1,
	})
	ctx := context.Background()
	const n = 20
	for i := range n {
		conv := calls.Surface{Chat: "acme", Channel: fmt.Sprintf("conv-%d", i)}
		if _, _, err := f.svc.Create(ctx, admin, calls.CreateRequest{ID: fmt.Sprintf("c%02d", i), Surfaces: []calls.Surface{conv}}); err != nil {
			t.Fatal(err)
		}
	}
	start := *f.now.Load()
	var sentAt []time.Time
	for step := 0; step < 400 && len(f.poster.deliveries()) < n; step++ {
		before := len(f.poster.deliveries())
		f.deliver(t)
		for range len(f.poster.deliveries()) - before {
			sentAt = append(sentAt, *f.now.Load())
		}
		f.advance(10 * time.Millisecond)
	}
	if got := len(f.poster.deliveries()); got != n {
		t.Fatalf("%d of %d cards sent within 4 s at 10/s", got, n)
	}
	for i := 1; i < len(sentAt); i++ {
		if gap := sentAt[i].Sub(sentAt[i-1]); gap < 100*time.Millisecond {
			t.Fatalf("cards %d and %d went out %v apart, faster than 10/s", i-1, i, gap)
		}
	}
	if last := sentAt[n-1].Sub(start); last > 2*time.Second {
		t.Fatalf("the last card went out after %v; at 10/s twenty take 1.9 s", last)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	for id, times := range counter.deferred {
		if times > 1 {
			t.Errorf("call %s was deferred %d times, want at most once", id, times)
		}
	}
}
