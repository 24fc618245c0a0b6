package ws

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// Store is what the hub reads and writes: the calls and the event log,
// plus the additive WebSocket tables of package store.
type Store interface {
	GetCall(ctx context.Context, id string) (calls.Call, error)
	SearchCalls(ctx context.Context, q calls.SearchQuery) ([]calls.Call, string, error)
	Events(ctx context.Context, callID string, after int64) ([]calls.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
	EventsAfter(ctx context.Context, after int64, limit int) ([]calls.Event, error)
	UserEvents(ctx context.Context, userID string, after int64, limit int) ([]calls.Event, error)
	TouchUser(ctx context.Context, u store.WSUser, at time.Time) error
	User(ctx context.Context, id string) (store.WSUser, bool, error)
	KnownUser(ctx context.Context, id string) (bool, error)
	InLiveCall(ctx context.Context, userID, except string) (bool, error)
	Block(ctx context.Context, user, other string, at time.Time) error
	Unblock(ctx context.Context, user, other string) error
	Blocks(ctx context.Context, user string) ([]string, error)
	SetPresence(ctx context.Context, replica string, userIDs []string, until time.Time) error
	ReplicaAlive(ctx context.Context, replica string, until time.Time) error
	DropPresence(ctx context.Context, replica, userID string) error
	Online(ctx context.Context, userID string, now time.Time) (bool, error)
	ClaimEventDeliveries(ctx context.Context, seq int64, at time.Time, ds []store.WSDelivery) (bool, error)
	AddWSDeliveries(ctx context.Context, ds []store.WSDelivery) error
	ClaimWSDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.WSDelivery, error)
	FinishWSDelivery(ctx context.Context, o store.WSDeliveryOutcome) error
	PruneWS(ctx context.Context, before time.Time) error
}

// Webhook is an outbound event webhook: every call event is POSTed to URL,
// signed with Secret like the voiplink callbacks.
type Webhook struct {
	URL    string
	Secret string
}

// Options configure a Hub. Service, Store and Wake are required.
type Options struct {
	Service *calls.Service
	Store   Store
	Wake    *calls.Wake
	// ProviderKinds maps provider names to kinds (videochatEngine).
	ProviderKinds map[string]string
	// Replica names this process in the presence table.
	Replica string
	// Secret derives each call's sharedSecret (HMAC-SHA256); replicas must
	// share it (the gateway passes server.link_secret).
	Secret []byte
	// AllowedOrigins are Origin host patterns browsers may connect from
	// (path.Match syntax, e.g. "app.example.com", "*.example.com"); "*"
	// allows any. Empty: same-origin browsers only. Clients that send no
	// Origin (native apps, servers) are always allowed.
	AllowedOrigins []string
	// Heartbeat is the ping interval; a socket whose pong does not come
	// back within it is closed. Default 25s.
	Heartbeat time.Duration
	// MaxMessage bounds an inbound frame in bytes; default 64 KiB. A larger
	// frame closes the socket (1009).
	MaxMessage int64
	// SendQueue bounds the frames waiting for one socket; a socket whose
	// queue is full is a slow client and is cut off. Default 64.
	SendQueue int
	// RingFresh is how old a ring may be when a device connects and still
	// ring; older rings are shown as missed-call notices. Default 5s.
	RingFresh time.Duration
	// PushURL, when set, receives a signed POST for a user rung while
	// offline everywhere, and the ring proceeds; without it such a ring is
	// refused with 10011.
	PushURL    string
	PushSecret string
	Webhooks   []Webhook
	HTTPClient *http.Client
	// Outbound requests are stored and retried until delivered (see
	// deliveries.go): HookAttempts tries (default 10), the first retry
	// after HookBackoff (default 2s), doubling up to HookMaxBackoff
	// (default 10m); a replica holds a delivery it is sending for
	// HookLease (default 1m) before another may take it over.
	HookAttempts   int
	HookBackoff    time.Duration
	HookMaxBackoff time.Duration
	HookLease      time.Duration
	// Poll bounds how long an event waits when a wake-up is lost; default 1s.
	Poll   time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Hub holds this replica's sockets and routes events to them.
type Hub struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	mu      sync.RWMutex
	users   map[string]map[*conn]struct{}
	closing bool
	conns   sync.WaitGroup

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	kick   chan struct{}

	// cursor state, owned by the pump loop
	high      int64
	delivered map[int64]struct{}
	gaps      map[int64]time.Time

	// profiles caches users' display names and pictures for
	// profileTTL; known remembers users known to the gateway (that never
	// changes back).
	profiles *ttlCache[store.WSUser]
	known    *ttlCache[struct{}]
	// local carries calls created here to the pump (Created).
	local chan createdCall
	// fresh holds the calls this replica just created, for routing the
	// events of their creation without reading them back (see callAt).
	fresh *ttlCache[*calls.Call]

	// Stats for tests and benchmarks.
	Dropped   atomic.Int64 // sockets closed for being slow
	Delivered atomic.Int64 // frames queued to sockets
	// Outbound requests: delivered, failed and to be retried, given up,
	// dropped unsent for being too late (a push after its ring).
	HooksDelivered, HooksRetried, HooksDead, HooksExpired atomic.Int64
}

