package ws_test

import (
	"context"
	"testing"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/ws"
)

// blindLog is the store with an event log the hub cannot read.
type blindLog struct{ *store.SQL }

func (blindLog) EventsAfter(context.Context, int64, int) ([]calls.Event, error) { return nil, nil }

// TestRingGoesStraightToLocalSockets: a ring created on this replica
// reaches the callee's sockets from the request that stored it, not
// through the pump's read of the event log (which this hub cannot read).
// The ring carries its event id, as one read from the log would.
func TestRingGoesStraightToLocalSockets(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.Store = blindLog{o.Store.(*store.SQL)} }})
	ada, bob := g.dial(t, "ada"), g.dial(t, "bob")
	res := ada.request(reqDirect, map[string]any{"targetUser": "bob"})
	okResponse(t, res)
	rq := bob.event("videochat:videochatRequested")
	if rq.str("videochatRequestId") != res.str("videochatRequestId") || rq.Event.ID == "" {
		t.Fatalf("videochatRequested: %+v", rq)
	}
}
