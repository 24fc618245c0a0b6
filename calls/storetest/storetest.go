// Package storetest is the contract every calls.Store implementation
// passes. Each engine's tests call Run with a way to open a fresh database.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// Backend is one empty database. Open opens a store on it and may be called
// again after the store is closed: the second store must see what the first
// one wrote, which is how the suite checks that writes survive a restart.
type Backend interface {
	Open(ctx context.Context) (calls.Store, error)
}

// Run runs the contract against stores from newBackend, which is called once
// per subtest and must return a backend on a new, empty database.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateTwiceKeepsFirst", testCreateTwiceKeepsFirst},
		{"ConcurrentCreatesOneWinner", testConcurrentCreates},
		{"CreateKeyFindsTheCall", testCreateKey},
		{"ConcurrentKeyedCreatesOneWinner", testConcurrentKeyedCreates},
		{"NotFound", testNotFound},
		{"UpdateAppliesChange", testUpdateApplies},
		{"UpdateErrorWritesNothing", testUpdateErrorWritesNothing},
		{"UpdateNoOpWritesNothing", testUpdateNoOp},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"FindByRoom", testFindByRoom},
		{"RoomIndexFollowsStoredRooms", testRoomIndexFollows},
		{"ListCalls", testListCalls},
		{"CountByState", testCountByState},
		{"DeliveryMark", testDeliveryMark},
		{"DeliveryMarkConcurrent", testDeliveryMarkConcurrent},
		{"CreateWithMark", testCreateMarked},
		{"RosterIncremental", testRosterIncremental},
		{"StaleSeqDoesNotResurrect", testStaleSeq},
		{"MarkWithoutRosterChangeIsStored", testMarkWithoutRosterChange},
		{"SurfacesStartDue", testSurfacesStartDue},
		{"SurfaceBumpOnChange", testSurfaceBump},
		{"SurfacesNeverRemovedByChange", testSurfacesKept},
		{"ClaimConcurrentNoOverlap", testClaimNoOverlap},
		{"ClaimExpiredLease", testClaimExpiredLease},
		{"DeliveryOutcomes", testDeliveryOutcomes},
		{"DeadAndRetry", testDeadAndRetry},
		{"CountDeliveries", testCountDeliveries},
		{"ListDeliveries", testListDeliveries},
		{"RoomJobLifecycle", testRoomJobLifecycle},
		{"RoomJobEndedCall", testRoomJobEndedCall},
		{"EventsAfter", testEventsAfter},
		{"ManyEventsInOneChange", testManyEvents},
		{"RestartKeepsEverything", testRestart},
		{"Ping", testPing},
		{"FindBySurface", testFindBySurface},
		{"RecordingsRoundTrip", testRecordings},
		{"Installations", testInstallations},
		{"SearchCalls", testSearchCalls},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, backend: newBackend(t)}
			h.s = h.open()
			tc.run(t, h)
		})
	}
}

// harness holds the store under test and closes whatever it opened.
type harness struct {
	t       *testing.T
	backend Backend
	s       calls.Store
}

func (h *harness) open() calls.Store {
	h.t.Helper()
	s, err := h.backend.Open(h.t.Context())
	if err != nil {
		h.t.Fatalf("open store: %v", err)
	}
	var once sync.Once
	h.t.Cleanup(func() { once.Do(func() { s.Close() }) })
	return s
}

// reopen closes the store and opens a new one on the same database.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("close store: %v", err)
	}
	h.s = h.open()
}

// base has nanoseconds (below half a microsecond, so rounding and
// truncating stores agree) and a zone other than UTC: stores keep
// microseconds and return UTC.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456321, time.FixedZone("CET", 3600))

func at(d time.Duration) time.Time { return base.Add(d) }

// sampleCall has every field set, children out of any sorted order.
func sampleCall(id string) calls.Call {
	return calls.Call{
		ID:        id,
		Type:      calls.TypeVideo,
		State:     calls.StateCreated,
		Provider:  "livekit-eu",
		Title:     "Weekly sync: ünïcode ✓",
		CreatedBy: "zoe",
		Room: calls.Room{
			Name:       "room-" + id,
			ProviderID: "RM" + id,
			URL:        "https://meet.example.com/" + id,
			Data:       map[string]string{"password": "s3cret", "region": "eu-west"},
		},
		CreatedAt:      at(0),
		UpdatedAt:      at(time.Second),
		StateChangedAt: at(2 * time.Second),
		Guests:         true,
		Members: []calls.Member{
			{UserID: "zoe", Role: calls.RoleOwner},
			{UserID: "adam", Role: calls.RoleListener},
			{UserID: "mia", Role: calls.RoleParticipant},
		},
		Surfaces: []calls.Surface{
			{Chat: "slack", Workspace: "T01", Channel: "C99"},
			{Chat: "stream-api"},
			{Chat: "stream", Channel: "messaging:general"},
		},
	}
}