// New returns a hub; Start runs it.
func New(o Options) (*Hub, error) {
	if o.Service == nil || o.Store == nil || o.Wake == nil {
		return nil, errors.New("ws: service, store and wake are required")
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 25 * time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 64 << 10
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 64
	}
	if o.RingFresh <= 0 {
		o.RingFresh = 5 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Replica == "" {
		o.Replica = "callgate-" + calls.RandomString(6)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	h := &Hub{o: o, log: o.Logger, now: o.Now, users: map[string]map[*conn]struct{}{}, local: make(chan createdCall, 256),
		delivered: map[int64]struct{}{}, gaps: map[int64]time.Time{}, kick: make(chan struct{}, 1),
		profiles: newTTLCache[store.WSUser](profileTTL, 100_000), known: newTTLCache[struct{}](0, 100_000),
		fresh: newTTLCache[*calls.Call](freshTTL, 10_000)}
	h.deliveryDefaults()
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Start reads the log's current position and runs the fan-out, presence
// and webhook loops until Close.
func (h *Hub) Start(ctx context.Context) error {
	seq, err := h.o.Store.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	h.high = seq
	if err := h.o.Store.ReplicaAlive(ctx, h.o.Replica, h.presenceUntil()); err != nil {
		return err
	}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.o.Service.ObserveCreated(h.Created)
	woken, stop := h.o.Wake.Subscribe()
	h.loops.Add(3)
	go func() { defer h.loops.Done(); defer stop(); h.pumpLoop(woken) }()
	go func() { defer h.loops.Done(); h.presenceLoop() }()
	go func() { defer h.loops.Done(); h.deliveryLoop() }()
	return nil
}

// Close says goodbye to every socket (1001 going away), waits for them up
// to ctx, and stops the loops.
func (h *Hub) Close(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	var all []*conn
	for _, cs := range h.users {
		for c := range cs {
			all = append(all, c)
		}
	}
	h.mu.Unlock()
	for _, c := range all {
		c.close(statusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if h.cancel != nil {
		h.cancel()
	}
	h.loops.Wait()
}

// anySockets reports whether a socket is connected to this replica.
func (h *Hub) anySockets() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users) > 0
}

// Sockets counts the open sockets of this replica.
func (h *Hub) Sockets() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, cs := range h.users {
		n += len(cs)
	}
	return n
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	cs := h.users[c.user]
	if cs == nil {
		cs = map[*conn]struct{}{}
		h.users[c.user] = cs
	}
	cs[c] = struct{}{}
	return true
}

// unregister removes c and reports whether it was the user's last socket here.
func (h *Hub) unregister(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.users[c.user]
	delete(cs, c)
	if len(cs) == 0 {
		delete(h.users, c.user)
		return true
	}
	return false
}

// anyone reports whether any socket is connected to this replica.
func (h *Hub) anyone() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users) > 0
}

func (h *Hub) socketsOf(user string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	cs := h.users[user]
	if len(cs) == 0 {
		return nil
	}
	out := make([]*conn, 0, len(cs))
	for c := range cs {
		out = append(out, c)
	}
	return out
}

func (h *Hub) hasSockets(user string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[user]) > 0
}

