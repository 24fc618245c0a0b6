package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/webhooks"
)

const (
	apiKey          = "test-api-key-0123456789"
	userSecret      = "user-token-secret-0123456789abcdef"
	previousSecret  = "previous-user-token-secret-0123456789"
	webhookSecret   = "jaas-webhook-secret"
	jitsiAppSecret  = "jitsi-app-secret-0123456789"
	testBodyLimit   = 4096
	selfHostedJitsi = "https://meet.example.com"
)

// clock is a settable time source shared by the service, API and signer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gateway is a real callgate HTTP stack on loopback over a real SQLite file.
type gateway struct {
	t     testing.TB
	url   string
	store *store.SQL
	svc   *calls.Service
	clock *clock
	echo  *echo.Echo
}

type gatewayOptions struct {
	guestJoin bool
	// postgresDSN, when set, runs the gateway on PostgreSQL (a schema of
	// its own) instead of SQLite.
	postgresDSN string
	// tune, when set, adjusts the API options before Register.
	tune func(*api.Options)
	// httpTune, when set, adjusts the HTTP plumbing's options before New.
	httpTune func(*httpserver.Options)
}

func newGateway(t testing.TB, o gatewayOptions) *gateway {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	var st *store.SQL
	var err error
	if o.postgresDSN != "" {
		st, err = store.OpenPostgres(ctx, postgresSchema(t, o.postgresDSN))
	} else {
		st, err = store.OpenSQLite(ctx, t.TempDir()+"/callgate.db")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	public, err := jitsi.New(jitsi.Config{BaseURL: "https://meet.jit.si", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	private, err := jitsi.New(jitsi.Config{BaseURL: selfHostedJitsi, AppID: "callgate", AppSecret: jitsiAppSecret,
		WebhookSecrets: []string{webhookSecret}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := calls.NewService(calls.ServiceConfig{
		Store:     st,
		Providers: map[string]calls.Provider{"jitsi": public, "selfhosted": private}, DefaultProvider: "jitsi",
		Logger: log, RingTimeout: 2 * time.Minute, TokenTTL: time.Hour, GuestJoin: o.guestJoin, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rooms are created off the request path, as in the binary.
	rooms := calls.NewRoomWorker(calls.RoomWorkerConfig{
		Store: st, Providers: map[string]calls.Provider{"jitsi": public, "selfhosted": private},
		Wake: svc.Wake(), Logger: log, Now: clk.Now, Poll: 10 * time.Millisecond,
	})
	workCtx, stopWork := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rooms.Run(workCtx, 1) }()
	t.Cleanup(func() { stopWork(); <-done })
	pages, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	links, err := joinlink.NewSigner(clk.Now, []byte("link-secret-0123456789abcdef-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	httpOpts := httpserver.Options{Logger: log, BodyLimit: testBodyLimit, Ready: st}
	if o.httpTune != nil {
		o.httpTune(&httpOpts)
	}
	srv := httpserver.New(httpOpts)
	// The listener exists before the server starts, so its URL can be the
	// public URL while routes are still being registered.
	ts := httptest.NewUnstartedServer(srv.Echo)
	baseURL := "http://" + ts.Listener.Addr().String()
	apiOpts := api.Options{
		Service: svc, Keys: []api.Key{{Name: "test", Secret: apiKey}},
		UserTokenSecrets: [][]byte{[]byte(userSecret), []byte(previousSecret)},
		PublicURL:        baseURL, Links: links, Pages: pages,
		ProviderKinds: map[string]string{"jitsi": "jitsi", "selfhosted": "jitsi"},
		Logger:        log, Now: clk.Now, REST: true,
	}
	if o.tune != nil {
		o.tune(&apiOpts)
	}
	_, err = api.Register(srv.Echo, apiOpts)
	if err != nil {
		t.Fatal(err)
	}
	err = webhooks.RegisterProviders(srv.Echo, webhooks.ProviderOptions{
		Receivers: map[string]webhooks.ProviderReceiver{"selfhosted": private}, Applier: svc, PublicURL: baseURL, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return &gateway{t: t, url: ts.URL, store: st, svc: svc, clock: clk, echo: srv.Echo}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.body)
	}
	return m
}

// joinTarget is where a join page sends its visitor on: the provider's URL
// in the page's data-join attribute ("" when the page has none).
func (r response) joinTarget() string {
	m := regexp.MustCompile(`data-join="([^"]*)"`).FindSubmatch(r.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(string(m[1]))
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	return e["code"].(string)
}

func (r response) call(t *testing.T) map[string]any {
	t.Helper()
	c, ok := r.json(t)["call"].(map[string]any)
	if !ok {
		t.Fatalf("no call object in %s", r.body)
	}
	return c
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request; auth is the Authorization header value ("" for none).
func (g *gateway) do(method, path, auth, contentType string, body []byte) response {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// post sends body as JSON; a nil body sends no body at all (a JSON null is
// refused).
func (g *gateway) post(path, auth string, body any) response {
	g.t.Helper()
	if body == nil {
		return g.do(http.MethodPost, path, auth, "", nil)
	}
	b, err := json.Marshal(body)
	if err != nil {
		g.t.Fatal(err)
	}
	return g.do(http.MethodPost, path, auth, "application/json", b)
}

func (g *gateway) get(path, auth string) response {
	g.t.Helper()
	return g.do(http.MethodGet, path, auth, "", nil)
}

func bearer(s string) string { return "Bearer " + s }

func userToken(t testing.TB, secret, userID string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"user_id": userID}
	if !exp.IsZero() {
		claims["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (g *gateway) userAuth(userID string) string {
	return bearer(userToken(g.t, userSecret, userID, g.clock.Now().Add(time.Hour)))
}

func TestAuthentication(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	now := g.clock.Now()
	tests := []struct {
		name       string
		auth       string
		wantStatus int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong key", bearer("not-the-key-0123456789"), http.StatusUnauthorized},
		{"key prefix", bearer(apiKey[:10]), http.StatusUnauthorized},
		{"api key", bearer(apiKey), http.StatusOK},
		{"bare api key as Stream clients send it", apiKey, http.StatusOK},
		{"lowercase scheme", "bearer " + apiKey, http.StatusOK},
		{"user token", bearer(userToken(t, userSecret, "ada", now.Add(time.Hour))), http.StatusOK},
		{"user token with previous secret", bearer(userToken(t, previousSecret, "ada", now.Add(time.Hour))), http.StatusOK},
		{"user token with other secret", bearer(userToken(t, "some-other-secret-0123456789abcdef", "ada", now.Add(time.Hour))), http.StatusUnauthorized},
		{"expired user token", bearer(userToken(t, userSecret, "ada", now.Add(-time.Hour))), http.StatusUnauthorized},
		{"user token without exp", bearer(userToken(t, userSecret, "ada", time.Time{})), http.StatusUnauthorized},
		{"user token without user", bearer(userToken(t, userSecret, "", now.Add(time.Hour))), http.StatusUnauthorized},
	}
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "auth-call", "guests": true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := g.get("/v1/calls/auth-call", tt.auth)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if res.status == http.StatusUnauthorized {
				if res.errorCode(t) != "unauthenticated" || res.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without code/challenge: %s %v", res.body, res.header)
				}
				if strings.Contains(string(res.body), apiKey) || strings.Contains(string(res.body), userSecret) {
					t.Fatal("an error message carries a secret")
				}
			}
		})
	}
}

func TestCreateIsCaseInsensitiveAndIdempotent(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	first := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "Call-123", "type": "audio", "title": "Standup"})
	if first.status != http.StatusCreated {
		t.Fatalf("first create: %d %s", first.status, first.body)
	}
	c1 := first.call(t)
	second := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "call-123", "type": "video", "title": "Other"})
	if second.status != http.StatusOK {
		t.Fatalf("second create: %d %s", second.status, second.body)
	}
	c2 := second.call(t)
	if c1["id"] != "call-123" || c2["id"] != "call-123" || c2["created_at"] != c1["created_at"] || c2["type"] != "audio" || c2["title"] != "Standup" {
		t.Fatalf("second create did not return the first call:\n%v\n%v", c1, c2)
	}
	for _, field := range []string{"id", "type", "state", "provider", "title", "created_at", "ended_at", "end_reason", "join_url", "members", "participants"} {
		if _, ok := c1[field]; !ok {
			t.Errorf("call object lacks %q: %v", field, c1)
		}
	}
	if c1["state"] != "created" || c1["provider"] != "jitsi" || c1["join_url"] != g.url+"/join/call-123" {
		t.Errorf("call = %v", c1)
	}
	got := g.get("/v1/calls/CALL-123", bearer(apiKey))
	if got.status != http.StatusOK || got.call(t)["id"] != "call-123" {
		t.Fatalf("get by other case: %d %s", got.status, got.body)
	}
	generated := g.post("/v1/calls", bearer(apiKey), map[string]any{})
	if generated.status != http.StatusCreated || len(generated.call(t)["id"].(string)) != calls.IDTimeChars+20 {
		t.Fatalf("create without id: %d %s", generated.status, generated.body)
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"malformed JSON", "application/json", `{"id": "bad-1",`, 400, "malformed_json", "ends too early"},
		{"syntax error", "application/json", `{"id" "bad-1"}`, 400, "malformed_json", "byte"},
		{"wrong type", "application/json", `{"id": 5}`, 400, "malformed_json", `"id" must be a string`},
		{"not an object", "application/json", `[1,2]`, 400, "malformed_json", "JSON object"},
		{"unknown field", "application/json", `{"id":"bad-1","tpye":"audio"}`, 400, "malformed_json", `unknown field "tpye"`},
		{"trailing data", "application/json", `{"id":"bad-1"} {}`, 400, "malformed_json", "after the JSON"},
		{"bad id", "application/json", `{"id":"bad id!"}`, 400, "invalid_id", "position 4"},
		{"bad type", "application/json", `{"id":"bad-1","type":"hologram"}`, 400, "invalid_request", "type"},
		{"bad role", "application/json", `{"id":"bad-1","members":[{"user_id":"a","role":"king"}]}`, 400, "invalid_request", "members[0]"},
		{"empty member", "application/json", `{"id":"bad-1","members":[{"user_id":""}]}`, 400, "invalid_request", "members[0].user_id"},
		{"unknown provider", "application/json", `{"id":"bad-1","provider":"zoomzoom"}`, 400, "unknown_provider", "zoomzoom"},
		{"form body", "application/x-www-form-urlencoded", `id=bad-1`, 415, "unsupported_media_type", "application/json"},
		{"oversized", "application/json", `{"id":"bad-1","title":"` + strings.Repeat("x", testBodyLimit) + `"}`, 413, "body_too_large", "4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := g.do(http.MethodPost, "/v1/calls", bearer(apiKey), tt.contentType, []byte(tt.body))
			if res.status != tt.wantStatus || res.errorCode(t) != tt.wantCode {
				t.Fatalf("got %d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.wantCode)
			}
			msg := res.json(t)["error"].(map[string]any)["message"].(string)
			if !strings.Contains(msg, tt.wantMessage) {
				t.Fatalf("message %q does not contain %q", msg, tt.wantMessage)
			}
			if res := g.get("/v1/calls/bad-1", bearer(apiKey)); res.status != http.StatusNotFound {
				t.Fatalf("a refused request created the call: %d %s", res.status, res.body)
			}
		})
	}
	counts, err := g.store.CountByState(context.Background())
	if err != nil || len(counts) != 0 {
		t.Fatalf("store holds calls after refused requests: %v %v", counts, err)
	}
	if res := g.get("/v1/calls/nope", bearer(apiKey)); res.status != 404 || res.errorCode(t) != "not_found" {
		t.Fatalf("unknown call: %d %s", res.status, res.body)
	}
	if res := g.get("/v2/whatever", bearer(apiKey)); res.status != 404 || res.errorCode(t) != "not_found" {
		t.Fatalf("unknown route: %d %s", res.status, res.body)
	}
}

func TestTokenJoinAndEnd(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "Call-123", "title": "Design review", "guests": true})

	tok := g.post("/v1/calls/call-123/token", bearer(apiKey), map[string]any{"user_id": "ada", "name": "Ada"})
	if tok.status != http.StatusOK {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
	body := tok.json(t)
	joinURL := body["join_url"].(string)
	if !strings.HasPrefix(joinURL, g.url+"/join/call-123?t=") || body["provider"] != "jitsi" || body["provider_kind"] != "jitsi" || body["user_id"] != "ada" {
		t.Fatalf("token response: %v", body)
	}
	expires, err := time.Parse(time.RFC3339, body["expires_at"].(string))
	if err != nil || !expires.Equal(g.clock.Now().Add(time.Hour)) {
		t.Fatalf("expires_at = %v (%v), want one hour from now", body["expires_at"], err)
	}
	fields := body["fields"].(map[string]any)
	room := fields["room"].(string)
	if !strings.HasPrefix(room, "call-123-") {
		t.Fatalf("room %q is not derived from the call id", room)
	}

	// The personal link's page sends the visitor on to the room at the provider.
	u, _ := url.Parse(joinURL)
	res := g.get(u.RequestURI(), "")
	loc := res.joinTarget()
	if res.status != http.StatusOK || !strings.HasPrefix(loc, "https://meet.jit.si/"+room) || !strings.Contains(loc, "Ada") {
		t.Fatalf("personal link: %d Location=%q", res.status, loc)
	}
	if res.header.Get("Cache-Control") != "no-store" || res.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("join response may leak the token: %v", res.header)
	}
	// The stable link admits guests.
	if res := g.get("/join/Call-123", ""); res.status != http.StatusOK || !strings.HasPrefix(res.joinTarget(), "https://meet.jit.si/"+room) {
		t.Fatalf("stable link: %d %v", res.status, res.header)
	}
	// Tampered and foreign links get a page, not a join.
	q := u.Query()
	tampered := q.Get("t")
	tampered = tampered[:len(tampered)-2] + "xx"
	if res := g.get("/join/call-123?t="+url.QueryEscape(tampered), ""); res.status != http.StatusForbidden || !strings.Contains(string(res.body), "not valid") {
		t.Fatalf("tampered link: %d %s", res.status, res.body)
	}
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "other"})
	if res := g.get("/join/other?t="+url.QueryEscape(q.Get("t")), ""); res.status != http.StatusForbidden {
		t.Fatalf("link for another call admitted: %d", res.status)
	}

	// Expired personal links say so.
	g.clock.Advance(2 * time.Hour)
	if res := g.get(u.RequestURI(), ""); res.status != http.StatusForbidden || !strings.Contains(string(res.body), "expired") {
		t.Fatalf("expired link: %d %s", res.status, res.body)
	}

	end := g.post("/v1/calls/CALL-123/end", bearer(apiKey), nil)
	if end.status != http.StatusOK {
		t.Fatalf("end: %d %s", end.status, end.body)
	}
	ended := end.call(t)
	if ended["state"] != "ended" || ended["end_reason"] != "ended_by_api" || ended["ended_at"] == nil {
		t.Fatalf("ended call: %v", ended)
	}
	if res := g.post("/v1/calls/call-123/end", bearer(apiKey), nil); res.status != http.StatusConflict || res.errorCode(t) != "call_ended" {
		t.Fatalf("second end: %d %s", res.status, res.body)
	}
	if res := g.post("/v1/calls/call-123/token", bearer(apiKey), map[string]any{"user_id": "ada"}); res.status != http.StatusConflict {
		t.Fatalf("token for ended call: %d %s", res.status, res.body)
	}
	res = g.get("/join/call-123", "")
	// Guests are admitted here, so the stable link may say the call ended,
	// but only a personal link shows the title.
	if res.status != http.StatusGone || !strings.Contains(string(res.body), "This call has ended") || strings.Contains(string(res.body), "Design review") {
		t.Fatalf("join after end: %d %s", res.status, res.body)
	}
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || res.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("join page headers: %v", res.header)
	}
	if res := g.get("/join/no-such-call", ""); res.status != http.StatusNotFound || !strings.Contains(string(res.body), "No call to join") {
		t.Fatalf("join unknown: %d %s", res.status, res.body)
	}
}

