package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callgate/callgate/adapters/voiplink"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store/pgtest"
	"github.com/callgate/callgate/ws"
)

const (
	reqDirect  = "videochat:requestDirectVideochat"
	reqInvite  = "videochat:invite"
	reqAccept  = "videochat:acceptVideochatRequest"
	reqDecline = "videochat:declineVideochatRequest"
	reqMerge   = "videochat:mergeToVideochat"
)

// ring has a ring A → B answered by B's first device: every device of
// both hears it, the second device of B is told it was accepted elsewhere.
func TestDirectCallOnTwoDevices(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada := g.dial(t, "ada", "image_url", "https://img.example/ada.png")
	ada2 := g.dial(t, "ada")
	bob1, bob2 := g.dial(t, "bob"), g.dial(t, "bob")

	res := ada.request(reqDirect, map[string]any{"targetUser": "bob"})
	okResponse(t, res)
	id := res.str("videochatRequestId")
	if id == "" || res.Event.ID == "" {
		t.Fatalf("response %+v", res)
	}
	for _, b := range []*client{bob1, bob2} {
		rq := b.event("videochat:videochatRequested")
		u := rq.Data["user"].(map[string]any)
		if rq.str("videochatRequestId") != id || u["id"] != "ada" || u["firstName"] != "Ada" || u["avatar"] != "https://img.example/ada.png" || rq.Data["counter"].(float64) != 2 || rq.Data["busy"] != false {
			t.Fatalf("videochatRequested: %+v", rq)
		}
		ce := b.callEvent("ringing")
		caller := ce.Data["caller"].(map[string]any)
		if ce.str("callId") != id || caller["userId"] != "ada" || caller["name"] != "Ada" || caller["role"] != "owner" || len(ce.Data["members"].([]any)) != 2 || ce.Data["session"].(map[string]any)["sessionState"] != "INVITED" {
			t.Fatalf("call ringing: %+v", ce)
		}
	}
	ada2.callEvent("ringing")

	acc := bob1.request(reqAccept, map[string]any{"videochatRequestId": id})
	okResponse(t, acc)
	perm := acc.Data["permissions"].(map[string]any)
	if acc.str("videochatId") != id || acc.str("videochatEngine") != "jitsi" || acc.str("videochatMode") != "videochat" || acc.str("token") == "" ||
		acc.str("room") == "" || acc.str("identity") != "bob" || acc.str("sharedSecret") == "" || acc.str("videochatUrl") == "" ||
		perm["isParticipant"] != true || perm["isOwner"] != false || acc.Data["user"].(map[string]any)["id"] != "bob" {
		t.Fatalf("accept response: %+v", acc.Data)
	}
	for _, b := range []*client{bob1, bob2} {
		if f := b.event("videochat:videochatAccepted"); f.str("videochatRequestId") != id {
			t.Fatalf("videochatAccepted: %+v", f)
		}
		b.callEvent("accepted")
	}
	da := ada.event("videochat:directVideochatRequestAccepted")
	if da.str("videochatId") != id || da.str("identity") != "ada" || da.str("token") == "" || da.str("sharedSecret") != acc.str("sharedSecret") ||
		da.Data["permissions"].(map[string]any)["isOwner"] != true {
		t.Fatalf("directVideochatRequestAccepted: %+v", da.Data)
	}
	ada.callEvent("accepted")
	ada2.none(func(f frame) bool { return f.Name == "videochat:directVideochatRequestAccepted" && f.Error.Status }, 50*time.Millisecond, "failed credential")

	// The second device accepting: already accepted.
	again := bob2.request(reqAccept, map[string]any{"videochatRequestId": id})
	errResponse(t, again, ws.CodeConflict)
	if !strings.Contains(again.Error.Message, "already accepted") {
		t.Fatalf("second accept: %+v", again.Error)
	}
}

