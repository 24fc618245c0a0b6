package ws_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/voiplink"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/store/pgtest"
	"github.com/callgate/callgate/ws"
)

// receiver is an app's push endpoint and event webhook: it answers with
// status (500 while failing) and notes every request.
type receiver struct {
	srv     *httptest.Server
	secret  string
	status  atomic.Int32
	header  func() http.Header // extra response headers, made per request
	mu      sync.Mutex
	gotReqs []received
}

type received struct {
	path, id string
	body     string
	status   int
	at       time.Time
	sigErr   error
}

func newReceiver(t *testing.T, secret string, status int) *receiver {
	r := &receiver{secret: secret, header: func() http.Header { return nil }}
	r.status.Store(int32(status))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		st := int(r.status.Load())
		r.mu.Lock()
		r.gotReqs = append(r.gotReqs, received{path: req.URL.Path, id: req.Header.Get(voiplink.HeaderDelivery), body: string(b), status: st, at: time.Now(),
			sigErr: voiplink.Verify(req.Header, b, time.Now(), 5*time.Minute, []byte(secret))})
		for k, v := range r.header() {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) reqs() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.gotReqs...)
}

// byID groups the requests by their delivery id.
func (r *receiver) byID() map[string][]received {
	out := map[string][]received{}
	for _, q := range r.reqs() {
		out[q.id] = append(out[q.id], q)
	}
	return out
}

// A push request and the call event webhooks whose receiver fails (500)
// survive the gateway's hub stopping: a new hub on the same store sends
// them once the receiver is back. Each arrives answered 2xx exactly once,
// signed, with the same delivery id and body on every attempt.
func TestDeliveriesSurviveARestart(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var dsn string
			if engine == "postgres" {
				dsn = pgtest.DSN(t)
			}
			const secret = "hook-secret-0123456789"
			rcv := newReceiver(t, secret, http.StatusInternalServerError)
			hooks := func(o *ws.Options) {
				o.PushURL, o.PushSecret = rcv.srv.URL+"/push", secret
				o.Webhooks = []ws.Webhook{{URL: rcv.srv.URL + "/events", Secret: secret}}
				o.HookBackoff, o.HookMaxBackoff, o.HookAttempts, o.HookLease = 20*time.Millisecond, 100*time.Millisecond, 1000, 2*time.Second
				o.Poll = 50 * time.Millisecond
			}
			g := newGateway(t, gwOptions{dsn: dsn, tune: hooks})
			res := g.ringOffline(t, "ada", "bob")
			pushID := "push-" + res.str("videochatRequestId") + "-bob"

			// Several failed attempts of the push and of the events.
			waitFor(t, func() bool {
				ids := rcv.byID()
				events := 0
				for id, rs := range ids {
					if id != pushID && len(rs) >= 2 {
						events++
					}
				}
				return len(ids[pushID]) >= 3 && events >= 2
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			g.hub.Close(ctx)
			stopped := len(rcv.reqs())
			time.Sleep(200 * time.Millisecond)
			if n := len(rcv.reqs()); n != stopped {
				t.Fatalf("the stopped hub kept sending: %d requests, then %d", stopped, n)
			}

			// The receiver is back; a new hub on the same store resumes.
			rcv.status.Store(http.StatusOK)
			o := ws.Options{Service: g.svc, Store: g.store, Wake: g.svc.Wake(), Replica: "second",
				Secret: []byte(linkSecret), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			hooks(&o)
			hub2, err := ws.New(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := hub2.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer hub2.Close(ctx)
			waitFor(t, func() bool {
				c, err := g.store.CountWSDeliveries(ctx)
				return err == nil && c.Pending+c.Retrying+c.Dead == 0
			})
			time.Sleep(200 * time.Millisecond) // nothing more comes

			ids := rcv.byID()
			if len(ids[pushID]) == 0 {
				t.Fatalf("no push request %s; got %v", pushID, ids)
			}
			for id, rs := range ids {
				ok := 0
				for _, r := range rs {
					if r.sigErr != nil {
						t.Errorf("%s: bad signature: %v", id, r.sigErr)
					}
					if r.body != rs[0].body || r.path != rs[0].path {
						t.Errorf("%s: attempts differ: %q vs %q", id, r.body, rs[0].body)
					}
					if r.status == http.StatusOK {
						ok++
					}
				}
				if ok != 1 || rs[len(rs)-1].status != http.StatusOK {
					t.Errorf("%s: %d attempts, %d answered 200 (want exactly one, the last)", id, len(rs), ok)
				}
			}
			var push map[string]any
			json.Unmarshal([]byte(ids[pushID][0].body), &push)
			if push["userId"] != "bob" || push["type"] != "incoming_call" {
				t.Fatalf("push body %v", push)
			}
			if hub2.HooksDelivered.Load() < 3 {
				t.Fatalf("the new hub delivered %d", hub2.HooksDelivered.Load())
			}
		})
	}
}

// A receiver that keeps failing gets HookAttempts attempts, spaced at
// least as far apart as its Retry-After asks, and then the delivery is
// dead: counted, and not tried again.
func TestDeliveryRetryAfterAndDead(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter func() string
		minGap     time.Duration
	}{
		{"backoff", func() string { return "" }, 0},
		{"retry-after seconds", func() string { return "1" }, time.Second},
		// An HTTP date has whole seconds: 3s ahead is at least 2s away.
		{"retry-after date", func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const secret = "hook-secret-0123456789"
			rcv := newReceiver(t, secret, http.StatusServiceUnavailable)
			rcv.mu.Lock()
			rcv.header = func() http.Header {
				if v := tc.retryAfter(); v != "" {
					return http.Header{"Retry-After": {v}}
				}
				return nil
			}
			rcv.mu.Unlock()
			g := newGateway(t, gwOptions{tune: func(o *ws.Options) {
				o.PushURL, o.PushSecret = rcv.srv.URL+"/push", secret
				o.HookBackoff, o.HookMaxBackoff, o.HookAttempts = 10*time.Millisecond, 20*time.Millisecond, 2
				o.Poll = 50 * time.Millisecond
			}})
			g.ringOffline(t, "ada", "bob")
			waitFor(t, func() bool { return g.hub.HooksDead.Load() == 1 })
			c, err := g.store.CountWSDeliveries(context.Background())
			if err != nil || c.Dead != 1 || c.Pending+c.Retrying != 0 {
				t.Fatalf("counts %+v %v", c, err)
			}
			time.Sleep(300 * time.Millisecond)
			rs := rcv.reqs()
			if len(rs) != 2 {
				t.Fatalf("%d attempts, want 2", len(rs))
			}
			if gap := rs[1].at.Sub(rs[0].at); gap < tc.minGap {
				t.Fatalf("second attempt after %v, want at least %v", gap, tc.minGap)
			}
		})
	}
}