func createdEvent(c calls.Call) calls.Event {
	return calls.Event{Kind: calls.EventCreated, CallID: c.ID, State: c.State, Actor: c.CreatedBy, At: c.CreatedAt}
}

func (h *harness) create(c calls.Call) calls.Call {
	h.t.Helper()
	stored, created, err := h.s.CreateCall(h.t.Context(), c, []calls.Event{createdEvent(c)}, calls.CreateOptions{})
	if err != nil {
		h.t.Fatalf("CreateCall(%s): %v", c.ID, err)
	}
	if !created {
		h.t.Fatalf("CreateCall(%s): created = false for a new id", c.ID)
	}
	return stored
}

func (h *harness) get(id string) calls.Call {
	h.t.Helper()
	c, err := h.s.GetCall(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("GetCall(%s): %v", id, err)
	}
	checkUTC(h.t, c)
	return c
}

func (h *harness) events(id string, after int64) []calls.Event {
	h.t.Helper()
	evs, err := h.s.Events(h.t.Context(), id, after)
	if err != nil {
		h.t.Fatalf("Events(%s, %d): %v", id, after, err)
	}
	return evs
}

func (h *harness) update(id string, change func(*calls.Call) ([]calls.Event, error)) calls.Call {
	h.t.Helper()
	c, err := h.s.UpdateCall(h.t.Context(), id, nil, change)
	if err != nil {
		h.t.Fatalf("UpdateCall(%s): %v", id, err)
	}
	checkUTC(h.t, c)
	return c
}

// norm is c as a store returns it. Both sides of a comparison are
// normalised, so a store keeping finer times or returning empty lists still
// passes.
func norm(c calls.Call) calls.Call { return c.Canonical() }

// keysOnly drops the surfaces' delivery state.
func keysOnly(c calls.Call) calls.Call {
	for i := range c.Surfaces {
		c.Surfaces[i].Delivery = calls.SurfaceDelivery{}
	}
	return c
}

func normTime(t time.Time) time.Time { return calls.StoredTime(t) }

func normEvent(e calls.Event) calls.Event {
	e.At = normTime(e.At)
	return e
}

// diffCall names the fields in which got and want differ. Surfaces are
// compared by key: their delivery state belongs to the store, and the tests
// about delivery check it on its own.
func diffCall(got, want calls.Call) string {
	g, w := reflect.ValueOf(keysOnly(norm(got))), reflect.ValueOf(keysOnly(norm(want)))
	var out []string
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s: got %+v, want %+v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface()))
		}
	}
	return strings.Join(out, "\n")
}

func assertCall(t *testing.T, what string, got, want calls.Call) {
	t.Helper()
	if d := diffCall(got, want); d != "" {
		t.Errorf("%s differs:\n%s", what, d)
	}
}

// checkUTC fails unless every time in c is in UTC.
func checkUTC(t *testing.T, c calls.Call) {
	t.Helper()
	ts := map[string]time.Time{"CreatedAt": c.CreatedAt, "UpdatedAt": c.UpdatedAt, "StateChangedAt": c.StateChangedAt}
	if c.EndedAt != nil {
		ts["EndedAt"] = *c.EndedAt
	}
	for i, p := range c.Participants {
		ts[fmt.Sprintf("Participants[%d].JoinedAt", i)] = p.JoinedAt
	}
	for name, v := range ts {
		if v.Location() != time.UTC {
			t.Errorf("call %s: %s is in %v, want UTC", c.ID, name, v.Location())
		}
	}
}

func testCreateGetRoundTrip(t *testing.T, h *harness) {
	ended := sampleCall("rt-ended")
	ended.Type = calls.TypeAudio
	ended.State = calls.StateEnded
	endedAt := at(time.Hour)
	ended.EndedAt = &endedAt
	ended.EndReason = calls.ReasonRoomFinished

	live := sampleCall("rt-live")
	live.State = calls.StateActive
	live.Participants = []calls.Participant{
		{Identity: "zoe", Name: "Zoë", JoinedAt: at(3 * time.Second)},
		{Identity: "adam", JoinedAt: at(4 * time.Second)},
	}
	live.Seqs = map[string]calls.RosterMark{"zoe": {Seq: 7, Present: true}, "adam": {Seq: 3, Present: true}, "mia": {Seq: 9, Present: false}}

	cases := []struct {
		name string
		call calls.Call
	}{
		{"every field", sampleCall("rt-full")},
		{"live with roster", live},
		{"ended", ended},
		{"minimal", calls.Call{ID: "rt-min", Type: calls.TypeAudio, State: calls.StateCreated, Provider: "jitsi", CreatedAt: at(0), UpdatedAt: at(0), StateChangedAt: at(0)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stored, created, err := h.s.CreateCall(t.Context(), tc.call, []calls.Event{createdEvent(tc.call)}, calls.CreateOptions{})
			if err != nil || !created {
				t.Fatalf("CreateCall = created %v, err %v; want created", created, err)
			}
			checkUTC(t, stored)
			if stored.Version <= 0 {
				t.Errorf("stored Version = %d, want > 0", stored.Version)
			}
			want := tc.call
			want.Version = stored.Version
			assertCall(t, "CreateCall result", stored, want)
			assertCall(t, "GetCall", h.get(tc.call.ID), want)
			// Ids are looked up in normalised form.
			assertCall(t, "GetCall with an unnormalised id", h.get("  "+strings.ToUpper(tc.call.ID)+" "), want)
			if got := h.get(tc.call.ID); (got.EndedAt == nil) != (tc.call.EndedAt == nil) {
				t.Errorf("EndedAt = %v, want %v", got.EndedAt, tc.call.EndedAt)
			}
		})
	}
}

