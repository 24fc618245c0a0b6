package ws_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeWSInterop drives /v1/ws from Node's `ws` package (interop/ws),
// the way a web app would: ring, ring received, accept with credentials,
// the caller's credential, a 1021, a malformed frame, and resume. Skipped
// without node and the installed package unless CALLGATE_REQUIRE_INTEROP.
func TestNodeWSInterop(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", "interop", "ws"))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules", "ws"))
	if errNode != nil || errMods != nil {
		msg := "Node ws client not installed (run `make interop-deps`)"
		if os.Getenv("CALLGATE_REQUIRE_INTEROP") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	g := newGateway(t, gwOptions{})
	wsBase := "ws" + strings.TrimPrefix(g.url, "http")
	out, err := exec.Command("node", filepath.Join(root, "ws_interop.mjs"), wsBase, userToken(t, "ada"), userToken(t, "bob")).CombinedOutput()
	if err != nil {
		t.Fatalf("node ws client failed: %v\n%s", err, out)
	}
	var res struct {
		Unknown        map[string]any `json:"unknown"`
		Request        frame          `json:"request"`
		Rung           map[string]any `json:"rung"`
		RingingEventID string         `json:"ringingEventId"`
		Accept         frame          `json:"accept"`
		CallerAccepted map[string]any `json:"callerAccepted"`
		Accepted       map[string]any `json:"accepted"`
		Malformed      map[string]any `json:"malformed"`
		Resumed        map[string]any `json:"resumed"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	id := res.Request.str("videochatRequestId")
	switch {
	case res.Unknown["code"] != float64(1021) || res.Unknown["status"] != true:
		t.Fatalf("unknown user: %v", res.Unknown)
	case id == "" || res.Request.Event.ID != "js-2" || res.Request.Error.Status:
		t.Fatalf("request: %+v", res.Request)
	case res.Rung["videochatRequestId"] != id || res.Rung["user"].(map[string]any)["firstName"] != "Ada":
		t.Fatalf("ring: %v", res.Rung)
	case res.Accept.str("token") == "" || res.Accept.str("videochatEngine") != "jitsi" || res.Accept.str("sharedSecret") == "":
		t.Fatalf("accept: %+v", res.Accept)
	case res.CallerAccepted["sharedSecret"] != res.Accept.str("sharedSecret") || res.CallerAccepted["identity"] != "ada":
		t.Fatalf("caller credential: %v", res.CallerAccepted)
	case res.Accepted["videochatRequestId"] != id || res.Resumed["videochatRequestId"] != id:
		t.Fatalf("accepted / resumed: %v %v", res.Accepted, res.Resumed)
	case res.Malformed["code"] != float64(400):
		t.Fatalf("malformed: %v", res.Malformed)
	}
}
