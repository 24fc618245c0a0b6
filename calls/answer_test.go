package calls_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// acceptLikeASocket is what a device's accept does (ws.Hub.accept): answer
// the ring, or, once someone else answered it, join the call under way.
func acceptLikeASocket(ctx context.Context, svc *calls.Service, user, id string) error {
	_, err := svc.Accept(ctx, calls.UserActor(user), id)
	if errors.Is(err, calls.ErrInvalidTransition) {
		_, err = svc.AcceptInvite(ctx, calls.UserActor(user), id)
	}
	return err
}

// Two devices of one user accept at the same instant, hundreds of times,
// on both stores: exactly one succeeds, the other is told "already
// accepted", and the log holds one accepted event by that user. Even
// trials race on an invitation into a call under way (the case no guard
// covered), odd ones on the ring itself.
func TestTwoDevicesAcceptingAtOnceHaveOneWinner(t *testing.T) {
	eachStore(t, testTwoDevicesAccepting)
}

func testTwoDevicesAccepting(t *testing.T, st *store.SQL) {
	f := newFixtureOn(t, st, calls.ServiceConfig{})
	ctx := context.Background()
	trials := 300
	if testing.Short() {
		trials = 40
	}
	for i := range trials {
		id := fmt.Sprintf("accept-race-%d", i)
		if _, _, err := f.svc.Create(ctx, calls.UserActor("alice"), calls.CreateRequest{ID: id, Ring: true, Members: []calls.Member{{UserID: "bob"}, {UserID: "carol"}}}); err != nil {
			t.Fatal(err)
		}
		who := "bob"
		if i%2 == 0 {
			if _, err := f.svc.Accept(ctx, calls.UserActor("carol"), id); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Invite(ctx, calls.UserActor("carol"), id, "dave"); err != nil {
				t.Fatal(err)
			}
			who = "dave"
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for d := range errs {
			wg.Go(func() { errs[d] = acceptLikeASocket(ctx, f.svc, who, id) })
		}
		wg.Wait()
		won, already := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, calls.ErrAlreadyAccepted):
				already++
			default:
				t.Fatalf("trial %d: unexpected error %v", i, err)
			}
		}
		if won != 1 || already != 1 {
			t.Fatalf("trial %d (%s): %d devices won, %d were told already accepted (errors %v)", i, who, won, already, errs)
		}
		evs, err := f.store.Events(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		accepts := 0
		for _, e := range evs {
			if e.Kind == calls.EventAccepted && e.Actor == who {
				accepts++
			}
		}
		if accepts != 1 {
			t.Fatalf("trial %d: %d accepted events by %s, want 1", i, accepts, who)
		}
		c, _ := f.svc.Get(ctx, id)
		if m, _ := c.Member(who); m.Answer != calls.AnswerAccepted || c.State != calls.StateAccepted {
			t.Fatalf("trial %d: %s answered %q, call %s", i, who, m.Answer, c.State)
		}
	}
}

func ringGroup(t *testing.T, f fixture, id string, members ...string) {
	t.Helper()
	ms := make([]calls.Member, len(members))
	for i, m := range members {
		ms[i] = calls.Member{UserID: m}
	}
	if _, _, err := f.svc.Create(context.Background(), calls.UserActor("alice"), calls.CreateRequest{ID: id, Ring: true, Members: ms}); err != nil {
		t.Fatal(err)
	}
}

func lastEvent(t *testing.T, f fixture, id string) calls.Event {
	t.Helper()
	evs, err := f.store.Events(context.Background(), id, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events of %s: %v %v", id, evs, err)
	}
	return evs[len(evs)-1]
}