func testCreateTwiceKeepsFirst(t *testing.T, h *harness) {
	first := h.create(sampleCall("dup"))

	second := sampleCall("DUP")
	second.Title = "someone else's call"
	second.Members = []calls.Member{{UserID: "eve", Role: calls.RoleOwner}}
	second.Room.Name = "another-room"
	stored, created, err := h.s.CreateCall(t.Context(), second, []calls.Event{createdEvent(second)}, calls.CreateOptions{})
	if err != nil {
		t.Fatalf("second CreateCall: %v", err)
	}
	if created {
		t.Errorf("second CreateCall: created = true, want false")
	}
	assertCall(t, "second CreateCall result", stored, first)
	assertCall(t, "GetCall after second create", h.get("dup"), first)
	if evs := h.events("dup", 0); len(evs) != 1 {
		t.Errorf("events after two creates = %d, want 1 (the second create stores none)", len(evs))
	}
}

func testConcurrentCreates(t *testing.T, h *harness) {
	const n = 50
	results, winner := raceCreates(t, n, func(i int) (calls.Call, bool, error) {
		c := sampleCall("race")
		c.Title = fmt.Sprintf("creator %d", i)
		return h.s.CreateCall(t.Context(), c, []calls.Event{createdEvent(c)}, calls.CreateOptions{})
	})
	for i := range n {
		if d := diffCall(results[i], winner); d != "" {
			t.Errorf("CreateCall #%d returned a different call than the winner:\n%s", i, d)
		}
	}
	assertCall(t, "GetCall", h.get("race"), winner)
	if evs := h.events("race", 0); len(evs) != 1 {
		t.Errorf("events = %d, want 1", len(evs))
	}
}

// testCreateKey: a create whose key a stored call has returns that call,
// whatever its own id, and writes nothing of its own but its mark; calls
// without a key, or with another, are created as before; a key longer
// than an id is refused with nothing written.
func testCreateKey(t *testing.T, h *harness) {
	ctx := t.Context()
	first := sampleCall("key-first")
	stored, created, err := h.s.CreateCall(ctx, first, []calls.Event{createdEvent(first)}, calls.CreateOptions{Key: "k-1"})
	if err != nil || !created {
		t.Fatalf("keyed create: created=%v, %v", created, err)
	}
	want := h.get("key-first")
	assertCall(t, "keyed create result", stored, want)

	second := sampleCall("key-second")
	second.Title = "a repeat of the command"
	again, created, err := h.s.CreateCall(ctx, second, []calls.Event{createdEvent(second)}, calls.CreateOptions{Key: "k-1", Mark: mark("replay:acme", "key-sig-2")})
	if err != nil || created {
		t.Fatalf("create with a stored key: created=%v, %v", created, err)
	}
	assertCall(t, "create with a stored key", again, want)
	if _, err := h.s.GetCall(ctx, "key-second"); !errors.Is(err, calls.ErrNotFound) {
		t.Errorf("a create with a stored key stored its own call: %v", err)
	}
	h.assertUnchanged("key-first", want.Version, 1)
	if evs := h.events("key-second", 0); len(evs) != 0 {
		t.Errorf("a create with a stored key stored %d events of its own", len(evs))
	}
	if fresh, err := h.s.MarkOnce(ctx, *mark("replay:acme", "key-sig-2")); err != nil || fresh {
		t.Errorf("the mark of a create that found its call by key is not recorded: fresh=%v, %v", fresh, err)
	}

	// Another key, and no key: new calls.
	for _, tc := range []struct{ id, key string }{{"key-other", "k-2"}, {"key-none", ""}} {
		c := sampleCall(tc.id)
		if _, created, err := h.s.CreateCall(ctx, c, []calls.Event{createdEvent(c)}, calls.CreateOptions{Key: tc.key}); err != nil || !created {
			t.Errorf("create %s with key %q: created=%v, %v", tc.id, tc.key, created, err)
		}
	}
	// The id of a stored call with a key of its own: the call by id.
	dup := sampleCall("key-first")
	if got, created, err := h.s.CreateCall(ctx, dup, nil, calls.CreateOptions{Key: "k-3"}); err != nil || created || got.ID != "key-first" {
		t.Errorf("create of a stored id with a new key: %s created=%v, %v", got.ID, created, err)
	}

	long := sampleCall("key-long")
	if _, _, err := h.s.CreateCall(ctx, long, nil, calls.CreateOptions{Key: strings.Repeat("k", calls.MaxIDLength+1)}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Errorf("a key longer than an id: %v, want ErrInvalidInput", err)
	}
	if _, err := h.s.GetCall(ctx, "key-long"); !errors.Is(err, calls.ErrNotFound) {
		t.Errorf("a refused create stored its call: %v", err)
	}
}

