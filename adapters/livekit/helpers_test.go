package livekit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/callgate/callgate/calls"
)

const (
	testKey    = "APIcallgate"
	testSecret = "c2VjcmV0+with/slash=and+plus/=32chars!!"
	oldKey     = "APIold"
	oldSecret  = "the-previous-secret-of-32-chars-or-more"
	otherKey   = "APIother"
)

// newTestProvider builds a provider against base (the server API) with a
// fixed clock.
func newTestProvider(t testing.TB, mutate func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		URL: "wss://project.livekit.cloud", APIKey: testKey, APISecret: testSecret,
		PreviousAPIKey: oldKey, PreviousAPISecret: oldSecret, TokenTTL: time.Hour,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signWebhook signs body as livekit-server's webhook notifier does
// (protocol/webhook URLNotifier: AccessToken valid 5 minutes, sha256 claim).
func signWebhook(t testing.TB, key, secret string, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	tok, err := auth.NewAccessToken(key, secret).SetValidFor(5 * time.Minute).SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func webhookRequest(auth string, body []byte) calls.WebhookRequest {
	h := map[string][]string{}
	if auth != "" {
		h["Authorization"] = []string{auth}
	}
	h["Content-Type"] = []string{"application/webhook+json"}
	return calls.WebhookRequest{URL: "https://gw.example/webhooks/providers/livekit", Header: h, Body: body}
}

// requireInterop makes a missing SDK a failure instead of a skip; CI sets
// it after installing the SDKs.
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

// nodeScript returns interop/livekit/livekit.mjs when node and the SDKs are
// installed, and skips (or fails under CALLGATE_REQUIRE_INTEROP) otherwise.
func nodeScript(t testing.TB) string {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", "..", "interop", "livekit"))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules", "livekit-server-sdk"))
	if errNode != nil || errMods != nil {
		msg := "LiveKit interop SDKs not installed (run `make interop-deps`)"
		if os.Getenv(requireInterop) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return filepath.Join(root, "livekit.mjs")
}

// runNode sends req to the script and decodes its answer into out.
func runNode(t testing.TB, script string, req any, out any) {
	t.Helper()
	in, _ := json.Marshal(req)
	cmd := exec.Command("node", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "CALLGATE-RESULT "); ok {
			if err := json.Unmarshal([]byte(line), out); err != nil {
				t.Fatalf("node answer %q: %v", line, err)
			}
			return
		}
	}
	t.Fatalf("node gave no answer:\n%s\nstderr:\n%s", stdout, stderr.String())
}