func TestSelfHostedJitsiTokenAuth(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	res := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "private", "provider": "selfhosted", "user_id": "owner-1"})
	if res.status != http.StatusCreated || res.call(t)["provider"] != "selfhosted" || res.call(t)["provider_kind"] != "jitsi" {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	tok := g.post("/v1/calls/private/token", bearer(apiKey), map[string]any{"user_id": "owner-1", "name": "Olga"})
	body := tok.json(t)
	raw, _ := body["token"].(string)
	var claims jwt.MapClaims
	if _, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(jitsiAppSecret), nil },
		jwt.WithTimeFunc(g.clock.Now)); err != nil {
		t.Fatalf("jitsi token does not verify with the app secret: %v (%s)", err, tok.body)
	}
	user := claims["context"].(map[string]any)["user"].(map[string]any)
	if claims["iss"] != "callgate" || claims["room"] != body["fields"].(map[string]any)["room"] || user["moderator"] != true || user["name"] != "Olga" {
		t.Fatalf("claims = %v", claims)
	}
	u, _ := url.Parse(body["join_url"].(string))
	loc := g.get(u.RequestURI(), "").joinTarget()
	if !strings.HasPrefix(loc, selfHostedJitsi+"/") || !strings.Contains(loc, "jwt=") {
		t.Fatalf("redirect %q lacks the jwt", loc)
	}
}

