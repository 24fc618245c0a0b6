package ws

import (
	"context"
	"encoding/json"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// router turns stored events into frames for the people they concern. It
// caches calls and users for one batch.
type router struct {
	h       *Hub
	calls   map[string]*calls.Call
	members map[string]CallMember
}

func newRouter(h *Hub) *router {
	return &router{h: h, calls: map[string]*calls.Call{}, members: map[string]CallMember{}}
}

func (r *router) call(ctx context.Context, id string) *calls.Call {
	if c, ok := r.calls[id]; ok {
		return c
	}
	c, err := r.h.o.Store.GetCall(ctx, id)
	if err != nil {
		r.h.log.Warn("ws: reading a call failed", "call_id", id, "err", err)
		r.calls[id] = nil
		return nil
	}
	r.calls[id] = &c
	return &c
}

// freshTTL bounds how long a created call waits for its creation events
// to be routed; after it they read the call like any other event.
const freshTTL = 5 * time.Second

// creation reports whether the event is one of those a call is created
// with: the call as its creator got it back is the call as of the event.
// (Rings without Identity happen only at creation; invitations name whom
// they ring.)
func creation(ev calls.Event) bool {
	return ev.Kind == calls.EventCreated || (ev.Kind == calls.EventRinging && ev.Identity == "")
}

// callAt returns the call for routing ev: for the events of a call this
// replica just created, the call as created, which spares reading it back
// on the path of every ring; otherwise the call as stored now.
func (r *router) callAt(ctx context.Context, ev calls.Event) *calls.Call {
	if creation(ev) {
		if c, ok := r.h.fresh.get(ev.CallID, r.h.now()); ok {
			if ev.Kind == calls.EventRinging {
				r.h.fresh.drop(ev.CallID)
			}
			return c
		}
	}
	return r.call(ctx, ev.CallID)
}

func (r *router) member(ctx context.Context, id string, role calls.Role) CallMember {
	m, ok := r.members[id]
	if !ok {
		m = r.h.member(ctx, id, "")
		r.members[id] = m
	}
	m.Role = string(role)
	return m
}

// recipients are the users an event of c concerns: its members and its creator.
func recipients(c *calls.Call) []string {
	out := make([]string, 0, len(c.Members)+1)
	if c.CreatedBy != "" && !containsUser(c.Members, c.CreatedBy) {
		out = append(out, c.CreatedBy)
	}
	for _, m := range c.Members {
		out = append(out, m.UserID)
	}
	return out
}

// route sends the event's frames to the sockets of this replica and, when
// this replica claims it, to the outbound webhooks.
func (r *router) route(ctx context.Context, ev calls.Event) {
	if ev.Kind == calls.EventUpdated && ev.Reason != calls.ReasonMerged {
		// Nobody is told of other updates (a room made ready, a surface
		// added): no frame, no webhook, so no call read either.
		return
	}
	var c *calls.Call
	if len(r.h.o.Webhooks) > 0 {
		if c = r.callAt(ctx, ev); c != nil {
			r.webhooks(ctx, ev, c)
		}
	}
	if c == nil {
		// Members are known only from the call, so it is read to learn
		// whom the event concerns; with no socket on this replica there
		// is nobody to tell, and a busy call's events (a provider's
		// participant webhooks) must not cost a call read each.
		if !r.h.anyone() {
			return
		}
		c = r.callAt(ctx, ev)
		if c == nil {
			return
		}
	}
	for _, u := range recipients(c) {
		socks := r.h.socketsOf(u)
		if len(socks) == 0 {
			continue
		}
		for _, f := range r.frames(ctx, ev, c, u, false) {
			r.h.sendTo(socks, ev.Seq, f)
		}
		r.credentialFrames(ev, c, u, socks)
	}
}

func (r *router) webhooks(ctx context.Context, ev calls.Event, c *calls.Call) {
	ce, ok := r.callEvent(ctx, ev, c, "")
	if !ok {
		return
	}
	body, _ := json.Marshal(map[string]any{"type": EvCall, "eventId": seqID(ev.Seq), "date": millis(ev.At), "data": ce})
	ds := make([]store.WSDelivery, 0, len(r.h.o.Webhooks))
	for _, w := range r.h.o.Webhooks {
		ds = append(ds, r.h.newDelivery("event-"+seqID(ev.Seq), w.URL, body, time.Time{}))
	}
	// The replica that claims the event stores its deliveries in the same
	// transaction; the worker of any replica sends them.
	claimed, err := r.h.o.Store.ClaimEventDeliveries(ctx, ev.Seq, r.h.now(), ds)
	if err != nil {
		r.h.log.Warn("ws: claiming an event for webhooks failed", "seq", ev.Seq, "err", err)
		return
	}
	if claimed {
		r.h.kickDeliveries()
	}
}

// stateWord maps an event to the Capacitor CallState vocabulary, from the
// point of view of user ("" for a neutral view: webhooks).
func stateWord(ev calls.Event, c *calls.Call, user string) (state, reason string, ok bool) {
	caller := c.CreatedBy
	switch ev.Kind {
	case calls.EventCreated:
		return "created", ev.Reason, true
	case calls.EventRinging:
		return "ringing", ev.Reason, true
	case calls.EventAccepted:
		return "accepted", ev.Reason, true
	case calls.EventRejected:
		return "rejected", ev.Reason, true
	case calls.EventMissed:
		// The caller missed the callee; the callee's ringing devices are
		// told the ring was cancelled.
		if user != "" && user != caller {
			return "ended", calls.ReasonCancelled, true
		}
		return "missed", ev.Reason, true
	case calls.EventActive, calls.EventJoined:
		return "joined", ev.Reason, true
	case calls.EventLeft:
		return "left", ev.Reason, true
	case calls.EventEnded:
		return "ended", ev.Reason, true
	case calls.EventFailed:
		return "ended", "failed:" + ev.Reason, true
	case calls.EventUpdated:
		if ev.Reason == calls.ReasonMerged {
			return "accepted", ev.Reason, true
		}
	}
	return "", "", false
}

func (r *router) callEvent(ctx context.Context, ev calls.Event, c *calls.Call, user string) (CallEvent, bool) {
	state, reason, ok := stateWord(ev, c, user)
	if !ok {
		return CallEvent{}, false
	}
	out := CallEvent{CallID: c.ID, State: state, Reason: reason, Type: string(c.Type), Members: []CallMember{}}
	out.UserID = ev.Identity
	if out.UserID == "" {
		out.UserID = ev.Actor
	}
	for _, m := range c.Members {
		out.Members = append(out.Members, r.member(ctx, m.UserID, m.Role))
	}
	if c.CreatedBy != "" {
		role := calls.RoleOwner
		if m, ok := c.Member(c.CreatedBy); ok {
			role = m.Role
		}
		cm := r.member(ctx, c.CreatedBy, role)
		out.Caller = &cm
	}
	out.Session = Session{State: ev.State.LivePerson()}
	if ev.Kind == calls.EventRinging {
		out.Session.State = "INVITED"
		out.Session.ExpiresAt = millis(ev.At.Add(r.h.o.Service.RingTimeout()))
	}
	return out, true
}

// frames are the frames an event gives user, besides credentials. replay
// is true when the event is sent again after a reconnect.
func (r *router) frames(ctx context.Context, ev calls.Event, c *calls.Call, user string, replay bool) []Outbound {
	var out []Outbound
	meta := EventMeta{ID: seqID(ev.Seq), Date: millis(ev.At)}
	ce, ok := r.callEvent(ctx, ev, c, user)
	caller := c.CreatedBy
	ref := RequestRef{VideochatRequestID: c.ID, UserID: ev.Actor, Reason: ev.Reason}
	switch ev.Kind {
	case calls.EventRinging:
		rung := user != caller && (ev.Identity == "" || ev.Identity == user)
		if !rung {
			break
		}
		// A ring that is over, or was already old when this device
		// connected, is a missed-call notice rather than a ring.
		if replay && (c.State.Terminal() || r.h.now().Sub(ev.At) > r.h.o.RingFresh) {
			ce.State, ce.Notice, ce.Reason = "missed", true, "ring_expired"
			break
		}
		out = append(out, Outbound{Name: EvRequested, Data: r.requested(ctx, ev, c, user), Event: meta})
	case calls.EventAccepted:
		if ev.Actor == user {
			out = append(out, Outbound{Name: EvAccepted, Data: ref, Event: meta})
		}
	case calls.EventRejected:
		// The decliner's devices stop ringing; the caller hears of it
		// when the whole call is rejected (a group ring's single declines
		// name the member in Identity and reach the caller as "call"
		// events only).
		if ev.Actor == user || (user == caller && ev.Identity == "") {
			out = append(out, Outbound{Name: EvDeclined, Data: ref, Event: meta})
		}
	case calls.EventEnded:
		if ev.Reason == calls.ReasonCancelled {
			out = append(out, Outbound{Name: EvDeclined, Data: ref, Event: meta})
		}
	}
	if ok {
		out = append(out, Outbound{Name: EvCall, Data: ce, Event: meta})
	}
	return out
}

func (r *router) requested(ctx context.Context, ev calls.Event, c *calls.Call, user string) Requested {
	from := ev.Actor
	if from == "" {
		from = c.CreatedBy
	}
	req := Requested{VideochatRequestID: c.ID, VideochatID: c.ID, User: simple(r.member(ctx, from, "")), Participants: []UserSimple{},
		Counter: len(c.Members), Type: string(c.Type), ExpiresAt: millis(ev.At.Add(r.h.o.Service.RingTimeout()))}
	for _, m := range c.Members {
		if m.UserID == user || len(req.Participants) == 10 {
			continue
		}
		req.Participants = append(req.Participants, simple(r.member(ctx, m.UserID, m.Role)))
	}
	busy, err := r.h.o.Store.InLiveCall(ctx, user, c.ID)
	if err != nil {
		r.h.log.Warn("ws: reading whether a callee is busy failed", "call_id", c.ID, "err", err)
	}
	req.Busy = busy
	return req
}

// credentialFrames mint, off the routing path, the credential the caller
// needs once the callee accepted (directVideochatRequestAccepted), and the
// one a merged caller needs for the call they were merged into.
func (r *router) credentialFrames(ev calls.Event, c *calls.Call, user string, socks []*conn) {
	var requestID string
	switch {
	case ev.Kind == calls.EventAccepted && ev.Identity == "" && user == c.CreatedBy && ev.Actor != user:
		requestID = c.ID
	case ev.Kind == calls.EventUpdated && ev.Reason == calls.ReasonMerged && ev.Identity == user:
	default:
		return
	}
	if c.State.Terminal() {
		return
	}
	h := r.h
	meta := EventMeta{ID: seqID(ev.Seq), Date: millis(ev.At)}
	callID := c.ID
	go func() {
		ctx, cancel := context.WithTimeout(h.ctx, 15*time.Second)
		defer cancel()
		j, err := h.joined(ctx, calls.UserActor(user), callID)
		if err != nil {
			h.log.Warn("ws: minting the caller's credential failed", "call_id", callID, "err", err)
			h.sendTo(socks, ev.Seq, Outbound{Name: EvDirectAccepted, Data: map[string]string{"videochatId": callID}, Error: errorBody(err), Event: meta})
			return
		}
		j.VideochatRequestID = requestID
		h.sendTo(socks, ev.Seq, Outbound{Name: EvDirectAccepted, Data: j, Event: meta})
	}()
}

// joined mints the actor's credential for the call and shapes the seed's
// accept fields.
func (h *Hub) joined(ctx context.Context, actor calls.Actor, callID string) (Joined, error) {
	c, cred, err := h.o.Service.Credential(ctx, actor, callID, calls.JoinRequest{UserID: actor.UserID, Name: h.member(ctx, actor.UserID, "").Name})
	if err != nil {
		return Joined{}, err
	}
	role := calls.RoleParticipant
	if m, ok := c.Member(actor.UserID); ok {
		role = m.Role
	}
	f := cred.Fields
	str := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := f[k].(string); ok && v != "" {
				return v
			}
		}
		return ""
	}
	j := Joined{
		VideochatID: c.ID, VideochatMode: mode(c), VideochatEngine: h.o.ProviderKinds[c.Provider],
		VideochatAppID: str("agora_app_id", "app_id", "api_key"),
		VideochatURL:   str("url", "server_url", "ws_url", "room_url"),
		Room:           str("room", "channel", "room_name", "call_id"),
		Identity:       str("identity", "user_id"),
		Token:          cred.Token,
		SharedSecret:   h.SharedSecret(c.ID),
		JoinURL:        cred.JoinURL,
		User:           simple(h.member(ctx, actor.UserID, role)),
		Permissions:    PermissionsOf(role),
	}
	if j.VideochatEngine == "" {
		j.VideochatEngine = c.Provider
	}
	if j.Room == "" {
		j.Room = c.Room.Name
	}
	if j.VideochatURL == "" {
		j.VideochatURL = c.Room.URL
	}
	if j.Identity == "" {
		j.Identity = actor.UserID
	}
	if j.Token == "" {
		j.Token = str("jwt", "token")
	}
	switch v := f["agora_uid"].(type) {
	case uint32:
		j.UID = int64(v)
	case int:
		j.UID = int64(v)
	case int64:
		j.UID = v
	case uint64:
		j.UID = int64(v)
	case float64:
		j.UID = int64(v)
	}
	if !cred.ExpiresAt.IsZero() {
		j.ExpiresAt = millis(cred.ExpiresAt)
	}
	return j, nil
}

