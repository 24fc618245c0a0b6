package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// The outbox tests claim at times relative to the wall clock: a store may
// make new work due at the change's time or at the time it stored it, and
// either is before now.

const lease = time.Minute

func (h *harness) claim(owner string, now time.Time, limit int) []calls.Delivery {
	h.t.Helper()
	ds, err := h.s.ClaimDeliveries(h.t.Context(), owner, now, lease, limit)
	if err != nil {
		h.t.Fatalf("ClaimDeliveries(%s): %v", owner, err)
	}
	for _, d := range ds {
		if d.Owner != owner || !d.LeaseUntil.Equal(normTime(now.Add(lease))) {
			h.t.Errorf("claimed %s/%s with owner %q until %v, want %q until %v", d.CallID, d.Surface.Key(), d.Owner, d.LeaseUntil, owner, now.Add(lease))
		}
	}
	return ds
}

// claimOne claims and expects exactly one delivery.
func (h *harness) claimOne(owner string, now time.Time) calls.Delivery {
	h.t.Helper()
	ds := h.claim(owner, now, 10)
	if len(ds) != 1 {
		h.t.Fatalf("ClaimDeliveries at %v claimed %d, want 1: %+v", now, len(ds), ds)
	}
	return ds[0]
}

func (h *harness) claimNone(owner string, now time.Time) {
	h.t.Helper()
	if ds := h.claim(owner, now, 10); len(ds) != 0 {
		h.t.Fatalf("ClaimDeliveries at %v claimed %+v, want none", now, ds)
	}
}

func (h *harness) record(o calls.DeliveryOutcome) {
	h.t.Helper()
	if err := h.s.RecordDelivery(h.t.Context(), o); err != nil {
		h.t.Fatalf("RecordDelivery(%+v): %v", o, err)
	}
}

// delivery returns the stored delivery state of the call's surface.
func (h *harness) delivery(id string, k calls.SurfaceKey) calls.SurfaceDelivery {
	h.t.Helper()
	sf, ok := func() (calls.Surface, bool) { c := h.get(id); return c.Surface(k) }()
	if !ok {
		h.t.Fatalf("call %s has no surface %s", id, k)
	}
	return sf.Delivery
}

func delivered(d calls.Delivery, version int64, ref string) calls.DeliveryOutcome {
	return calls.DeliveryOutcome{CallID: d.CallID, Key: d.Surface.Key(), Owner: d.Owner, Delivered: true, Version: version, MessageRef: ref}
}

func failed(d calls.Delivery, next time.Time, msg string) calls.DeliveryOutcome {
	return calls.DeliveryOutcome{CallID: d.CallID, Key: d.Surface.Key(), Owner: d.Owner, LastError: msg, NextAttemptAt: next, At: next}
}

// oneSurface is a call shown in one place.
func oneSurface(id string) calls.Call {
	c := sampleCall(id)
	c.Surfaces = []calls.Surface{{Chat: "slack", Workspace: "T01", Channel: "C" + id}}
	return c
}

var touch = addTitle(".")

func testSurfacesStartDue(t *testing.T, h *harness) {
	created := h.create(sampleCall("due"))
	got := h.get("due")
	if !reflect.DeepEqual(got.Surfaces, created.Surfaces) {
		t.Errorf("GetCall surfaces = %+v, want those CreateCall returned, %+v", got.Surfaces, created.Surfaces)
	}
	for i, sf := range got.Surfaces {
		if want := sampleCall("due").Surfaces[i].Key(); sf.Key() != want {
			t.Errorf("surface %d = %s, want %s (order of addition)", i, sf.Key(), want)
		}
		d := sf.Delivery
		if d.Wanted != 1 || d.Shown != 0 || d.Attempts != 0 || d.DeadAt != nil || d.MessageRef != "" || d.Status() != "pending" {
			t.Errorf("surface %s starts with %+v, want wanted 1, shown 0, pending", sf.Key(), d)
		}
	}
	ds := h.claim("w1", time.Now(), 10)
	if len(ds) != 3 {
		t.Fatalf("claimed %d surfaces of a new call, want all 3", len(ds))
	}
	for _, d := range ds {
		if d.CallID != "due" || d.Surface.Delivery.Wanted != 1 {
			t.Errorf("claimed %+v, want call due at wanted 1", d)
		}
	}
}

