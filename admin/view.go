package admin

import (
	"context"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/webhooks"
)

// view is everything the page shows; every string in it is escaped by
// html/template when rendered.
type view struct {
	Nonce  string
	CSRF   string
	Who    string
	Token  bool // signed in with the cookie: show Sign out
	Now    time.Time
	Live   []callRow
	Ended  []callRow
	Outbox []deliveryRow
	Health []webhooks.Seen
	// Refresh is the no-JS meta refresh, in seconds.
	Refresh int
}

type callRow struct {
	ID, Title, Provider, Type, State, EndReason string
	Created                                     time.Time
	Ended                                       *time.Time
	Roster                                      []calls.Participant
	Surfaces                                    []surfaceRow
}

type surfaceRow struct {
	Chat, Workspace, Channel, Status, LastError string
	Attempts                                    int
}

type deliveryRow struct {
	CallID  string
	Surface surfaceRow
	Next    time.Time
	DeadAt  *time.Time
}

const (
	liveLimit   = 100
	endedLimit  = 20
	outboxLimit = 200
)

var liveStates, endedStates []calls.State

func init() {
	for _, s := range calls.States {
		if s.Terminal() {
			endedStates = append(endedStates, s)
		} else {
			liveStates = append(liveStates, s)
		}
	}
}

func (h *handler) view(ctx context.Context, w who) (view, error) {
	actor := calls.Actor{Kind: calls.ActorSystem, UserID: "admin:" + w.name}
	v := view{Who: w.name, Token: !w.bearer && w.name == "token", CSRF: h.csrf(w), Now: h.opts.Now(), Refresh: 10}
	live, _, err := h.opts.Service.Search(ctx, actor, calls.SearchQuery{States: liveStates, Limit: liveLimit})
	if err != nil {
		return view{}, err
	}
	ended, _, err := h.opts.Service.Search(ctx, actor, calls.SearchQuery{States: endedStates, Limit: endedLimit})
	if err != nil {
		return view{}, err
	}
	for _, c := range live {
		v.Live = append(v.Live, row(c))
	}
	for _, c := range ended {
		v.Ended = append(v.Ended, row(c))
	}
	ds, err := h.opts.Outbox.ListDeliveries(ctx, outboxLimit)
	if err != nil {
		return view{}, err
	}
	for _, d := range ds {
		v.Outbox = append(v.Outbox, deliveryRow{CallID: d.CallID, Surface: surface(d.Surface), Next: d.Surface.Delivery.NextAttemptAt, DeadAt: d.Surface.Delivery.DeadAt})
	}
	v.Health = h.opts.Health.Snapshot()
	return v, nil
}

func row(c calls.Call) callRow {
	r := callRow{ID: c.ID, Title: c.Title, Provider: c.Provider, Type: string(c.Type), State: string(c.State),
		EndReason: c.EndReason, Created: c.CreatedAt, Ended: c.EndedAt, Roster: c.Participants}
	for _, sf := range c.Surfaces {
		r.Surfaces = append(r.Surfaces, surface(sf))
	}
	return r
}

func surface(sf calls.Surface) surfaceRow {
	d := sf.Delivery
	return surfaceRow{Chat: sf.Chat, Workspace: sf.Workspace, Channel: sf.Channel, Status: d.Status(), LastError: d.LastError, Attempts: d.Attempts}
}

// ago says how long ago t was, "—" for never.
func (h *handler) ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	d := h.opts.Now().Sub(*t)
	if d < 0 {
		return "in " + (-d).Round(time.Second).String()
	}
	return d.Round(time.Second).String() + " ago"
}