func TestErrorCodes(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada := g.dial(t, "ada")
	// carol was once connected: known, but offline now.
	carol := g.dial(t, "carol")
	carol.c.Close(websocket.StatusNormalClosure, "")
	g.waitOffline(t, "carol")

	errResponse(t, ada.request(reqDirect, map[string]any{"targetUser": "nobody"}), ws.CodeUserNotFound)
	errResponse(t, ada.request(reqDirect, map[string]any{"targetUser": "carol"}), ws.CodeUserUnavailable)
	errResponse(t, ada.request(reqDirect, map[string]any{"targetUser": "ada"}), ws.CodeBadRequest)
	errResponse(t, ada.request(reqDirect, map[string]any{}), ws.CodeBadRequest)
	errResponse(t, ada.request(reqDirect, map[string]any{"targetUser": "bob", "colour": "red"}), ws.CodeBadRequest)
	errResponse(t, ada.request(reqInvite, map[string]any{"targetUser": "bob"}), ws.CodeBadRequest)
	errResponse(t, ada.request(reqAccept, map[string]any{"videochatRequestId": "no-such-call"}), ws.CodeNotFound)
	errResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": "no-such-call"}), ws.CodeNotFound)
	errResponse(t, ada.request(reqMerge, map[string]any{"videochatRequestId": "a"}), ws.CodeBadRequest)
	errResponse(t, ada.request("videochat:fly", map[string]any{}), ws.CodeBadRequest)

	// Malformed frames are answered, and the socket lives on.
	ada.raw([]byte(`{"name": "videochat:invite", "data": `))
	if f := ada.event("error"); f.Error.Code != ws.CodeBadRequest || !f.Error.Status {
		t.Fatalf("malformed frame answer: %+v", f)
	}
	ada.raw([]byte(`[1,2,3]`))
	ada.event("error")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ada.c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if f := ada.event("error"); !strings.Contains(f.Error.Message, "binary") {
		t.Fatalf("binary frame answer: %+v", f)
	}
	okResponse(t, ada.request("ping", nil))

	// A member who is not the ringing callee cannot answer another's call.
	bob := g.dial(t, "bob")
	id := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob.event("videochat:videochatRequested")
	dave := g.dial(t, "dave")
	errResponse(t, dave.request(reqAccept, map[string]any{"videochatRequestId": id}), ws.CodeForbidden)
	errResponse(t, ada.request(reqAccept, map[string]any{"videochatRequestId": id}), ws.CodeConflict)
	// Inviting someone unknown into a live call: 1021.
	errResponse(t, ada.request(reqInvite, map[string]any{"targetUser": "nobody", "videochatId": id}), ws.CodeUserNotFound)
}

// Declines: the callee's decline reaches the caller and the callee's other
// devices; the caller's cancel stops the ring everywhere.
func TestDeclineAndCancel(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada, bob1, bob2 := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "bob")
	id := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob2.event("videochat:videochatRequested")
	okResponse(t, bob1.request(reqDecline, map[string]any{"videochatRequestId": id}))
	for _, c := range []*client{ada, bob1, bob2} {
		if f := c.event("videochat:videochatDeclined"); f.str("videochatRequestId") != id || f.str("userId") != "bob" {
			t.Fatalf("declined: %+v", f)
		}
		c.callEvent("rejected")
	}
	errResponse(t, bob2.request(reqDecline, map[string]any{"videochatRequestId": id}), ws.CodeConflict)

	id2 := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob1.event("videochat:videochatRequested")
	okResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": id2}))
	for _, c := range []*client{bob1, bob2} {
		c.event("videochat:videochatDeclined")
		if f := c.callEvent("ended"); f.str("reason") != "cancelled" {
			t.Fatalf("cancel: %+v", f)
		}
	}
}

// An unanswered ring: missed for the caller, cancelled on the callee's devices.
func TestRingTimeout(t *testing.T) {
	g := newGateway(t, gwOptions{ringTimeout: 300 * time.Millisecond})
	ada, bob := g.dial(t, "ada"), g.dial(t, "bob")
	id := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob.event("videochat:videochatRequested")
	if f := ada.callEvent("missed"); f.str("reason") != "ring_timeout" || f.str("callId") != id || f.Data["session"].(map[string]any)["sessionState"] != "CLOSED" {
		t.Fatalf("caller: %+v", f)
	}
	if f := bob.callEvent("ended"); f.str("reason") != "cancelled" {
		t.Fatalf("callee: %+v", f)
	}
	errResponse(t, bob.request(reqAccept, map[string]any{"videochatRequestId": id}), ws.CodeGone)
}

