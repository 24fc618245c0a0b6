package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// updateMarked is update with a delivery mark.
func (h *harness) updateMarked(id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) calls.Call {
	h.t.Helper()
	c, err := h.s.UpdateCall(h.t.Context(), id, mark, change)
	if err != nil {
		h.t.Fatalf("UpdateCall(%s, mark %+v): %v", id, mark, err)
	}
	checkUTC(h.t, c)
	return c
}

// addTitle is a change that appends to the title and reports it.
func addTitle(s string) func(*calls.Call) ([]calls.Event, error) {
	return func(c *calls.Call) ([]calls.Event, error) {
		c.Title += s
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(time.Minute)}}, nil
	}
}

// noEvents is a change that changes nothing.
func noEvents(*calls.Call) ([]calls.Event, error) { return nil, nil }

func mark(source, id string) *calls.DeliveryMark {
	return &calls.DeliveryMark{Source: source, ID: id, At: at(time.Second)}
}

// assertUnchanged fails unless the call is still at version and has n events.
func (h *harness) assertUnchanged(id string, version int64, n int) {
	h.t.Helper()
	if got := h.get(id); got.Version != version {
		h.t.Errorf("call %s Version = %d, want %d (nothing written)", id, got.Version, version)
	}
	if evs := h.events(id, 0); len(evs) != n {
		h.t.Errorf("call %s has %d events, want %d", id, len(evs), n)
	}
}

func testDeliveryMark(t *testing.T, h *harness) {
	ctx := t.Context()
	h.create(sampleCall("mk"))

	applied := h.updateMarked("mk", mark("twilio", "d-1"), addTitle(" 1"))
	if applied.Version != 2 {
		t.Fatalf("marked update: Version = %d, want 2", applied.Version)
	}

	// A repeat writes nothing, whatever its change would have done.
	_, err := h.s.UpdateCall(ctx, "mk", mark("twilio", "d-1"), addTitle(" again"))
	if !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Fatalf("repeated mark: err = %v, want ErrDuplicateDelivery", err)
	}
	h.assertUnchanged("mk", 2, 2)
	if got := h.get("mk"); got.Title != applied.Title {
		t.Errorf("title after a repeated mark = %q, want %q", got.Title, applied.Title)
	}

	// Ids are per source.
	h.updateMarked("mk", mark("livekit-eu", "d-1"), addTitle(" 2"))
	h.assertUnchanged("mk", 3, 3)

	// A change that errors writes nothing, not even the mark, so the
	// sender's retry applies.
	sentinel := errors.New("provider said no")
	_, err = h.s.UpdateCall(ctx, "mk", mark("twilio", "d-2"), func(c *calls.Call) ([]calls.Event, error) {
		c.Title = "half done"
		return nil, sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("failing change: err = %v, want the change's error", err)
	}
	h.assertUnchanged("mk", 3, 3)
	h.updateMarked("mk", mark("twilio", "d-2"), addTitle(" 3"))
	h.assertUnchanged("mk", 4, 4)

	// A change without events still records the mark.
	h.updateMarked("mk", mark("twilio", "d-3"), noEvents)
	h.assertUnchanged("mk", 4, 4)
	if _, err := h.s.UpdateCall(ctx, "mk", mark("twilio", "d-3"), addTitle(" late")); !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Errorf("mark of a no-op change repeated: err = %v, want ErrDuplicateDelivery", err)
	}
	h.assertUnchanged("mk", 4, 4)

	// A mark for a missing call is not recorded.
	if _, err := h.s.UpdateCall(ctx, "missing", mark("twilio", "d-4"), addTitle("x")); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("mark on a missing call: err = %v, want ErrNotFound", err)
	}
	h.updateMarked("mk", mark("twilio", "d-4"), addTitle(" 4"))
	h.assertUnchanged("mk", 5, 5)
}

