package ws_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/ws"
)

// Offline, busy and blocked all answer 10011 with the same error, so a
// caller cannot tell which applies; a blocked caller's ring and invitation
// never reach the blocker; a busy callee is rung only with merge (call
// waiting); unblocking restores rings.
func TestBusyAndBlockedAre10011(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada, bob, cy, dan := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "cy"), g.dial(t, "dan")
	carol := g.dial(t, "carol")
	carol.c.Close(websocket.StatusNormalClosure, "")
	g.waitOffline(t, "carol")
	offline := cy.request(reqDirect, map[string]any{"targetUser": "carol"})
	errResponse(t, offline, ws.CodeUserUnavailable)
	sameAsOffline := func(what string, f frame) {
		t.Helper()
		errResponse(t, f, ws.CodeUserUnavailable)
		if f.Error != offline.Error {
			t.Fatalf("%s: %+v differs from the offline answer %+v: it tells the reason", what, f.Error, offline.Error)
		}
	}
	isRing := func(f frame) bool { return f.Name == "videochat:videochatRequested" }

	// The block list: blockUser and unblockUser answer with it.
	for _, tc := range []struct {
		name string
		data map[string]any
		want []string
		code int
	}{
		{ws.ReqBlock, map[string]any{"targetUser": "cy"}, []string{"cy"}, 0},
		{ws.ReqBlock, map[string]any{"targetUser": "cy"}, []string{"cy"}, 0}, // again: one block
		{ws.ReqBlock, map[string]any{"targetUser": "bob"}, nil, ws.CodeBadRequest},
		{ws.ReqBlock, map[string]any{"targetUser": "cy", "why": "spam"}, nil, ws.CodeBadRequest},
		{ws.ReqUnblock, map[string]any{}, nil, ws.CodeBadRequest},
		{ws.ReqBlocks, nil, []string{"cy"}, 0},
	} {
		f := bob.request(tc.name, tc.data)
		if tc.code != 0 {
			errResponse(t, f, tc.code)
			continue
		}
		okResponse(t, f)
		var got []string
		for _, v := range f.Data["blockedUsers"].([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%s %v: blockedUsers %v, want %v", tc.name, tc.data, got, tc.want)
		}
	}

	// Blocked: cy's ring and invitation are 10011 and bob hears nothing.
	sameAsOffline("blocked ring", cy.request(reqDirect, map[string]any{"targetUser": "bob"}))
	sameAsOffline("blocked ring with merge", cy.request(reqDirect, map[string]any{"targetUser": "bob", "merge": true}))
	v := cy.request(reqDirect, map[string]any{"targetUser": "dan"}).str("videochatRequestId")
	dan.waitFor(func(f frame) bool { return isRing(f) && f.str("videochatRequestId") == v }, "cy's ring")
	okResponse(t, dan.request(reqAccept, map[string]any{"videochatRequestId": v}))
	sameAsOffline("blocked invitation", cy.request(reqInvite, map[string]any{"targetUser": "bob", "videochatId": v}))
	// A group ring with a member who blocks the caller is refused whole.
	sameAsOffline("blocked group ring", cy.request(reqDirect, map[string]any{"targetUsers": []string{"ada", "bob"}}))
	bob.none(isRing, 200*time.Millisecond, "a ring from someone bob blocks")
	ada.none(isRing, 0, "a ring of a refused group request")
	// Others still ring bob.
	r := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob.waitFor(func(f frame) bool { return isRing(f) && f.str("videochatRequestId") == r }, "ada's ring")
	okResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": r}))

	// Busy: dan is in cy's call; ada gets 10011 unless she asks to merge.
	sameAsOffline("busy ring", ada.request(reqDirect, map[string]any{"targetUser": "dan"}))
	sameAsOffline("busy group ring", ada.request(reqDirect, map[string]any{"targetUsers": []string{"bob", "dan"}}))
	w := ada.request(reqDirect, map[string]any{"targetUser": "dan", "merge": true}).str("videochatRequestId")
	if f := dan.waitFor(func(f frame) bool { return isRing(f) && f.str("videochatRequestId") == w }, "call waiting"); f.Data["busy"] != true {
		t.Fatalf("call waiting ring: %+v", f.Data)
	}
	okResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": w}))
	// Being in v does not make dan busy for v: cy may ring him into it again.
	okResponse(t, cy.request(reqInvite, map[string]any{"targetUser": "dan", "videochatId": strings.ToUpper(v)}))
	// The call ends: dan is free again.
	if _, err := g.svc.End(t.Context(), calls.UserActor("cy"), v); err != nil {
		t.Fatal(err)
	}
	x := ada.request(reqDirect, map[string]any{"targetUser": "dan"})
	okResponse(t, x)
	okResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": x.str("videochatRequestId")}))

	// Unblocked: cy rings bob again.
	if f := bob.request(ws.ReqUnblock, map[string]any{"targetUser": "cy"}); len(f.Data["blockedUsers"].([]any)) != 0 {
		t.Fatalf("after unblocking: %+v", f.Data)
	}
	y := cy.request(reqDirect, map[string]any{"targetUser": "bob"})
	okResponse(t, y)
	bob.waitFor(func(f frame) bool { return isRing(f) && f.str("videochatRequestId") == y.str("videochatRequestId") }, "cy's ring after unblocking")
}
