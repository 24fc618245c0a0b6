package store

import (
	"context"
	"database/sql"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// The SQLite writer starts a change from the call it last committed,
// without reading it, only while no other connection has committed since.
// A second process (here a plain connection to the same file) that changes
// the call is seen by the next change, which neither fails on the version
// it bumped nor writes back what it replaced.
func TestWriterSeesWritesOfOtherConnections(t *testing.T) {
	ctx := context.Background()
	s, path := openWithCall(t, "shared")
	// Two changes: the second starts from the cached call.
	for i, who := range []string{"ada", "bob"} {
		if _, err := s.UpdateCall(ctx, "shared", nil, join(who, int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := s.children.getCall("shared"); !ok {
		t.Fatal("the writer did not keep the call it committed: the test would prove nothing")
	}

	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `UPDATE calls SET title = 'renamed elsewhere', version = version + 1 WHERE id = 'shared'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, `UPDATE call_surfaces SET message_ref = 'ref-from-elsewhere' WHERE call_id = 'shared'`); err != nil {
		t.Fatal(err)
	}

	got, err := s.UpdateCall(ctx, "shared", nil, join("cy", 3))
	if err != nil {
		t.Fatalf("a change after another connection's write: %v", err)
	}
	if got.Title != "renamed elsewhere" || got.Version != 5 {
		t.Fatalf("the change started from a stale call: title %q, version %d; want the other connection's title at version 5", got.Title, got.Version)
	}
	if got.Surfaces[0].Delivery.MessageRef != "ref-from-elsewhere" {
		t.Fatalf("the change returned stale surfaces: %+v", got.Surfaces[0].Delivery)
	}
	read, err := s.GetCall(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if read.Title != "renamed elsewhere" || len(read.Participants) != 3 {
		t.Fatalf("stored: title %q, %d participants; want the other title and ada, bob and cy", read.Title, len(read.Participants))
	}
}

// A claim and a delivery's record write a call's surfaces without a new
// version. The next change must start from the surfaces as they are, and
// return them as GetCall does.
func TestWriterFollowsSurfaceWritesWithoutAVersion(t *testing.T) {
	ctx := context.Background()
	s, _ := openBatchStore(t)
	if _, _, err := s.CreateCall(ctx, benchCall("card"), nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCall(ctx, "card", nil, join("ada", 1)); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ClaimDeliveries(ctx, "worker-1", time.Now().Add(time.Minute), time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	after, err := s.UpdateCall(ctx, "card", nil, join("bob", 2))
	if err != nil {
		t.Fatal(err)
	}
	read, err := s.GetCall(ctx, "card")
	if err != nil {
		t.Fatal(err)
	}
	if after.Surfaces[0].Delivery != read.Surfaces[0].Delivery {
		t.Fatalf("after a claim, the change returned surfaces %+v; stored %+v", after.Surfaces[0].Delivery, read.Surfaces[0].Delivery)
	}
	if err := s.RecordDelivery(ctx, calls.DeliveryOutcome{CallID: "card", Key: ds[0].Surface.Key(), Owner: "worker-1",
		Delivered: true, Version: after.Version, MessageRef: "m-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	after, err = s.UpdateCall(ctx, "card", nil, join("cy", 3))
	if err != nil {
		t.Fatal(err)
	}
	read, err = s.GetCall(ctx, "card")
	if err != nil {
		t.Fatal(err)
	}
	if after.Surfaces[0].Delivery != read.Surfaces[0].Delivery || read.Surfaces[0].Delivery.MessageRef != "m-1" {
		t.Fatalf("after a recorded delivery, the change returned surfaces %+v; stored %+v", after.Surfaces[0].Delivery, read.Surfaces[0].Delivery)
	}
}

// A delivery's record writes a call's surfaces between two changes of the
// call in one batch, and at the end of another batch. The writer keeps the
// call it holds (its members and roster are still exact) and reads only
// the surfaces again: every change returns the surfaces as stored, and
// after a batch that ended with a record the cache holds the call with its
// surfaces marked stale rather than dropping it (which sent the next change
// to reread the whole roster).
func TestWriterRereadsOnlySurfacesAfterARecord(t *testing.T) {
	ctx := context.Background()
	s, _ := openBatchStore(t)
	for _, id := range []string{"card", "gate"} {
		if _, _, err := s.CreateCall(ctx, benchCall(id), nil, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	claim := func() calls.Delivery {
		t.Helper()
		ds, err := s.ClaimDeliveries(ctx, "w1", time.Now().Add(time.Minute), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.CallID == "card" {
				return d
			}
		}
		t.Fatalf("no delivery of card claimed: %+v", ds)
		return calls.Delivery{}
	}
	record := func(d calls.Delivery, ref string) error {
		return s.RecordDelivery(ctx, calls.DeliveryOutcome{CallID: "card", Key: d.Surface.Key(), Owner: "w1",
			Delivered: true, Version: d.Surface.Delivery.Wanted, MessageRef: ref, At: time.Now()})
	}
	// queue runs fns in one batch, in order, behind a held writer.
	queue := func(fns ...func() error) []error {
		t.Helper()
		release := holdWriter(t, s, "gate")
		errs := make([]error, len(fns))
		var wg sync.WaitGroup
		for i, fn := range fns {
			wg.Go(func() { errs[i] = fn() })
			// Counted as waiting just before its send on the writer's
			// channel: a moment more and it is parked there, ahead of
			// the next one (blocked senders are served in order).
			waitQueued(t, s, int64(i+1))
			time.Sleep(5 * time.Millisecond)
		}
		release()
		wg.Wait()
		return errs
	}
	stored := func() calls.Call {
		t.Helper()
		c, err := s.GetCall(ctx, "card")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// One batch: a change, a record, a change.
	d := claim()
	var last calls.Call
	errs := queue(
		func() error { _, err := s.UpdateCall(ctx, "card", nil, join("ada", 1)); return err },
		func() error { return record(d, "m-1") },
		func() error { c, err := s.UpdateCall(ctx, "card", nil, join("bob", 2)); last = c; return err },
	)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got, want := last.Surfaces[0].Delivery, stored().Surfaces[0].Delivery; got != want || want.MessageRef != "m-1" {
		t.Fatalf("a change after a record in its batch returned surfaces %+v; stored %+v", got, want)
	}

	// A batch that ends with a record; the next change is in a batch of
	// its own.
	d = claim()
	errs = queue(
		func() error { _, err := s.UpdateCall(ctx, "card", nil, join("cy", 3)); return err },
		func() error { return record(d, "m-2") },
	)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if c, stale, ok := s.children.getCall("card"); !ok || !stale || len(c.Participants) != 3 {
		t.Fatalf("after a batch ending with a record the cache holds the call: %v, surfaces stale: %v; want it held (3 people) with stale surfaces", ok, stale)
	}
	after, err := s.UpdateCall(ctx, "card", nil, join("dee", 4))
	if err != nil {
		t.Fatal(err)
	}
	want := stored()
	if after.Surfaces[0].Delivery != want.Surfaces[0].Delivery || want.Surfaces[0].Delivery.MessageRef != "m-2" {
		t.Fatalf("the next change returned surfaces %+v; stored %+v", after.Surfaces[0].Delivery, want.Surfaces[0].Delivery)
	}
	if len(want.Participants) != 4 {
		t.Fatalf("stored %d participants, want ada, bob, cy and dee", len(want.Participants))
	}
}

// TestWriterKeepsAppliedCallsWithoutACopy: a call changed by ApplyCall is
// kept by the cache as the batch left it (no copy), and nothing a caller
// does with what the store returns — GetCall's and UpdateCall's calls,
// changed in place — reaches the kept call or the next change.
func TestWriterKeepsAppliedCallsWithoutACopy(t *testing.T) {
	ctx := context.Background()
	s, path := openWithCall(t, "kept")
	if err := s.ApplyCall(ctx, "kept", nil, join("ada", 1)); err != nil {
		t.Fatal(err)
	}
	kept, _, ok := s.children.getCall("kept")
	if !ok || len(kept.Participants) != 1 || kept.Participants[0].Identity != "ada" {
		t.Fatalf("the applied call is not kept as committed: %+v, %v", kept, ok)
	}
	// What callers get is theirs to change.
	got, err := s.GetCall(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	got.Participants[0].Name = "changed by a reader"
	got.Seqs["intruder"] = calls.RosterMark{Seq: 99, Present: true}
	updated, err := s.UpdateCall(ctx, "kept", nil, join("bob", 2))
	if err != nil {
		t.Fatal(err)
	}
	updated.Participants[0].Name = "changed by a writer's caller"
	updated.Seqs["intruder"] = calls.RosterMark{Seq: 99, Present: true}
	if err := s.ApplyCall(ctx, "kept", nil, join("cy", 3)); err != nil {
		t.Fatal(err)
	}
	final, err := s.GetCall(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Participants) != 3 || final.Version != 4 {
		t.Fatalf("after the changes: %d participants at version %d, want 3 at 4", len(final.Participants), final.Version)
	}
	for _, p := range final.Participants {
		if p.Name != "" {
			t.Errorf("a caller's edit reached the stored call: %+v", p)
		}
	}
	if _, ok := final.Seqs["intruder"]; ok {
		t.Errorf("a caller's edit of the marks reached the stored call")
	}
	fromDisk, err := reopen(t, s, path).GetCall(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(final, fromDisk) {
		t.Errorf("the cached call differs from the stored one:\n%+v\n%+v", final, fromDisk)
	}
}

// openWithCall opens a SQLite store in a fresh file, closed when the test
// ends, with one call (benchCall(id)) in it, and returns it and its path.
func openWithCall(t *testing.T, id string) (*SQL, string) {
	t.Helper()
	s, path := openBatchStore(t)
	if _, _, err := s.CreateCall(t.Context(), benchCall(id), nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, path
}
