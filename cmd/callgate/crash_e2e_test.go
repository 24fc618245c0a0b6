package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/voiplink"
	"github.com/callgate/callgate/store/pgtest"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// gatewayBinary builds the real binary once per test run.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "callgate-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "callgate")
		if out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

// process is the real binary running.
type process struct {
	cmd  *exec.Cmd
	base string
	logs *syncBuffer
	done chan struct{}
}

var listenRE = regexp.MustCompile(`msg="callgate listening" addr=(\S+)`)

// startBinary runs `callgate serve` with the configuration and data
// directory and waits until it listens.
func startBinary(t testing.TB, cfg, dataDir string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(gatewayBinary(t), "serve", "--config", cfg, "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.logs, line)
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		t.Fatalf("the binary exited before listening:\n%s", p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the binary did not listen within 30s:\n%s", p.logs.String())
	}
	return p
}

// kill stops the process with SIGKILL: no drain, no cleanup.
func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// traffic is a provider and a chat app that keep retrying until
// acknowledged, as real ones do, against whichever gateway is current.
type traffic struct {
	t    testing.TB
	base atomic.Pointer[string]
	// acked counts acknowledged webhooks and commands.
	acked atomic.Int64
}

func (tr *traffic) current() string { return *tr.base.Load() }

// retry repeats send until it is acknowledged (200), through restarts.
func (tr *traffic) retry(what string, send func(base string) (int, error)) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, err := send(tr.current())
		if err == nil && code == 200 {
			tr.acked.Add(1)
			return
		}
		if time.Now().After(deadline) {
			tr.t.Errorf("%s never acknowledged (last: %d %v)", what, code, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signedCommand posts a command with a delivery id the app keeps across
// retries, so a retried command cannot start a second call.
func signedCommand(base, conversation, sender, text, delivery string) (int, voiplink.Message, error) {
	body, _ := json.Marshal(map[string]any{"conversation_id": conversation, "sender": sender, "text": text, "delivery_id": delivery})
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/chats/acme", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Callgate-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("X-Callgate-Signature", voiplink.Sign([]byte(e2eAppSecret), time.Now(), body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, voiplink.Message{}, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var msg voiplink.Message
	json.Unmarshal(raw, &msg)
	return res.StatusCode, msg, nil
}

// rosterEvent is one participant change the provider reports.
type rosterEvent struct {
	who    string
	joined bool
	ts     int64
	key    string
}

// script makes n join/leave events over five people and returns them with
// the roster they leave.
func script(call string, n int, start int64) ([]rosterEvent, []string) {
	people := []string{"ada", "bob", "cy", "dee", "eve"}
	present := map[string]bool{}
	var out []rosterEvent
	for i := range n {
		who := people[(i*7+len(call))%len(people)]
		present[who] = !present[who]
		out = append(out, rosterEvent{who: who, joined: present[who], ts: start + int64(i), key: fmt.Sprintf("%s-%d", call, i)})
	}
	var roster []string
	for who, in := range present {
		if in {
			roster = append(roster, who)
		}
	}
	slices.Sort(roster)
	return out, roster
}

// runCalls drives `calls` conversations through the gateways: each starts a
// call by command, streams roster webhooks, and ends it. between, when set,
// runs once a third of the webhooks are acknowledged (the crash). It checks
// that every acknowledged change is in the call and the app got every
// call's final state.
func runCalls(t *testing.T, tr *traffic, app *fakeApp, calls, events int, between func()) {
	type convo struct {
		id, call, room string
		roster         []string
	}
	convos := make([]*convo, calls)
	var wg sync.WaitGroup
	for i := range convos {
		cv := &convo{id: fmt.Sprintf("conv-%d", i)}
		convos[i] = cv
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.retry("start "+cv.id, func(base string) (int, error) {
				code, msg, err := signedCommand(base, cv.id, "ada", "/call Crash test", "start-"+cv.id)
				if code == 200 && msg.Call != nil {
					cv.call = msg.Call.ID
				}
				return code, err
			})
		}()
	}
	wg.Wait()
	for _, cv := range convos {
		if cv.call == "" {
			t.Fatalf("%s: no call", cv.id)
		}
		tr.retry("room of "+cv.call, func(base string) (int, error) {
			c := client{t: t, base: base, key: e2eKey}
			status, body, _ := c.do("GET", "/v1/calls/"+cv.call, nil)
			if status != 200 {
				return status, nil
			}
			room := body["call"].(map[string]any)["room"].(map[string]any)
			if room["status"] != "ready" {
				return 0, fmt.Errorf("room %v", room["status"])
			}
			cv.room = room["name"].(string)
			return 200, nil
		})
	}
	total := int64(calls * events)
	var sent atomic.Int64
	crashed := make(chan struct{})
	go func() {
		defer close(crashed)
		for sent.Load() < total/3 {
			time.Sleep(5 * time.Millisecond)
		}
		if between != nil {
			between()
		}
	}()
	start := time.Now().UnixMilli()
	for _, cv := range convos {
		evs, roster := script(cv.call, events, start)
		cv.roster = roster
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ev := range evs {
				tr.retry("webhook "+ev.key, func(base string) (int, error) {
					return jaasEvent(base, cv.room, ev.who, ev.joined, ev.ts, ev.key)
				})
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	<-crashed

	// Every acknowledged webhook is reflected in its call.
	for _, cv := range convos {
		c := client{t: t, base: tr.current(), key: e2eKey}
		_, body, _ := c.do("GET", "/v1/calls/"+cv.call, nil)
		var got []string
		for _, p := range body["call"].(map[string]any)["participants"].([]any) {
			got = append(got, p.(map[string]any)["identity"].(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, cv.roster) {
			t.Errorf("call %s roster %v, want %v", cv.call, got, cv.roster)
		}
	}
	for _, cv := range convos {
		tr.retry("end "+cv.id, func(base string) (int, error) {
			code, msg, err := signedCommand(base, cv.id, "ada", "/call end", "end-"+cv.id)
			if code == 200 && msg.Call != nil && msg.Call.State != "ended" {
				return 0, fmt.Errorf("end answered state %s", msg.Call.State)
			}
			return code, err
		})
	}
	// Every app receives the final state of every call.
	eventually(t, 60*time.Second, "the final card of every call", func() bool {
		for _, cv := range convos {
			if last, _ := app.latest(cv.call); last.Call.State != "ended" {
				return false
			}
		}
		return true
	})
	repeats := 0
	seen := map[string]bool{}
	for _, cb := range app.callbacks() {
		if seen[cb.body.DeliveryID] {
			repeats++
		}
		seen[cb.body.DeliveryID] = true
	}
	t.Logf("%d webhooks and commands acknowledged; %d callbacks, %d distinct deliveries (%d repeats of a delivery, each byte-identical)",
		tr.acked.Load(), len(app.callbacks()), len(seen), repeats)
}

// TestKill9UnderLoad kills the gateway with SIGKILL during a stream of
// signed provider webhooks and commands, restarts it on the same data, and
// checks nothing acknowledged was lost and every app saw the end.
func TestKill9UnderLoad(t *testing.T) {
	app := newFakeApp(t)
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, app.srv.URL+"/callgate", 50, "")
	data := filepath.Join(dir, "data")
	p := startBinary(t, cfg, data)
	tr := &traffic{t: t}
	tr.base.Store(&p.base)
	runCalls(t, tr, app, 6, 40, func() {
		p.kill()
		p = startBinary(t, cfg, data)
		tr.base.Store(&p.base)
	})
	if t.Failed() {
		t.Logf("gateway log:\n%s", p.logs.String())
	}
}

// TestTwoReplicasOnPostgres runs two binaries on one PostgreSQL database:
// both deliver cards; one is killed mid-stream and the other finishes
// every delivery.
func TestTwoReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	app := newFakeApp(t)
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, app.srv.URL+"/callgate", 50, "store: {kind: postgres, dsn: \"${E2E_DSN}\"}\n")
	env := "E2E_DSN=" + dsn
	a := startBinary(t, cfg, filepath.Join(dir, "a"), env)
	b := startBinary(t, cfg, filepath.Join(dir, "b"), env)
	tr := &traffic{t: t}
	// Traffic alternates between the replicas until one dies.
	var flip atomic.Int64
	bases := []string{a.base, b.base}
	alive := atomic.Int64{}
	alive.Store(2)
	tr.base.Store(&a.base)
	stopFlip := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopFlip:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if alive.Load() == 2 {
				base := bases[flip.Add(1)%2]
				tr.base.Store(&base)
			}
		}
	}()
	defer close(stopFlip)
	deliveredBy := func(p *process) float64 {
		c := client{t: t, base: p.base}
		_, m, _ := c.do("GET", "/metrics", nil)
		return metricValue(m["raw"].(string), `callgate_card_deliveries_total{chat="acme",outcome="delivered"}`)
	}
	var aDelivered float64
	runCalls(t, tr, app, 6, 30, func() {
		aDelivered = deliveredBy(a)
		alive.Store(1)
		tr.base.Store(&b.base)
		a.kill()
	})
	bDelivered := deliveredBy(b)
	if aDelivered == 0 || bDelivered == 0 {
		t.Errorf("deliveries by replica: a %v, b %v; want both to deliver", aDelivered, bDelivered)
	}
	t.Logf("cards delivered: replica a %v (before it was killed), replica b %v", aDelivered, bDelivered)
}

// metricValue reads one sample from Prometheus text output (0 if absent).
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// fakeDaily is Daily's REST API on loopback, whose room creation can be
// held, as a slow or hung provider would.
type fakeDaily struct {
	mu      sync.Mutex
	hold    chan struct{} // while open, POST /rooms waits
	creates atomic.Int64
	rooms   map[string]bool
	srv     *httptest.Server
}

func newFakeDaily(t testing.TB) *fakeDaily {
	f := &fakeDaily{rooms: map[string]bool{}, hold: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/rooms":
			var body struct{ Name string }
			json.NewDecoder(r.Body).Decode(&body)
			f.creates.Add(1)
			f.mu.Lock()
			hold := f.hold
			f.mu.Unlock()
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
			f.mu.Lock()
			f.rooms[body.Name] = true
			f.mu.Unlock()
			fmt.Fprintf(w, `{"id":"id-%s","name":%q,"url":"https://x.daily.co/%s","privacy":"private"}`, body.Name, body.Name, body.Name)
		case r.Method == http.MethodPost && r.URL.Path == "/meeting-tokens":
			fmt.Fprint(w, `{"token":"tok"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDaily) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.hold)
}

// TestKill9WhileRoomsArePending is the audit's crash case: calls are
// stored and acknowledged, the process is killed with SIGKILL before their
// rooms exist, and after the restart every one of them gets its room and
// its credentials work. Nothing is left half-written.
func TestKill9WhileRoomsArePending(t *testing.T) {
	daily := newFakeDaily(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`server: {addr: "127.0.0.1:0", link_secret: e2e-link-secret-0123456789abcdef0123}
api: {keys: [{name: e2e, key: %s}]}
providers:
  daily: {kind: daily, api_key: test-key, domain: x.daily.co, api_url: %s}
rooms: {poll: 100ms, attempt_timeout: 2s, deadline: 10m, wait: 200ms}
`, e2eKey, daily.srv.URL)), 0o600)
	data := filepath.Join(dir, "data")
	p := startBinary(t, cfg, data)
	c := client{t: t, base: p.base, key: e2eKey}
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("pending-%d", i)
		status, body, _ := c.do("POST", "/v1/calls", map[string]any{"id": id, "user_id": "ada"})
		if status != 201 || body["call"].(map[string]any)["room"].(map[string]any)["status"] != "preparing" {
			t.Fatalf("create %s: %d %v", id, status, body)
		}
		ids = append(ids, id)
	}
	eventually(t, 10*time.Second, "the room worker at the provider", func() bool { return daily.creates.Load() > 0 })
	p.kill()
	daily.release()

	p = startBinary(t, cfg, data)
	c.base = p.base
	for _, id := range ids {
		eventually(t, 40*time.Second, "the room of "+id+" after the restart (once the dead worker's lease runs out)", func() bool {
			_, body, _ := c.do("GET", "/v1/calls/"+id, nil)
			return body["call"].(map[string]any)["room"].(map[string]any)["status"] == "ready"
		})
		if status, body, _ := c.do("POST", "/v1/calls/"+id+"/token", map[string]any{"user_id": "ada"}); status != 200 {
			t.Fatalf("token for %s after the restart: %d %v", id, status, body)
		}
	}
}
