package livekit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/callgate/callgate/calls"
)

// The real LiveKit server in the test suite. livekit-server v1.8.4 is on
// the Go module proxy with every dependency it needs; its cmd/server is
// built once into the Go build cache (GOCACHE/callgate-livekit-server-v1.8.4)
// and reused by later runs. CALLGATE_LIVEKIT_SERVER may name a binary
// built elsewhere. When the build cannot be done the tests skip, unless
// CALLGATE_REQUIRE_LIVEKIT=1 (CI), when they fail.

const (
	liveKitModule  = "github.com/livekit/livekit-server"
	liveKitVersion = "v1.8.4"
	requireLiveKit = "CALLGATE_REQUIRE_LIVEKIT"
)

var liveKitBuild struct {
	once sync.Once
	path string
	err  error
	took time.Duration
}

// liveKitBinary returns the server binary, building it on first use.
func liveKitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CALLGATE_LIVEKIT_SERVER"); p != "" {
		return p
	}
	if testing.Short() && os.Getenv(requireLiveKit) == "" {
		t.Skip("-short: not building livekit-server")
	}
	liveKitBuild.once.Do(func() {
		// The build must end before the test binary's own deadline, or
		// the go command would outlive a timed-out test.
		ctx := context.Background()
		if d, ok := t.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.Add(-90*time.Second))
			defer cancel()
		}
		start := time.Now()
		liveKitBuild.path, liveKitBuild.err = buildLiveKitServer(ctx)
		liveKitBuild.took = time.Since(start)
	})
	if liveKitBuild.err != nil {
		msg := fmt.Sprintf("livekit-server %s could not be built (%s): %v", liveKitVersion, liveKitBuild.took.Round(time.Second), liveKitBuild.err)
		if os.Getenv(requireLiveKit) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set " + requireLiveKit + "=1 to make this a failure")
	}
	t.Logf("livekit-server %s: %s (ready in %s)", liveKitVersion, liveKitBuild.path, liveKitBuild.took.Round(time.Millisecond))
	return liveKitBuild.path
}

// buildLiveKitServer builds cmd/server from a writable copy of the module
// (`go install` refuses the module because its go.mod has replace
// directives) into the cache directory, atomically.
func buildLiveKitServer(ctx context.Context) (string, error) {
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(gocache)), "callgate-livekit-server-"+liveKitVersion)
	bin := filepath.Join(dir, "livekit-server")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GO111MODULE=on")
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", liveKitModule+"@"+liveKitVersion)
	dl.Dir, dl.Env = os.TempDir(), env
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download: %w: %s", err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download: no module directory (%v %s)", err, mod.Error)
	}
	src, err := os.MkdirTemp("", "callgate-livekit-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := copyTree(mod.Dir, src); err != nil {
		return "", fmt.Errorf("copy the module: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "livekit-server-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	build := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), "./cmd/server")
	build.WaitDelay = 5 * time.Second
	build.Dir, build.Env = src, env
	if out, err := build.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("go build ./cmd/server did not finish before the test deadline (a loaded machine; build it beforehand, see adapters/livekit/README.md): %w", ctx.Err())
		}
		return "", fmt.Errorf("go build ./cmd/server: %w: %s", err, tail(out, 2000))
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// hook is one webhook the server delivered.
type hook struct {
	Header http.Header
	Body   []byte
	Event  string
	Room   string
	Who    string
}

