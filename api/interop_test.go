package api_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireInterop makes a missing SDK a failure instead of a skip; CI sets it
// after installing the SDKs, so the interop tests cannot silently vanish.
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

// nodeSDK returns the script path if node and the SDK are installed.
func nodeSDK(t *testing.T, dir, script string) string {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", "interop", dir))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules"))
	if errNode != nil || errMods != nil {
		msg := "interop SDK not installed (run `make interop-deps`)"
		if os.Getenv(requireInterop) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return filepath.Join(root, script)
}

// TestStreamSDKInterop drives the Stream-compatible endpoints with Stream's
// own JS SDK (stream-chat 8.x, the last major with createCall and
// getCallToken), its user token minted by the SDK's createToken.
func TestStreamSDKInterop(t *testing.T) {
	script := nodeSDK(t, "stream-chat", "stream_call.mjs")
	g := newGateway(t, gatewayOptions{guestJoin: true})
	out, err := exec.Command("node", script, g.url, userSecret, "general").CombinedOutput()
	if err != nil {
		t.Fatalf("stream-chat SDK failed: %v\n%s", err, out)
	}
	var res struct {
		Created, Again struct {
			Call     map[string]any `json:"call"`
			Token    *string        `json:"token"`
			Duration string         `json:"duration"`
		}
		Token struct {
			Token   *string `json:"token"`
			JoinURL string  `json:"join_url"`
		}
		BadID struct {
			Status int            `json:"status"`
			Body   map[string]any `json:"body"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("SDK output is not JSON: %v\n%s", err, out)
	}
	call := res.Created.Call
	room, _ := call["jitsi"].(map[string]any)["room"].(string)
	if call["id"] != "interop-1" || call["provider"] != "jitsi" || !strings.HasPrefix(room, "interop-1-") || res.Created.Token == nil || res.Created.Duration == "" {
		t.Fatalf("createCall response: %+v", res.Created)
	}
	if res.Again.Call["id"] != "interop-1" || res.Again.Call["jitsi"].(map[string]any)["room"] != room {
		t.Fatalf("second createCall did not return the same call: %+v", res.Again)
	}
	if res.Token.Token == nil || !strings.HasPrefix(res.Token.JoinURL, g.url+"/join/interop-1?t=") {
		t.Fatalf("getCallToken response: %+v", res.Token)
	}
	if res.BadID.Status != 400 {
		t.Fatalf("bad id through the SDK: %+v", res.BadID)
	}
	stored := g.get("/v1/calls/interop-1", bearer(apiKey)).call(t)
	if stored["created_by"] != "ada" || stored["surfaces"].([]any)[0].(map[string]any)["conversation_id"] != "messaging:general" {
		t.Fatalf("stored call: %v", stored)
	}
}
