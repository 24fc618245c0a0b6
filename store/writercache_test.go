package store

import (
	"context"
	"database/sql"
	"path/filepath"
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
	path := filepath.Join(t.TempDir(), "calls.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.CreateCall(ctx, benchCall("shared"), nil); err != nil {
		t.Fatal(err)
	}
	// Two changes: the second starts from the cached call.
	for i, who := range []string{"ada", "bob"} {
		if _, err := s.UpdateCall(ctx, "shared", nil, join(who, int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.children.getCall("shared"); !ok {
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
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "calls.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.CreateCall(ctx, benchCall("card"), nil); err != nil {
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
