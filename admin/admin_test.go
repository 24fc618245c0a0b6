package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/admin"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/webhooks"
)

const (
	adminToken = "admin-token-0123456789"
	apiKey     = "an-api-key-of-an-app-0123456789"
)

type env struct {
	t      *testing.T
	url    string
	svc    *calls.Service
	st     *store.SQL
	health *webhooks.Health
}

func newEnv(t *testing.T, opts admin.Options) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/callgate.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	jit, err := jitsi.New(jitsi.Config{BaseURL: "https://meet.jit.si"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := calls.NewService(calls.ServiceConfig{Store: st, Providers: map[string]calls.Provider{"jitsi": jit}, DefaultProvider: "jitsi", Logger: log, TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Options{Logger: log})
	health := webhooks.NewHealth()
	opts.Service, opts.Outbox, opts.Health, opts.Logger, opts.Refresh = svc, st, health, log, 50*time.Millisecond
	if err := admin.Register(srv.Echo, opts); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Echo)
	t.Cleanup(ts.Close)
	return &env{t: t, url: ts.URL, svc: svc, st: st, health: health}
}

var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type res struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, path string, form url.Values, headers ...string) res {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.url+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	r, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return res{r.StatusCode, r.Header, string(b)}
}

// call creates a call shown on a voiplink surface, with a hostile title.
func (e *env) call(id string) calls.Call {
	e.t.Helper()
	c, _, err := e.svc.Create(context.Background(), calls.Actor{Kind: calls.ActorAPIKey, UserID: "ada"}, calls.CreateRequest{
		ID: id, Title: `<script>alert("pwned")</script>`,
		Surfaces: []calls.Surface{{Chat: "voip", Workspace: "acme", Channel: "<b>general</b>"}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// kill makes every due delivery dead, as the outbox does after its budget.
func (e *env) kill() {
	e.t.Helper()
	ctx := context.Background()
	ds, err := e.st.ClaimDeliveries(ctx, "test", time.Now().Add(time.Minute), time.Minute, 10)
	if err != nil || len(ds) == 0 {
		e.t.Fatalf("claim: %v %d", err, len(ds))
	}
	for _, d := range ds {
		if err := e.st.RecordDelivery(ctx, calls.DeliveryOutcome{CallID: d.CallID, Key: d.Surface.Key(), Owner: "test",
			LastError: "voip: callback answered 400 <oops>", Dead: true, At: time.Now(), NextAttemptAt: time.Now()}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestAdminIsOffWithoutASecret(t *testing.T) {
	e := newEnv(t, admin.Options{})
	if r := e.do("GET", "/admin", nil); r.status != 404 {
		t.Fatalf("/admin with no admin secret: %d", r.status)
	}
}

// TestAdminAuthentication: no credential gets the login form (401), a wrong
// token and an API key are refused (401), the right token works as a bearer
// header and through the login form's cookie (SameSite=Strict, HttpOnly).
func TestAdminAuthentication(t *testing.T) {
	e := newEnv(t, admin.Options{Token: adminToken})
	r := e.do("GET", "/admin", nil)
	if r.status != 401 || !strings.Contains(r.body, `<label for="token">`) || !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("no credential: %d %v\n%s", r.status, r.header, r.body)
	}
	for _, bad := range []string{"Bearer wrong-token-0123456789", "Bearer " + apiKey, "Basic " + adminToken} {
		if r := e.do("GET", "/admin", nil, "Authorization", bad); r.status != 401 || strings.Contains(r.body, "Live calls") {
			t.Fatalf("%q: %d", bad, r.status)
		}
	}
	if r := e.do("GET", "/admin/events", nil, "Authorization", "Bearer "+apiKey); r.status != 401 {
		t.Fatalf("events with an API key: %d", r.status)
	}
	if r := e.do("GET", "/admin", nil, "Authorization", "Bearer "+adminToken); r.status != 200 || !strings.Contains(r.body, "Live calls") {
		t.Fatalf("bearer: %d", r.status)
	}
	if r := e.do("POST", "/admin/login", url.Values{"token": {"nope"}}); r.status != 303 || r.header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong login: %d %v", r.status, r.header)
	}
	r = e.do("POST", "/admin/login", url.Values{"token": {adminToken}})
	ck := r.header.Get("Set-Cookie")
	if r.status != 303 || !strings.Contains(ck, "SameSite=Strict") || !strings.Contains(ck, "HttpOnly") || strings.Contains(ck, adminToken) {
		t.Fatalf("login: %d %q", r.status, ck)
	}
	cookie := strings.SplitN(ck, ";", 2)[0]
	if r := e.do("GET", "/admin", nil, "Cookie", cookie); r.status != 200 || !strings.Contains(r.body, "Live calls") {
		t.Fatalf("cookie: %d", r.status)
	}
	forged := cookie[:len(cookie)-3] + "AAA"
	if r := e.do("GET", "/admin", nil, "Cookie", forged); r.status != 401 {
		t.Fatalf("forged cookie: %d", r.status)
	}
}

// TestAdminSSOHeaderOnlyFromTrustedProxies: the SSO header opens the page
// when the TCP peer is a configured proxy, and is ignored from anyone else.
func TestAdminSSOHeaderOnlyFromTrustedProxies(t *testing.T) {
	trusted := newEnv(t, admin.Options{SSOHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if r := trusted.do("GET", "/admin", nil, "X-Forwarded-User", "olga@acme"); r.status != 200 || !strings.Contains(r.body, "sso:olga@acme") {
		t.Fatalf("SSO from a trusted proxy: %d", r.status)
	}
	untrusted := newEnv(t, admin.Options{SSOHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if r := untrusted.do("GET", "/admin", nil, "X-Forwarded-User", "olga@acme", "X-Forwarded-For", "10.1.2.3"); r.status != 401 {
		t.Fatalf("SSO header from an untrusted peer: %d", r.status)
	}
}

// TestAdminShowsEscapedCallsAndRetriesDeadDeliveries: the page lists the
// live call, its surface and the dead delivery, escaping what users and
// platforms wrote; Retry without the CSRF token is 403, with it the
// delivery is due again.
func TestAdminShowsEscapedCallsAndRetriesDeadDeliveries(t *testing.T) {
	e := newEnv(t, admin.Options{Token: adminToken})
	e.call("hostile")
	e.kill()
	e.health.Record("provider", "jitsi", "unauthenticated", io.ErrUnexpectedEOF)
	login := e.do("POST", "/admin/login", url.Values{"token": {adminToken}})
	cookie := strings.SplitN(login.header.Get("Set-Cookie"), ";", 2)[0]
	r := e.do("GET", "/admin", nil, "Cookie", cookie)
	if r.status != 200 {
		t.Fatalf("page: %d", r.status)
	}
	if strings.Contains(r.body, `<script>alert`) || strings.Contains(r.body, "<b>general") || strings.Contains(r.body, "<oops>") ||
		!strings.Contains(r.body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") || !strings.Contains(r.body, "&lt;b&gt;general&lt;/b&gt;") {
		t.Fatalf("user and provider text not escaped:\n%s", r.body)
	}
	for _, want := range []string{`data-status="dead"`, "callback answered 400", "unexpected EOF", "<th scope=\"col\">Provider</th>", `<noscript><meta http-equiv="refresh"`, "Retry</button>"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("page lacks %q:\n%s", want, r.body)
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	form := url.Values{"call": {"hostile"}, "chat": {"voip"}, "workspace": {"acme"}, "channel": {"<b>general</b>"}}
	if r := e.do("POST", "/admin/retry", form, "Cookie", cookie); r.status != 403 {
		t.Fatalf("retry without CSRF: %d", r.status)
	}
	form.Set("csrf", "wrong")
	if r := e.do("POST", "/admin/retry", form, "Cookie", cookie); r.status != 403 {
		t.Fatalf("retry with a wrong CSRF token: %d", r.status)
	}
	form.Set("csrf", m[1])
	if r := e.do("POST", "/admin/retry", form); r.status != 401 {
		t.Fatalf("retry without a session: %d", r.status)
	}
	if r := e.do("POST", "/admin/retry", form, "Cookie", cookie); r.status != 303 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	c, err := e.svc.Get(context.Background(), "hostile")
	if err != nil || c.Surfaces[0].Delivery.Status() != "pending" {
		t.Fatalf("after retry the delivery is %v (%v)", c.Surfaces[0].Delivery.Status(), err)
	}
}

// TestAdminEventsStreamRosterChanges: /admin/events sends the sections and
// then, after a provider event, the live section with the new roster.
func TestAdminEventsStreamRosterChanges(t *testing.T) {
	e := newEnv(t, admin.Options{Token: adminToken})
	c := e.call("live-one")
	deadline := time.Now().Add(5 * time.Second)
	for c.Room.Name == "" && time.Now().Before(deadline) {
		// Jitsi rooms are instant (made with the call); a provider whose
		// rooms need a worker would get one here as the worker gives it.
		var err error
		c, err = e.st.UpdateCall(context.Background(), c.ID, nil, func(c *calls.Call) ([]calls.Event, error) {
			c.Room = calls.Room{Name: "room-live-one"}
			return []calls.Event{{Kind: calls.EventUpdated, CallID: c.ID, State: c.State, At: time.Now()}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/admin/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() map[string]string {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				m := map[string]string{}
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return nil
	}
	first := next()
	if !strings.Contains(first["live"], "live-one") || strings.Contains(first["live"], "Grace &lt;3") {
		t.Fatalf("first event: %v", first)
	}
	go func() {
		_ = e.svc.ApplyProviderEvents(context.Background(), "jitsi", []calls.ProviderEvent{{
			Kind: calls.ProviderParticipantJoined, Room: c.Room.Name, Identity: "grace", Name: "Grace <3", At: time.Now(),
		}})
	}()
	for {
		m := next()
		if live, ok := m["live"]; ok && strings.Contains(live, "Grace &lt;3") {
			return
		}
	}
}

// TestAdminWrongTokensAreLimited: past the failure budget a client gets
// 429 with Retry-After, even with the right token, so the admin token
// cannot be guessed at speed.
func TestAdminWrongTokensAreLimited(t *testing.T) {
	e := newEnv(t, admin.Options{Token: adminToken, FailureLimit: httpserver.RateLimit{Rate: 0.001, Burst: 3}})
	for i := range 3 {
		if r := e.do("GET", "/admin", nil, "Authorization", "Bearer wrong-"+string(rune('a'+i))); r.status != 401 {
			t.Fatalf("wrong token %d: %d", i, r.status)
		}
	}
	r := e.do("POST", "/admin/login", url.Values{"token": {adminToken}})
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("after the budget: %d %v", r.status, r.header)
	}
}

// TestAdminEventsEndOnShutdown: an open event stream ends when the gateway
// shuts down (Done), so a graceful shutdown does not wait for it.
func TestAdminEventsEndOnShutdown(t *testing.T) {
	done := make(chan struct{})
	e := newEnv(t, admin.Options{Token: adminToken, Done: done})
	req, _ := http.NewRequest("GET", e.url+"/admin/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	close(done)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream outlived the shutdown")
	}
}
