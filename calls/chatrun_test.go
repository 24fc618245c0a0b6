package calls_test

import (
	"context"
	"sync"
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