// Merge: bob is in a call with ada when carol rings him; the ring says he
// is busy, and he merges carol into his call.
func TestMerge(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada, bob, carol := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "carol")
	v := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	okResponse(t, bob.request(reqAccept, map[string]any{"videochatRequestId": v}))

	// bob is busy: without merge carol gets 10011; with it bob is rung.
	errResponse(t, carol.request(reqDirect, map[string]any{"targetUser": "bob"}), ws.CodeUserUnavailable)
	r := carol.request(reqDirect, map[string]any{"targetUser": "bob", "merge": true}).str("videochatRequestId")
	rq := bob.waitFor(func(f frame) bool {
		return f.Name == "videochat:videochatRequested" && f.str("videochatRequestId") == r
	}, "carol's ring")
	if rq.Data["busy"] != true {
		t.Fatalf("ring of a busy user should say so: %+v", rq.Data)
	}
	errResponse(t, carol.request(reqMerge, map[string]any{"videochatId": v, "videochatRequestId": r}), ws.CodeForbidden)
	okResponse(t, bob.request(reqMerge, map[string]any{"videochatId": v, "videochatRequestId": r}))
	j := carol.event("videochat:directVideochatRequestAccepted")
	if j.str("videochatId") != v || j.str("identity") != "carol" || j.str("token") == "" {
		t.Fatalf("merged caller's credential: %+v", j.Data)
	}
	if f := carol.callEvent("ended"); f.str("reason") != "merged" || f.str("callId") != r {
		t.Fatalf("request call: %+v", f)
	}
	call, err := g.svc.Get(context.Background(), v)
	if err != nil || len(call.Members) != 3 {
		t.Fatalf("merged call: %+v %v", call.Members, err)
	}
	if f := ada.waitFor(func(f frame) bool { return f.Name == "call" && f.str("reason") == "merged" }, "merge seen by ada"); f.str("userId") != "carol" {
		t.Fatalf("ada: %+v", f)
	}
}

// Group rings ring every member; invite rings one more into a call under
// way, who accepts into it.
func TestGroupRingAndInvite(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada, bob, carol, dave := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "carol"), g.dial(t, "dave")
	id := ada.request(reqDirect, map[string]any{"targetUsers": []string{"bob", "carol"}}).str("videochatRequestId")
	for _, c := range []*client{bob, carol} {
		if f := c.event("videochat:videochatRequested"); f.Data["counter"].(float64) != 3 {
			t.Fatalf("group ring: %+v", f)
		}
	}
	acc := bob.request(reqAccept, map[string]any{"videochatRequestId": id})
	okResponse(t, acc)
	if acc.str("videochatMode") != "conference" {
		t.Fatalf("mode: %+v", acc.Data)
	}
	okResponse(t, carol.request(reqAccept, map[string]any{"videochatRequestId": id}))
	carol.event("videochat:videochatAccepted")

	inv := bob.request(reqInvite, map[string]any{"targetUser": "dave", "videochatId": id})
	okResponse(t, inv)
	rq := dave.event("videochat:videochatRequested")
	if rq.str("videochatRequestId") != id || rq.Data["user"].(map[string]any)["id"] != "bob" {
		t.Fatalf("invite: %+v", rq.Data)
	}
	ada.none(func(f frame) bool { return f.Name == "videochat:videochatRequested" }, 50*time.Millisecond, "ring of a non-invitee")
	okResponse(t, dave.request(reqAccept, map[string]any{"videochatRequestId": id}))
	errResponse(t, dave.request(reqAccept, map[string]any{"videochatRequestId": id}), ws.CodeConflict)
}

// A device that reconnects with the last event id it saw gets what it
// missed, in order.
func TestReconnectResume(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.RingFresh = time.Minute }})
	ada, phone, laptop := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "bob")
	id1 := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	last := phone.callEvent("ringing").Event.ID
	phone.c.Close(websocket.StatusNormalClosure, "tunnel")

	okResponse(t, laptop.request(reqAccept, map[string]any{"videochatRequestId": id1}))
	// bob is in the call with ada now: a second ring needs merge (call waiting).
	id2 := ada.request(reqDirect, map[string]any{"targetUser": "bob", "merge": true}).str("videochatRequestId")
	laptop.waitFor(func(f frame) bool {
		return f.Name == "videochat:videochatRequested" && f.str("videochatRequestId") == id2
	}, "second ring")

	back := g.dial(t, "bob", "last_event_id", last)
	if f := back.event("videochat:videochatAccepted"); f.str("videochatRequestId") != id1 {
		t.Fatalf("replayed accept: %+v", f)
	}
	back.callEvent("accepted")
	if f := back.event("videochat:videochatRequested"); f.str("videochatRequestId") != id2 {
		t.Fatalf("replayed ring: %+v", f)
	}
	// Nothing from before the id.
	back.none(func(f frame) bool { return f.Name == "call" && f.str("state") == "ringing" && f.str("callId") == id1 }, 50*time.Millisecond, "event before last_event_id")
	// And it is live afterwards.
	okResponse(t, ada.request(reqDecline, map[string]any{"videochatRequestId": id2}))
	back.event("videochat:videochatDeclined")

	bad, err := g.dialRaw(t, "/v1/ws?last_event_id=x&token="+userToken(t, "bob"), nil)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad last_event_id: %v %v", bad, err)
	}
}