// A push is worth sending only while its ring lasts: one whose receiver
// kept failing is dropped unsent once the ring timed out, not delivered
// later to wake a phone for a call that is over.
func TestPushExpiresWithItsRing(t *testing.T) {
	const secret = "hook-secret-0123456789"
	rcv := newReceiver(t, secret, http.StatusInternalServerError)
	g := newGateway(t, gwOptions{ringTimeout: 400 * time.Millisecond, tune: func(o *ws.Options) {
		o.PushURL, o.PushSecret = rcv.srv.URL+"/push", secret
		o.HookBackoff, o.HookMaxBackoff, o.HookAttempts = 50*time.Millisecond, 100*time.Millisecond, 1000
		o.Poll = 20 * time.Millisecond
	}})
	g.ringOffline(t, "ada", "bob")
	// The receiver fails until the ring is over, then comes back: the push
	// is not sent again.
	waitFor(t, func() bool { return g.hub.HooksExpired.Load() == 1 })
	tried := len(rcv.reqs())
	rcv.status.Store(http.StatusOK)
	time.Sleep(300 * time.Millisecond)
	if tried == 0 || len(rcv.reqs()) != tried {
		t.Fatalf("%d attempts before the ring ended, %d in all: want some, then none", tried, len(rcv.reqs()))
	}
	if c, err := g.store.CountWSDeliveries(context.Background()); err != nil || c != (store.WSDeliveryCounts{}) {
		t.Fatalf("counts %+v %v", c, err)
	}
}
