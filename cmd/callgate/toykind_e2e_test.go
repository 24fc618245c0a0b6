package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// remoteRooms stands in for a provider's REST API: rooms keyed by call id
// (the provider's own idempotency), a gate that holds requests (a slow
// provider), and scripted failures.
type remoteRooms struct {
	mu      sync.Mutex
	rooms   map[string]calls.Room
	tries   map[string]int
	script  map[string][]error // per call id, the answers of the next attempts
	gate    chan struct{}      // when set, CreateRoom waits for it
	waiting chan string        // told the call id of each attempt that waits
}

func (r *remoteRooms) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	r.mu.Lock()
	r.tries[req.CallID]++
	gate := r.gate
	var err error
	if s := r.script[req.CallID]; len(s) > 0 {
		err, r.script[req.CallID] = s[0], s[1:]
	}
	r.mu.Unlock()
	if gate != nil && err == nil {
		r.waiting <- req.CallID
		select {
		case <-gate:
		case <-ctx.Done():
			return calls.Room{}, calls.Temporary(ctx.Err(), 0)
		}
	}
	if err != nil {
		return calls.Room{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	room, ok := r.rooms[req.CallID]
	if !ok {
		room = calls.Room{Name: "toy-" + req.CallID, URL: "https://toy.example/" + req.CallID}
		r.rooms[req.CallID] = room
	}
	return room, nil
}

func (r *remoteRooms) Credential(_ context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	return calls.Credential{JoinURL: room.URL + "?who=" + req.UserID, Token: "t", ExpiresAt: req.IssuedAt.Add(req.TTL)}, nil
}

func (r *remoteRooms) EndRoom(context.Context, calls.Room) error { return nil }

type toyRemoteSettings struct {
	Region string `yaml:"region"`
}

// TestAToyKindIsItsPackageAndOneListEntry: a provider kind defined here,
// added to the list, drives calls end to end through the real gateway —
// including a provider that is slow, flaky, and refuses credentials.
func TestAToyKindIsItsPackageAndOneListEntry(t *testing.T) {
	remote := &remoteRooms{rooms: map[string]calls.Room{}, tries: map[string]int{}, script: map[string][]error{}, waiting: make(chan string, 10)}
	kind := adapters.Provider("toyremote",
		func() *toyRemoteSettings { return &toyRemoteSettings{Region: "eu"} },
		func(_ context.Context, s *toyRemoteSettings, _ adapters.Deps) (calls.Provider, error) {
			if s.Region != "mars" {
				return nil, errors.New("the settings were not decoded")
			}
			return remote, nil
		})
	kinds := builtinKinds()
	kinds.Providers = append(kinds.Providers, kind) // the one list entry

	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`server: {addr: "127.0.0.1:0"}
api: {keys: [{name: t, key: toy-key-0123456789abcdef}]}
providers:
  toyremote: {region: mars}
rooms: {min_backoff: 20ms, max_backoff: 50ms, poll: 20ms, wait: 200ms}
`), 0o600)
	base, stop := startGatewayKinds(t, kinds, serveOptions{addr: "127.0.0.1:0", dataDir: filepath.Join(dir, "data"), configFile: cfg, getenv: noEnv}, &syncBuffer{})
	defer stop()
	c := client{t: t, base: base, key: "toy-key-0123456789abcdef"}

	// A slow provider: the call is created and answered while the room is
	// still being made; a credential asked for then says to come back.
	remote.gate = make(chan struct{})
	status, body, _ := c.do("POST", "/v1/calls", map[string]any{"id": "slow", "user_id": "ada"})
	if status != 201 || body["call"].(map[string]any)["room"].(map[string]any)["status"] != "preparing" {
		t.Fatalf("create with a slow provider: %d %v", status, body)
	}
	<-remote.waiting // the worker is inside CreateRoom
	status, body, hdr := c.do("POST", "/v1/calls/slow/token", map[string]any{"user_id": "ada"})
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("token while the room is created: %d %v %v", status, body, hdr)
	}
	close(remote.gate)
	eventually(t, 10*time.Second, "the slow room", func() bool {
		_, b, _ := c.do("GET", "/v1/calls/slow", nil)
		return b["call"].(map[string]any)["room"].(map[string]any)["status"] == "ready"
	})
	if status, body, _ := c.do("POST", "/v1/calls/slow/token", map[string]any{"user_id": "ada"}); status != 200 || !strings.Contains(body["join_url"].(string), "/join/slow?t=") {
		t.Fatalf("token once the room exists: %d %v", status, body)
	}
	remote.mu.Lock()
	remote.gate = nil
	// Twice 503, then fine: one room, three tries.
	remote.script["flaky"] = []error{calls.Temporary(errors.New("503"), 0), calls.Temporary(errors.New("503"), 0)}
	// The provider refuses the credentials: the call fails, readably.
	remote.script["refused"] = []error{calls.Permanent("the provider refused the API key (HTTP 401)", errors.New("raw: key sk_live_1 invalid"))}
	remote.mu.Unlock()
	c.do("POST", "/v1/calls", map[string]any{"id": "flaky"})
	c.do("POST", "/v1/calls", map[string]any{"id": "refused"})
	eventually(t, 10*time.Second, "both settled", func() bool {
		_, a, _ := c.do("GET", "/v1/calls/flaky", nil)
		_, b, _ := c.do("GET", "/v1/calls/refused", nil)
		return a["call"].(map[string]any)["room"].(map[string]any)["status"] == "ready" &&
			b["call"].(map[string]any)["state"] == "failed"
	})
	remote.mu.Lock()
	if remote.tries["flaky"] != 3 || len(remote.rooms) != 2 {
		t.Errorf("flaky: %d tries; %d rooms in all, want 3 tries and 2 rooms (slow, flaky)", remote.tries["flaky"], len(remote.rooms))
	}
	remote.mu.Unlock()
	_, body, _ = c.do("GET", "/v1/calls/refused", nil)
	room := body["call"].(map[string]any)["room"].(map[string]any)
	if body["call"].(map[string]any)["end_reason"] != "provider_error" || !strings.Contains(room["error"].(string), "refused the API key (HTTP 401)") || strings.Contains(room["error"].(string), "sk_live") {
		t.Fatalf("refused call: %v", body["call"])
	}
}