// A ring already a few seconds old when a device connects is a missed-call
// notice, not a ring.
func TestLateDeviceGetsMissedNotice(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.RingFresh = time.Second }})
	ada, bob := g.dial(t, "ada"), g.dial(t, "bob")
	id := ada.request(reqDirect, map[string]any{"targetUser": "bob"}).str("videochatRequestId")
	bob.event("videochat:videochatRequested")
	fresh := g.dial(t, "bob")
	fresh.event("videochat:videochatRequested") // still fresh
	time.Sleep(1100 * time.Millisecond)
	late := g.dial(t, "bob")
	f := late.callEvent("missed")
	if f.Data["notice"] != true || f.str("callId") != id {
		t.Fatalf("notice: %+v", f)
	}
	late.none(func(f frame) bool { return f.Name == "videochat:videochatRequested" }, 50*time.Millisecond, "stale ring")
}

// Offline everywhere with a push hook: a signed push, and the ring
// proceeds; the user's device then connects and still sees the ring.
func TestPushHookAndWebhooks(t *testing.T) {
	type got struct {
		path string
		body []byte
		err  error
	}
	var mu sync.Mutex
	var received []got
	const secret = "push-secret-0123456789"
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		err := voiplink.Verify(r.Header, b, time.Now(), 5*time.Minute, []byte(secret))
		mu.Lock()
		received = append(received, got{r.URL.Path, b, err})
		mu.Unlock()
	}))
	defer hook.Close()
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) {
		o.PushURL, o.PushSecret = hook.URL+"/push", secret
		o.Webhooks = []ws.Webhook{{URL: hook.URL + "/events", Secret: secret}}
		o.RingFresh = time.Minute
	}})
	res := g.ringOffline(t, "ada", "bob")
	id := res.str("videochatRequestId")
	var push map[string]any
	states := map[string]bool{}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range received {
			if r.err != nil {
				t.Fatalf("unsigned request to %s: %v", r.path, r.err)
			}
			var m map[string]any
			json.Unmarshal(r.body, &m)
			if r.path == "/push" {
				push = m
			} else if d, ok := m["data"].(map[string]any); ok && d["callId"] == id {
				states[d["state"].(string)] = true
			}
		}
		return push != nil && states["ringing"]
	})
	if push["callId"] != id || push["userId"] != "bob" || push["caller"].(map[string]any)["userId"] != "ada" || push["expiresAt"] == "" {
		t.Fatalf("push: %v", push)
	}
	woken := g.dial(t, "bob")
	woken.event("videochat:videochatRequested")
}

// A client that stops reading is dropped when its queue fills; others
// keep getting their events.
func TestSlowClientDropped(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.SendQueue = 8 }})
	ada, bob := g.dial(t, "ada"), g.dial(t, "bob")
	slow, err := g.dialRaw(t, "/v1/ws?token="+userToken(t, "sloth"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = slow
	// A raw connection that never reads: flood it with pongs of big ids.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/v1/ws?token="+userToken(t, "sloth"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	big := strings.Repeat("x", 60000)
	msg, _ := json.Marshal(map[string]any{"name": "ping", "event": map[string]any{"id": big}})
	go func() {
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			if c.Write(ctx, websocket.MessageText, msg) != nil {
				return
			}
		}
	}()
	waitFor(t, func() bool { return g.hub.Dropped.Load() > 0 })
	start := time.Now()
	ada.request(reqDirect, map[string]any{"targetUser": "bob"})
	bob.event("videochat:videochatRequested")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("others were slowed down: %v", d)
	}
}