func TestUserTokenPermissions(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: false})
	ada, bob, eve := g.userAuth("ada"), g.userAuth("bob"), g.userAuth("eve")
	res := g.post("/v1/calls", ada, map[string]any{"id": "adas-call", "members": []map[string]any{{"user_id": "bob", "role": "listener"}}})
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	call := res.call(t)
	members := call["members"].([]any)
	if call["created_by"] != "ada" || len(members) != 2 || members[0].(map[string]any)["role"] != "owner" {
		t.Fatalf("creator is not the owner: %v", call)
	}
	tests := []struct {
		name   string
		auth   string
		path   string
		body   any
		status int
	}{
		{"other user cannot create for ada", eve, "/v1/calls", map[string]any{"id": "x", "user_id": "ada"}, 403},
		{"member gets own token", bob, "/v1/calls/adas-call/token", map[string]any{}, 200},
		{"member cannot get another's token", bob, "/v1/calls/adas-call/token", map[string]any{"user_id": "ada"}, 403},
		{"member cannot choose a role", bob, "/v1/calls/adas-call/token", map[string]any{"role": "owner"}, 403},
		{"non-member gets no token without guests", eve, "/v1/calls/adas-call/token", map[string]any{}, 403},
		{"non-member cannot end", eve, "/v1/calls/adas-call/end", nil, 403},
		{"member who is not owner cannot end", bob, "/v1/calls/adas-call/end", nil, 403},
		{"owner ends", ada, "/v1/calls/adas-call/end", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := g.post(tt.path, tt.auth, tt.body)
			if res.status != tt.status {
				t.Fatalf("%d %s, want %d", res.status, res.body, tt.status)
			}
		})
	}
	if res := g.get("/v1/calls/adas-call", eve); res.status != 403 {
		t.Fatalf("non-member read the call: %d", res.status)
	}
	if res := g.get("/v1/calls/adas-call", ada); res.call(t)["end_reason"] != "ended_by_owner" {
		t.Fatalf("end reason: %s", res.body)
	}
	// Guests are off: the stable link points to personal links, with the
	// page an unknown id gets.
	g.post("/v1/calls", ada, map[string]any{"id": "closed"})
	if res := g.get("/join/closed", ""); res.status != 404 || !strings.Contains(string(res.body), "personal link") {
		t.Fatalf("stable link without guests: %d %s", res.status, res.body)
	}
}