// replay sends a (re)connecting socket what it missed: the frames of the
// events of the user's calls after `after`, and returns the last seq sent.
func (h *Hub) replay(ctx context.Context, c *conn, after int64) (int64, error) {
	r := newRouter(h)
	last := after
	for {
		evs, err := h.o.Store.UserEvents(ctx, c.user, last, pumpBatch)
		if err != nil {
			return last, err
		}
		for _, ev := range evs {
			last = ev.Seq
			call := r.call(ctx, ev.CallID)
			if call == nil {
				continue
			}
			for _, f := range r.frames(ctx, ev, call, c.user, true) {
				c.sendNow(f)
			}
			r.credentialFrames(ev, call, c.user, []*conn{c})
		}
		if len(evs) < pumpBatch {
			return last, nil
		}
	}
}

// rings sends a fresh socket the calls ringing it now: a ring, or a
// missed-call notice when the ring is older than RingFresh.
func (h *Hub) rings(ctx context.Context, c *conn) error {
	ringing, _, err := h.o.Store.SearchCalls(ctx, calls.SearchQuery{UserID: c.user, States: []calls.State{calls.StateRinging}, Limit: 50})
	if err != nil {
		return err
	}
	r := newRouter(h)
	for i := range ringing {
		call := &ringing[i]
		if call.CreatedBy == c.user {
			continue
		}
		if m, ok := call.Member(c.user); ok && m.Answer == calls.AnswerDeclined {
			// They declined this group ring; it rings the others.
			continue
		}
		ev := calls.Event{Kind: calls.EventRinging, CallID: call.ID, State: calls.StateRinging, Actor: call.CreatedBy, At: call.StateChangedAt}
		if evs, err := h.o.Store.Events(ctx, call.ID, 0); err == nil {
			for _, e := range evs {
				if e.Kind == calls.EventRinging && (e.Identity == "" || e.Identity == c.user) {
					ev = e
				}
			}
		}
		for _, f := range r.frames(ctx, ev, call, c.user, true) {
			c.sendNow(f)
		}
	}
	return nil
}