func TestHandshakeChecks(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) {
		o.AllowedOrigins = []string{"app.example.com"}
		o.MaxMessage = 2048
	}})
	tok := userToken(t, "ada")
	if _, err := g.dialRaw(t, "/v1/ws", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no credential: %v", err)
	}
	if _, err := g.dialRaw(t, "/v1/ws?token=nope", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad credential: %v", err)
	}
	if _, err := g.dialRaw(t, "/v1/ws", http.Header{"Authorization": {"Bearer " + apiKey}}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("API key without user_id: %v", err)
	}
	if _, err := g.dialRaw(t, "/v1/ws?token="+tok+"&user_id=bob", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("user token acting for another: %v", err)
	}
	if _, err := g.dialRaw(t, "/v1/ws?token="+tok, http.Header{"Origin": {"https://evil.example"}}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: %v", err)
	}
	if _, err := g.dialRaw(t, "/v1/ws?token="+tok, http.Header{"Origin": {"https://app.example.com"}}); err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	srv, err := g.dialRaw(t, "/v1/ws?user_id=server-user", http.Header{"Authorization": {"Bearer " + apiKey}})
	if err != nil {
		t.Fatalf("API key acting as a user: %v", err)
	}
	if f := srv.event("session"); f.str("userId") != "server-user" || f.str("lastEventId") != "" {
		t.Fatalf("session: %+v", f)
	}
	big := g.dial(t, "ada")
	big.raw([]byte(`{"name":"ping","data":{"x":"` + strings.Repeat("y", 4096) + `"}}`))
	<-big.closed
	if websocket.CloseStatus(big.err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: %v", big.err)
	}
}

func TestHeartbeatAndShutdown(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.Heartbeat = 100 * time.Millisecond }})
	// A socket nobody reads answers no ping: it is closed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mute, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/v1/ws?token="+userToken(t, "mute"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.CloseNow()
	live := g.dial(t, "ada")
	waitFor(t, func() bool { return g.hub.Sockets() == 2 })
	waitFor(t, func() bool { return g.hub.Sockets() == 1 })
	// The reading one stays, and is told goodbye on shutdown.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	g.hub.Close(sctx)
	<-live.closed
	if websocket.CloseStatus(live.err) != websocket.StatusGoingAway {
		t.Fatalf("shutdown close: %v", live.err)
	}
	if _, err := g.dialRaw(t, "/v1/ws?token="+userToken(t, "ada"), nil); err == nil {
		c, _ := g.dialRaw(t, "/v1/ws?token="+userToken(t, "ada"), nil)
		if c != nil {
			<-c.closed
		}
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = errors.New

func (g *gateway) waitOffline(t testing.TB, user string) {
	t.Helper()
	waitFor(t, func() bool {
		on, err := g.store.Online(context.Background(), user, time.Now())
		return err == nil && !on
	})
}

// Two replicas on one PostgreSQL schema: ada's socket is on one, bob's on
// the other. The ring, the answer and the credential cross replicas
// through the event log and LISTEN/NOTIFY; presence on the other replica
// counts as reachable.
func TestTwoReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	r1 := newGateway(t, gwOptions{dsn: dsn, relay: true, tune: func(o *ws.Options) { o.Poll = time.Minute }})
	r2 := newGateway(t, gwOptions{dsn: dsn, relay: true, tune: func(o *ws.Options) { o.Poll = time.Minute }})
	time.Sleep(300 * time.Millisecond) // the relays LISTEN
	ada := r1.dial(t, "ada")
	bob1, bob2 := r2.dial(t, "bob"), r1.dial(t, "bob")
	bob2.c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return r1.hub.Sockets() == 1 })

	start := time.Now()
	res := ada.request(reqDirect, map[string]any{"targetUser": "bob"})
	okResponse(t, res)
	id := res.str("videochatRequestId")
	if f := bob1.event("videochat:videochatRequested"); f.str("videochatRequestId") != id {
		t.Fatalf("ring across replicas: %+v", f)
	}
	t.Logf("ring crossed replicas in %v (polling disabled: LISTEN/NOTIFY carried it)", time.Since(start))
	acc := bob1.request(reqAccept, map[string]any{"videochatRequestId": id})
	okResponse(t, acc)
	da := ada.event("videochat:directVideochatRequestAccepted")
	if da.str("sharedSecret") != acc.str("sharedSecret") || da.str("videochatId") != id {
		t.Fatalf("credential across replicas: %+v", da.Data)
	}
	bob1.event("videochat:videochatAccepted")

	// bob leaves everywhere: ringing him now is 10011 from either replica.
	bob1.c.Close(websocket.StatusNormalClosure, "")
	r2.waitOffline(t, "bob")
	errResponse(t, ada.request(reqDirect, map[string]any{"targetUser": "bob"}), ws.CodeUserUnavailable)
}