// In a group ring a decline is that member's: the call keeps ringing the
// others, and is rejected only when every invited member declined.
func TestGroupRingDeclinesArePerMember(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.SQL) {
		f := newFixtureOn(t, st, calls.ServiceConfig{})
		ctx := context.Background()
		ringGroup(t, f, "group-all-decline", "bob", "carol", "dave")
		for n, who := range []string{"bob", "carol"} {
			c, err := f.svc.Decline(ctx, calls.UserActor(who), "group-all-decline")
			if err != nil {
				t.Fatal(err)
			}
			if c.State != calls.StateRinging {
				t.Fatalf("after %d declines the call is %s, want ringing", n+1, c.State)
			}
			if m, _ := c.Member(who); m.Answer != calls.AnswerDeclined {
				t.Fatalf("%s answered %q", who, m.Answer)
			}
			ev := lastEvent(t, f, "group-all-decline")
			if ev.Kind != calls.EventRejected || ev.Identity != who || ev.Actor != who || ev.State != calls.StateRinging || ev.Reason != calls.ReasonDeclined {
				t.Fatalf("decline by %s logged %+v", who, ev)
			}
		}
		if _, err := f.svc.Decline(ctx, calls.UserActor("bob"), "group-all-decline"); !errors.Is(err, calls.ErrInvalidTransition) {
			t.Fatalf("a second decline by bob: %v, want invalid transition", err)
		}
		c, err := f.svc.Decline(ctx, calls.UserActor("dave"), "group-all-decline")
		if err != nil || c.State != calls.StateRejected || c.EndReason != calls.ReasonDeclined {
			t.Fatalf("the last decline: %v, call %s (%s), want rejected (declined)", err, c.State, c.EndReason)
		}
		if ev := lastEvent(t, f, "group-all-decline"); ev.Kind != calls.EventRejected || ev.Identity != "" || ev.State != calls.StateRejected || ev.Actor != "dave" {
			t.Fatalf("the call's rejection logged %+v", ev)
		}

		// The first accept wins even after declines; the others may join.
		ringGroup(t, f, "group-accept", "bob", "carol", "dave")
		if _, err := f.svc.Decline(ctx, calls.UserActor("bob"), "group-accept"); err != nil {
			t.Fatal(err)
		}
		c, err = f.svc.Accept(ctx, calls.UserActor("carol"), "group-accept")
		if err != nil || c.State != calls.StateAccepted {
			t.Fatalf("carol's accept: %v, call %s", err, c.State)
		}
		if _, err := f.svc.Decline(ctx, calls.UserActor("dave"), "group-accept"); !errors.Is(err, calls.ErrInvalidTransition) {
			t.Fatalf("declining an accepted call: %v", err)
		}
		if _, err := f.svc.AcceptInvite(ctx, calls.UserActor("dave"), "group-accept"); err != nil {
			t.Fatal(err)
		}

		// A member rung again after declining may answer again.
		ringGroup(t, f, "group-reinvite", "bob", "carol")
		if _, err := f.svc.Decline(ctx, calls.UserActor("bob"), "group-reinvite"); err != nil {
			t.Fatal(err)
		}
		if c, err = f.svc.Invite(ctx, calls.UserActor("alice"), "group-reinvite", "bob"); err != nil {
			t.Fatal(err)
		}
		if m, _ := c.Member("bob"); m.Answer != "" {
			t.Fatalf("bob rung again still answered %q", m.Answer)
		}
		if _, err := f.svc.Decline(ctx, calls.UserActor("bob"), "group-reinvite"); err != nil {
			t.Fatal(err)
		}

		// Nobody answered: missed at the ring timeout, declines or not.
		ringGroup(t, f, "group-missed", "bob", "carol")
		if _, err := f.svc.Decline(ctx, calls.UserActor("carol"), "group-missed"); err != nil {
			t.Fatal(err)
		}
		f.advance(121 * time.Second)
		if _, err := f.svc.ExpireOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if c, _ = f.svc.Get(ctx, "group-missed"); c.State != calls.StateMissed || c.EndReason != calls.ReasonRingTimeout {
			t.Fatalf("group ring after the timeout: %s (%s)", c.State, c.EndReason)
		}

		// The caller declining still cancels the whole ring.
		ringGroup(t, f, "group-cancel", "bob", "carol")
		if c, err = f.svc.Decline(ctx, calls.UserActor("alice"), "group-cancel"); err != nil || c.State != calls.StateEnded || c.EndReason != calls.ReasonCancelled {
			t.Fatalf("caller's decline: %v, %s (%s)", err, c.State, c.EndReason)
		}
	})
}

// A 1:1 ring keeps its semantics: the callee's decline rejects the call at
// once, with one rejected event naming nobody in particular.
func TestDirectRingDeclineRejectsTheCall(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	ringGroup(t, f, "one-to-one", "bob")
	c, err := f.svc.Decline(context.Background(), calls.UserActor("bob"), "one-to-one")
	if err != nil || c.State != calls.StateRejected || c.EndReason != calls.ReasonDeclined {
		t.Fatalf("decline: %v, %s (%s)", err, c.State, c.EndReason)
	}
	if ev := lastEvent(t, f, "one-to-one"); ev.Kind != calls.EventRejected || ev.Identity != "" || ev.Actor != "bob" {
		t.Fatalf("logged %+v", ev)
	}
}

// Answers survive a restart: they are read back from the store, not from
// a process's cache.
func TestMemberAnswersArePersisted(t *testing.T) {
	path := t.TempDir() + "/calls.db"
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st, calls.ServiceConfig{})
	ringGroup(t, f, "persisted", "bob", "carol", "dave")
	ctx := context.Background()
	f.svc.Decline(ctx, calls.UserActor("bob"), "persisted")
	f.svc.Accept(ctx, calls.UserActor("carol"), "persisted")
	st.Close()
	st2, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	c, err := st2.GetCall(ctx, "persisted")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]calls.Answer{"alice": "", "bob": calls.AnswerDeclined, "carol": calls.AnswerAccepted, "dave": ""}
	for _, m := range c.Members {
		if m.Answer != want[m.UserID] {
			t.Errorf("%s answered %q after a restart, want %q", m.UserID, m.Answer, want[m.UserID])
		}
	}
}
