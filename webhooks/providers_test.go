package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/webhooks"
)

// recordingApplier keeps what it was given and fails when told to.
type recordingApplier struct {
	mu     sync.Mutex
	got    []calls.ProviderEvent
	failed error
}

func (a *recordingApplier) ApplyProviderEvents(_ context.Context, _ string, evs []calls.ProviderEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failed != nil {
		return a.failed
	}
	a.got = append(a.got, evs...)
	return nil
}

// urlParser records the URL it was shown, to check the URL reconstruction
// signature schemes that cover the URL depend on.
type urlParser struct{ url string }

func (p *urlParser) ReceiveWebhook(_ context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	p.url = req.URL
	return calls.ProviderWebhook{}, nil
}

// challenger answers a challenge, as Zoom's endpoint.url_validation wants:
// the reply is the adapter's, byte for byte.
type challenger struct{}

func (challenger) ReceiveWebhook(_ context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	return calls.ProviderWebhook{Reply: &calls.WebhookReply{ContentType: "application/json", Body: []byte(`{"plainToken":"abc","encryptedToken":"def"}`)}}, nil
}

const secret = "jaas-endpoint-secret"

func sign(body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	return "t=" + ts + ",v1=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func setup(t testing.TB, applier webhooks.EventApplier) (string, *urlParser) {
	t.Helper()
	p, err := jitsi.New(jitsi.Config{WebhookSecrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	up := &urlParser{}
	srv := httpserver.New(httpserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 2048})
	err = webhooks.RegisterProviders(srv.Echo, webhooks.ProviderOptions{
		Receivers: map[string]webhooks.ProviderReceiver{"jaas": p, "urlcheck": up, "challenge": challenger{}},
		Applier:   applier,
		PublicURL: "https://calls.example.com/gateway",
		Registry:  srv.Registry,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Echo)
	t.Cleanup(ts.Close)
	return ts.URL, up
}

func joinedBody(key string) []byte {
	return []byte(fmt.Sprintf(`{"idempotencyKey":%q,"eventType":"PARTICIPANT_JOINED","timestamp":%d,"fqn":"app/room-1","data":{"id":"ada","name":"Ada"}}`,
		key, time.Now().UnixMilli()))
}

func post(t testing.TB, url string, body []byte, signature string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("X-Jaas-Signature", signature)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestProviderWebhookOutcomes(t *testing.T) {
	applier := &recordingApplier{}
	base, up := setup(t, applier)
	now := time.Now()
	good := joinedBody("k1")
	malformed := []byte(`{"eventType":`)
	tests := []struct {
		name       string
		path       string
		body       []byte
		signature  string
		fail       error
		wantStatus int
		wantBody   string
		wantEvents int
	}{
		{"applied", "/webhooks/providers/jaas", good, sign(good, now), nil, 200, `"events":1`, 1},
		{"unsigned", "/webhooks/providers/jaas", good, "", nil, 401, "unauthenticated", 0},
		{"wrong signature", "/webhooks/providers/jaas", good, sign([]byte("other"), now), nil, 401, "unauthenticated", 0},
		{"replayed outside the window", "/webhooks/providers/jaas", good, sign(good, now.Add(-time.Hour)), nil, 401, "unauthenticated", 0},
		{"malformed", "/webhooks/providers/jaas", malformed, sign(malformed, now), nil, 400, "malformed_webhook", 0},
		{"too large", "/webhooks/providers/jaas", []byte(strings.Repeat(" ", 4096)), "", nil, 413, "body_too_large", 0},
		{"unknown provider", "/webhooks/providers/nope", good, sign(good, now), nil, 404, "not_found", 0},
		{"store failure makes the provider retry", "/webhooks/providers/jaas", good, sign(good, now), errors.New("disk full"), 500, "internal", 0},
		{"challenge answered with the adapter's reply", "/webhooks/providers/challenge", []byte(`{}`), "", nil, 200, `{"plainToken":"abc","encryptedToken":"def"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applier.mu.Lock()
			applier.got, applier.failed = nil, tt.fail
			applier.mu.Unlock()
			status, body := post(t, base+tt.path, tt.body, tt.signature)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %s, want %d containing %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(body, secret) || strings.Contains(body, "disk full") {
				t.Fatalf("response leaks internals: %s", body)
			}
			applier.mu.Lock()
			defer applier.mu.Unlock()
			if len(applier.got) != tt.wantEvents {
				t.Fatalf("applied %d events, want %d", len(applier.got), tt.wantEvents)
			}
			if tt.wantEvents == 1 && (applier.got[0].Identity != "ada" || applier.got[0].Room != "room-1" || applier.got[0].DeliveryID != "k1") {
				t.Fatalf("event = %+v", applier.got[0])
			}
		})
	}

	// Signatures over the URL are checked against the public URL the
	// provider called (its path prefix included), not the internal address.
	post(t, base+"/webhooks/providers/urlcheck?x=1&y=a%20b", []byte("{}"), "")
	if up.url != "https://calls.example.com/gateway/webhooks/providers/urlcheck?x=1&y=a%20b" {
		t.Fatalf("URL shown to the parser = %q", up.url)
	}
}

// BenchmarkProviderWebhookIntake measures a verified JaaS webhook through
// the whole HTTP intake (read, HMAC check, parse, hand-off).
func BenchmarkProviderWebhookIntake(b *testing.B) {
	base, _ := setup(b, &recordingApplier{})
	body := joinedBody("k")
	sig := sign(body, time.Now())
	client := &http.Client{}
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/providers/jaas", strings.NewReader(string(body)))
		req.Header.Set("X-Jaas-Signature", sig)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// TestForgedWebhookFloodLogsOnce sends a burst of forged webhooks: every
// one is refused with 401 and counted in the outcome metric, and the
// warning is written once rather than once per request.
func TestForgedWebhookFloodLogsOnce(t *testing.T) {
	var logged syncBuffer
	p, err := jitsi.New(jitsi.Config{WebhookSecrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 2048})
	err = webhooks.RegisterProviders(srv.Echo, webhooks.ProviderOptions{
		Receivers: map[string]webhooks.ProviderReceiver{"jaas": p},
		Applier:   &recordingApplier{},
		PublicURL: "https://calls.example.com",
		Registry:  srv.Registry,
		Logger:    slog.New(slog.NewTextHandler(&logged, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Echo)
	defer ts.Close()
	const flood = 200
	body := joinedBody("forged")
	for i := range flood {
		if status, _ := post(t, ts.URL+"/webhooks/providers/jaas", body, sign([]byte(fmt.Sprint("other", i)), time.Now())); status != 401 {
			t.Fatalf("forged webhook %d: status %d, want 401", i, status)
		}
	}
	// A flood that outlasts the interval may log a second line; hundreds
	// of requests on loopback take far less than a second.
	if n := strings.Count(logged.String(), "provider webhook refused"); n < 1 || n > 2 {
		t.Errorf("%d warnings for %d forged webhooks, want 1 (or 2 across an interval):\n%s", n, flood, logged.String())
	}
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	metrics, _ := io.ReadAll(res.Body)
	want := fmt.Sprintf(`callgate_provider_webhooks_total{outcome="unauthenticated",provider="jaas"} %d`, flood)
	if !strings.Contains(string(metrics), want) {
		t.Errorf("metrics do not count every refusal: want %q", want)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