// SharedSecret is the call's end-to-end encryption key (LiveKit E2EE):
// base64 of HMAC-SHA256(secret, "callgate/e2ee/v1/" + call id). Every member
// gets the same key on every replica; nothing is stored.
func (h *Hub) SharedSecret(callID string) string {
	m := hmac.New(sha256.New, h.o.Secret)
	m.Write([]byte("callgate/e2ee/v1/" + callID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// gapWait is how long a hole in the seqs read is waited for: on
// PostgreSQL a transaction may commit a lower seq after a higher one.
// Holes older than this are rolled-back transactions.
const gapWait = 3 * time.Second

const pumpBatch = 500

// idlePumpGap is the least time between reads of the event log that
// wake-ups start while no socket is connected to this replica. Every
// stored change wakes the pump; with nobody to ring, a read per change was
// a twentieth of the gateway's CPU under a webhook load, for nothing but
// the outbound webhooks, which a few milliseconds do not hurt. A replica
// with a socket reads at once.
const idlePumpGap = 20 * time.Millisecond

func (h *Hub) pumpLoop(woken <-chan struct{}) {
	t := time.NewTicker(h.o.Poll)
	defer t.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	var last time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case lc := <-h.local:
			h.routeCreated(h.ctx, lc)
			continue
		case <-woken:
			if wait := idlePumpGap - time.Since(last); wait > 0 && !h.anySockets() {
				gap.Reset(wait)
				select {
				case <-h.ctx.Done():
					return
				case <-gap.C:
				}
			}
		case <-t.C:
		}
		last = time.Now()
		if err := h.pump(h.ctx); err != nil && h.ctx.Err() == nil {
			h.log.Warn("ws: reading the event log failed", "err", err)
		}
	}
}

// createdCall is a call this replica just stored, with its creation
// events as stored.
type createdCall struct {
	call   calls.Call
	events []calls.Event
}

// Created hears of every call this replica's service creates, right after
// the commit (calls.Service.Observe). A ring then reaches this replica's
// sockets without the pump's wake-up and read of the event log: the call
// and its events are at hand. It never blocks the request: when the pump
// is busy the events simply come through the log as every other event
// does.
func (h *Hub) Created(c calls.Call, events []calls.Event) {
	select {
	case h.local <- createdCall{call: c, events: events}:
	default:
	}
}

// routeCreated routes the creation events of a call created here, unless
// the pump has read them already. Only a brand-new call's first events go
// this way: nothing of that call can come before them.
func (h *Hub) routeCreated(ctx context.Context, lc createdCall) {
	r := newRouter(h)
	c := lc.call
	r.calls[c.ID] = &c
	for _, ev := range lc.events {
		if ev.Seq == 0 || !creation(ev) {
			continue
		}
		if _, done := h.delivered[ev.Seq]; done {
			continue
		}
		if _, gap := h.gaps[ev.Seq]; ev.Seq <= h.high && !gap {
			continue // read and routed by the pump already
		}
		h.delivered[ev.Seq] = struct{}{}
		r.route(ctx, ev)
	}
}

// pump reads the events after the lowest seq not yet settled and routes
// those not delivered before.
func (h *Hub) pump(ctx context.Context) error {
	now := h.now()
	for seq, seen := range h.gaps {
		if now.Sub(seen) > gapWait {
			delete(h.gaps, seq)
		}
	}
	for {
		low := h.high
		for seq := range h.gaps {
			if seq-1 < low {
				low = seq - 1
			}
		}
		evs, err := h.o.Store.EventsAfter(ctx, low, pumpBatch)
		if err != nil {
			return err
		}
		r := newRouter(h)
		for _, ev := range evs {
			if ev.Seq > h.high {
				for s := h.high + 1; s < ev.Seq && len(h.gaps) < 10000; s++ {
					h.gaps[s] = now
				}
				h.high = ev.Seq
			}
			delete(h.gaps, ev.Seq)
			if _, done := h.delivered[ev.Seq]; done {
				// Routed already: from an earlier read of a gap, or
				// straight from the request that created the call.
				continue
			}
			h.delivered[ev.Seq] = struct{}{}
			r.route(ctx, ev)
		}
		// Forget what no read can return again.
		floor := h.high
		for seq := range h.gaps {
			floor = min(floor, seq-1)
		}
		for seq := range h.delivered {
			if seq <= floor {
				delete(h.delivered, seq)
			}
		}
		if len(evs) < pumpBatch {
			return nil
		}
	}
}

// Heartbeats are spread over the heartbeat interval: the sockets are
// split into slots (by their random conn.slot) and one slot is pinged
// every pingTick, so 10,000 sockets are pinged a few dozen at a time
// rather than in bursts of hundreds that delay the rings sent meanwhile.
// A socket is pinged once per heartbeat, at the same point of each round.
const (
	pingTick     = 20 * time.Millisecond
	minPingSlots = 16
)

func pingSlotsFor(heartbeat time.Duration) int {
	return max(minPingSlots, int(heartbeat/pingTick))
}

func (h *Hub) presenceLoop() {
	slots := pingSlotsFor(h.o.Heartbeat)
	t := time.NewTicker(h.o.Heartbeat / time.Duration(slots))
	tick := 0
	defer t.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	var round [][]*conn
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-prune.C:
			if err := h.o.Store.PruneWS(h.ctx, h.now().Add(-24*time.Hour)); err != nil && h.ctx.Err() == nil {
				h.log.Warn("ws: pruning failed", "err", err)
			}
			continue
		case <-t.C:
		}
		tick++
		slot := tick % slots
		if slot == 0 || round == nil {
			// One pass over the sockets per round, not per tick.
			round = h.pingRound(slots)
		}
		for _, c := range round[slot] {
			c.ping()
		}
		round[slot] = nil
		if slot == 0 {
			if err := h.o.Store.ReplicaAlive(h.ctx, h.o.Replica, h.presenceUntil()); err != nil && h.ctx.Err() == nil {
				h.log.Warn("ws: replica heartbeat failed", "err", err)
			}
		}
	}
}