// TestRingRefusedByABlock: a REST ring to a user who blocked the caller
// is refused with 409 user_unavailable (no reason given) and stores
// nothing; the same call without ringing is made.
func TestRingRefusedByABlock(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	ada := g.userAuth("ada")
	if err := g.store.Block(t.Context(), "bob", "ada", time.Now()); err != nil {
		t.Fatal(err)
	}
	res := g.post("/v1/calls", ada, map[string]any{"id": "r-refused", "ring": true, "members": []map[string]any{{"user_id": "bob"}}})
	if res.status != 409 || res.errorCode(t) != "user_unavailable" || strings.Contains(string(res.body), "block") {
		t.Fatalf("ring to a user who blocked the caller: %d %s", res.status, res.body)
	}
	if res := g.get("/v1/calls/r-refused", ada); res.status != 404 {
		t.Fatalf("the refused ring was stored: %d %s", res.status, res.body)
	}
	if res := g.post("/v1/calls", ada, map[string]any{"id": "no-ring", "members": []map[string]any{{"user_id": "bob"}}}); res.status != 201 {
		t.Fatalf("a call without ringing: %d %s", res.status, res.body)
	}
}

func TestRinging(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	ada, bob := g.userAuth("ada"), g.userAuth("bob")
	ring := func(id string) {
		res := g.post("/v1/calls", ada, map[string]any{"id": id, "ring": true, "members": []map[string]any{{"user_id": "bob"}}})
		if res.status != 201 || res.call(t)["state"] != "ringing" {
			t.Fatalf("ring %s: %d %s", id, res.status, res.body)
		}
	}
	ring("r1")
	if res := g.post("/v1/calls/r1/accept", bob, nil); res.status != 200 || res.call(t)["state"] != "accepted" {
		t.Fatalf("accept: %d %s", res.status, res.body)
	}
	if res := g.post("/v1/calls/r1/decline", bob, nil); res.status != 409 || res.errorCode(t) != "invalid_transition" {
		t.Fatalf("decline after accept: %d %s", res.status, res.body)
	}
	ring("r2")
	if res := g.post("/v1/calls/r2/decline", bob, nil); res.call(t)["state"] != "rejected" || res.call(t)["end_reason"] != "declined" {
		t.Fatalf("decline: %s", res.body)
	}
	ring("r3")
	if res := g.post("/v1/calls/r3/decline", ada, nil); res.call(t)["state"] != "ended" || res.call(t)["end_reason"] != "cancelled" {
		t.Fatalf("caller cancel: %s", res.body)
	}
	ring("r4")
	if res := g.post("/v1/calls/r4/accept", bearer(apiKey), nil); res.status != 400 {
		t.Fatalf("API key accepting without user_id: %d %s", res.status, res.body)
	}
	g.clock.Advance(119 * time.Second)
	if n, err := g.svc.ExpireOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("expired too early: %d %v", n, err)
	}
	g.clock.Advance(2 * time.Second)
	if n, err := g.svc.ExpireOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("ExpireOnce = %d, %v; want 1", n, err)
	}
	if res := g.get("/v1/calls/r4", ada); res.call(t)["state"] != "missed" || res.call(t)["end_reason"] != "ring_timeout" {
		t.Fatalf("unanswered ring: %s", res.body)
	}
}