func testSurfaceBump(t *testing.T, h *harness) {
	h.create(oneSurface("bump"))
	key := oneSurface("bump").Surfaces[0].Key()
	var last calls.Call
	for range 10 {
		last = h.update("bump", touch)
	}
	if got := last.Surfaces[0].Delivery; got.Wanted != 11 || got.Shown != 0 {
		t.Errorf("UpdateCall result surface = %+v, want wanted 11, shown 0", got)
	}
	if got := h.delivery("bump", key); got.Wanted != last.Version {
		t.Errorf("stored Wanted = %d, want the call's version %d", got.Wanted, last.Version)
	}
	now := time.Now()
	d := h.claimOne("w1", now)
	if d.Surface.Delivery.Wanted != 11 {
		t.Errorf("claimed wanted %d, want the newest version 11", d.Surface.Delivery.Wanted)
	}
	h.record(delivered(d, 11, "m-1"))
	h.claimNone("w1", now)
	if got := h.delivery("bump", key); got.Shown != 11 || got.MessageRef != "m-1" || got.Status() != "delivered" {
		t.Errorf("after delivery: %+v", got)
	}

	// A no-op change bumps nothing; a real one makes the card owe again.
	h.update("bump", noEvents)
	h.claimNone("w1", now)
	h.update("bump", touch)
	d = h.claimOne("w1", now)
	if got := d.Surface.Delivery; got.Wanted != 12 || got.Shown != 11 || got.MessageRef != "m-1" {
		t.Errorf("claimed after one more change: %+v, want wanted 12, shown 11, ref m-1", got)
	}
}

func testSurfacesKept(t *testing.T, h *harness) {
	h.create(sampleCall("keep"))
	orig := sampleCall("keep").Surfaces
	added := calls.Surface{Chat: "discord", Workspace: "G1", Channel: "42"}
	got := h.update("keep", func(c *calls.Call) ([]calls.Event, error) {
		c.Surfaces = c.Surfaces[1:] // dropped from the slice, not from the store
		c.Surfaces[0].Delivery.Shown = 99
		c.AddSurface(added)
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(time.Minute)}}, nil
	})
	stored := h.get("keep")
	if !reflect.DeepEqual(got.Surfaces, stored.Surfaces) {
		t.Errorf("UpdateCall surfaces = %+v, GetCall's = %+v", got.Surfaces, stored.Surfaces)
	}
	wantKeys := []calls.SurfaceKey{orig[0].Key(), orig[1].Key(), orig[2].Key(), added.Key()}
	var keys []calls.SurfaceKey
	for _, sf := range stored.Surfaces {
		keys = append(keys, sf.Key())
		if sf.Delivery.Wanted != 2 || sf.Delivery.Shown != 0 {
			t.Errorf("surface %s: %+v, want wanted 2, shown 0 (the change's delivery edits ignored)", sf.Key(), sf.Delivery)
		}
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("surfaces = %v, want %v", keys, wantKeys)
	}
	// A surface added by a change without events is not stored.
	h.update("keep", func(c *calls.Call) ([]calls.Event, error) {
		c.AddSurface(calls.Surface{Chat: "teams"})
		return nil, nil
	})
	if n := len(h.get("keep").Surfaces); n != 4 {
		t.Errorf("%d surfaces after a no-op change added one, want 4", n)
	}
}

func testClaimNoOverlap(t *testing.T, h *harness) {
	const calls_ = 10
	for i := range calls_ {
		h.create(sampleCall(fmt.Sprintf("many-%d", i)))
	}
	now := time.Now()
	const workers = 6
	got := make([][]calls.Delivery, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				ds, err := h.s.ClaimDeliveries(t.Context(), fmt.Sprintf("w%d", w), now, time.Hour, 2)
				if err != nil || len(ds) == 0 {
					errs[w] = err
					return
				}
				got[w] = append(got[w], ds...)
			}
		})
	}
	wg.Wait()
	seen := map[string]string{}
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for _, d := range got[w] {
			k := d.CallID + "/" + d.Surface.Key().String()
			if other, dup := seen[k]; dup {
				t.Errorf("%s claimed by %s and %s", k, other, d.Owner)
			}
			seen[k] = d.Owner
		}
	}
	if len(seen) != calls_*3 {
		t.Errorf("claimed %d surfaces, want all %d", len(seen), calls_*3)
	}
}

