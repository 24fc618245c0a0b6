package streamchat

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireInterop makes a missing SDK a failure instead of a skip (CI sets it
// after `make interop-deps`).
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

// TestStreamChatSDKInterop checks the adapter against Stream's own
// server-side JS SDK (stream-chat, pinned in interop/stream-chat-server):
// the SDK's verifyWebhook / verifyAndParseWebhook agree with VerifyWebhook
// on valid, wrong, altered and gzip bodies; tokens the SDK's createToken
// mints verify with the gateway's secret (VerifyToken) and the gateway's
// server token verifies with the SDK's JWT library; and the SDK's own REST
// calls carry the same authentication, paths and body shapes the gateway's
// Client sends (its server token verified by the gateway's verifier).
func TestStreamChatSDKInterop(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", "..", "interop", "stream-chat-server"))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules"))
	if errNode != nil || errMods != nil {
		if os.Getenv(requireInterop) != "" {
			t.Fatal("interop SDK not installed (run `make interop-deps`)")
		}
		t.Skip("interop SDK not installed (run `make interop-deps`)")
	}
	const secret = "interop-secret-0123456789"
	body := command("/call Standup", "Standup", "")
	good := Sign([]byte(secret), []byte(body))
	type tcase struct {
		Name      string `json:"name"`
		BodyB64   string `json:"body_b64"`
		Signature string `json:"signature"`
	}
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	cases := []tcase{
		{"valid", b64([]byte(body)), good},
		{"wrong secret", b64([]byte(body)), Sign([]byte("other"), []byte(body))},
		{"altered", b64([]byte(strings.Replace(body, "Standup", "Standuq", 1))), good},
		{"gzip", b64(gz(t, body)), good},
		{"gzip signed compressed", b64(gz(t, body)), Sign([]byte(secret), gz(t, body))},
		{"empty signature", b64([]byte(body)), "00"},
	}
	casesPath := filepath.Join(t.TempDir(), "cases.json")
	cb, _ := json.Marshal(cases)
	os.WriteFile(casesPath, cb, 0o600)

	// The fake Stream the SDK calls: every request must carry a server
	// token the gateway's verifier accepts, as the gateway's own do.
	f := newFakeStream(t, answer(200, `{"channel":{"own_capabilities":[]},"members":[],"message":{"id":"m-1"},"event":{"type":"call.updated"}}`))
	out, err := exec.Command("node", filepath.Join(root, "server.mjs"), "interop-key", secret, f.URL, casesPath, ServerToken([]byte(secret))).CombinedOutput()
	if err != nil {
		t.Fatalf("SDK failed: %v\n%s", err, out)
	}
	var res struct {
		Verify map[string]struct {
			VerifyWebhook, VerifyAndParseWebhook bool
		} `json:"verify"`
		Tokens struct {
			User, UserExp, Server    string
			GatewayServer            map[string]any `json:"gatewayServer"`
			GatewayServerWrongSecret string         `json:"gatewayServerWrongSecret"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("SDK output: %v\n%s", err, out)
	}
	for _, c := range cases {
		raw, _ := base64.StdEncoding.DecodeString(c.BodyB64)
		_, gwErr := VerifyWebhook(http.Header{HeaderSignature: {c.Signature}}, raw, []byte(secret))
		sdk := res.Verify[c.Name]
		if sdk.VerifyAndParseWebhook != (gwErr == nil) {
			t.Errorf("%s: SDK verifyAndParseWebhook=%v, gateway err=%v", c.Name, sdk.VerifyAndParseWebhook, gwErr)
		}
		// The legacy helper does not inflate: it agrees on every plain body.
		if !strings.HasPrefix(c.Name, "gzip") && sdk.VerifyWebhook != (gwErr == nil) {
			t.Errorf("%s: SDK verifyWebhook=%v, gateway err=%v", c.Name, sdk.VerifyWebhook, gwErr)
		}
	}
	now := time.Now()
	for name, tok := range map[string]string{"user": res.Tokens.User, "userExp": res.Tokens.UserExp, "server": res.Tokens.Server} {
		claims, err := VerifyToken(tok, now, []byte(secret))
		if err != nil {
			t.Errorf("SDK %s token refused by the gateway: %v", name, err)
			continue
		}
		if _, err := VerifyToken(tok, now, []byte("wrong")); err == nil {
			t.Errorf("SDK %s token verified with the wrong secret", name)
		}
		if name == "server" && (claims["server"] != true || tok != ServerToken([]byte(secret))) {
			t.Errorf("server token differs: SDK %s, gateway %s", tok, ServerToken([]byte(secret)))
		}
		if name == "user" && (claims["user_id"] != "tommaso" || tok != UserToken([]byte(secret), "tommaso", time.Time{})) {
			t.Errorf("user token differs: %s", tok)
		}
	}
	if res.Tokens.GatewayServer["server"] != true || res.Tokens.GatewayServerWrongSecret != "refused" {
		t.Errorf("the SDK's JWT library on the gateway's server token: %+v %s", res.Tokens.GatewayServer, res.Tokens.GatewayServerWrongSecret)
	}

	// The SDK's REST calls and the gateway's, side by side.
	sdkReqs := f.requests()
	c := NewClient(f.URL, "interop-key", secret, nil)
	ctx := context.Background()
	if err := c.PartialUpdateMessage(ctx, "m-1", map[string]any{"text": "hello"}, nil, "callgate"); err != nil {
		t.Fatal(err)
	}
	if err := c.PartialUpdateChannel(ctx, "messaging", "general", map[string]any{"call": map[string]any{"id": "c-1"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SendEvent(ctx, "messaging", "general", map[string]any{"type": "call.updated", "user_id": "callgate"}); err != nil {
		t.Fatal(err)
	}
	gwReqs := f.requests()[len(sdkReqs):]
	if len(sdkReqs) != 3 || len(gwReqs) != 3 {
		t.Fatalf("requests: SDK %d, gateway %d", len(sdkReqs), len(gwReqs))
	}
	for i := range gwReqs {
		s, g := sdkReqs[i], gwReqs[i]
		if s.Method != g.Method || s.Path != g.Path {
			t.Errorf("request %d: SDK %s %s, gateway %s %s", i, s.Method, s.Path, g.Method, g.Path)
		}
		for _, r := range []got{s, g} {
			if _, err := VerifyToken(r.Header.Get("Authorization"), now, []byte(secret)); err != nil || r.Header.Get("Stream-Auth-Type") != "jwt" || !strings.Contains(r.Query, "api_key=interop-key") {
				t.Errorf("request %d auth: %v %q %q", i, err, r.Header.Get("Stream-Auth-Type"), r.Query)
			}
		}
		for _, k := range []string{"set", "event"} {
			if (s.Body[k] == nil) != (g.Body[k] == nil) || mustJSON(s.Body[k]) != mustJSON(g.Body[k]) {
				t.Errorf("request %d %s: SDK %s, gateway %s", i, k, mustJSON(s.Body[k]), mustJSON(g.Body[k]))
			}
		}
	}
}