func TestStreamCompatibleEndpoints(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	// Stream's JS client sends the user token bare in Authorization.
	ada := userToken(t, userSecret, "ada", g.clock.Now().Add(time.Hour))
	res := g.post("/channels/messaging/general/call", ada, map[string]any{"id": "Standup-1", "type": "video", "options": map[string]any{"anything": 1}})
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	body := res.json(t)
	call := body["call"].(map[string]any)
	jitsiObj, _ := call["jitsi"].(map[string]any)
	if call["id"] != "standup-1" || call["provider"] != "jitsi" || jitsiObj == nil || jitsiObj["room"] == "" {
		t.Fatalf("call object: %v", call)
	}
	if _, ok := body["token"].(string); !ok || body["duration"] == nil {
		t.Fatalf("response lacks token or duration: %v", body)
	}
	again := g.post("/channels/messaging/random/call", ada, map[string]any{"id": "standup-1", "type": "audio"})
	if again.status != http.StatusOK || again.json(t)["call"].(map[string]any)["jitsi"].(map[string]any)["room"] != jitsiObj["room"] {
		t.Fatalf("same id did not return the same call: %d %s", again.status, again.body)
	}
	full := g.get("/v1/calls/standup-1", bearer(apiKey)).call(t)
	if surfaces := full["surfaces"].([]any); len(surfaces) != 2 || surfaces[1].(map[string]any)["conversation_id"] != "messaging:random" {
		t.Fatalf("surfaces = %v", full["surfaces"])
	}
	tok := g.post("/calls/standup-1", g.userAuth("bob"), map[string]any{})
	if tok.status != 200 || tok.json(t)["join_url"] == nil {
		t.Fatalf("get call token: %d %s", tok.status, tok.body)
	}
	if res := g.post("/calls/standup-1", bearer(apiKey), map[string]any{}); res.status != 400 {
		t.Fatalf("API key without user_id: %d %s", res.status, res.body)
	}
	if res := g.post("/calls/nope", bearer(apiKey), map[string]any{"user_id": "x"}); res.status != 404 {
		t.Fatalf("unknown call: %d", res.status)
	}
	if res := g.post("/channels/messaging/general/call", ada, map[string]any{"type": "video"}); res.status != 400 {
		t.Fatalf("missing id: %d %s", res.status, res.body)
	}
}

