package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/ws"
)

const (
	apiKey     = "test-api-key-0123456789"
	userSecret = "user-token-secret-0123456789abcdef"
	linkSecret = "link-secret-0123456789abcdef-0123456789"
)

type gwOptions struct {
	dsn         string // PostgreSQL DSN; empty: SQLite
	ringTimeout time.Duration
	tune        func(*ws.Options)
	relay       bool
	// roomPoll and timerEvery default to short test intervals (10 ms,
	// 20 ms); the scale benchmark uses the production defaults.
	roomPoll, timerEvery time.Duration
}

type gateway struct {
	url   string
	hub   *ws.Hub
	svc   *calls.Service
	store *store.SQL
}

func newGateway(t testing.TB, o gwOptions) *gateway {
	t.Helper()
	ctx := context.Background()
	var st *store.SQL
	var err error
	if o.dsn != "" {
		st, err = store.OpenPostgres(ctx, o.dsn)
	} else {
		st, err = store.OpenSQLite(ctx, t.TempDir()+"/callgate.db")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prov, err := jitsi.New(jitsi.Config{BaseURL: "https://meet.example.com", AppID: "callgate", AppSecret: "jitsi-app-secret-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	providers := map[string]calls.Provider{"jitsi": prov}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wake := calls.NewWake()
	workCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if o.relay {
		relay := store.NewWakeRelay(o.dsn, wake, log)
		wake.SetRelay(relay.Notify)
		wg.Add(1)
		go func() { defer wg.Done(); relay.Run(workCtx) }()
	}
	rt := o.ringTimeout
	if rt == 0 {
		rt = 2 * time.Minute
	}
	svc, err := calls.NewService(calls.ServiceConfig{Store: st, Providers: providers, DefaultProvider: "jitsi", Logger: log,
		Wake: wake, RingTimeout: rt, TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if o.roomPoll == 0 {
		o.roomPoll = 10 * time.Millisecond
	}
	if o.timerEvery == 0 {
		o.timerEvery = 20 * time.Millisecond
	}
	rooms := calls.NewRoomWorker(calls.RoomWorkerConfig{Store: st, Providers: providers, Wake: wake, Logger: log, Poll: o.roomPoll})
	wg.Add(2)
	go func() { defer wg.Done(); rooms.Run(workCtx, 1) }()
	go func() { defer wg.Done(); svc.RunTimers(workCtx, o.timerEvery) }()
	pages, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	links, err := joinlink.NewSigner(nil, []byte(linkSecret))
	if err != nil {
		t.Fatal(err)
	}
	wo := ws.Options{Service: svc, Store: st, Wake: wake, ProviderKinds: map[string]string{"jitsi": "jitsi"},
		Secret: []byte(linkSecret), Logger: log, Heartbeat: 5 * time.Second, Poll: 200 * time.Millisecond}
	if o.tune != nil {
		o.tune(&wo)
	}
	hub, err := ws.New(wo)
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Options{Logger: log, BodyLimit: 1 << 20, Ready: st})
	ts := httptest.NewUnstartedServer(srv.Echo)
	base := "http://" + ts.Listener.Addr().String()
	if _, err := api.Register(srv.Echo, api.Options{Service: svc, Keys: []api.Key{{Name: "test", Secret: apiKey}},
		UserTokenSecrets: [][]byte{[]byte(userSecret)}, PublicURL: base, Links: links, Pages: pages,
		ProviderKinds: map[string]string{"jitsi": "jitsi"}, Logger: log, REST: true, WebSocket: hub}); err != nil {
		t.Fatal(err)
	}
	ts.Start()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Close(cctx)
		ts.Close()
		stop()
		wg.Wait()
	})
	return &gateway{url: base, hub: hub, svc: svc, store: st}
}

func userToken(t testing.TB, user string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"user_id": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(userSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// frame is a decoded server frame.
type frame struct {
	Name  string         `json:"name"`
	Data  map[string]any `json:"data"`
	Error ws.ErrorBody   `json:"error"`
	Event ws.EventMeta   `json:"event"`
}

func (f frame) str(k string) string { s, _ := f.Data[k].(string); return s }

type client struct {
	t       testing.TB
	c       *websocket.Conn
	mu      sync.Mutex
	frames  []frame
	signal  chan struct{}
	closed  chan struct{}
	err     error
	next    atomic.Int64
	session frame
}

// dial connects user with a user token in the query (plus extra query).
func (g *gateway) dial(t testing.TB, user string, extra ...string) *client {
	t.Helper()
	q := url.Values{"token": {userToken(t, user)}, "name": {strings.ToUpper(user[:1]) + user[1:]}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	c, err := g.dialRaw(t, "/v1/ws?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	// The session frame comes once the socket is registered and present.
	c.session = c.event("session")
	return c
}

// ringOffline has caller ring callee while callee is known but offline
// everywhere (connected once, socket closed): the case that needs a push.
// It returns the ring's answer, checked to be a success.
func (g *gateway) ringOffline(t testing.TB, caller, callee string) frame {
	t.Helper()
	c := g.dial(t, caller)
	g.dial(t, callee).c.Close(websocket.StatusNormalClosure, "")
	g.waitOffline(t, callee)
	res := c.request(reqDirect, map[string]any{"targetUser": callee})
	okResponse(t, res)
	return res
}

func (g *gateway) dialRaw(t testing.TB, path string, h http.Header) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(g.url, "http") + path
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, signal: make(chan struct{}, 1), closed: make(chan struct{})}
	go cl.read()
	t.Cleanup(func() { c.CloseNow() })
	return cl, nil
}

func (c *client) read() {
	defer close(c.closed)
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("server sent non-JSON: %s", b)
			continue
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
	}
}

// send writes a request and returns its id.
func (c *client) send(name string, data any) string {
	id := fmt.Sprintf("r%d", c.next.Add(1))
	b, _ := json.Marshal(map[string]any{"name": name, "data": data, "event": map[string]any{"id": id, "date": time.Now().UnixMilli()}})
	c.raw(b)
	return id
}

func (c *client) raw(b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// request sends and waits for the response.
func (c *client) request(name string, data any) frame {
	c.t.Helper()
	id := c.send(name, data)
	return c.waitFor(func(f frame) bool { return f.Event.ID == id && (f.Name == name || f.Name == "pong") }, "response to "+name)
}

// waitFor returns (and removes) the first frame matching ok.
func (c *client) waitFor(ok func(frame) bool, what string) frame {
	c.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		for i, f := range c.frames {
			if ok(f) {
				c.frames = append(c.frames[:i:i], c.frames[i+1:]...)
				c.mu.Unlock()
				return f
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("waiting for %s: socket closed: %v", what, err)
		}
		select {
		case <-c.signal:
		case <-c.closed:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			c.t.Fatalf("no %s; frames held: %+v", what, c.frames)
		}
	}
}

func (c *client) event(name string) frame {
	c.t.Helper()
	return c.waitFor(func(f frame) bool { return f.Name == name }, name)
}

func (c *client) callEvent(state string) frame {
	c.t.Helper()
	return c.waitFor(func(f frame) bool { return f.Name == "call" && f.str("state") == state }, "call event "+state)
}

// none checks no frame matching ok arrives within d.
func (c *client) none(ok func(frame) bool, d time.Duration, what string) {
	c.t.Helper()
	time.Sleep(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.frames {
		if ok(f) {
			c.t.Fatalf("unexpected %s: %+v", what, f)
		}
	}
}

func okResponse(t testing.TB, f frame) {
	t.Helper()
	if f.Error.Status || f.Error.Code != 0 {
		t.Fatalf("%s failed: %+v", f.Name, f.Error)
	}
}

func errResponse(t testing.TB, f frame, code int) {
	t.Helper()
	if !f.Error.Status || f.Error.Code != code {
		t.Fatalf("%s: want error %d, got %+v (data %v)", f.Name, code, f.Error, f.Data)
	}
}
