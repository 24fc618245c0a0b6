package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireBrowser makes TestBrowserJoinAndAdmin fail, not skip, without
// Chromium or the npm package (CI sets it).
const requireBrowser = "CALLGATE_REQUIRE_BROWSER"

const e2eAdminToken = "e2e-admin-token-0123456789"

// TestBrowserJoinAndAdmin drives Debian's headless Chromium, through
// playwright-core (interop/browser), over the real gateway on loopback:
// the join page of a live call checks the browser (fake camera and
// microphone) and continues to the provider (a fake one on loopback, as
// the jitsi provider's api_url); a reload resumes the call; the join page
// of an ended call shows its summary; the admin page signs in with the
// admin token, shows a roster change live after a signed JaaS webhook, and
// retries a dead card delivery (a voiplink app answering 400); once the
// live call ends, its join page in the tab that was in it says the other
// side disconnected (AGENT_DISCONNECTED). Screenshots
// land in the test's temp dir, and in $CALLGATE_ARTIFACTS when set.
func TestBrowserJoinAndAdmin(t *testing.T) {
	root, _ := filepath.Abs("../../interop/browser")
	chromium := os.Getenv("CALLGATE_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, errChrome := os.Stat(chromium)
	_, errMods := os.Stat(filepath.Join(root, "node_modules", "playwright-core"))
	node, errNode := exec.LookPath("node")
	if errChrome != nil || errMods != nil || errNode != nil {
		msg := fmt.Sprintf("browser test needs %s, node and `npm ci` in interop/browser (%v; %v; %v)", chromium, errChrome, errMods, errNode)
		if os.Getenv(requireBrowser) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>Provider</title><h1>In the call</h1>")
	}))
	defer provider.Close()
	app := newFakeApp(t)
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, app.srv.URL+"/callgate", 5, "admin: {token: "+e2eAdminToken+"}\n")
	// The jitsi provider's rooms live at the fake provider.
	raw, _ := os.ReadFile(cfg)
	patched := strings.Replace(string(raw), "jitsi: {kind: jitsi, ", "jitsi: {kind: jitsi, api_url: "+provider.URL+", ", 1)
	if err := os.WriteFile(cfg, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	base, stop := startGatewayTB(t, builtinKinds(), serveOptions{addr: "127.0.0.1:0", dataDir: filepath.Join(dir, "data"), configFile: cfg, getenv: noEnv}, logs)
	defer stop()
	c := client{t: t, base: base, key: e2eKey}

	// A live call and an ended one, both admitting guests.
	mustStatus := func(want int, method, path string, body any) map[string]any {
		t.Helper()
		status, m, _ := c.do(method, path, body)
		if status != want {
			t.Fatalf("%s %s: %d %v", method, path, status, m)
		}
		return m
	}
	mustStatus(201, "POST", "/v1/calls", map[string]any{"id": "browser-live", "title": "Design <review>", "guests": true})
	liveRoom := roomOf(t, c, "browser-live")
	mustStatus(201, "POST", "/v1/calls", map[string]any{"id": "browser-ended", "title": "Retro", "guests": true})
	endedRoom := roomOf(t, c, "browser-ended")
	// Ada was in it: she joined and left, then the call ended.
	now := time.Now().UnixMilli()
	for i, joined := range []bool{true, false} {
		if code, err := jaasEvent(base, endedRoom, "ada", joined, now+int64(i), fmt.Sprintf("browser-ended-%d", i)); err != nil || code != 200 {
			t.Fatalf("JaaS webhook: %d %v", code, err)
		}
	}
	mustStatus(200, "POST", "/v1/calls/browser-ended/end", nil)
	// A call whose card the app refuses: the delivery dies (400 is not
	// retried past the budget), then the app accepts again.
	app.answer(400, 400, 400, 400, 400, 400, 400, 400)
	mustStatus(201, "POST", "/v1/calls", map[string]any{"id": "browser-dead", "surfaces": []map[string]any{{"chat": "acme", "conversation_id": "general"}}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, m, _ := c.do("GET", "/v1/calls/browser-dead", nil)
		sfs, _ := m["call"].(map[string]any)["surfaces"].([]any)
		if len(sfs) == 1 && sfs[0].(map[string]any)["status"] == "dead" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery did not die: %v", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	app.mu.Lock()
	app.script = nil
	app.mu.Unlock()

	out := filepath.Join(t.TempDir(), "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "browser_e2e.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"BASE="+base, "LIVE_URL="+base+"/join/browser-live?name=Browser", "ENDED_URL="+base+"/join/browser-ended",
		"PROVIDER_ORIGIN="+provider.URL, "ADMIN_TOKEN="+e2eAdminToken, "ROSTER_NAME=GRACE",
		"DEAD_CALL=browser-dead", "OUT="+out, "USER_DATA_DIR="+t.TempDir(), "CHROMIUM="+chromium)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var log []string
	ok := false
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			log = append(log, line)
			switch line {
			case "WEBHOOK?":
				// The roster change the admin page must show live: a
				// signed JaaS webhook, as 8x8 sends it.
				if code, err := jaasEvent(base, liveRoom, "grace", true, time.Now().UnixMilli(), "browser-k-1"); err != nil || code != 200 {
					t.Errorf("JaaS webhook: %d %v", code, err)
				}
				_, _ = io.WriteString(stdin, "sent\n")
			case "END?":
				if status, m, _ := c.do("POST", "/v1/calls/browser-live/end", nil); status != 200 {
					t.Errorf("end: %d %v", status, m)
				}
				_, _ = io.WriteString(stdin, "ended\n")
			case "OK":
				ok = true
			}
		}
	}()
	err := cmd.Wait()
	<-done
	copyArtifacts(t, out)
	if err != nil || !ok {
		t.Fatalf("browser script: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(log, "\n"), stderr.String())
	}
	t.Logf("browser script:\n%s\nscreenshots in %s", strings.Join(log, "\n"), out)
	shots, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(shots) < 8 {
		t.Fatalf("only %d screenshots: %v", len(shots), shots)
	}
	// The join went through the page: the provider URL was never logged.
	// Stopped first, so that no line is still held in the log buffer.
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if strings.Contains(logs.String(), liveRoom+"?") || strings.Contains(logs.String(), provider.URL+"/"+liveRoom) {
		t.Fatalf("the provider join URL was logged:\n%s", logs.String())
	}
}

// copyArtifacts copies the screenshots to $CALLGATE_ARTIFACTS/<test name>.
func copyArtifacts(t *testing.T, dir string) {
	dest := os.Getenv("CALLGATE_ARTIFACTS")
	if dest == "" {
		return
	}
	dest = filepath.Join(dest, t.Name())
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Errorf("artifacts: %v", err)
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dest, filepath.Base(f)), b, 0o644)
		}
		if err != nil {
			t.Errorf("artifacts: %v", err)
		}
	}
}
