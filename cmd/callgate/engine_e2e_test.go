package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/voiplink"
)

// Secrets the end-to-end configurations share.
const (
	e2eKey        = "e2e-key-0123456789abcdef"
	e2eAppSecret  = "acme-secret-0123456789"
	e2eJaasSecret = "jaas-endpoint-secret"
)

// fakeApp is a chat app on loopback speaking the voip-link contract: it
// verifies every callback's signature exactly as an app developer is told
// to, records what it received, and answers as its script says.
type fakeApp struct {
	t  testing.TB
	mu sync.Mutex
	// received holds every callback in arrival order, with when it came.
	received []appCallback
	// bodies maps a delivery id to the body first received with it: a
	// repeat must be identical, so dedupe by id is safe.
	bodies map[string][]byte
	// script holds the statuses to answer next (then 200); retryAfter is
	// sent with 429s.
	script     []int
	retryAfter string
	srv        *httptest.Server
}

type appCallback struct {
	at   time.Time
	body voiplink.Callback
}

func newFakeApp(t testing.TB) *fakeApp {
	a := &fakeApp{t: t, bodies: map[string][]byte{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeApp) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := voiplink.Verify(r.Header, body, time.Now(), 5*time.Minute, []byte(e2eAppSecret)); err != nil {
		a.t.Errorf("callback with a bad signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var cb voiplink.Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		a.t.Errorf("callback body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h := r.Header.Get("X-Callgate-Delivery"); h != cb.DeliveryID {
		a.t.Errorf("delivery header %q, body %q", h, cb.DeliveryID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.received = append(a.received, appCallback{at: time.Now(), body: cb})
	if first, ok := a.bodies[cb.DeliveryID]; ok && !sameCallback(first, body) {
		a.t.Errorf("delivery %s repeated with a different body:\n%s\n%s", cb.DeliveryID, first, body)
	} else if !ok {
		a.bodies[cb.DeliveryID] = body
	}
	status := http.StatusOK
	if len(a.script) > 0 {
		status, a.script = a.script[0], a.script[1:]
	}
	if status == http.StatusTooManyRequests && a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(status)
	if status == http.StatusOK {
		fmt.Fprintf(w, `{"message_id":"m-%s"}`, cb.Call.ID)
	}
}

// sameCallback compares two bodies of one delivery; they may differ only
// in nothing at all.
func sameCallback(a, b []byte) bool { return bytes.Equal(a, b) }

func (a *fakeApp) callbacks() []appCallback {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appCallback(nil), a.received...)
}

func (a *fakeApp) answer(statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.script = append(a.script, statuses...)
}

// latest returns the newest version the app would show for the call (what
// an app keeps after dropping stale versions) and how many callbacks came.
func (a *fakeApp) latest(callID string) (voiplink.Callback, int) {
	var best voiplink.Callback
	n := 0
	for _, cb := range a.callbacks() {
		if cb.body.Call.ID != callID {
			continue
		}
		n++
		if cb.body.Version > best.Version {
			best = cb.body
		}
	}
	return best, n
}

// e2eConfig writes a configuration with JaaS webhooks on the jitsi
// provider and the acme voip-link app, and fast delivery knobs.
// pace is the card edits a second allowed per destination (and the burst).
func e2eConfig(t testing.TB, dir, callbackURL string, pace int, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  addr: 127.0.0.1:0
  link_secret: e2e-link-secret-0123456789abcdef0123
api:
  keys: [{name: e2e, key: %s}]
providers:
  jitsi: {kind: jitsi, webhook_secret: %s}
chats:
  acme: {kind: voiplink, secret: %s, callback_url: %s, timeout: 2s}
delivery:
  min_backoff: 100ms
  max_backoff: 400ms
  max_attempts: 4
  rate: %d
  burst: %d
  timeout: 2s
  lease: 5s
  poll: 100ms
rooms:
  poll: 100ms
%s`, e2eKey, e2eJaasSecret, e2eAppSecret, callbackURL, pace, pace, extra)
	path := filepath.Join(dir, "callgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// command sends a signed /call command from the acme app and returns the
// status and decoded answer.
func command(t testing.TB, base, conversation, sender, text string) (int, voiplink.Message) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"conversation_id": conversation, "sender": map[string]string{"id": sender}, "text": text})
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/chats/acme", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Callgate-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("X-Callgate-Signature", voiplink.Sign([]byte(e2eAppSecret), time.Now(), body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var msg voiplink.Message
	raw, _ := io.ReadAll(res.Body)
	json.Unmarshal(raw, &msg)
	return res.StatusCode, msg
}

// jaasEvent sends a JaaS webhook, signed as JaaS signs it, for a
// participant joining or leaving room; ts orders it.
func jaasEvent(base, room, identity string, joined bool, ts int64, key string) (int, error) {
	typ := "PARTICIPANT_LEFT"
	if joined {
		typ = "PARTICIPANT_JOINED"
	}
	body := fmt.Sprintf(`{"idempotencyKey":%q,"eventType":%q,"timestamp":%d,"fqn":"app/%s","data":{"id":%q,"name":%q}}`,
		key, typ, ts, room, identity, strings.ToUpper(identity))
	now := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(e2eJaasSecret))
	mac.Write([]byte(now + "." + body))
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/providers/jitsi", strings.NewReader(body))
	req.Header.Set("X-Jaas-Signature", "t="+now+",v1="+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// roomOf waits for the call's room and returns its name.
func roomOf(t testing.TB, c client, callID string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		status, body, _ := c.do("GET", "/v1/calls/"+callID, nil)
		if status == 200 {
			room := body["call"].(map[string]any)["room"].(map[string]any)
			if room["status"] == "ready" {
				return room["name"].(string)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("call %s never got a room", callID)
	return ""
}

// settled waits until every card of the call shows its newest version.
func settled(t testing.TB, c client, callID string) {
	t.Helper()
	eventually(t, 10*time.Second, "cards up to date", func() bool {
		status, body, _ := c.do("GET", "/v1/calls/"+callID, nil)
		if status != 200 {
			return false
		}
		for _, s := range body["call"].(map[string]any)["surfaces"].([]any) {
			if s.(map[string]any)["status"] != "delivered" {
				return false
			}
		}
		return true
	})
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVoipLinkEndToEnd drives the first chat surface on loopback: a signed
// command creates a call and gets the voip-link part; the app's card
// follows provider webhooks with coalesced, paced, retried and finally
// revived deliveries.
func TestVoipLinkEndToEnd(t *testing.T) {
	app := newFakeApp(t)
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, app.srv.URL+"/callgate", 1, "")
	base, stop := startGateway(t, filepath.Join(dir, "data"), cfg, &syncBuffer{})
	defer stop()
	c := client{t: t, base: base, key: e2eKey}

	status, msg := command(t, base, "conv-1", "ada", "/call video Standup")
	if status != 200 || msg.Call == nil || len(msg.Parts) < 2 {
		t.Fatalf("command: %d %+v", status, msg)
	}
	callID := msg.Call.ID
	var link string
	for _, p := range msg.Parts {
		if p.MIMEType == voiplink.MIMEVoIPLink {
			link = p.Body
		}
	}
	if !strings.HasSuffix(link, "/join/"+callID) {
		t.Fatalf("voip-link part %q, want the stable join link", link)
	}
	room := roomOf(t, c, callID)
	settled(t, c, callID)

	// Three webhooks in quick succession: the card is paced to one edit a
	// second, so at most two callbacks, the last one exact.
	time.Sleep(1100 * time.Millisecond)
	_, before := app.latest(callID)
	ts := time.Now().UnixMilli()
	for i, ev := range []struct {
		who    string
		joined bool
	}{{"ada", true}, {"bob", true}, {"ada", false}} {
		if code, err := jaasEvent(base, room, ev.who, ev.joined, ts+int64(i), fmt.Sprintf("k-%d", i)); err != nil || code != 200 {
			t.Fatalf("webhook %d: %d %v", i, code, err)
		}
	}
	_, want, _ := c.do("GET", "/v1/calls/"+callID, nil)
	wantVersion := want["call"].(map[string]any)["surfaces"].([]any)[0].(map[string]any)["wanted_version"].(float64)
	eventually(t, 5*time.Second, "the card showing the three webhooks", func() bool {
		last, _ := app.latest(callID)
		return last.Version == int64(wantVersion)
	})
	time.Sleep(300 * time.Millisecond)
	last, after := app.latest(callID)
	if after-before > 2 {
		t.Fatalf("%d callbacks for three webhooks, want at most 2", after-before)
	}
	if len(last.Call.Participants) != 1 || last.Call.Participants[0].Identity != "bob" || last.Call.State != "active" {
		t.Fatalf("last card shows %+v, want only bob, active", last.Call)
	}

	// 500 three times, then 200: one delivery, the same id on every try.
	time.Sleep(1100 * time.Millisecond)
	app.answer(500, 500, 500)
	n0 := len(app.callbacks())
	if code, _ := jaasEvent(base, room, "cy", true, ts+10, "k-10"); code != 200 {
		t.Fatal("webhook refused")
	}
	eventually(t, 10*time.Second, "four tries", func() bool { return len(app.callbacks()) >= n0+4 })
	tries := app.callbacks()[n0:]
	for _, cb := range tries {
		if cb.body.DeliveryID != tries[0].body.DeliveryID {
			t.Fatalf("delivery ids differ across retries: %q, %q", tries[0].body.DeliveryID, cb.body.DeliveryID)
		}
	}

	// 429 with Retry-After: 2: no retry before two seconds.
	time.Sleep(1100 * time.Millisecond)
	app.mu.Lock()
	app.retryAfter = "2"
	app.mu.Unlock()
	app.answer(429)
	n0 = len(app.callbacks())
	if code, _ := jaasEvent(base, room, "dee", true, ts+11, "k-11"); code != 200 {
		t.Fatal("webhook refused")
	}
	eventually(t, 10*time.Second, "the retry after 429", func() bool { return len(app.callbacks()) >= n0+2 })
	pair := app.callbacks()[n0:]
	if gap := pair[1].at.Sub(pair[0].at); gap < 2*time.Second {
		t.Fatalf("retried %s after a 429 asking for 2s", gap)
	}

	// Down for longer than the budget: parked as dead, visible, and
	// delivered after a retry request.
	time.Sleep(1100 * time.Millisecond)
	app.answer(503, 503, 503, 503, 503, 503, 503, 503)
	if status, _, _ := c.do("POST", "/v1/calls/"+callID+"/end", nil); status != 200 {
		t.Fatalf("end: %d", status)
	}
	eventually(t, 10*time.Second, "the delivery parked as dead", func() bool {
		_, body, _ := c.do("GET", "/v1/calls/"+callID, nil)
		sf := body["call"].(map[string]any)["surfaces"].([]any)[0].(map[string]any)
		return sf["status"] == "dead" && sf["last_error"] != ""
	})
	_, metrics, _ := c.do("GET", "/metrics", nil)
	if !strings.Contains(metrics["raw"].(string), `callgate_card_deliveries{status="dead"} 1`) {
		t.Fatalf("metrics do not show the dead delivery")
	}
	app.mu.Lock()
	app.script = nil
	app.mu.Unlock()
	if status, body, _ := c.do("POST", "/v1/calls/"+callID+"/deliveries/retry", nil); status != 200 {
		t.Fatalf("retry: %d %v", status, body)
	}
	eventually(t, 5*time.Second, "the final card after the retry", func() bool {
		last, _ := app.latest(callID)
		return last.Call.State == "ended"
	})
}

// TestVoipLinkRefusedCommandsCreateNothing: unsigned, wrongly signed,
// stale, replayed, altered and oversized commands are refused and create
// no call.
func TestVoipLinkRefusedCommandsCreateNothing(t *testing.T) {
	app := newFakeApp(t)
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, app.srv.URL+"/callgate", 1, "")
	base, stop := startGateway(t, filepath.Join(dir, "data"), cfg, &syncBuffer{})
	defer stop()
	c := client{t: t, base: base, key: e2eKey}

	body := []byte(`{"conversation_id":"c-1","sender":"ada","text":"/call video Standup"}`)
	send := func(body []byte, ts time.Time, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/chats/acme", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Callgate-Timestamp", strconv.FormatInt(ts.Unix(), 10))
		if sig != "" {
			req.Header.Set("X-Callgate-Signature", sig)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	now := time.Now()
	good := voiplink.Sign([]byte(e2eAppSecret), now, body)
	altered := append([]byte(nil), body...)
	altered[len(altered)-3] = 'X'
	big := []byte(`{"conversation_id":"c-1","sender":"ada","text":"/call ` + strings.Repeat("x", 2<<20) + `"}`)
	for _, tc := range []struct {
		name string
		code int
		send func() int
	}{
		{"unsigned", 401, func() int { return send(body, now, "") }},
		{"wrong secret", 401, func() int { return send(body, now, voiplink.Sign([]byte("another-secret-0123456"), now, body)) }},
		{"stale", 401, func() int {
			old := now.Add(-6 * time.Minute)
			return send(body, old, voiplink.Sign([]byte(e2eAppSecret), old, body))
		}},
		{"altered by one byte", 401, func() int { return send(altered, now, good) }},
		{"oversized", 413, func() int { return send(big, now, voiplink.Sign([]byte(e2eAppSecret), now, big)) }},
	} {
		if got := tc.send(); got != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.code)
		}
	}
	if _, list, _ := c.do("GET", "/v1/calls", nil); len(list["calls"].([]any)) != 0 {
		t.Fatalf("refused commands created calls: %v", list["calls"])
	}
	// The genuine command works once; the same signed request again is a
	// replay, refused, and creates nothing more.
	if got := send(body, now, good); got != 200 {
		t.Fatalf("genuine command: %d", got)
	}
	if got := send(body, now, good); got != 401 {
		t.Fatalf("replayed command: %d, want 401", got)
	}
	if _, list, _ := c.do("GET", "/v1/calls", nil); len(list["calls"].([]any)) != 1 {
		t.Fatalf("calls after a replay: %v", list["calls"])
	}
	// A command that creates a call records its replay mark with the
	// call: the same signed request sent twice at once creates one call,
	// and the other copy is refused as a replay.
	fresh := []byte(`{"conversation_id":"c-2","sender":"ada","text":"/call new Retro"}`)
	sig := voiplink.Sign([]byte(e2eAppSecret), now, fresh)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() { codes[i] = send(fresh, now, sig) })
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != 200 || codes[1] != 401 {
		t.Fatalf("one signed /call sent twice at once: %v, want one 200 and one 401", codes)
	}
	if _, list, _ := c.do("GET", "/v1/calls", nil); len(list["calls"].([]any)) != 2 {
		t.Fatalf("calls after a concurrent replay: %v", list["calls"])
	}
	// A command that starts nothing is refused as a replay too: the
	// runner records its mark before it does anything.
	help := []byte(`{"conversation_id":"c-3","sender":"ada","text":"/call help"}`)
	helpSig := voiplink.Sign([]byte(e2eAppSecret), now, help)
	if got := send(help, now, helpSig); got != 200 {
		t.Fatalf("/call help: %d", got)
	}
	if got := send(help, now, helpSig); got != 401 {
		t.Fatalf("/call help replayed: %d, want 401", got)
	}
}