// testConcurrentKeyedCreates: creates of different ids with one key (two
// people typing /call at once, on any replica) yield exactly one call.
func testConcurrentKeyedCreates(t *testing.T, h *harness) {
	const n = 40
	results, winner := raceCreates(t, n, func(i int) (calls.Call, bool, error) {
		c := sampleCall(fmt.Sprintf("key-race-%d", i))
		return h.s.CreateCall(t.Context(), c, []calls.Event{createdEvent(c)}, calls.CreateOptions{Key: "race-key"})
	})
	for i := range n {
		if results[i].ID != winner.ID {
			t.Errorf("CreateCall #%d returned call %s, the winner is %s", i, results[i].ID, winner.ID)
		}
		if id := fmt.Sprintf("key-race-%d", i); id != winner.ID {
			if _, err := h.s.GetCall(t.Context(), id); !errors.Is(err, calls.ErrNotFound) {
				t.Errorf("loser %s stored its call: %v", id, err)
			}
		}
	}
}

// raceCreates runs create(0..n-1) at once and returns what each returned
// and the one call created, failing unless exactly one create reports it
// created a call and none fails.
func raceCreates(t *testing.T, n int, create func(i int) (calls.Call, bool, error)) ([]calls.Call, calls.Call) {
	t.Helper()
	results := make([]calls.Call, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], created[i], errs[i] = create(i) })
	}
	wg.Wait()
	winners := 0
	var winner calls.Call
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateCall #%d: %v", i, errs[i])
		}
		if created[i] {
			winners++
			winner = results[i]
		}
	}
	if winners != 1 {
		t.Fatalf("%d creates reported created=true, want exactly 1", winners)
	}
	return results, winner
}

func testNotFound(t *testing.T, h *harness) {
	ctx := t.Context()
	h.create(sampleCall("exists"))
	checks := []struct {
		name string
		err  func() error
	}{
		{"GetCall", func() error { _, err := h.s.GetCall(ctx, "missing"); return err }},
		{"GetCall with an invalid id", func() error { _, err := h.s.GetCall(ctx, "no such/id"); return err }},
		{"UpdateCall", func() error {
			_, err := h.s.UpdateCall(ctx, "missing", nil, func(*calls.Call) ([]calls.Event, error) {
				t.Error("change ran for a missing call")
				return nil, nil
			})
			return err
		}},
		{"FindByRoom unknown room", func() error { _, err := h.s.FindByRoom(ctx, "livekit-eu", "no-such-room"); return err }},
		{"FindByRoom other provider", func() error { _, err := h.s.FindByRoom(ctx, "jitsi", "room-exists"); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.err(); !errors.Is(err, calls.ErrNotFound) {
				t.Errorf("err = %v, want one wrapping calls.ErrNotFound", err)
			}
		})
	}
}

