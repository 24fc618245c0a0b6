package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func newTestServer(t *testing.T, ready Pinger, logs io.Writer) (*Server, *httptest.Server) {
	t.Helper()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), BodyLimit: 64, Ready: ready})
	s.Echo.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if IsTooLarge(err) {
			return TooLarge(64)
		}
		return c.Blob(http.StatusOK, "text/plain", b)
	})
	s.Echo.GET("/panic", func(echo.Context) error { panic("boom") })
	s.Echo.GET("/internal", func(echo.Context) error { return errors.New("db password=hunter2 refused") })
	s.Echo.GET("/calls/:id", func(c echo.Context) error { return NewError(http.StatusConflict, "x", "call %s", c.Param("id")) })
	ts := httptest.NewServer(s.Echo)
	t.Cleanup(ts.Close)
	return s, ts
}

func errorOf(t *testing.T, res *http.Response) (int, string, string) {
	t.Helper()
	defer res.Body.Close()
	var body ErrorBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("error response is not the JSON error shape: %v", err)
	}
	return res.StatusCode, body.Error.Code, body.Error.Message
}

func TestErrorsAndLimits(t *testing.T) {
	var logs bytes.Buffer
	_, ts := newTestServer(t, pinger{}, &logs)

	res, _ := http.Get(ts.URL + "/panic")
	if status, code, _ := errorOf(t, res); status != 500 || code != "internal" {
		t.Fatalf("panic: %d %s", status, code)
	}
	res, _ = http.Get(ts.URL + "/internal")
	if status, _, msg := errorOf(t, res); status != 500 || strings.Contains(msg, "hunter2") || !strings.Contains(msg, "request id") {
		t.Fatalf("internal error leaked or lacks a request id: %d %q", status, msg)
	}
	res, _ = http.Get(ts.URL + "/nowhere")
	if status, code, _ := errorOf(t, res); status != 404 || code != "not_found" {
		t.Fatalf("unknown route: %d %s", status, code)
	}
	res, _ = http.Post(ts.URL+"/panic", "text/plain", nil)
	if status, code, _ := errorOf(t, res); status != 405 || code != "method_not_allowed" {
		t.Fatalf("wrong method: %d %s", status, code)
	}

	// Declared too large: refused before reading.
	res, _ = http.Post(ts.URL+"/echo", "text/plain", strings.NewReader(strings.Repeat("x", 65)))
	if status, code, _ := errorOf(t, res); status != 413 || code != "body_too_large" {
		t.Fatalf("large body: %d %s", status, code)
	}
	// Chunked (no Content-Length): refused while reading.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/echo", io.MultiReader(strings.NewReader(strings.Repeat("y", 100))))
	req.ContentLength = -1
	res, _ = http.DefaultClient.Do(req)
	if status, code, _ := errorOf(t, res); status != 413 || code != "body_too_large" {
		t.Fatalf("chunked large body: %d %s", status, code)
	}
	res, _ = http.Post(ts.URL+"/echo", "text/plain", strings.NewReader("hello"))
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("small body: %d %s", res.StatusCode, b)
	}
	res.Body.Close()

	res, _ = http.Get(ts.URL + "/calls/Call-9?t=secret-token")
	res.Body.Close()
	out := logs.String()
	if strings.Contains(out, "secret-token") || strings.Contains(out, "hunter2") && !strings.Contains(out, "internal error") {
		t.Fatalf("a query string or secret reached the access log:\n%s", out)
	}
	if !strings.Contains(out, "call_id=call-9") || !strings.Contains(out, "panic in handler") {
		t.Fatalf("access log lacks call_id or the panic:\n%s", out)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	_, ts := newTestServer(t, pinger{}, io.Discard)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, _ := http.Get(ts.URL + path)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
	res, _ := http.Get(ts.URL + "/metrics")
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `callgate_http_requests_total{method="GET",route="/readyz",status="200"} 1`) {
		t.Fatalf("metrics lack the readyz request:\n%s", b)
	}

	_, down := newTestServer(t, pinger{err: errors.New("connection refused")}, io.Discard)
	res, _ = http.Get(down.URL + "/readyz")
	if status, code, _ := errorOf(t, res); status != 503 || code != "not_ready" {
		t.Fatalf("readyz with the store down: %d %s", status, code)
	}
}

// TestLimiterMemoryIsBounded: idle buckets are forgotten and the map never
// holds more than MaxClients.
func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter(RateLimit{Rate: 1, Burst: 10, MaxClients: 100}, RateLimit{}, func() time.Time { return now })
	for i := range 1000 {
		l.Charge(fmt.Sprintf("198.51.100.%d/%d", i%256, i))
		if l.Len() > 100 {
			t.Fatalf("%d clients tracked, MaxClients is 100", l.Len())
		}
	}
	for range 10 {
		l.Charge("busy")
	}
	if _, ok := l.Charge("busy"); ok {
		t.Fatal("the 11th charge within a second was allowed")
	}
	if wait, blocked := l.Blocked("busy"); !blocked || wait <= 0 || wait > time.Second {
		t.Fatalf("Blocked = %v, %v", wait, blocked)
	}
	now = now.Add(11 * time.Second) // every bucket is full again
	l.Charge("new")
	if l.Len() != 1 {
		t.Fatalf("%d clients tracked after everyone went idle, want 1", l.Len())
	}
	if _, blocked := l.Blocked("busy"); blocked {
		t.Fatal("a forgotten client is still blocked")
	}
}

func TestMetricsToken(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MetricsToken: "metrics-secret"})
	ts := httptest.NewServer(s.Echo)
	t.Cleanup(ts.Close)
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"metrics-secret", 401}, {"Bearer metrics-secret", 200}, {"bearer metrics-secret", 200}} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, res.StatusCode, tt.want)
		}
	}
	// /healthz stays open for probes.
	if res, _ := http.Get(ts.URL + "/healthz"); res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
}