func TestProviderWebhooksKeepTheRoster(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "roster", "provider": "selfhosted"})
	room := g.post("/v1/calls/roster/token", bearer(apiKey), map[string]any{"user_id": "x"}).json(t)["fields"].(map[string]any)["room"].(string)

	send := func(key, eventType, id string, at time.Time, secret string) response {
		body := []byte(fmt.Sprintf(`{"idempotencyKey":%q,"customerId":"c","appId":"callgate","eventType":%q,"sessionId":"s","timestamp":%d,"fqn":"callgate/%s","data":{"id":%q,"name":"Name %s","participantId":"p-%s"}}`,
			key, eventType, at.UnixMilli(), room, id, id, id))
		req, _ := http.NewRequest(http.MethodPost, g.url+"/webhooks/providers/selfhosted", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Jaas-Signature", signJaaS(secret, g.clock.Now(), body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{status: res.StatusCode, body: b}
	}
	roster := func() []string {
		var ids []string
		for _, p := range g.get("/v1/calls/roster", bearer(apiKey)).call(t)["participants"].([]any) {
			ids = append(ids, p.(map[string]any)["identity"].(string))
		}
		return ids
	}
	t0 := g.clock.Now()
	if res := send("k1", "PARTICIPANT_JOINED", "ada", t0, webhookSecret); res.status != 200 {
		t.Fatalf("joined: %d %s", res.status, res.body)
	}
	if got := roster(); len(got) != 1 || got[0] != "ada" {
		t.Fatalf("roster = %v", got)
	}
	if state := g.get("/v1/calls/roster", bearer(apiKey)).call(t)["state"]; state != "active" {
		t.Fatalf("state after a join = %v, want active", state)
	}
	if res := send("k2", "PARTICIPANT_JOINED", "bob", t0.Add(time.Second), "wrong-secret"); res.status != 401 {
		t.Fatalf("bad signature: %d %s", res.status, res.body)
	}
	if got := roster(); len(got) != 1 {
		t.Fatalf("a refused webhook changed the roster: %v", got)
	}
	send("k3", "PARTICIPANT_LEFT", "ada", t0.Add(2*time.Second), webhookSecret)
	// A late, re-delivered join (older timestamp) does not resurrect ada.
	send("k4", "PARTICIPANT_JOINED", "ada", t0.Add(time.Second), webhookSecret)
	if got := roster(); len(got) != 0 {
		t.Fatalf("late join resurrected: %v", got)
	}
	send("k5", "PARTICIPANT_JOINED", "bob", t0.Add(3*time.Second), webhookSecret)
	send("k5", "PARTICIPANT_JOINED", "bob", t0.Add(3*time.Second), webhookSecret)
	if got := roster(); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("roster = %v", got)
	}
	if res := send("k6", "ROOM_DESTROYED", "", t0.Add(4*time.Second), webhookSecret); res.status != 200 {
		t.Fatalf("room destroyed: %d %s", res.status, res.body)
	}
	c := g.get("/v1/calls/roster", bearer(apiKey)).call(t)
	if c["state"] != "ended" || c["end_reason"] != "room_finished" || len(c["participants"].([]any)) != 0 {
		t.Fatalf("call after room end: %v", c)
	}
	if res := g.do(http.MethodPost, "/webhooks/providers/jitsi", "", "application/json", []byte(`{}`)); res.status != 404 {
		t.Fatalf("provider without webhooks: %d", res.status)
	}
	evs, err := g.store.Events(context.Background(), "roster", 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, string(e.Kind))
	}
	// No "updated" for the room: a Jitsi room is made with the call.
	if got := strings.Join(kinds, ","); got != "created,active,joined,left,joined,ended" {
		t.Fatalf("event log = %s", got)
	}
}