func testUpdateApplies(t *testing.T, h *harness) {
	before := h.create(sampleCall("upd"))

	after := h.update("UPD", func(c *calls.Call) ([]calls.Event, error) {
		ring, err := c.Transition(calls.StateRinging, "", at(time.Minute))
		if err != nil {
			return nil, err
		}
		ring.Actor = "zoe"
		join, ok := c.MarkPresence("zoe", "Zoë", true, 5, at(2*time.Minute))
		if !ok {
			return nil, errors.New("presence not applied")
		}
		return []calls.Event{ring, join}, nil
	})
	if after.Version != before.Version+1 {
		t.Errorf("Version = %d, want %d", after.Version, before.Version+1)
	}
	want := before
	want.State = calls.StateRinging
	want.StateChangedAt = at(time.Minute)
	want.UpdatedAt = at(2 * time.Minute)
	want.Participants = []calls.Participant{{Identity: "zoe", Name: "Zoë", JoinedAt: at(2 * time.Minute)}}
	want.Seqs = map[string]calls.RosterMark{"zoe": {Seq: 5, Present: true}}
	alone := at(2 * time.Minute) // one person in the room
	want.EmptySince = &alone
	want.Version = before.Version + 1
	assertCall(t, "UpdateCall result", after, want)
	assertCall(t, "GetCall after update", h.get("upd"), want)

	evs := h.events("upd", 0)
	wantEvs := []calls.Event{
		createdEvent(sampleCall("upd")),
		{Kind: calls.EventRinging, CallID: "upd", State: calls.StateRinging, Actor: "zoe", At: at(time.Minute)},
		{Kind: calls.EventJoined, CallID: "upd", State: calls.StateRinging, Identity: "zoe", At: at(2 * time.Minute)},
	}
	assertEvents(t, evs, wantEvs)

	// A terminal transition ends the call and empties the roster.
	ended := h.update("upd", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateEnded, calls.ReasonEndedByOwner, at(time.Hour))
		return []calls.Event{ev}, err
	})
	if ended.Version != before.Version+2 || ended.EndedAt == nil || !ended.EndedAt.Equal(normTime(at(time.Hour))) ||
		ended.EndReason != calls.ReasonEndedByOwner || len(ended.Participants) != 0 {
		t.Errorf("after ending: Version %d, EndedAt %v, EndReason %q, Participants %v", ended.Version, ended.EndedAt, ended.EndReason, ended.Participants)
	}
	assertCall(t, "GetCall after ending", h.get("upd"), ended)
	if evs := h.events("upd", 0); len(evs) != 4 || evs[3].Kind != calls.EventEnded || evs[3].Reason != calls.ReasonEndedByOwner {
		t.Errorf("events after ending = %+v, want a fourth, ended event", evs)
	}
}

// assertEvents compares events, ignoring Seq apart from requiring it to
// increase.
func assertEvents(t *testing.T, got, want []calls.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	var last int64
	for i := range got {
		if got[i].Seq <= last {
			t.Errorf("event %d: Seq %d does not increase on %d", i, got[i].Seq, last)
		}
		last = got[i].Seq
		if got[i].At.Location() != time.UTC {
			t.Errorf("event %d: At is in %v, want UTC", i, got[i].At.Location())
		}
		g, w := normEvent(got[i]), normEvent(want[i])
		g.Seq, w.Seq = 0, 0
		if g != w {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func testUpdateErrorWritesNothing(t *testing.T, h *harness) {
	before := h.create(sampleCall("fail"))
	sentinel := errors.New("change refused")
	cases := []struct {
		name   string
		change func(*calls.Call) ([]calls.Event, error)
		is     error
	}{
		{"error after mutating", func(c *calls.Call) ([]calls.Event, error) {
			c.Title = "mutated"
			c.Members[0].Role = calls.RoleListener
			c.AddSurface(calls.Surface{Chat: "discord"})
			ev, _ := c.MarkPresence("zoe", "Zoë", true, 1, at(time.Minute))
			return []calls.Event{ev}, fmt.Errorf("wrapped: %w", sentinel)
		}, sentinel},
		{"domain error", func(c *calls.Call) ([]calls.Event, error) {
			ev, err := c.Transition(calls.StateAccepted, "", at(time.Minute)) // created cannot become accepted
			return []calls.Event{ev}, err
		}, calls.ErrInvalidTransition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.s.UpdateCall(t.Context(), "fail", nil, tc.change)
			if !errors.Is(err, tc.is) {
				t.Fatalf("UpdateCall err = %v, want one wrapping %v", err, tc.is)
			}
			assertCall(t, "GetCall after a failed change", h.get("fail"), before)
			if evs := h.events("fail", 0); len(evs) != 1 {
				t.Errorf("events after a failed change = %d, want 1", len(evs))
			}
		})
	}
}

func testUpdateNoOp(t *testing.T, h *harness) {
	before := h.create(sampleCall("noop"))
	got := h.update("noop", func(c *calls.Call) ([]calls.Event, error) {
		c.Title = "not stored without an event"
		return nil, nil
	})
	assertCall(t, "UpdateCall result of a no-op", got, before)
	assertCall(t, "GetCall after a no-op", h.get("noop"), before)
	if evs := h.events("noop", 0); len(evs) != 1 {
		t.Errorf("events after a no-op = %d, want 1", len(evs))
	}
}

func testConcurrentUpdates(t *testing.T, h *harness) {
	const n = 20
	before := h.create(sampleCall("crowd"))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = h.s.UpdateCall(t.Context(), "crowd", nil, func(c *calls.Call) ([]calls.Event, error) {
				ev, ok := c.MarkPresence(fmt.Sprintf("p%02d", i), "", true, 1, at(time.Duration(i)*time.Second))
				if !ok {
					return nil, fmt.Errorf("p%02d already present", i)
				}
				return []calls.Event{ev}, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateCall #%d: %v", i, err)
		}
	}
	got := h.get("crowd")
	var ids []string
	for _, p := range got.Participants {
		ids = append(ids, p.Identity)
	}
	slices.Sort(ids)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("p%02d", i))
	}
	if !slices.Equal(ids, want) {
		t.Errorf("participants = %v, want all %d", ids, n)
	}
	if len(got.Seqs) != n {
		t.Errorf("roster marks = %d, want %d", len(got.Seqs), n)
	}
	if got.Version != before.Version+n {
		t.Errorf("Version = %d, want %d", got.Version, before.Version+n)
	}
	if evs := h.events("crowd", 0); len(evs) != n+1 {
		t.Errorf("events = %d, want %d", len(evs), n+1)
	}
}