// pingRound splits the open sockets into slots. A socket that opens
// during a round is first pinged in the next.
func (h *Hub) pingRound(slots int) [][]*conn {
	round := make([][]*conn, slots)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, cs := range h.users {
		for c := range cs {
			round[c.slot%slots] = append(round[c.slot%slots], c)
		}
	}
	return round
}

func (h *Hub) presenceUntil() time.Time { return h.now().Add(3 * h.o.Heartbeat) }

// reachable reports whether the user has a socket here or on another replica.
func (h *Hub) reachable(ctx context.Context, user string) (bool, error) {
	if h.hasSockets(user) {
		return true, nil
	}
	return h.o.Store.Online(ctx, user, h.now())
}

// push asks the app's push endpoint to wake the user's phone (VoIP push):
// the request is stored, then sent by the delivery worker.
func (h *Hub) push(ctx context.Context, callee string, caller CallMember, call calls.Call) {
	expires := call.StateChangedAt.Add(h.o.Service.RingTimeout())
	body, _ := json.Marshal(map[string]any{
		"type": "incoming_call", "userId": callee, "caller": caller,
		"callId": call.ID, "videochatRequestId": call.ID, "callType": call.Type,
		"expiresAt": expires.UTC().Format(time.RFC3339),
	})
	if err := h.o.Store.AddWSDeliveries(ctx, []store.WSDelivery{h.newDelivery("push-"+call.ID+"-"+callee, h.o.PushURL, body, expires)}); err != nil {
		h.log.Error("ws: storing a push request failed", "call_id", call.ID, "err", err)
		return
	}
	h.kickDeliveries()
}

// profileTTL bounds how long a changed display name or picture (given
// when the user connects on another replica) may go unseen here.
const profileTTL = 10 * time.Second

// member returns the display info of a user.
func (h *Hub) member(ctx context.Context, id string, role calls.Role) CallMember {
	now := h.now()
	u, ok := h.profiles.get(id, now)
	if !ok {
		var err error
		if u, _, err = h.o.Store.User(ctx, id); err != nil {
			u = store.WSUser{ID: id}
		} else {
			h.profiles.put(id, u, now)
		}
	}
	return CallMember{UserID: id, Name: u.Name, ImageURL: u.ImageURL, Role: string(role)}
}

// knownUser reports whether the gateway knows the user: one with a socket
// here is known, and a user once known stays known.
func (h *Hub) knownUser(ctx context.Context, id string) (bool, error) {
	if h.hasSockets(id) {
		return true, nil
	}
	if _, ok := h.known.get(id, h.now()); ok {
		return true, nil
	}
	known, err := h.o.Store.KnownUser(ctx, id)
	if known {
		h.known.put(id, struct{}{}, h.now())
	}
	return known, err
}

func simple(m CallMember) UserSimple {
	return UserSimple{ID: m.UserID, FirstName: m.Name, Avatar: m.ImageURL}
}

func mode(c calls.Call) string {
	if len(c.Members) > 2 {
		return "conference"
	}
	return "videochat"
}

func containsUser(ms []calls.Member, id string) bool {
	return slices.ContainsFunc(ms, func(m calls.Member) bool { return m.UserID == id })
}
