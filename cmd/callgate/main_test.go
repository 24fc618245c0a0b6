package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects log output written from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func noEnv(string) (string, bool) { return "", false }

// startGateway runs serve on a free loopback port and returns its base URL
// and a stop function that shuts it down gracefully and returns serve's error.
func startGateway(t *testing.T, dataDir, configFile string, logs io.Writer) (string, func() error) {
	t.Helper()
	return startGatewayWith(t, serveOptions{addr: "127.0.0.1:0", dataDir: dataDir, configFile: configFile, getenv: noEnv}, logs)
}

func startGatewayWith(t *testing.T, opts serveOptions, logs io.Writer) (string, func() error) {
	t.Helper()
	return startGatewayKinds(t, builtinKinds(), opts, logs)
}

// startGatewayKinds runs serve with a kind list of the test's own.
func startGatewayKinds(t *testing.T, kinds kindList, opts serveOptions, logs io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	errCh := make(chan error, 1)
	go func() {
		errCh <- serve(ctx, kinds, opts, logs, func(addr string) { addrCh <- addr })
	}()
	select {
	case addr := <-addrCh:
		// Stopping twice (a deferred stop after an explicit one) is harmless.
		return "http://" + addr, sync.OnceValue(func() error { cancel(); return <-errCh })
	case err := <-errCh:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("gateway did not start within 20s")
	}
	return "", nil
}

type client struct {
	t    *testing.T
	base string
	key  string
}

func (c client) do(method, path string, body any) (int, map[string]any, http.Header) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		m = map[string]any{"raw": string(raw)}
	}
	return res.StatusCode, m, res.Header
}