// liveKit is a running server and the test HTTP server its webhooks go to.
type liveKit struct {
	WS, HTTP    string
	Key, Secret string
	mu          sync.Mutex
	hooks       []hook
	used        map[int]bool
	notify      chan struct{}
	log         *bytes.Buffer
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startLiveKit starts the server on loopback with its own keys, webhooks
// to a test HTTP server, and media on loopback (no external IP discovery).
func startLiveKit(t *testing.T) *liveKit {
	t.Helper()
	bin := liveKitBinary(t)
	lk := &liveKit{Key: testKey, Secret: testSecret, used: map[int]bool{}, notify: make(chan struct{}, 1), log: &bytes.Buffer{}}
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Event       string `json:"event"`
			Room        struct{ Name string }
			Participant struct{ Identity string }
			EgressInfo  struct{ RoomName string } `json:"egressInfo"`
		}
		_ = json.Unmarshal(body, &ev)
		lk.mu.Lock()
		lk.hooks = append(lk.hooks, hook{Header: r.Header.Clone(), Body: body, Event: ev.Event, Room: ev.Room.Name, Who: ev.Participant.Identity})
		lk.mu.Unlock()
		select {
		case lk.notify <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(hooks.Close)

	port, rtcTCP, rtcUDP := freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "udp")
	cfg := fmt.Sprintf(`port: %d
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: %d
  udp_port: %d
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
keys:
  %s: %q
webhook:
  api_key: %s
  urls: [%q]
room:
  auto_create: true
logging:
  level: info
`, port, rtcTCP, rtcUDP, lk.Key, lk.Secret, lk.Key, hooks.URL+"/webhooks/providers/livekit")
	cfgPath := filepath.Join(t.TempDir(), "livekit.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: lk.log}, &lockedWriter{w: lk.log}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("livekit-server log:\n%s", tail(lk.logBytes(), 6000))
		}
	})
	lk.HTTP = fmt.Sprintf("http://127.0.0.1:%d", port)
	lk.WS = fmt.Sprintf("ws://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("livekit-server exited: %v\n%s", err, lk.logBytes())
		default:
		}
		resp, err := http.Get(lk.HTTP + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("livekit-server did not answer in 30s\n%s", lk.logBytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("livekit-server up on %s in %s", lk.HTTP, time.Since(started).Round(time.Millisecond))
	return lk
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (lk *liveKit) logBytes() []byte {
	// Both writers share the buffer; read it under one of their locks is
	// not possible from here, so copy what is there (tests only).
	return append([]byte(nil), lk.log.Bytes()...)
}

// waitHook returns the first not yet taken webhook with the event for the
// room (and participant identity, when who is set).
func (lk *liveKit) waitHook(t *testing.T, event, room, who string) hook {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		lk.mu.Lock()
		for i, h := range lk.hooks {
			if !lk.used[i] && h.Event == event && h.Room == room && (who == "" || h.Who == who) {
				lk.used[i] = true
				lk.mu.Unlock()
				return h
			}
		}
		var seen []string
		for _, h := range lk.hooks {
			seen = append(seen, h.Event+"/"+h.Room+"/"+h.Who)
		}
		lk.mu.Unlock()
		select {
		case <-lk.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s webhook for room %s %s in 20s; got %v", event, room, who, seen)
		}
	}
}

// validate asks the server whether it accepts a join token.
func (lk *liveKit) validate(t *testing.T, token string) int {
	t.Helper()
	resp, err := http.Get(lk.HTTP + "/rtc/validate?access_token=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// receive runs a delivered webhook through the adapter.
func receive(t *testing.T, p *Provider, h hook) calls.ProviderEvent {
	t.Helper()
	res, err := p.ReceiveWebhook(context.Background(), calls.WebhookRequest{URL: "http://gw/webhooks/providers/livekit", Header: h.Header, Body: h.Body})
	if err != nil {
		t.Fatalf("the server's own %s webhook was refused: %v\nheaders %v\n%s", h.Event, err, h.Header, h.Body)
	}
	if len(res.Events) != 1 {
		t.Fatalf("%s gave %d events: %+v", h.Event, len(res.Events), res.Events)
	}
	return res.Events[0]
}

// tamper changes one character in the middle of a JWT's signature (not
// the last one, whose low bits are padding a lenient decoder ignores).
func tamper(tok string) string {
	i := len(tok) - 10
	repl := byte('A')
	if tok[i] == 'A' {
		repl = 'B'
	}
	return tok[:i] + string(repl) + tok[i+1:]
}

// TestLiveKitServer runs the adapter against a real livekit-server: the
// room is created through Twirp (idempotently), the server accepts the
// join tokens the adapter mints and refuses a tampered one, the server's
// own signed webhooks are accepted (and refused when altered), real
// participants (LiveKit's rtc-node SDK, when installed) show up in the
// roster and in joined/left webhooks, and ending the call deletes the room.
func TestLiveKitServer(t *testing.T) {
	lk := startLiveKit(t)
	ctx := context.Background()
	p, err := New(Config{URL: lk.WS, APIKey: lk.Key, APISecret: lk.Secret, TokenTTL: time.Hour, EmptyTimeout: 10 * time.Minute, MaxParticipants: 10})
	if err != nil {
		t.Fatal(err)
	}
	if p.apiBase != lk.HTTP {
		t.Fatalf("api base %q derived from %q", p.apiBase, lk.WS)
	}

	// The room, through Twirp CreateRoom; creating again returns the same.
	room, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: "lk-call-1", Type: calls.TypeVideo, Title: "Standup"})
	if err != nil {
		t.Fatal(err)
	}
	if room.Name != "lk-call-1" || !strings.HasPrefix(room.ProviderID, "RM_") {
		t.Fatalf("room %+v", room)
	}
	again, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: "lk-call-1", Type: calls.TypeVideo, Title: "Standup"})
	if err != nil || again.ProviderID != room.ProviderID {
		t.Fatalf("second CreateRoom: %+v %v (first %s)", again, err, room.ProviderID)
	}

	// room_started, signed by the server, accepted; refused when altered or
	// when the adapter holds another secret.
	started := lk.waitHook(t, "room_started", room.Name, "")
	if got := started.Header.Get("Authorization"); got == "" || strings.HasPrefix(got, "Bearer ") {
		t.Fatalf("server webhook Authorization %q", got)
	}
	ev := receive(t, p, started)
	if ev.Kind != calls.ProviderRoomStarted || ev.Room != room.Name || ev.DeliveryID == "" || ev.At.IsZero() {
		t.Fatalf("room_started → %+v", ev)
	}
	altered := append([]byte(nil), started.Body...)
	altered[len(altered)/2] ^= 1
	if _, err := p.ReceiveWebhook(ctx, calls.WebhookRequest{Header: started.Header, Body: altered}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("altered server webhook: %v", err)
	}
	other := newTestProvider(t, func(c *Config) {
		c.APIKey, c.APISecret, c.PreviousAPIKey, c.PreviousAPISecret = lk.Key, "another-secret-entirely-32-characters", "", ""
	})
	if _, err := other.ReceiveWebhook(ctx, calls.WebhookRequest{Header: started.Header, Body: started.Body}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("server webhook under another secret: %v", err)
	}
	// Rotation: the adapter holding a new secret with the server's as the
	// previous one accepts the server's webhooks.
	rotated := newTestProvider(t, func(c *Config) {
		c.APIKey, c.APISecret, c.PreviousAPIKey, c.PreviousAPISecret = "APInew", "the-new-secret-after-rotation-32chars", lk.Key, lk.Secret
	})
	if _, err := rotated.ReceiveWebhook(ctx, calls.WebhookRequest{Header: started.Header, Body: started.Body}); err != nil {
		t.Fatalf("server webhook under the previous pair: %v", err)
	}

	// Join tokens minted by the adapter are accepted by the server.
	owner, err := p.Credential(ctx, room, calls.CredentialRequest{CallID: "lk-call-1", UserID: "ada", Name: "Ada", Role: calls.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	listener, err := p.Credential(ctx, room, calls.CredentialRequest{CallID: "lk-call-1", UserID: "bob", Name: "Bob", Role: calls.RoleListener})
	if err != nil {
		t.Fatal(err)
	}
	if owner.Fields["url"] != lk.WS || owner.Fields["room"] != room.Name || owner.Fields["identity"] != "ada" {
		t.Fatalf("fields %v", owner.Fields)
	}
	for name, tok := range map[string]string{"owner": owner.Token, "listener": listener.Token} {
		if code := lk.validate(t, tok); code != http.StatusOK {
			t.Errorf("/rtc/validate with the %s token: %d", name, code)
		}
		if code := lk.validate(t, tamper(tok)); code != http.StatusUnauthorized {
			t.Errorf("/rtc/validate with a tampered %s token: %d, want 401", name, code)
		}
	}
	foreign := newTestProvider(t, func(c *Config) { c.URL, c.APIKey, c.APISecret = lk.WS, lk.Key, "not-the-servers-secret-but-32-chars" })
	bad, err := foreign.Credential(ctx, room, calls.CredentialRequest{UserID: "eve", Role: calls.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	if code := lk.validate(t, bad.Token); code != http.StatusUnauthorized {
		t.Errorf("/rtc/validate with a token signed by another secret: %d, want 401", code)
	}

	// Nobody in the room yet.
	st, err := p.RoomStatus(ctx, room)
	if err != nil || st.Gone || !st.Listed || len(st.Participants) != 0 {
		t.Fatalf("status of the empty room: %+v %v", st, err)
	}

	t.Run("participants", func(t *testing.T) {
		script := nodeScript(t)
		type joined struct {
			Room, Identity, Name, Metadata string
		}
		var wg sync.WaitGroup
		answers := map[string]*joined{"ada": {}, "bob": {}}
		for who, cred := range map[string]calls.Credential{"ada": owner, "bob": listener} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runNode(t, script, map[string]any{"mode": "join", "url": cred.Fields["url"], "token": cred.Token, "holdMs": 4000}, answers[who])
			}()
		}
		// While they are in, the roster lists them.
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := p.RoomStatus(ctx, room)
			if err == nil && len(st.Participants) == 2 {
				if st.Gone || !st.Listed {
					t.Errorf("status %+v", st)
				}
				names := map[string]string{}
				for _, pa := range st.Participants {
					names[pa.Identity] = pa.Name
					if pa.JoinedAt.IsZero() {
						t.Errorf("participant %+v has no join time", pa)
					}
				}
				if names["ada"] != "Ada" || names["bob"] != "Bob" {
					t.Errorf("roster %+v", st.Participants)
				}
				// The server applied the grants of the adapter's tokens:
				// the listener may subscribe and send data, not publish.
				actx, err := p.authorized(ctx, room.Name)
				if err != nil {
					t.Fatal(err)
				}
				res, err := p.rooms.ListParticipants(actx, &lkproto.ListParticipantsRequest{Room: room.Name})
				if err != nil {
					t.Fatal(err)
				}
				for _, pi := range res.GetParticipants() {
					perm := pi.GetPermission()
					want := pi.GetIdentity() == "ada"
					if perm.GetCanPublish() != want || !perm.GetCanSubscribe() || !perm.GetCanPublishData() {
						t.Errorf("%s's permissions at the server: %v", pi.GetIdentity(), perm)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("roster never showed both participants: %+v %v", st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		wg.Wait()
		if a := answers["ada"]; a.Identity != "ada" || a.Name != "Ada" || a.Room != room.Name || a.Metadata != `{"role":"owner"}` {
			t.Errorf("ada (owner) in the room: %+v", a)
		}
		if b := answers["bob"]; b.Identity != "bob" || b.Room != room.Name || b.Metadata != `{"role":"listener"}` {
			t.Errorf("bob (listener) in the room: %+v", b)
		}
		for _, who := range []string{"ada", "bob"} {
			j := receive(t, p, lk.waitHook(t, "participant_joined", room.Name, who))
			l := receive(t, p, lk.waitHook(t, "participant_left", room.Name, who))
			if j.Kind != calls.ProviderParticipantJoined || j.Identity != who || j.Room != room.Name || j.Seq == 0 {
				t.Errorf("joined %+v", j)
			}
			if l.Kind != calls.ProviderParticipantLeft || l.Identity != who || l.Seq <= j.Seq {
				t.Errorf("left %+v after joined %+v", l, j)
			}
			if want := map[string]string{"ada": "Ada", "bob": "Bob"}[who]; j.Name != want {
				t.Errorf("joined name %q, want %q", j.Name, want)
			}
		}
		st, err := p.RoomStatus(ctx, room)
		if err != nil || st.Gone || len(st.Participants) != 0 {
			t.Errorf("status after both left: %+v %v", st, err)
		}
	})

	t.Run("sdk receives the server's webhook", func(t *testing.T) {
		script := nodeScript(t)
		var res struct {
			OK    bool
			Error string
			Event map[string]any
		}
		runNode(t, script, map[string]any{"mode": "receive", "apiKey": lk.Key, "apiSecret": lk.Secret, "body": string(started.Body), "auth": started.Header.Get("Authorization")}, &res)
		if !res.OK || res.Event["event"] != "room_started" {
			t.Fatalf("WebhookReceiver on the server's room_started: %+v", res)
		}
	})

	// Ending the call deletes the room: room_finished arrives, the status
	// is a confirmed Gone, and ending it again is not an error.
	if err := p.EndRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	fin := receive(t, p, lk.waitHook(t, "room_finished", room.Name, ""))
	if fin.Kind != calls.ProviderRoomEnded || fin.Room != room.Name {
		t.Fatalf("room_finished → %+v", fin)
	}
	st, err = p.RoomStatus(ctx, room)
	if err != nil || !st.Gone {
		t.Fatalf("status after EndRoom: %+v %v", st, err)
	}
	if err := p.EndRoom(ctx, room); err != nil {
		t.Fatalf("ending a gone room: %v", err)
	}
	// A wrong secret on the server API is a permanent refusal.
	if _, err := foreign.CreateRoom(ctx, calls.RoomRequest{CallID: "lk-call-2"}); !isPermanent(err) {
		t.Fatalf("CreateRoom with a wrong secret: %v", err)
	}
}

func isPermanent(err error) bool {
	var pe *calls.PermanentError
	return errors.As(err, &pe)
}