func testDeliveryMarkConcurrent(t *testing.T, h *harness) {
	h.create(sampleCall("storm"))
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = h.s.UpdateCall(t.Context(), "storm", mark("agora", "retry-storm"), addTitle(fmt.Sprint(i)))
		})
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		switch {
		case err == nil:
			applied++
		case !errors.Is(err, calls.ErrDuplicateDelivery):
			t.Errorf("UpdateCall #%d: %v", i, err)
		}
	}
	if applied != 1 {
		t.Errorf("%d concurrent updates with one mark applied, want exactly 1", applied)
	}
	h.assertUnchanged("storm", 2, 2)
}

// presence is a change applying one roster event; it reports no events
// when the event is stale or changes nothing.
func presence(identity string, present bool, seq int64, when time.Duration) func(*calls.Call) ([]calls.Event, error) {
	return func(c *calls.Call) ([]calls.Event, error) {
		ev, ok := c.MarkPresence(identity, "Name "+identity, present, seq, at(when))
		if !ok {
			return nil, nil
		}
		return []calls.Event{ev}, nil
	}
}

func identities(c calls.Call) []string {
	var out []string
	for _, p := range c.Participants {
		out = append(out, p.Identity)
	}
	return out
}

func testRosterIncremental(t *testing.T, h *harness) {
	c := sampleCall("roster")
	c.State = calls.StateActive
	h.create(c)
	steps := []struct {
		identity string
		present  bool
		seq      int64
		when     time.Duration
	}{
		{"carol", true, 1, 3 * time.Second},
		{"alice", true, 5, 3 * time.Second}, // same time as carol: identity breaks the tie
		{"bob", true, 0, 1 * time.Second},   // no seq: no mark
		{"carol", false, 2, 4 * time.Second},
		{"bob", false, 0, 5 * time.Second}, // left without a seq: no row at all
		{"carol", true, 3, 6 * time.Second},
		{"dave", true, 4, 7 * time.Second},
		{"dave", false, 0, 8 * time.Second}, // seq-less leave keeps dave's mark
	}
	for _, s := range steps {
		h.update("roster", presence(s.identity, s.present, s.seq, s.when))
	}
	want := calls.Call{
		Participants: []calls.Participant{
			{Identity: "alice", Name: "Name alice", JoinedAt: at(3 * time.Second)},
			{Identity: "carol", Name: "Name carol", JoinedAt: at(6 * time.Second)},
		},
		Seqs: map[string]calls.RosterMark{
			"alice": {Seq: 5, Present: true},
			"carol": {Seq: 3, Present: true},
			"dave":  {Seq: 4, Present: true},
		},
	}
	check := func(what string, got calls.Call) {
		t.Helper()
		if d := diffRoster(got, want); d != "" {
			t.Errorf("%s: %s", what, d)
		}
	}
	check("GetCall", h.get("roster"))
	h.reopen()
	check("GetCall after reopen", h.get("roster"))

	// Ending the call empties the roster and keeps the marks.
	ended := h.update("roster", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateEnded, calls.ReasonRoomFinished, at(time.Hour))
		return []calls.Event{ev}, err
	})
	want.Participants = nil
	check("UpdateCall ending", ended)
	h.reopen()
	check("GetCall after ending and reopen", h.get("roster"))
}

// diffRoster compares participants and marks.
func diffRoster(got, want calls.Call) string {
	g, w := norm(got), norm(want)
	if !slices.Equal(g.Participants, w.Participants) {
		return fmt.Sprintf("Participants = %+v, want %+v", g.Participants, w.Participants)
	}
	if fmt.Sprint(g.Seqs) != fmt.Sprint(w.Seqs) {
		return fmt.Sprintf("Seqs = %v, want %v", g.Seqs, w.Seqs)
	}
	return ""
}

