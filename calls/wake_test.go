package calls_test

import (
	"context"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// signalled reports whether ch holds a signal, and drains it.
func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// listen subscribes to w as the outbox (cards), the room worker (rooms)
// and a watcher of everything do, until the test ends, and returns what
// reports which of the three were signalled since it was last asked.
func listen(t *testing.T, w *calls.Wake) (woken func() [3]bool) {
	cards, stopCards := w.SubscribeTo(calls.TopicCards)
	rooms, stopRooms := w.SubscribeTo(calls.TopicRooms)
	all, stopAll := w.Subscribe()
	t.Cleanup(func() { stopCards(); stopRooms(); stopAll() })
	return func() [3]bool { return [3]bool{signalled(cards), signalled(rooms), signalled(all)} }
}

func TestWakeSignalsTheTopicsSubscribedTo(t *testing.T) {
	w := calls.NewWake()
	woken := listen(t, w)
	relayed := 0
	w.SetRelay(func() { relayed++ })

	for _, tc := range []struct {
		name                string
		notify              func()
		cards, rooms, every bool
	}{
		{"cards", func() { w.NotifyOf(calls.TopicCards) }, true, false, true},
		{"rooms", func() { w.NotifyOf(calls.TopicRooms) }, false, true, true},
		{"calls only", func() { w.NotifyOf(calls.TopicCalls) }, false, false, true},
		{"cards and rooms", func() { w.NotifyOf(calls.TopicCards | calls.TopicRooms) }, true, true, true},
		{"everything", w.Notify, true, true, true},
		{"another replica's", w.Local, true, true, true},
	} {
		tc.notify()
		if got := woken(); got != [3]bool{tc.cards, tc.rooms, tc.every} {
			t.Errorf("%s: cards, rooms, all signalled %v, want %v", tc.name, got, [3]bool{tc.cards, tc.rooms, tc.every})
		}
	}
	// Other replicas hear every notification of this one (the relay
	// carries no topics); Local, which is theirs, is not relayed back.
	if relayed != 5 {
		t.Errorf("relayed %d notifications, want 5", relayed)
	}
}

// A change wakes the workers it concerns: a new call with an instant room
// and no card wakes neither the room worker nor the outbox; one that needs
// a room wakes the room worker; one shown in a chat wakes the outbox; a
// provider event (its call has a room) wakes the outbox and not the room
// worker; ending a call wakes the outbox only when the call has a card.
// Everything wakes subscribers to every topic.
func TestServiceWakesTheWorkersAChangeConcerns(t *testing.T) {
	st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/calls.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wake := calls.NewWake()
	instant := instantProvider{scriptedProvider: newScriptedProvider(), instant: true}
	slow := instantProvider{scriptedProvider: newScriptedProvider(), instant: false}
	svc, err := calls.NewService(calls.ServiceConfig{Store: st, Wake: wake, Logger: quiet, DefaultProvider: "instant",
		Providers: map[string]calls.Provider{"instant": instant, "slow": slow}})
	if err != nil {
		t.Fatal(err)
	}
	woken := listen(t, wake)
	actor := calls.Actor{Kind: calls.ActorAPIKey, UserID: "alice"}
	check := func(what string, wantCards, wantRooms bool) {
		t.Helper()
		if got := woken(); got != [3]bool{wantCards, wantRooms, true} {
			t.Errorf("%s: cards, rooms, all woken %v, want %v", what, got, [3]bool{wantCards, wantRooms, true})
		}
	}

	c, _, err := svc.Create(t.Context(), actor, calls.CreateRequest{ID: "plain", Provider: "instant"})
	if err != nil || c.Room.Name == "" {
		t.Fatalf("create: %v, room %q", err, c.Room.Name)
	}
	check("an instant-room call shown nowhere", false, false)

	if _, _, err := svc.Create(t.Context(), actor, calls.CreateRequest{ID: "roomless", Provider: "slow"}); err != nil {
		t.Fatal(err)
	}
	check("a call whose room is still to make", false, true)

	if _, _, err := svc.Create(t.Context(), actor, calls.CreateRequest{ID: "shown", Provider: "instant", Surfaces: []calls.Surface{acme}}); err != nil {
		t.Fatal(err)
	}
	check("an instant-room call with a card", true, false)

	err = svc.ApplyProviderEvents(t.Context(), "instant", []calls.ProviderEvent{{
		Kind: calls.ProviderParticipantJoined, Room: c.Room.Name, Identity: "ada", At: time.Now(), DeliveryID: "d1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	check("a participant joining", true, false)

	// Changes other than provider events wake by the call they leave.
	if _, err := svc.End(t.Context(), actor, "shown"); err != nil {
		t.Fatal(err)
	}
	check("ending a call shown in a chat", true, false)
	if _, err := svc.End(t.Context(), actor, "plain"); err != nil {
		t.Fatal(err)
	}
	check("ending a call shown nowhere", false, false)
}