// In a group ring one member's decline is theirs: their devices stop
// ringing (videochatDeclined, and a "call" event rejected for them that
// everyone sees), the others keep ringing, and the caller is told the
// request was declined only when every member declined.
func TestGroupRingDeclineIsPerMember(t *testing.T) {
	g := newGateway(t, gwOptions{tune: func(o *ws.Options) { o.RingFresh = time.Minute }})
	ada, bob1, bob2, carol := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "bob"), g.dial(t, "carol")
	id := ada.request(reqDirect, map[string]any{"targetUsers": []string{"bob", "carol"}}).str("videochatRequestId")
	for _, c := range []*client{bob1, bob2, carol} {
		c.event("videochat:videochatRequested")
	}
	okResponse(t, bob1.request(reqDecline, map[string]any{"videochatRequestId": id}))
	for _, c := range []*client{bob1, bob2} {
		if f := c.event("videochat:videochatDeclined"); f.str("userId") != "bob" {
			t.Fatalf("bob's devices: %+v", f)
		}
	}
	for _, c := range []*client{ada, bob1, bob2, carol} {
		if f := c.callEvent("rejected"); f.str("userId") != "bob" || f.str("callId") != id {
			t.Fatalf("rejected for bob: %+v", f)
		}
	}
	ada.none(func(f frame) bool { return f.Name == "videochat:videochatDeclined" }, 50*time.Millisecond, "declined before everyone declined")
	if c, err := g.svc.Get(context.Background(), id); err != nil || c.State != calls.StateRinging {
		t.Fatalf("the group ring after one decline: %s %v", c.State, err)
	}
	// A device bob opens now is not rung again; carol's is.
	g.dial(t, "bob").none(func(f frame) bool { return f.Name == "videochat:videochatRequested" }, 100*time.Millisecond, "ring of a member who declined")
	g.dial(t, "carol").event("videochat:videochatRequested")

	okResponse(t, carol.request(reqDecline, map[string]any{"videochatRequestId": id}))
	if f := ada.event("videochat:videochatDeclined"); f.str("videochatRequestId") != id {
		t.Fatalf("caller: %+v", f)
	}
	if f := ada.callEvent("rejected"); f.str("userId") != "carol" {
		t.Fatalf("caller: %+v", f)
	}
	if c, _ := g.svc.Get(context.Background(), id); c.State != calls.StateRejected {
		t.Fatalf("after every member declined: %s", c.State)
	}
}

// Two devices of one user accepting the same ring at the same instant:
// one gets the credential, the other "already accepted".
func TestTwoDevicesAcceptAtOnce(t *testing.T) {
	g := newGateway(t, gwOptions{})
	ada, bob1, bob2 := g.dial(t, "ada"), g.dial(t, "bob"), g.dial(t, "bob")
	for i := range 10 {
		// The calls accepted before stay live: bob is busy, rung with merge.
		id := ada.request(reqDirect, map[string]any{"targetUser": "bob", "merge": true}).str("videochatRequestId")
		bob1.waitFor(func(f frame) bool {
			return f.Name == "videochat:videochatRequested" && f.str("videochatRequestId") == id
		}, "ring")
		bob2.waitFor(func(f frame) bool {
			return f.Name == "videochat:videochatRequested" && f.str("videochatRequestId") == id
		}, "ring")
		id1 := bob1.send(reqAccept, map[string]any{"videochatRequestId": id})
		id2 := bob2.send(reqAccept, map[string]any{"videochatRequestId": id})
		r1 := bob1.waitFor(func(f frame) bool { return f.Name == reqAccept && f.Event.ID == id1 }, "accept response")
		r2 := bob2.waitFor(func(f frame) bool { return f.Name == reqAccept && f.Event.ID == id2 }, "accept response")
		if r1.Error.Status == r2.Error.Status {
			t.Fatalf("trial %d: both devices got %+v / %+v", i, r1.Error, r2.Error)
		}
		lost := r1
		if !r1.Error.Status {
			lost = r2
		}
		if lost.Error.Code != ws.CodeConflict || !strings.Contains(lost.Error.Message, "already accepted") {
			t.Fatalf("trial %d: losing device got %+v", i, lost.Error)
		}
	}
}