func testFindByRoom(t *testing.T, h *harness) {
	older := sampleCall("room-old")
	older.Room.Name = "shared"
	newer := sampleCall("room-new")
	newer.Room.Name = "shared"
	newer.CreatedAt = at(time.Minute)
	elsewhere := sampleCall("room-else")
	elsewhere.Room.Name = "shared"
	elsewhere.Provider = "jitsi"
	elsewhere.CreatedAt = at(time.Hour)

	// The newer call is created first: "most recent" is by CreatedAt.
	wantNewer := h.create(newer)
	h.create(older)
	wantElsewhere := h.create(elsewhere)

	cases := []struct {
		provider, room string
		want           calls.Call
	}{
		{"livekit-eu", "shared", wantNewer},
		{"jitsi", "shared", wantElsewhere},
	}
	for _, tc := range cases {
		got, err := h.s.FindByRoom(t.Context(), tc.provider, tc.room)
		if err != nil {
			t.Errorf("FindByRoom(%s, %s): %v", tc.provider, tc.room, err)
			continue
		}
		assertCall(t, "FindByRoom("+tc.provider+", "+tc.room+")", got, tc.want)
	}

	// A room name set by an update is found too.
	h.update("room-old", func(c *calls.Call) ([]calls.Event, error) {
		c.Room.Name = "moved"
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(2 * time.Hour)}}, nil
	})
	if got, err := h.s.FindByRoom(t.Context(), "livekit-eu", "moved"); err != nil || got.ID != "room-old" {
		t.Errorf("FindByRoom after rename = %s, %v; want room-old", got.ID, err)
	}
}

// testRoomIndexFollows: the id lookup by room (calls.RoomIndex, which a
// store may answer from a cache) names the newest call of the room at
// every point, while lookups run concurrently with the writes: after a
// newer call takes the room, after an older one is stored with it (no
// change), and after an update gives a call the room (a room worker).
func testRoomIndexFollows(t *testing.T, h *harness) {
	ri, ok := h.s.(calls.RoomIndex)
	if !ok {
		t.Skip("the store has no id lookup by room")
	}
	ctx := t.Context()
	want := func(step, id string) {
		t.Helper()
		for range 2 { // the second answer may come from a cache
			got, err := ri.FindIDByRoom(ctx, "livekit-eu", "channel")
			if err != nil || got != id {
				t.Fatalf("%s: FindIDByRoom = %q, %v; want %q", step, got, err, id)
			}
		}
	}
	// Readers look the room up all along, so a lookup that races a write
	// is there to put a stale answer in a cache.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = ri.FindIDByRoom(ctx, "livekit-eu", "channel")
			}
		}()
	}
	defer func() { close(stop); readers.Wait() }()

	for i := range 20 {
		c := sampleCall(fmt.Sprintf("chan-%02d", i))
		c.Room.Name = "channel"
		c.CreatedAt = at(time.Duration(i) * time.Minute)
		h.create(c)
		want(fmt.Sprintf("call %d takes the room", i), c.ID)
	}
	old := sampleCall("chan-old")
	old.Room.Name = "channel"
	old.CreatedAt = at(-time.Hour)
	h.create(old)
	want("an older call with the room", "chan-19")

	later := sampleCall("chan-later")
	later.CreatedAt = at(time.Hour)
	h.create(later)
	want("a newer call without a room yet", "chan-19")
	h.update("chan-later", func(c *calls.Call) ([]calls.Event, error) {
		c.Room.Name = "channel"
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(2 * time.Hour)}}, nil
	})
	want("the room given by an update", "chan-later")
}