// TestRunsOnDefaultsAndSurvivesRestart is the "done when": no YAML,
// no service; Call-123 and call-123 are one call; its links work; it
// survives a restart; ending it makes /join/call-123 say so.
func TestRunsOnDefaultsAndSurvivesRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	logs := &syncBuffer{}
	base, stop := startGateway(t, dataDir, "", logs)

	keyFile := filepath.Join(dataDir, "api-key")
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no generated API key: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("api-key mode = %v, want 0600", info.Mode().Perm())
	}
	keyBytes, _ := os.ReadFile(keyFile)
	key := strings.TrimSpace(string(keyBytes))
	if !strings.Contains(logs.String(), keyFile) {
		t.Fatalf("start-up log does not say where the key is:\n%s", logs.String())
	}
	for _, want := range []string{"callgate listening", "store=sqlite", "providers=jitsi(jitsi)"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs.String())
		}
	}

	c := client{t: t, base: base, key: key}
	if status, _, _ := (client{t: t, base: base}).do("GET", "/v1/calls/x", nil); status != 401 {
		t.Fatalf("request without key: %d", status)
	}
	status, body, _ := c.do("POST", "/v1/calls", map[string]any{"id": "Call-123", "title": "Retro", "guests": true})
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	if status, body, _ = c.do("POST", "/v1/calls", map[string]any{"id": "call-123"}); status != 200 || body["call"].(map[string]any)["title"] != "Retro" {
		t.Fatalf("second create: %d %v", status, body)
	}
	status, tok, _ := c.do("POST", "/v1/calls/call-123/token", map[string]any{"user_id": "ada", "name": "Ada"})
	if status != 200 {
		t.Fatalf("token: %d %v", status, tok)
	}
	link, _ := url.Parse(tok["join_url"].(string))
	status, page, hdr := c.do("GET", link.RequestURI(), nil)
	if raw, _ := page["raw"].(string); status != http.StatusOK || !strings.Contains(raw, `data-join="https://meet.jit.si/call-123-`) {
		t.Fatalf("join link: %d %v %s", status, hdr, raw)
	}
	if code := run(context.Background(), []string{"healthcheck", "--addr", strings.TrimPrefix(base, "http://")}, io.Discard, io.Discard, noEnv); code != 0 {
		t.Fatalf("healthcheck against a running gateway: exit %d", code)
	}
	if status, _, _ := c.do("GET", "/readyz", nil); status != 200 {
		t.Fatalf("readyz: %d", status)
	}
	_, metrics, _ := c.do("GET", "/metrics", nil)
	for _, want := range []string{`callgate_calls{state="created"} 1`, `callgate_http_requests_total{method="POST",route="/v1/calls",status="201"} 1`} {
		if !strings.Contains(metrics["raw"].(string), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The group writer's counters: at least the create, in at least one
	// transaction, and never fewer writes than transactions.
	counter := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(metrics["raw"].(string))
		if m == nil {
			t.Fatalf("metrics lack %s", name)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if tx, writes, stmts := counter("callgate_store_write_transactions_total"), counter("callgate_store_writes_total"), counter("callgate_store_write_statements_total"); tx < 1 || writes < tx || stmts < writes {
		t.Errorf("writer counters: %v transactions, %v writes, %v statements", tx, writes, stmts)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if strings.Contains(logs.String(), key) {
		t.Fatal("the API key appears in the log")
	}
	if strings.Contains(logs.String(), link.Query().Get("t")) {
		t.Fatal("a join-link token appears in the log")
	}

	// Restart on the same data directory: same key, same call, same links.
	base, stop = startGateway(t, dataDir, "", logs)
	defer stop()
	c.base = base
	status, body, _ = c.do("GET", "/v1/calls/CALL-123", nil)
	if status != 200 || body["call"].(map[string]any)["title"] != "Retro" {
		t.Fatalf("after restart: %d %v", status, body)
	}
	if status, _, _ = c.do("GET", link.RequestURI(), nil); status != http.StatusOK {
		t.Fatalf("personal link after restart: %d (the link secret must persist)", status)
	}
	if status, body, _ = c.do("POST", "/v1/calls/call-123/end", nil); status != 200 {
		t.Fatalf("end: %d %v", status, body)
	}
	status, page, _ = c.do("GET", "/join/call-123", nil)
	if status != http.StatusGone || !strings.Contains(page["raw"].(string), "This call has ended") {
		t.Fatalf("join after end: %d %v", status, page)
	}
}

func TestConfigFileAndCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("server:\n  addr: 127.0.0.1:0\napi:\n  keys:\n    - name: ci\n      key: ci-key-0123456789abcdef\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  addr: 127.0.0.1:0\ncalls:\n  ring_timeout: soon\nproviders:\n  jitsi:\n    kind: jitsi\n    api_urll: https://x\n"), 0o600)

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "--config", good}, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("good file: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"config", "check", "--config", bad}, &out, &errOut, noEnv); code != 1 {
		t.Fatalf("bad file: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], bad+":4: calls.ring_timeout: ") || !strings.HasPrefix(lines[1], bad+":8: providers.jitsi.api_urll: ") {
		t.Fatalf("problems not reported one per line as FILE:LINE: field: message:\n%s", errOut.String())
	}

	// serve with the file uses its key instead of generating one.
	logs := &syncBuffer{}
	dataDir := filepath.Join(dir, "data")
	base, stop := startGateway(t, dataDir, good, logs)
	defer stop()
	if _, err := os.Stat(filepath.Join(dataDir, "api-key")); err == nil {
		t.Fatal("a key was generated although the file configures one")
	}
	if status, _, _ := (client{t: t, base: base, key: "ci-key-0123456789abcdef"}).do("POST", "/v1/calls", map[string]any{}); status != 201 {
		t.Fatalf("configured key refused: %d", status)
	}
	if err := serve(context.Background(), builtinKinds(), serveOptions{configFile: bad, getenv: noEnv}, io.Discard, nil); err == nil || !strings.Contains(err.Error(), bad+":4") {
		t.Fatalf("serve with a bad file: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut, noEnv); code != 0 || !strings.HasPrefix(out.String(), "callgate ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"healthcheck", "--addr", "127.0.0.1:1"}, &out, &errOut, noEnv); code != 1 {
		t.Fatalf("healthcheck with nothing listening: exit %d", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut, noEnv); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"CALLGATE_ADDR": "127.0.0.1:9999", "CALLGATE_DATA_DIR": "/tmp/x", "CALLGATE_CONFIG": "/etc/c.yaml"}[k]
		return v, ok
	}
	opts, err := parseServeFlags([]string{"--addr", "127.0.0.1:7777"}, &errOut, env)
	if err != nil || opts.addr != "127.0.0.1:7777" || opts.dataDir != "/tmp/x" || opts.configFile != "/etc/c.yaml" {
		t.Fatalf("flags over environment: %+v %v", opts, err)
	}
}

// TestHelpListsCommands: every way of asking for help prints the commands
// and exits 0; --version works like version.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"serve", "-h"}, {"serve", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, &out, &errOut, noEnv)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			for _, want := range []string{"serve", "config check", "healthcheck", "version", "--addr"} {
				if !strings.Contains(out.String(), want) {
					t.Fatalf("usage lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errOut, noEnv); code != 0 || !strings.HasPrefix(out.String(), "callgate ") {
		t.Fatalf("--version: %d %q %q", code, out.String(), errOut.String())
	}
}
