package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// testFindBySurface: the newest live call shown in a conversation is what
// "/call end" there ends; calls that are over or shown elsewhere are not.
func testFindBySurface(t *testing.T, h *harness) {
	here := calls.Surface{Chat: "acme", Workspace: "w", Channel: "c1"}
	older := sampleCall("older")
	older.Surfaces = []calls.Surface{here}
	h.create(older)
	newer := sampleCall("newer")
	newer.CreatedAt = newer.CreatedAt.Add(time.Minute)
	newer.Surfaces = []calls.Surface{here}
	h.create(newer)
	elsewhere := sampleCall("elsewhere")
	elsewhere.CreatedAt = elsewhere.CreatedAt.Add(2 * time.Minute)
	elsewhere.Surfaces = []calls.Surface{{Chat: "acme", Workspace: "w", Channel: "c2"}}
	h.create(elsewhere)

	got, err := h.s.FindBySurface(t.Context(), here.Key())
	if err != nil || got.ID != "newer" {
		t.Fatalf("FindBySurface = %s, %v; want newer", got.ID, err)
	}
	h.update("newer", func(c *calls.Call) ([]calls.Event, error) {
		ev, err := c.Transition(calls.StateEnded, calls.ReasonEndedByAPI, at(time.Hour))
		return []calls.Event{ev}, err
	})
	if got, err := h.s.FindBySurface(t.Context(), here.Key()); err != nil || got.ID != "older" {
		t.Fatalf("after the newer ended: %s, %v; want older", got.ID, err)
	}
	if _, err := h.s.FindBySurface(t.Context(), calls.SurfaceKey{Chat: "acme", Workspace: "w", Channel: "nowhere"}); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("empty conversation: %v, want ErrNotFound", err)
	}
}

func testRecordings(t *testing.T, h *harness) {
	h.create(sampleCall("rec"))
	recs := []calls.Recording{
		{Kind: "recording", URL: "https://cdn.example/r1.mp4", ProviderID: "EG1", Duration: 14 * time.Minute, At: at(time.Hour)},
		{Kind: "transcript", ProviderID: "T1", At: at(time.Hour)},
	}
	h.update("rec", func(c *calls.Call) ([]calls.Event, error) {
		c.Recordings = recs
		return []calls.Event{{Kind: calls.EventUpdated, Reason: "recording_ready", At: at(time.Hour)}}, nil
	})
	h.reopen()
	for i := range recs {
		recs[i].At = calls.StoredTime(recs[i].At)
	}
	if got := h.get("rec").Recordings; !reflect.DeepEqual(got, recs) {
		t.Fatalf("recordings %+v, want %+v", got, recs)
	}
}

func testInstallations(t *testing.T, h *harness) {
	is, ok := h.s.(calls.InstallationStore)
	if !ok {
		t.Skip("the store keeps no installations")
	}
	ctx := t.Context()
	in := calls.Installation{Chat: "slack", Workspace: "T1", Secret: []byte{0, 1, 2, 0xff}, Data: map[string]string{"bot_user": "U1"}, UpdatedAt: at(0)}
	if err := is.PutInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Secret, in.UpdatedAt = []byte("rotated"), at(time.Minute)
	if err := is.PutInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := is.GetInstallation(ctx, "slack", "T1")
	in.UpdatedAt = calls.StoredTime(in.UpdatedAt)
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("got %+v, %v; want %+v", got, err, in)
	}
	if _, err := is.GetInstallation(ctx, "slack", "T2"); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("other workspace: %v", err)
	}
	if err := is.DeleteInstallation(ctx, "slack", "T1"); err != nil {
		t.Fatal(err)
	}
	if _, err := is.GetInstallation(ctx, "slack", "T1"); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := is.DeleteInstallation(ctx, "slack", "T1"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func testSearchCalls(t *testing.T, h *harness) {
	here := calls.Surface{Chat: "acme", Workspace: "w", Channel: "c1"}
	var ids []string
	for i := range 7 {
		c := sampleCall("h" + string(rune('0'+i)))
		c.CreatedAt = c.CreatedAt.Add(time.Duration(i) * time.Minute)
		if i%2 == 0 {
			c.Surfaces = []calls.Surface{here}
		}
		if i == 3 {
			c.Members = append(c.Members, calls.Member{UserID: "zed", Role: calls.RoleListener})
		}
		h.create(c)
		ids = append(ids, c.ID)
	}
	page := func(q calls.SearchQuery) ([]string, string) {
		got, next, err := h.s.SearchCalls(t.Context(), q)
		if err != nil {
			t.Fatalf("SearchCalls(%+v): %v", q, err)
		}
		var out []string
		for _, c := range got {
			out = append(out, c.ID)
		}
		return out, next
	}
	// Newest first, in pages that continue where the last one stopped.
	first, next := page(calls.SearchQuery{Limit: 3})
	second, next2 := page(calls.SearchQuery{Limit: 3, Cursor: next})
	third, next3 := page(calls.SearchQuery{Limit: 3, Cursor: next2})
	all := append(append(first, second...), third...)
	if !reflect.DeepEqual(all, []string{"h6", "h5", "h4", "h3", "h2", "h1", "h0"}) || next3 != "" {
		t.Fatalf("pages %v (last cursor %q)", all, next3)
	}
	if got, _ := page(calls.SearchQuery{Chat: "acme", Channel: "c1"}); !reflect.DeepEqual(got, []string{"h6", "h4", "h2", "h0"}) {
		t.Fatalf("by channel: %v", got)
	}
	if got, _ := page(calls.SearchQuery{UserID: "zed"}); !reflect.DeepEqual(got, []string{"h3"}) {
		t.Fatalf("by member: %v", got)
	}
	base := sampleCall("x").CreatedAt
	if got, _ := page(calls.SearchQuery{Since: base.Add(2 * time.Minute), Until: base.Add(4 * time.Minute)}); !reflect.DeepEqual(got, []string{"h3", "h2"}) {
		t.Fatalf("by time: %v", got)
	}
	if _, _, err := h.s.SearchCalls(t.Context(), calls.SearchQuery{Cursor: "not-a-cursor!"}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("bad cursor: %v", err)
	}
	got, _, _ := h.s.SearchCalls(t.Context(), calls.SearchQuery{Limit: 1})
	if len(got[0].Surfaces) != 1 {
		t.Fatalf("calls come with their children: %+v", got[0])
	}
}