func testClaimExpiredLease(t *testing.T, h *harness) {
	h.create(oneSurface("lease"))
	now := time.Now()
	a := h.claimOne("a", now)
	h.claimNone("b", now.Add(lease/2))
	b := h.claimOne("b", now.Add(lease))
	if err := h.s.RecordDelivery(t.Context(), delivered(a, 1, "from-a")); !errors.Is(err, calls.ErrLeaseLost) {
		t.Fatalf("RecordDelivery by the old owner: err = %v, want ErrLeaseLost", err)
	}
	if err := h.s.RecordDelivery(t.Context(), failed(a, now, "a failed")); !errors.Is(err, calls.ErrLeaseLost) {
		t.Fatalf("RecordDelivery of a failure by the old owner: err = %v, want ErrLeaseLost", err)
	}
	key := b.Surface.Key()
	if got := h.delivery("lease", key); got.Shown != 0 || got.MessageRef != "" || got.Attempts != 0 {
		t.Errorf("the old owner's record wrote %+v", got)
	}
	h.record(delivered(b, 1, "from-b"))
	if got := h.delivery("lease", key); got.Shown != 1 || got.MessageRef != "from-b" {
		t.Errorf("after the new owner's record: %+v", got)
	}
	// Recording releases the lease: a second record by b fails too.
	if err := h.s.RecordDelivery(t.Context(), delivered(b, 1, "again")); !errors.Is(err, calls.ErrLeaseLost) {
		t.Errorf("second RecordDelivery: err = %v, want ErrLeaseLost", err)
	}
}

func testDeliveryOutcomes(t *testing.T, h *harness) {
	h.create(oneSurface("out"))
	key := oneSurface("out").Surfaces[0].Key()
	now := time.Now()

	d := h.claimOne("w", now)
	h.record(failed(d, now.Add(time.Minute), "boom"))
	if got := h.delivery("out", key); got.Attempts != 1 || got.LastError != "boom" || !got.NextAttemptAt.Equal(normTime(now.Add(time.Minute))) || got.Status() != "retrying" {
		t.Errorf("after a failure: %+v", got)
	}
	h.claimNone("w", now.Add(30*time.Second))
	d = h.claimOne("w", now.Add(time.Minute))

	deferred := failed(d, now.Add(2*time.Minute), "rate limited")
	deferred.Deferred = true
	h.record(deferred)
	if got := h.delivery("out", key); got.Attempts != 1 || got.LastError != "rate limited" {
		t.Errorf("after a deferral: %+v, want attempts still 1", got)
	}
	h.claimNone("w", now.Add(time.Minute))
	d = h.claimOne("w", now.Add(2*time.Minute))

	h.record(delivered(d, 1, "m-1"))
	if got := h.delivery("out", key); got.Shown != 1 || got.Attempts != 0 || got.LastError != "" || got.MessageRef != "m-1" || got.Status() != "delivered" {
		t.Errorf("after delivery: %+v", got)
	}
	h.claimNone("w", now.Add(time.Hour))

	// An empty ref keeps the stored one; an older version never lowers Shown.
	h.update("out", touch)
	h.update("out", touch)
	d = h.claimOne("w", now.Add(2*time.Minute))
	h.record(delivered(d, 3, ""))
	h.update("out", touch)
	d = h.claimOne("w", now.Add(2*time.Minute))
	h.record(delivered(d, 2, "m-old"))
	if got := h.delivery("out", key); got.Shown != 3 || got.Wanted != 4 || got.MessageRef != "m-old" {
		t.Errorf("after a late record of an old version: %+v, want shown 3, wanted 4", got)
	}
}