func testStaleSeq(t *testing.T, h *harness) {
	c := sampleCall("stale")
	c.State = calls.StateActive
	h.create(c)
	h.update("stale", presence("zoe", true, 10, time.Second))
	h.update("stale", presence("zoe", false, 11, 2*time.Second))
	h.reopen()
	// The late join (seq 10 again, and 9) is stale: no event, no change.
	for _, seq := range []int64{9, 10, 11} {
		got := h.update("stale", presence("zoe", true, seq, 3*time.Second))
		if len(got.Participants) != 0 {
			t.Errorf("stale join with seq %d resurrected %v", seq, identities(got))
		}
	}
	got := h.get("stale")
	if len(got.Participants) != 0 || got.Seqs["zoe"] != (calls.RosterMark{Seq: 11, Present: false}) {
		t.Errorf("after stale joins: participants %v, mark %+v; want none and {11 false}", identities(got), got.Seqs["zoe"])
	}
	if got.Version != 3 {
		t.Errorf("Version = %d, want 3 (stale joins write nothing)", got.Version)
	}
	// A newer join applies.
	if got := h.update("stale", presence("zoe", true, 12, 4*time.Second)); !slices.Equal(identities(got), []string{"zoe"}) {
		t.Errorf("newer join: participants %v, want [zoe]", identities(got))
	}
}

// testMarkWithoutRosterChange: a "joined" with a newer sequence number
// for someone already in the call changes nobody's presence, yet its mark
// must be stored, or an older "left" that arrives after it would apply.
func testMarkWithoutRosterChange(t *testing.T, h *harness) {
	c := sampleCall("remark")
	c.State = calls.StateActive
	h.create(c)
	h.update("remark", presence("zoe", true, 10, time.Second))
	h.update("remark", presence("zoe", true, 30, 2*time.Second)) // a reconnect: no event
	h.reopen()
	got := h.get("remark")
	if got.Seqs["zoe"] != (calls.RosterMark{Seq: 30, Present: true}) {
		t.Errorf("mark after the second join = %+v, want {30 true}", got.Seqs["zoe"])
	}
	// The "left" of seq 20 happened before the join of seq 30.
	if got := h.update("remark", presence("zoe", false, 20, 3*time.Second)); !slices.Equal(identities(got), []string{"zoe"}) {
		t.Errorf("a leave older than the newest join removed zoe: participants %v", identities(got))
	}
}

// testCreateMarked: a create that carries a mark records it in its own
// transaction, whether or not the call existed; a create whose mark was
// recorded before writes nothing, not even a new call.
func testCreateMarked(t *testing.T, h *harness) {
	ctx := t.Context()
	first, created, err := h.s.CreateCall(ctx, sampleCall("cm-1"), nil, calls.CreateOptions{Mark: mark("replay:acme", "sig-1")})
	if err != nil || !created {
		t.Fatalf("marked create: created=%v, %v", created, err)
	}
	if fresh, err := h.s.MarkOnce(ctx, *mark("replay:acme", "sig-1")); err != nil || fresh {
		t.Fatalf("the create's mark is not recorded: fresh=%v, %v", fresh, err)
	}
	// The same mark on a create of another call: a replay.
	if _, _, err := h.s.CreateCall(ctx, sampleCall("cm-2"), nil, calls.CreateOptions{Mark: mark("replay:acme", "sig-1")}); !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Fatalf("a create with a recorded mark: %v, want ErrDuplicateDelivery", err)
	}
	if _, err := h.s.GetCall(ctx, "cm-2"); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("a replayed create stored its call: %v", err)
	}
	// A new mark on a create of an existing call: recorded, the call kept.
	again, created, err := h.s.CreateCall(ctx, sampleCall("cm-1"), nil, calls.CreateOptions{Mark: mark("replay:acme", "sig-2")})
	if err != nil || created || again.Version != first.Version {
		t.Fatalf("marked create of an existing call: created=%v version=%d, %v", created, again.Version, err)
	}
	if fresh, err := h.s.MarkOnce(ctx, *mark("replay:acme", "sig-2")); err != nil || fresh {
		t.Fatalf("the mark of a create that found its call is not recorded: fresh=%v, %v", fresh, err)
	}
}
