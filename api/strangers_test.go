package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefusedRequestsChangeAndRevealNothing is the audit's items 1 and 2
// over HTTP: Mallory, with her own valid user token, on Alice's call. Every
// attempt is refused, none writes anything (no surface, no event), and no
// answer carries the call's details.
func TestRefusedRequestsChangeAndRevealNothing(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: false})
	alice, mallory := g.userAuth("alice"), g.userAuth("mallory")
	const title = "Board Q3 (confidential)"
	if res := g.post("/v1/calls", alice, map[string]any{"id": "alice-call", "title": title}); res.status != http.StatusCreated {
		t.Fatalf("alice creates: %d %s", res.status, res.body)
	}
	// The room worker's own change lands first, so "before" is settled.
	var before map[string]any
	for range 200 {
		if before = g.get("/v1/calls/alice-call", bearer(apiKey)).call(t); before["room"].(map[string]any)["status"] == "ready" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	settled, _ := g.store.Events(t.Context(), "alice-call", 0)
	for _, tc := range []struct {
		name, path string
		body       any
	}{
		{"Stream create in her own channel", "/channels/messaging/mallory-chan/call", map[string]any{"id": "alice-call", "type": "video"}},
		{"v1 create with the same id", "/v1/calls", map[string]any{"id": "alice-call"}},
		{"v1 create naming alice", "/v1/calls", map[string]any{"id": "alice-call", "user_id": "alice"}},
		{"token", "/v1/calls/alice-call/token", map[string]any{}},
		{"token for alice", "/v1/calls/alice-call/token", map[string]any{"user_id": "alice"}},
		{"end", "/v1/calls/alice-call/end", nil},
		{"decline", "/v1/calls/alice-call/decline", nil},
		{"retry deliveries", "/v1/calls/alice-call/deliveries/retry", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := g.post(tc.path, mallory, tc.body)
			if res.status != http.StatusForbidden {
				t.Fatalf("%d %s, want 403", res.status, res.body)
			}
			if strings.Contains(string(res.body), title) || strings.Contains(string(res.body), "created_by") {
				t.Fatalf("the refusal describes the call: %s", res.body)
			}
		})
	}
	if res := g.get("/v1/calls/alice-call", mallory); res.status != http.StatusForbidden || strings.Contains(string(res.body), title) {
		t.Fatalf("read: %d %s", res.status, res.body)
	}
	after := g.get("/v1/calls/alice-call", bearer(apiKey)).call(t)
	if after["updated_at"] != before["updated_at"] || len(after["surfaces"].([]any)) != 0 || after["state"] != "created" {
		t.Fatalf("refused requests changed the call:\nbefore %v\nafter  %v", before, after)
	}
	events, err := g.store.Events(t.Context(), "alice-call", 0)
	if err != nil || len(events) != len(settled) {
		t.Fatalf("events after refused requests: %+v (%v), want %+v", events, err, settled)
	}
}