func testDeadAndRetry(t *testing.T, h *harness) {
	h.create(oneSurface("dead"))
	key := oneSurface("dead").Surfaces[0].Key()
	now := time.Now()
	d := h.claimOne("w", now)
	o := failed(d, now, "channel gone")
	o.Dead = true
	h.record(o)
	got := h.delivery("dead", key)
	if got.DeadAt == nil || got.Status() != "dead" || got.LastError != "channel gone" {
		t.Errorf("after a dead outcome: %+v", got)
	}
	h.claimNone("w", now.Add(24*time.Hour))
	h.update("dead", touch) // a change does not revive it
	h.claimNone("w", now.Add(24*time.Hour))

	if err := h.s.RetryDelivery(t.Context(), "DEAD", key, now.Add(time.Hour)); err != nil {
		t.Fatalf("RetryDelivery: %v", err)
	}
	got = h.delivery("dead", key)
	if got.DeadAt != nil || got.Attempts != 0 || got.LastError != "" || got.Status() != "pending" {
		t.Errorf("after RetryDelivery: %+v", got)
	}
	h.claimNone("w", now.Add(30*time.Minute))
	if d := h.claimOne("w", now.Add(time.Hour)); d.Surface.Delivery.Wanted != 2 {
		t.Errorf("revived delivery wants %d, want 2", d.Surface.Delivery.Wanted)
	}

	for _, tc := range []struct {
		id  string
		key calls.SurfaceKey
	}{{"dead", calls.SurfaceKey{Chat: "nope"}}, {"missing", key}} {
		if err := h.s.RetryDelivery(t.Context(), tc.id, tc.key, now); !errors.Is(err, calls.ErrNotFound) {
			t.Errorf("RetryDelivery(%s, %s): err = %v, want ErrNotFound", tc.id, tc.key, err)
		}
	}
}

func testCountDeliveries(t *testing.T, h *harness) {
	count := func() calls.DeliveryCounts {
		t.Helper()
		c, err := h.s.CountDeliveries(t.Context())
		if err != nil {
			t.Fatalf("CountDeliveries: %v", err)
		}
		return c
	}
	if got := count(); got != (calls.DeliveryCounts{}) {
		t.Errorf("CountDeliveries on an empty store = %+v", got)
	}
	h.create(sampleCall("cnt-a"))
	h.create(sampleCall("cnt-b"))
	if got := count(); got != (calls.DeliveryCounts{Pending: 6}) {
		t.Errorf("CountDeliveries of two new calls = %+v, want 6 pending", got)
	}
	now := time.Now()
	ds := h.claim("w", now, 3)
	h.record(delivered(ds[0], 1, "m"))
	h.record(failed(ds[1], now.Add(time.Minute), "later"))
	dead := failed(ds[2], now, "never")
	dead.Dead = true
	h.record(dead)
	if got := count(); got != (calls.DeliveryCounts{Pending: 3, Retrying: 1, Dead: 1}) {
		t.Errorf("CountDeliveries = %+v, want 3 pending, 1 retrying, 1 dead", got)
	}
}

func testListDeliveries(t *testing.T, h *harness) {
	list := func(limit int) []calls.Delivery {
		t.Helper()
		ds, err := h.s.ListDeliveries(t.Context(), limit)
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		return ds
	}
	if got := list(10); len(got) != 0 {
		t.Errorf("ListDeliveries on an empty store = %+v", got)
	}
	h.create(sampleCall("lst-a"))
	h.create(sampleCall("lst-b"))
	now := time.Now()
	ds := h.claim("w", now, 3)
	h.record(delivered(ds[0], 1, "m"))
	h.record(failed(ds[1], now.Add(time.Minute), "later"))
	dead := failed(ds[2], now, "never")
	dead.Dead = true
	h.record(dead)
	got := list(10)
	statuses := map[string]int{}
	for _, d := range got {
		statuses[d.Surface.Delivery.Status()]++
		if d.CallID != "lst-a" && d.CallID != "lst-b" {
			t.Errorf("listed a surface of call %q", d.CallID)
		}
		if d.Surface.Key() == ds[0].Surface.Key() && d.CallID == ds[0].CallID {
			t.Errorf("listed the delivered surface %s", d.Surface.Key())
		}
	}
	if len(got) != 5 || statuses["pending"] != 3 || statuses["retrying"] != 1 || statuses["dead"] != 1 {
		t.Fatalf("ListDeliveries = %d surfaces %v, want 3 pending, 1 retrying, 1 dead", len(got), statuses)
	}
	if got[0].Surface.Delivery.Status() != "dead" || got[0].Surface.Delivery.LastError != "never" || got[0].CallID != ds[2].CallID || got[0].Surface.Key() != ds[2].Surface.Key() {
		t.Errorf("ListDeliveries lists first %s/%s (%+v), want the dead one", got[0].CallID, got[0].Surface.Key(), got[0].Surface.Delivery)
	}
	if n := len(list(2)); n != 2 {
		t.Errorf("ListDeliveries(2) = %d surfaces", n)
	}
}

