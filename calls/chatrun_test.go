package calls_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

func chatStart(text string) calls.ChatRequest {
	cmd, _ := calls.ParseCommand(text, nil)
	return calls.ChatRequest{User: calls.ChatUser{ID: "U1", Name: "Ada"}, Surface: calls.Surface{Workspace: "T1", Channel: "C1"}, Command: &cmd}
}

// One live call per conversation: a second /call offers it, /call new
// insists, /call end ends the live one, and the next /call starts anew.
func TestChatCommandsInAConversation(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	ctx := context.Background()
	first := f.svc.RunChat(ctx, "acme", chatStart("/call video Standup"))
	if first.Err != nil || !first.Created || first.Call.Title != "Standup" || !first.Call.HasSurface(calls.SurfaceKey{Chat: "acme", Workspace: "T1", Channel: "C1"}) {
		t.Fatalf("first: %+v", first)
	}
	if first.Call.CreatedBy != "acme:U1" {
		t.Fatalf("created by %q", first.Call.CreatedBy)
	}
	again := f.svc.RunChat(ctx, "acme", chatStart("/call"))
	if again.Err != nil || again.Created || again.Call.ID != first.Call.ID {
		t.Fatalf("a second /call: %+v", again)
	}
	f.advance(time.Second)
	insist := f.svc.RunChat(ctx, "acme", chatStart("/call new Other"))
	if !insist.Created || insist.Call.ID == first.Call.ID {
		t.Fatalf("/call new: %+v", insist)
	}
	// Someone else may not end it.
	other := chatStart("/call end")
	other.User.ID = "U2"
	if out := f.svc.RunChat(ctx, "acme", other); out.Err == nil {
		t.Fatal("a stranger ended the call")
	}
	// /call end ends the newest live call: the one /call new started.
	end := f.svc.RunChat(ctx, "acme", chatStart("/call end"))
	if end.Err != nil || end.Call.State != calls.StateEnded || end.Call.ID != insist.Call.ID {
		t.Fatalf("/call end: %+v", end)
	}
	// The first call is still live: the next /call end ends it.
	if out := f.svc.RunChat(ctx, "acme", chatStart("/call end")); out.Err != nil || out.Call.ID != first.Call.ID {
		t.Fatalf("second /call end: %+v", out)
	}
	next := f.svc.RunChat(ctx, "acme", chatStart("/call"))
	if !next.Created || next.Call.ID == first.Call.ID {
		t.Fatalf("after the end, /call starts a new call: %+v", next)
	}
}

// Two people typing /call at the same moment get one call.
func TestConcurrentChatCommandsMakeOneCall(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.SQL) {
		f := newFixtureOn(t, st, calls.ServiceConfig{})
		ctx := context.Background()
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := chatStart("/call")
				req.User.ID = "U" + string(rune('a'+i))
				out := f.svc.RunChat(ctx, "acme", req)
				if out.Err != nil {
					t.Error(out.Err)
				}
				ids[i] = out.Call.ID
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("concurrent /call made several calls: %v", ids)
			}
		}
	})
}

// A platform that delivers one /call twice (the same delivery id) gets
// one call, even for /call new, which does not offer the live call; the
// call's id is a new, time-ordered one, not the hash that finds it.
func TestRepeatedChatDeliveryFindsItsCall(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.SQL) {
		f := newFixtureOn(t, st, calls.ServiceConfig{})
		ctx := context.Background()
		req := chatStart("/call new Retro")
		req.DeliveryID = "interaction-1"
		first := f.svc.RunChat(ctx, "acme", req)
		if first.Err != nil || !first.Created {
			t.Fatalf("first delivery: %+v", first)
		}
		again := f.svc.RunChat(ctx, "acme", req)
		if again.Err != nil || again.Created || again.Call.ID != first.Call.ID {
			t.Fatalf("the repeated delivery: created=%v id=%s, want the call %s; %v", again.Created, again.Call.ID, first.Call.ID, again.Err)
		}
		other := req
		other.DeliveryID = "interaction-2"
		if out := f.svc.RunChat(ctx, "acme", other); out.Err != nil || !out.Created || out.Call.ID == first.Call.ID {
			t.Fatalf("another delivery of /call new: %+v", out)
		}
		if len(first.Call.ID) != calls.IDTimeChars+20 {
			t.Errorf("a chat call's id %q is not a NewID", first.Call.ID)
		}
	})
}

// Mentions ring the people named: a direct call, they are members.
func TestChatMentionsRing(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	out := f.svc.RunChat(context.Background(), "acme", chatStart("/call audio @U2 @U3 Quick sync"))
	c := out.Call
	if out.Err != nil || c.State != calls.StateRinging || c.Type != calls.TypeAudio || c.Title != "Quick sync" || len(c.Members) != 3 {
		t.Fatalf("%+v", out)
	}
	if _, ok := c.Member("acme:U2"); !ok {
		t.Fatalf("members %+v", c.Members)
	}
}

