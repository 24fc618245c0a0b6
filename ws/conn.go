package ws

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/callgate/callgate/store"
)

const (
	statusGoingAway = websocket.StatusGoingAway
	statusPolicy    = websocket.StatusPolicyViolation
	// maxInFlight bounds the requests one socket has running at once.
	maxInFlight = 4
	// maxPending bounds the frames held for a socket while it replays.
	maxPending = 1024
	writeWait  = 10 * time.Second
)

// frame is one encoded frame and the event seq it carries (0: none); a
// frame with ping set is a heartbeat ping rather than data.
type frame struct {
	seq  int64
	b    []byte
	ping bool
}

// conn is one socket.
type conn struct {
	h    *Hub
	ws   *websocket.Conn
	user string
	done chan struct{}
	once sync.Once
	slot int // which heartbeat tick pings it (modulo the slots)

	// queue holds frames waiting to be written; a writer goroutine runs
	// only while it is not empty, so an idle socket costs no goroutine
	// besides its reader.
	qmu     sync.Mutex
	queue   []frame
	writing bool

	mu      sync.Mutex
	ready   bool
	pending []frame
	lastSeq int64 // highest event seq replayed
}

// Profile is what a connecting client says about its user: shown to the
// people it rings.
type Profile struct {
	Name     string
	ImageURL string
}

// Serve upgrades the request to a WebSocket for userID (already
// authenticated) and runs it until it closes. lastEventID resumes after an
// event id a previous socket saw ("" for none).
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, userID string, p Profile, lastEventID string) error {
	var after int64 = -1
	if lastEventID != "" {
		n, err := strconv.ParseInt(lastEventID, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, `{"error":{"code":"invalid_request","message":"last_event_id must be a non-negative integer"}}`, http.StatusBadRequest)
			return nil
		}
		after = n
	}
	// The HTTP server's read and write timeouts must not end a socket.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	opts := &websocket.AcceptOptions{OriginPatterns: h.o.AllowedOrigins}
	if slices.Contains(h.o.AllowedOrigins, "*") {
		opts.InsecureSkipVerify = true
	}
	wsc, err := websocket.Accept(slimHijacker{w}, r, opts)
	if err != nil {
		// Accept has answered (403 for a foreign origin, 426 …).
		return nil
	}
	wsc.SetReadLimit(h.o.MaxMessage)
	c := &conn{h: h, ws: wsc, user: userID, done: make(chan struct{}), slot: rand.IntN(1 << 20)}
	h.conns.Add(1)
	if !h.register(c) {
		h.conns.Done()
		wsc.Close(statusGoingAway, "server shutting down")
		return nil
	}
	ctx := h.ctx
	cleanup := func() {
		defer h.conns.Done()
		if h.unregister(c) {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := h.o.Store.DropPresence(dctx, h.o.Replica, userID); err != nil {
				h.log.Warn("ws: dropping presence failed", "err", err)
			}
			cancel()
		}
	}
	if err := h.o.Store.TouchUser(ctx, store.WSUser{ID: userID, Name: p.Name, ImageURL: p.ImageURL}, h.now()); err != nil {
		h.log.Warn("ws: recording the user failed", "err", err)
	}
	// A new name or picture shows at once on this replica.
	h.profiles.drop(userID)
	if err := h.o.Store.SetPresence(ctx, h.o.Replica, []string{userID}, h.presenceUntil()); err != nil {
		h.log.Warn("ws: recording presence failed", "err", err)
	}

	seq, err := h.o.Store.LastEventSeq(ctx)
	if err != nil {
		h.log.Warn("ws: reading the log position failed", "err", err)
	}
	c.sendNow(Outbound{Name: EvSession, Data: map[string]any{
		"userId": userID, "lastEventId": seqID(seq), "heartbeatMs": h.o.Heartbeat.Milliseconds(), "replica": h.o.Replica,
	}, Event: EventMeta{ID: seqID(seq), Date: millis(h.now())}})
	if after >= 0 {
		last, err := h.replay(ctx, c, after)
		if err != nil {
			h.log.Warn("ws: replay failed", "err", err)
		}
		c.ready2(last)
	} else {
		if err := h.rings(ctx, c); err != nil {
			h.log.Warn("ws: reading rings failed", "err", err)
		}
		c.ready2(seq)
	}
	// The reader runs on its own goroutine and the HTTP handler returns:
	// the connection is hijacked, and a fresh goroutine's stack is smaller
	// than one grown through the middleware chain.
	go func() {
		defer cleanup()
		c.readLoop(ctx)
	}()
	return nil
}

// ready2 ends the replay: frames the hub held meanwhile go out, except
// those the replay already sent.
func (c *conn) ready2(replayed int64) {
	c.mu.Lock()
	pending := c.pending
	c.pending, c.ready, c.lastSeq = nil, true, replayed
	c.mu.Unlock()
	for _, f := range pending {
		if f.seq != 0 && f.seq <= replayed {
			continue
		}
		c.enqueue(f)
	}
}