func (h *harness) countRoomJobs() int64 {
	h.t.Helper()
	n, err := h.s.CountRoomJobs(h.t.Context())
	if err != nil {
		h.t.Fatalf("CountRoomJobs: %v", err)
	}
	return n
}

func (h *harness) claimJobs(owner string, now time.Time) []calls.RoomJob {
	h.t.Helper()
	js, err := h.s.ClaimRoomJobs(h.t.Context(), owner, now, lease, 10)
	if err != nil {
		h.t.Fatalf("ClaimRoomJobs: %v", err)
	}
	return js
}

// roomless is a live call whose room is still to be created.
func roomless(id string) calls.Call {
	c := sampleCall(id)
	c.Room = calls.Room{}
	return c
}

func testRoomJobLifecycle(t *testing.T, h *harness) {
	ctx := t.Context()
	h.create(sampleCall("has-room"))
	over := roomless("over")
	over.State, over.EndReason = calls.StateFailed, "provider down"
	h.create(over)
	if n := h.countRoomJobs(); n != 0 {
		t.Fatalf("%d room jobs for calls with a room or ended, want 0", n)
	}
	h.create(roomless("job"))
	if n := h.countRoomJobs(); n != 1 {
		t.Fatalf("%d room jobs, want 1", n)
	}

	now := time.Now()
	js := h.claimJobs("a", now)
	if len(js) != 1 || js[0].CallID != "job" || js[0].Attempts != 0 || js[0].Owner != "a" || !js[0].LeaseUntil.Equal(normTime(now.Add(lease))) {
		t.Fatalf("ClaimRoomJobs = %+v, want call job leased to a", js)
	}
	if js := h.claimJobs("b", now); len(js) != 0 {
		t.Errorf("a leased job was claimed again: %+v", js)
	}
	retry := calls.RoomJobOutcome{CallID: "job", Owner: "b", NextAttemptAt: now.Add(time.Minute), LastError: "503"}
	if err := h.s.RescheduleRoomJob(ctx, retry); !errors.Is(err, calls.ErrLeaseLost) {
		t.Errorf("RescheduleRoomJob by another owner: err = %v, want ErrLeaseLost", err)
	}
	retry.Owner = "a"
	if err := h.s.RescheduleRoomJob(ctx, retry); err != nil {
		t.Fatalf("RescheduleRoomJob: %v", err)
	}
	if js := h.claimJobs("b", now.Add(30*time.Second)); len(js) != 0 {
		t.Errorf("a rescheduled job was claimed early: %+v", js)
	}
	js = h.claimJobs("b", now.Add(time.Minute))
	if len(js) != 1 || js[0].Attempts != 1 || js[0].LastError != "503" {
		t.Fatalf("ClaimRoomJobs after the retry time = %+v, want the job with 1 attempt", js)
	}

	// Storing the room removes the job, in the same transaction.
	h.update("job", func(c *calls.Call) ([]calls.Event, error) {
		c.Room = calls.Room{Name: "made"}
		return []calls.Event{{Kind: calls.EventUpdated, State: c.State, At: at(time.Minute)}}, nil
	})
	if n := h.countRoomJobs(); n != 0 {
		t.Errorf("%d room jobs after the room was stored, want 0", n)
	}
	retry.Owner = "b"
	if err := h.s.RescheduleRoomJob(ctx, retry); !errors.Is(err, calls.ErrNotFound) {
		t.Errorf("RescheduleRoomJob of a finished job: err = %v, want ErrNotFound", err)
	}
	if js := h.claimJobs("b", now.Add(time.Hour)); len(js) != 0 {
		t.Errorf("claimed %+v after the room was stored", js)
	}
}

func testRoomJobEndedCall(t *testing.T, h *harness) {
	h.create(roomless("cancel"))
	h.update("cancel", touch) // other changes keep the job
	if n := h.countRoomJobs(); n != 1 {
		t.Fatalf("%d room jobs, want 1", n)
	}
	h.update("cancel", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateEnded, calls.ReasonCancelled, at(time.Minute))
		return []calls.Event{ev}, err
	})
	if n := h.countRoomJobs(); n != 0 {
		t.Errorf("%d room jobs after the call ended, want 0", n)
	}
	h.reopen()
	if js := h.claimJobs("a", time.Now()); len(js) != 0 {
		t.Errorf("claimed %+v for an ended call", js)
	}
}