// A platform message that becomes the card (Stream's command message) is
// the surface's message reference from the start.
func TestChatStartAdoptsTheCommandMessage(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	req := chatStart("/call Standup")
	req.MessageRef = "cmd-msg-1"
	out := f.svc.RunChat(context.Background(), "acme", req)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	c, _ := f.svc.Get(context.Background(), out.Call.ID)
	if len(c.Surfaces) != 1 || c.Surfaces[0].Delivery.MessageRef != "cmd-msg-1" || c.Surfaces[0].Delivery.Shown != 0 {
		t.Fatalf("surfaces %+v", c.Surfaces)
	}
}

// writeCounter counts the store's write transactions a chat request asks
// for, and the replay marks among them.
type writeCounter struct {
	*store.SQL
	creates, marksAlone, updates atomic.Int64
	marked                       atomic.Int64 // creates that carried a mark
}

func (s *writeCounter) CreateCall(ctx context.Context, c calls.Call, evs []calls.Event, opts calls.CreateOptions) (calls.Call, bool, error) {
	s.creates.Add(1)
	if opts.Mark != nil {
		s.marked.Add(1)
	}
	return s.SQL.CreateCall(ctx, c, evs, opts)
}

func (s *writeCounter) MarkOnce(ctx context.Context, m calls.DeliveryMark) (bool, error) {
	s.marksAlone.Add(1)
	return s.SQL.MarkOnce(ctx, m)
}

func (s *writeCounter) UpdateCall(ctx context.Context, id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) (calls.Call, error) {
	s.updates.Add(1)
	return s.SQL.UpdateCall(ctx, id, mark, change)
}

func (s *writeCounter) writes() int64 {
	return s.creates.Load() + s.marksAlone.Load() + s.updates.Load()
}

// TestChatReplayMarkRidesOnTheCreate: a /call that starts a call is one
// store write, its replay mark recorded with the call; every other outcome
// records the mark on its own before anything else; and a replay, on any
// path, is refused having changed nothing.
func TestChatReplayMarkRidesOnTheCreate(t *testing.T) {
	base := newFixture(t, calls.ServiceConfig{})
	counter := &writeCounter{SQL: base.store}
	svc, err := calls.NewService(calls.ServiceConfig{Store: counter, Providers: map[string]calls.Provider{"p": base.provider}, DefaultProvider: "p", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	signed := func(text, sig string) calls.ChatRequest {
		req := chatStart(text)
		req.Replay = &calls.DeliveryMark{Source: "replay:acme", ID: sig, At: time.Now()}
		return req
	}
	steps := []struct {
		name        string
		req         calls.ChatRequest
		wantErr     error // nil: no error
		wantCreated bool
		writes      int64 // store write transactions
		alone       int64 // of them, marks on their own
	}{
		{"a /call that starts a call is one write", signed("/call Standup", "s1"), nil, true, 1, 0},
		{"its replay, while the call is live, writes nothing", signed("/call Standup", "s1"), calls.ErrDuplicateDelivery, false, 1, 1},
		{"another /call finds the live call and marks alone", signed("/call", "s2"), nil, false, 1, 1},
		{"a /call end marks first, then ends", signed("/call end", "s3"), nil, false, 2, 1},
		{"a /call end replayed changes nothing", signed("/call end", "s3"), calls.ErrDuplicateDelivery, false, 1, 1},
		{"the first /call replayed after the end is still a replay", signed("/call Standup", "s1"), calls.ErrDuplicateDelivery, false, 1, 0},
		{"/call ring off marks first", signed("/call ring off", "s4"), nil, false, 1, 1},
		{"and its replay is refused", signed("/call ring on", "s4"), calls.ErrDuplicateDelivery, false, 1, 1},
	}
	for _, s := range steps {
		before, aloneBefore := counter.writes(), counter.marksAlone.Load()
		callsBefore, _ := counter.CountByState(ctx)
		out := svc.RunChat(ctx, "acme", s.req)
		switch {
		case s.wantErr == nil && out.Err != nil, s.wantErr != nil && !errors.Is(out.Err, s.wantErr):
			t.Fatalf("%s: err %v, want %v", s.name, out.Err, s.wantErr)
		case out.Created != s.wantCreated:
			t.Fatalf("%s: created %v, want %v", s.name, out.Created, s.wantCreated)
		}
		if got := counter.writes() - before; got != s.writes {
			t.Errorf("%s: %d store writes, want %d", s.name, got, s.writes)
		}
		if got := counter.marksAlone.Load() - aloneBefore; got != s.alone {
			t.Errorf("%s: %d marks on their own, want %d", s.name, got, s.alone)
		}
		if s.wantErr != nil {
			after, _ := counter.CountByState(ctx)
			if !maps.Equal(after, callsBefore) {
				t.Errorf("%s: a refused request changed the calls: %v, then %v", s.name, callsBefore, after)
			}
		}
	}
	if n := counter.marked.Load(); n < 2 {
		t.Errorf("%d creates carried the request's mark, want every create", n)
	}
	// The replayed "/call ring on" (same signature as "ring off") did not
	// switch ringing back on.
	if out, err := counter.RingOptOuts(ctx, "acme", []string{"U1"}); err != nil || !out["U1"] {
		t.Errorf("after a replayed /call ring on, U1 opted out = %v (%v), want still opted out", out["U1"], err)
	}
}
