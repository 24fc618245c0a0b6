package calls_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// statusProvider reports room status as the test says.
type statusProvider struct {
	*scriptedProvider
	status calls.RoomStatus
	err    error
	asked  atomic.Int32
}

func (p *statusProvider) RoomStatus(context.Context, calls.Room) (calls.RoomStatus, error) {
	p.asked.Add(1)
	return p.status, p.err
}

func TestReconcilerEndsOnlyOnAConfirmedGone(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	sp := &statusProvider{scriptedProvider: f.provider}
	r := calls.NewReconciler(calls.ReconcilerConfig{
		Store: f.store, Providers: map[string]calls.Provider{"p": sp}, Logger: quiet,
		Grace: 2 * time.Minute, Now: func() time.Time { return *f.now.Load() },
	})
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "quiet"})
	f.work(t)
	f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "room-quiet", Identity: "ada", Seq: 1}})

	// Not quiet yet: nobody is asked.
	f.advance(time.Minute)
	r.RunOnce(ctx)
	if sp.asked.Load() != 0 {
		t.Fatal("asked about a call that changed within the grace period")
	}
	// A flaky 404 or a timeout: ambiguous, nothing changes.
	f.advance(2 * time.Minute)
	sp.err = errors.New("404 from a flaky API")
	if n, _ := r.RunOnce(ctx); n != 0 || sp.asked.Load() != 1 {
		t.Fatalf("changed %d after an ambiguous answer (asked %d)", n, sp.asked.Load())
	}
	// At most once per grace period.
	sp.err = nil
	sp.status = calls.RoomStatus{Gone: true}
	f.advance(time.Minute)
	r.RunOnce(ctx)
	if sp.asked.Load() != 1 {
		t.Fatalf("asked %d times within one grace period", sp.asked.Load())
	}
	if c, _ := f.svc.Get(ctx, "quiet"); c.State != calls.StateActive {
		t.Fatalf("state %s before a confirmed gone", c.State)
	}
	f.advance(2 * time.Minute)
	if n, err := r.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("changed %d (%v) on a confirmed gone", n, err)
	}
	c, _ := f.svc.Get(ctx, "quiet")
	if c.State != calls.StateEnded || c.EndReason != calls.ReasonRoomGone {
		t.Fatalf("after gone: %s/%s", c.State, c.EndReason)
	}
}

func TestReconcilerCorrectsADriftedRoster(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	sp := &statusProvider{scriptedProvider: f.provider}
	r := calls.NewReconciler(calls.ReconcilerConfig{
		Store: f.store, Providers: map[string]calls.Provider{"p": sp}, Logger: quiet,
		Grace: time.Minute, Now: func() time.Time { return *f.now.Load() },
	})
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "drift"})
	f.work(t)
	for _, who := range []string{"ada", "bob"} {
		f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "room-drift", Identity: who, Seq: 5}})
	}
	// Bob's leave was lost; Cy's join too.
	sp.status = calls.RoomStatus{Listed: true, Participants: []calls.Participant{{Identity: "ada"}, {Identity: "cy", Name: "Cy"}}}
	f.advance(2 * time.Minute)
	if n, err := r.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("changed %d, %v", n, err)
	}
	c, _ := f.svc.Get(ctx, "drift")
	var got []string
	for _, p := range c.Participants {
		got = append(got, p.Identity)
	}
	if len(got) != 2 || got[0] != "ada" || got[1] != "cy" {
		t.Fatalf("roster %v, want ada and cy", got)
	}
	// A late webhook still applies in the provider's own order.
	f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantLeft, Room: "room-drift", Identity: "ada", Seq: 6}})
	if c, _ := f.svc.Get(ctx, "drift"); len(c.Participants) != 1 {
		t.Fatalf("after a later leave: %+v", c.Participants)
	}
}

func TestEmptyCallsEnd(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{EndWhenEmpty: 5 * time.Minute, RingTimeout: time.Hour})
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "lonely"})
	f.work(t)
	join := func(who string, seq int64) {
		f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantJoined, Room: "room-lonely", Identity: who, Seq: seq}})
	}
	leave := func(who string, seq int64) {
		f.svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderParticipantLeft, Room: "room-lonely", Identity: who, Seq: seq}})
	}
	f.advance(4 * time.Minute)
	join("ada", 1)
	join("bob", 1)
	f.advance(30 * time.Minute) // two people: never empty
	if n, _ := f.svc.ExpireOnce(ctx); n != 0 {
		t.Fatal("ended a call with two people in it")
	}
	leave("bob", 2) // Ada alone from now
	f.advance(4 * time.Minute)
	if n, _ := f.svc.ExpireOnce(ctx); n != 0 {
		t.Fatal("ended before end_when_empty passed")
	}
	f.advance(2 * time.Minute)
	if n, _ := f.svc.ExpireOnce(ctx); n != 1 {
		t.Fatal("a call with one person for 6 minutes did not end")
	}
	if c, _ := f.svc.Get(ctx, "lonely"); c.State != calls.StateEnded || c.EndReason != calls.ReasonEmpty || f.provider.ends.Load() != 1 {
		t.Fatalf("%s/%s, %d rooms ended", c.State, c.EndReason, f.provider.ends.Load())
	}
	// A call nobody ever joined ends too; a ringing one is the ring
	// timeout's business.
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "nobody"})
	f.svc.Create(ctx, calls.UserActor("ada"), calls.CreateRequest{ID: "ringing", Ring: true, Members: []calls.Member{{UserID: "bob"}}})
	f.advance(6 * time.Minute)
	f.svc.ExpireOnce(ctx)
	if c, _ := f.svc.Get(ctx, "nobody"); c.EndReason != calls.ReasonEmpty {
		t.Fatalf("nobody: %s/%s", c.State, c.EndReason)
	}
	if c, _ := f.svc.Get(ctx, "ringing"); c.State != calls.StateRinging {
		t.Fatalf("ringing call: %s/%s", c.State, c.EndReason)
	}
}