func testListCalls(t *testing.T, h *harness) {
	seed := []struct {
		id      string
		state   calls.State
		changed time.Duration
	}{
		{"l-ring-3", calls.StateRinging, 3 * time.Minute},
		{"l-ring-1", calls.StateRinging, 1 * time.Minute},
		{"l-active-2", calls.StateActive, 2 * time.Minute},
		{"l-ended-0", calls.StateEnded, 0},
		{"l-ring-5", calls.StateRinging, 5 * time.Minute},
	}
	stored := map[string]calls.Call{}
	for _, s := range seed {
		c := sampleCall(s.id)
		c.State = s.state
		c.StateChangedAt = at(s.changed)
		if s.state.Terminal() {
			end := at(s.changed)
			c.EndedAt, c.EndReason = &end, calls.ReasonEndedByAPI
		}
		stored[s.id] = h.create(c)
	}

	cases := []struct {
		name   string
		states []calls.State
		before time.Time
		limit  int
		want   []string
	}{
		{"one state, oldest first", []calls.State{calls.StateRinging}, time.Time{}, 10, []string{"l-ring-1", "l-ring-3", "l-ring-5"}},
		{"two states", []calls.State{calls.StateActive, calls.StateRinging}, time.Time{}, 10, []string{"l-ring-1", "l-active-2", "l-ring-3", "l-ring-5"}},
		{"before", []calls.State{calls.StateRinging}, at(4 * time.Minute), 10, []string{"l-ring-1", "l-ring-3"}},
		{"before is exclusive", []calls.State{calls.StateRinging}, at(3 * time.Minute), 10, []string{"l-ring-1"}},
		{"before in another zone", []calls.State{calls.StateRinging}, at(4 * time.Minute).In(time.FixedZone("PST", -8*3600)), 10, []string{"l-ring-1", "l-ring-3"}},
		{"limit", []calls.State{calls.StateRinging, calls.StateActive}, time.Time{}, 2, []string{"l-ring-1", "l-active-2"}},
		{"terminal", []calls.State{calls.StateEnded}, time.Time{}, 10, []string{"l-ended-0"}},
		{"no match", []calls.State{calls.StateFailed}, time.Time{}, 10, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.s.ListCalls(t.Context(), calls.ListQuery{States: tc.states, Before: tc.before, Limit: tc.limit})
			if err != nil {
				t.Fatalf("ListCalls: %v", err)
			}
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
				checkUTC(t, c)
				// Listed calls are whole, children included.
				assertCall(t, "listed call "+c.ID, c, stored[c.ID])
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ListCalls = %v, want %v", ids, tc.want)
			}
		})
	}
}

func testCountByState(t *testing.T, h *harness) {
	if got, err := h.s.CountByState(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("CountByState on an empty store = %v, %v; want empty", got, err)
	}
	for i, st := range []calls.State{calls.StateRinging, calls.StateRinging, calls.StateRinging, calls.StateActive, calls.StateEnded, calls.StateEnded} {
		c := sampleCall(fmt.Sprintf("count-%d", i))
		c.State = st
		h.create(c)
	}
	h.update("count-0", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateAccepted, "", at(time.Minute))
		return []calls.Event{ev}, err
	})
	got, err := h.s.CountByState(t.Context())
	if err != nil {
		t.Fatalf("CountByState: %v", err)
	}
	want := map[calls.State]int64{calls.StateRinging: 2, calls.StateAccepted: 1, calls.StateActive: 1, calls.StateEnded: 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CountByState = %v, want %v", got, want)
	}
}

// testManyEvents: a change with more events than one statement appends
// (37, across chunks) stores them in order, and each of the caller's
// events learns the seq the log gave it, as does a later single event.
func testManyEvents(t *testing.T, h *harness) {
	h.create(sampleCall("many"))
	var given []calls.Event
	h.update("many", func(c *calls.Call) ([]calls.Event, error) {
		given = nil
		for i := range 37 {
			e, _ := c.MarkPresence(fmt.Sprintf("p%02d", i), "", true, 0, at(time.Duration(i)*time.Second))
			given = append(given, e)
		}
		return given, nil
	})
	var one []calls.Event
	h.update("many", func(c *calls.Call) ([]calls.Event, error) {
		e, _ := c.MarkPresence("p00", "", false, 0, at(time.Hour))
		one = []calls.Event{e}
		return one, nil
	})
	all := h.events("many", 0)
	if len(all) != 1+37+1 {
		t.Fatalf("%d events stored, want 39", len(all))
	}
	for i, e := range append(given, one...) {
		got := all[1+i]
		if e.Seq != got.Seq || got.Identity != e.Identity || got.Kind != e.Kind {
			t.Fatalf("event %d: the caller's has seq %d (%s %s), the log has %d (%s %s)", i, e.Seq, e.Kind, e.Identity, got.Seq, got.Kind, got.Identity)
		}
	}
	assertEvents(t, all[1:], append(append([]calls.Event(nil), given...), one...))
}