// deliver queues a frame from the hub; during the replay it is held.
func (c *conn) deliver(f frame) {
	c.mu.Lock()
	if !c.ready {
		if len(c.pending) >= maxPending {
			c.mu.Unlock()
			c.slow()
			return
		}
		c.pending = append(c.pending, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.enqueue(f)
}

// sendNow queues a frame that bypasses the replay hold (responses, the
// replay itself).
func (c *conn) sendNow(o Outbound) {
	b, err := json.Marshal(o)
	if err != nil {
		c.h.log.Error("ws: encoding a frame failed", "err", err)
		return
	}
	c.enqueue(frame{b: b})
}

func (c *conn) enqueue(f frame) {
	select {
	case <-c.done:
		return
	default:
	}
	c.qmu.Lock()
	if len(c.queue) >= c.h.o.SendQueue {
		c.qmu.Unlock()
		c.slow()
		return
	}
	c.queue = append(c.queue, f)
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if !f.ping {
		c.h.Delivered.Add(1)
	}
	if start {
		go c.drain()
	}
}

// slow drops a client whose queue is full: it never blocks the hub.
func (c *conn) slow() {
	c.h.Dropped.Add(1)
	c.h.log.Info("ws: slow client dropped", "user_id", c.user)
	c.close(statusPolicy, "too slow: send queue full")
}

func (c *conn) close(code websocket.StatusCode, reason string) {
	c.once.Do(func() {
		close(c.done)
		if code == statusPolicy {
			// A peer that is stuck (no pong, a full queue) cannot take a
			// close frame either: cut it off.
			go c.ws.CloseNow()
			return
		}
		// A polite close waits for the peer's close frame; a peer that is
		// gone is cut off after a grace period.
		grace := 3 * time.Second
		go func() {
			closed := make(chan struct{})
			go func() { c.ws.Close(code, reason); close(closed) }()
			select {
			case <-closed:
			case <-time.After(grace):
				c.ws.CloseNow()
			}
		}()
	})
}

// ping queues a heartbeat ping, unless one is already waiting.
func (c *conn) ping() {
	c.qmu.Lock()
	for _, f := range c.queue {
		if f.ping {
			c.qmu.Unlock()
			return
		}
	}
	c.qmu.Unlock()
	c.enqueue(frame{ping: true})
}

// drain writes queued frames until the queue is empty, then ends.
func (c *conn) drain() {
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.queue = nil
			c.qmu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		select {
		case <-c.done:
			return
		default:
		}
		if f.ping {
			ctx, cancel := context.WithTimeout(c.h.ctx, c.h.o.Heartbeat)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.close(statusPolicy, "no pong within the heartbeat")
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(c.h.ctx, writeWait)
		err := c.ws.Write(ctx, websocket.MessageText, f.b)
		cancel()
		if err != nil {
			c.close(statusPolicy, "write failed")
			return
		}
	}
}

func (c *conn) readLoop(ctx context.Context) {
	sem := make(chan struct{}, maxInFlight)
	var running sync.WaitGroup
	defer running.Wait()
	defer c.close(websocket.StatusNormalClosure, "")
	for {
		typ, b, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.sendNow(Outbound{Name: EvError, Data: map[string]any{}, Error: ErrorBody{Status: true, Code: CodeBadRequest, Message: "binary frames are not supported; send JSON text frames"}})
			continue
		}
		var in Inbound
		dec := json.NewDecoder(bytesReader(b))
		if err := dec.Decode(&in); err != nil || in.Name == "" {
			msg := "malformed frame: want {\"name\": …, \"data\": {…}, \"event\": {\"id\": …, \"date\": …}}"
			c.sendNow(Outbound{Name: EvError, Data: map[string]any{}, Error: ErrorBody{Status: true, Code: CodeBadRequest, Message: msg}, Event: echoed(in.Event, c.h.now())})
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.sendNow(Outbound{Name: in.Name, Data: map[string]any{}, Error: ErrorBody{Status: true, Code: 429, Message: "too many requests in flight on this socket"}, Event: echoed(in.Event, c.h.now())})
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-sem }()
			data, err := c.h.handle(ctx, c, in)
			out := Outbound{Name: in.Name, Data: data, Event: echoed(in.Event, c.h.now())}
			if in.Name == ReqPing {
				out.Name = EvPong
			}
			if err != nil {
				out.Error = errorBody(err)
				if out.Error.Code == CodeInternal {
					c.h.log.Error("ws: request failed", "name", in.Name, "user_id", c.user, "err", err)
				}
				if out.Data == nil {
					out.Data = map[string]any{}
				}
			}
			c.sendNow(out)
		}()
	}
}

func echoed(m *EventMeta, now time.Time) EventMeta {
	if m == nil {
		return EventMeta{Date: millis(now)}
	}
	return EventMeta{ID: m.ID, Date: millis(now)}
}

// sendTo queues the frame for each socket.
func (h *Hub) sendTo(socks []*conn, seq int64, o Outbound) {
	b, err := json.Marshal(o)
	if err != nil {
		h.log.Error("ws: encoding a frame failed", "err", err)
		return
	}
	for _, c := range socks {
		c.deliver(frame{seq: seq, b: b})
	}
}
