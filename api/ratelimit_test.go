package api_test

import (
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/httpserver"
)

// request sends a GET with the given headers.
func (g *gateway) request(path string, header map[string]string) response {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func limits(auth, join httpserver.RateLimit) func(*api.Options) {
	return func(o *api.Options) { o.AuthFailureLimit, o.JoinLimit = auth, join }
}

// slow is a budget of 3 that refills one attempt a minute.
var slow = httpserver.RateLimit{Rate: 1.0 / 60, Burst: 3}

// TestAuthFailuresAreRateLimited: failed authentications spend a budget per
// client address; past it the API answers 429 with Retry-After and the JSON
// error shape. A good key is never limited, X-Forwarded-For is ignored
// unless it comes from a trusted proxy, and the budget refills.
func TestAuthFailuresAreRateLimited(t *testing.T) {
	wrongKey := map[string]string{"Authorization": bearer("wrong-key-0123456789")}
	goodKey := map[string]string{"Authorization": bearer(apiKey)}
	forwarded := func(h map[string]string, ip string) map[string]string {
		out := map[string]string{"X-Forwarded-For": ip}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	type step struct {
		header map[string]string
		want   int
	}
	tests := []struct {
		name    string
		opts    gatewayOptions
		steps   []step
		advance time.Duration // then one more wrong key
		after   int
	}{
		{"budget spent", gatewayOptions{tune: limits(slow, slow)}, []step{
			{wrongKey, 401}, {wrongKey, 401}, {map[string]string{}, 401}, {wrongKey, 429},
			{map[string]string{"Authorization": bearer(userToken(t, "other-secret-0123456789abcdef0123", "ada", time.Now().Add(time.Hour)))}, 429},
			{goodKey, 200}, {goodKey, 200}, {wrongKey, 429},
		}, time.Minute, 401},
		{"forged X-Forwarded-For is ignored", gatewayOptions{tune: limits(slow, slow)}, []step{
			{forwarded(wrongKey, "203.0.113.1"), 401}, {forwarded(wrongKey, "203.0.113.2"), 401},
			{forwarded(wrongKey, "203.0.113.3"), 401}, {forwarded(wrongKey, "203.0.113.4"), 429},
		}, 0, 429},
		{"trusted proxy's X-Forwarded-For is believed", gatewayOptions{tune: limits(slow, slow),
			httpTune: func(o *httpserver.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }}, []step{
			{forwarded(wrongKey, "203.0.113.1"), 401}, {forwarded(wrongKey, "203.0.113.1"), 401},
			{forwarded(wrongKey, "203.0.113.1"), 401}, {forwarded(wrongKey, "203.0.113.1"), 429},
			{forwarded(wrongKey, "203.0.113.2"), 401}, {forwarded(wrongKey, "2001:db8::1"), 401},
		}, 0, 401}, // the proxy itself has its own, unspent budget
		{"disabled", gatewayOptions{tune: limits(httpserver.RateLimit{Disabled: true}, slow)}, []step{
			{wrongKey, 401}, {wrongKey, 401}, {wrongKey, 401}, {wrongKey, 401}, {wrongKey, 401},
		}, 0, 401},
		{"default budget", gatewayOptions{}, append(repeat(step{wrongKey, 401}, 20), step{wrongKey, 429}), 0, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, tt.opts)
			for i, s := range tt.steps {
				res := g.request("/v1/calls/x", s.header)
				if res.status == 404 && s.want == 200 {
					continue // authenticated; the call does not exist
				}
				if res.status != s.want {
					t.Fatalf("step %d: %d, want %d: %s", i, res.status, s.want, res.body)
				}
				if res.status == 429 {
					if res.errorCode(t) != "rate_limited" || !strings.Contains(string(res.body), "retry after") {
						t.Fatalf("429 body: %s", res.body)
					}
					if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
						t.Fatalf("Retry-After = %q", res.header.Get("Retry-After"))
					}
				}
			}
			g.clock.Advance(tt.advance)
			if res := g.request("/v1/calls/x", wrongKey); res.status != tt.after {
				t.Fatalf("after %v: %d, want %d", tt.advance, res.status, tt.after)
			}
		})
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestJoinGuessesAreRateLimited: refused join-link visits spend a budget
// per client address; past it every /join answers a 429 page, before the id
// is looked at. Successful joins cost nothing.
func TestJoinGuessesAreRateLimited(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true, tune: limits(slow, slow)})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "live", "guests": true})
	steps := []struct {
		path string
		want int
	}{
		{"/join/live", 200}, {"/join/live", 200}, {"/join/live", 200}, {"/join/live", 200},
		{"/join/guess-1", 404}, {"/join/guess-2", 404}, {"/join/live?t=forged", 403},
		{"/join/guess-3", 429}, {"/join/live", 429}, {"/join/guess-4", 429},
	}
	for i, s := range steps {
		res := g.get(s.path, "")
		if res.status != s.want {
			t.Fatalf("step %d %s: %d, want %d: %s", i, s.path, res.status, s.want, res.body)
		}
		if res.status == 429 {
			if !strings.Contains(string(res.body), "Too many attempts") || res.header.Get("Retry-After") == "" ||
				!strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
				t.Fatalf("429 page: %v %s", res.header, res.body)
			}
		}
	}
	g.clock.Advance(time.Minute)
	if res := g.get("/join/live", ""); res.status != 200 {
		t.Fatalf("after a minute: %d", res.status)
	}
}