func testEventsAfter(t *testing.T, h *harness) {
	a := sampleCall("ev-a")
	h.create(a)
	// Another call's events in between must not show up in ev-a's log.
	b := sampleCall("ev-b")
	h.create(b)
	h.update("ev-a", func(c *calls.Call) ([]calls.Event, error) {
		ring, err := c.Transition(calls.StateRinging, "", at(time.Minute))
		if err != nil {
			return nil, err
		}
		ring.Actor, ring.Reason = "zoe", "requested"
		join, _ := c.MarkPresence("adam", "Adam", true, 0, at(2*time.Minute))
		return []calls.Event{ring, join}, nil
	})
	// An event without a call id belongs to the call it is stored with.
	var given []calls.Event
	h.update("ev-a", func(c *calls.Call) ([]calls.Event, error) {
		c.AddSurface(calls.Surface{Chat: "discord", Channel: "42"})
		given = []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(3 * time.Minute)}}
		return given, nil
	})

	all := h.events("ev-a", 0)
	// The caller's events learn the sequence numbers the log assigned.
	if len(all) == 4 && given[0].Seq != all[3].Seq {
		t.Errorf("the stored event's seq %d was not set on the caller's event (got %d)", all[3].Seq, given[0].Seq)
	}
	assertEvents(t, all, []calls.Event{
		createdEvent(a),
		{Kind: calls.EventRinging, CallID: "ev-a", State: calls.StateRinging, Actor: "zoe", Reason: "requested", At: at(time.Minute)},
		{Kind: calls.EventJoined, CallID: "ev-a", State: calls.StateRinging, Identity: "adam", At: at(2 * time.Minute)},
		{Kind: calls.EventUpdated, CallID: "ev-a", State: calls.StateRinging, At: at(3 * time.Minute)},
	})
	cases := []struct {
		name  string
		after int64
		want  []calls.Event
	}{
		{"after the first", all[0].Seq, all[1:]},
		{"after the third", all[2].Seq, all[3:]},
		{"after the last", all[3].Seq, nil},
	}
	for _, tc := range cases {
		got := h.events("ev-a", tc.after)
		if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%s: Events = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := h.events("EV-B", 0); len(got) != 1 || got[0].CallID != "ev-b" {
		t.Errorf("Events(ev-b) = %+v, want its one created event", got)
	}
}

func testRestart(t *testing.T, h *harness) {
	h.create(sampleCall("durable"))
	h.update("durable", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateActive, "", at(time.Minute))
		if err != nil {
			return nil, err
		}
		join, _ := c.MarkPresence("zoe", "Zoë", true, 4, at(time.Minute))
		return []calls.Event{ev, join}, nil
	})
	h.updateMarked("durable", &calls.DeliveryMark{Source: "livekit-eu", ID: "seen-once", At: at(0)}, func(c *calls.Call) ([]calls.Event, error) {
		c.Title = "renamed"
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(time.Minute)}}, nil
	})
	wantCall := h.get("durable")
	wantEvents := h.events("durable", 0)

	h.reopen()

	assertCall(t, "GetCall after restart", h.get("durable"), wantCall)
	if got := h.events("durable", 0); !reflect.DeepEqual(got, wantEvents) {
		t.Errorf("events after restart = %+v, want %+v", got, wantEvents)
	}
	if got, err := h.s.FindByRoom(t.Context(), "livekit-eu", "room-durable"); err != nil || got.ID != "durable" {
		t.Errorf("FindByRoom after restart = %q, %v", got.ID, err)
	}
	if _, err := h.s.UpdateCall(t.Context(), "durable", &calls.DeliveryMark{Source: "livekit-eu", ID: "seen-once", At: at(time.Hour)}, addTitle("again")); !errors.Is(err, calls.ErrDuplicateDelivery) {
		t.Errorf("UpdateCall with a mark seen before the restart: err = %v, want ErrDuplicateDelivery", err)
	}
	if got, err := h.s.CountByState(t.Context()); err != nil || got[calls.StateActive] != 1 {
		t.Errorf("CountByState after restart = %v, %v", got, err)
	}

	// The reopened store goes on from where the first stopped.
	ended := h.update("durable", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateEnded, calls.ReasonRoomFinished, at(time.Hour))
		return []calls.Event{ev}, err
	})
	if ended.Version != wantCall.Version+1 {
		t.Errorf("Version after restart and update = %d, want %d", ended.Version, wantCall.Version+1)
	}
	evs := h.events("durable", wantEvents[len(wantEvents)-1].Seq)
	if len(evs) != 1 || evs[0].Kind != calls.EventEnded {
		t.Errorf("events after the last seen before restart = %+v, want one ended event", evs)
	}
}

func testPing(t *testing.T, h *harness) {
	if err := h.s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
