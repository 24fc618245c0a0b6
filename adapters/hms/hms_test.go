package hms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

const (
	testAPI       = "https://api.100ms.test"
	testAccessKey = "6188f1f1c6a5a4e0b8d5a111"
	testSecret    = "s3cr3t+/=app-secret-of-100ms-example"
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// recorded is one request the mock saw.
type recorded struct {
	Method, Path, Auth, ContentType string
	Body                            map[string]any
}

// mock is an httpmock transport on a fast-retrying httpx client.
type mock struct {
	t  *testing.T
	mt *httpmock.MockTransport
	mu sync.Mutex
	rs []recorded
}

func newTestProvider(t *testing.T, mod func(*Config)) (*Provider, *mock) {
	t.Helper()
	m := &mock{t: t, mt: httpmock.NewMockTransport()}
	client := httpx.New(httpx.Options{RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	client.HTTPClient.Transport = m.mt
	cfg := Config{
		AccessKey: testAccessKey, AppSecret: testSecret, TemplateID: "tmpl-1", Region: "eu",
		APIURL: testAPI, HTTP: client, Now: func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// on answers method+path with the statuses in turn (the last repeats),
// recording every request.
func (m *mock) on(method, path string, answers ...answer) {
	i := 0
	m.mt.RegisterResponder(method, testAPI+path, func(r *http.Request) (*http.Response, error) {
		rec := recorded{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		if r.Body != nil {
			raw, _ := io.ReadAll(r.Body)
			if len(raw) > 0 {
				if err := json.Unmarshal(raw, &rec.Body); err != nil {
					m.t.Errorf("%s %s: body is not JSON: %s", method, path, raw)
				}
			}
		}
		m.mu.Lock()
		m.rs = append(m.rs, rec)
		m.mu.Unlock()
		a := answers[min(i, len(answers)-1)]
		i++
		return httpmock.NewStringResponse(a.status, a.body), nil
	})
}

type answer struct {
	status int
	body   string
}

func (m *mock) requests() []recorded {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recorded(nil), m.rs...)
}

// claimsOf verifies an HS256 token with the app secret and returns its claims.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		if tok.Method != jwt.SigningMethodHS256 {
			t.Fatalf("alg %v", tok.Header["alg"])
		}
		return []byte(testSecret), nil
	}, jwt.WithTimeFunc(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func checkManagement(t *testing.T, auth string) {
	t.Helper()
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		t.Fatalf("authorization %q is not a bearer token", auth)
	}
	c := claimsOf(t, token)
	iat := testNow.Add(-10 * time.Second).Unix()
	if c["access_key"] != testAccessKey || c["type"] != "management" || c["version"] != float64(2) ||
		c["iat"] != float64(iat) || c["nbf"] != float64(iat) || c["exp"] != float64(iat+86400) || c["jti"] == "" || c["jti"] == nil {
		t.Fatalf("management claims %v", c)
	}
	if len(c) != 7 {
		t.Fatalf("management token has extra claims: %v", c)
	}
}

func isTemporary(err error) bool {
	var te *calls.TemporaryError
	return errors.As(err, &te)
}

func isPermanent(err error) bool {
	var pe *calls.PermanentError
	return errors.As(err, &pe)
}

const roomAnswer = `{"id":"631b2654f771854d9bf633df","name":"call-abc","enabled":true,"template_id":"tmpl-1","region":"eu"}`

func TestCreateRoomRequest(t *testing.T) {
	p, m := newTestProvider(t, nil)
	m.on("POST", "/v2/rooms", answer{200, roomAnswer})
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc", Title: "Standup", MaxDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(room, calls.Room{Name: "call-abc", ProviderID: "631b2654f771854d9bf633df"}) {
		t.Fatalf("room %+v", room)
	}
	rs := m.requests()
	if len(rs) != 1 {
		t.Fatalf("%d requests", len(rs))
	}
	r := rs[0]
	checkManagement(t, r.Auth)
	want := map[string]any{"name": "call-abc", "template_id": "tmpl-1", "region": "eu", "max_duration_seconds": float64(3600)}
	if r.Method != "POST" || r.Path != "/v2/rooms" || r.ContentType != "application/json" || !equalJSON(r.Body, want) {
		t.Fatalf("request %+v", r)
	}
}

func TestCreateRoomBodyEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		max  time.Duration
		want map[string]any
	}{
		{"no template, region or limit", func(c *Config) { c.TemplateID, c.Region = "", "" }, 0, map[string]any{"name": "call-abc"}},
		{"limit below 100ms's minimum", nil, 30 * time.Second, map[string]any{"name": "call-abc", "template_id": "tmpl-1", "region": "eu", "max_duration_seconds": float64(120)}},
		{"limit above 100ms's maximum", nil, 24 * time.Hour, map[string]any{"name": "call-abc", "template_id": "tmpl-1", "region": "eu", "max_duration_seconds": float64(43200)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, tc.mod)
			m.on("POST", "/v2/rooms", answer{200, roomAnswer})
			if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc", MaxDuration: tc.max}); err != nil {
				t.Fatal(err)
			}
			if got := m.requests()[0].Body; !equalJSON(got, tc.want) {
				t.Fatalf("body %v, want %v", got, tc.want)
			}
		})
	}
}

// 100ms returns the existing room for an existing name: two creates for
// one call id give one room.
func TestCreateRoomIdempotent(t *testing.T) {
	p, m := newTestProvider(t, nil)
	m.on("POST", "/v2/rooms", answer{200, roomAnswer})
	a, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"})
	if err != nil || !equalJSON(a, b) {
		t.Fatalf("second create %+v %v, first %+v", b, err, a)
	}
	rs := m.requests()
	// One management token serves both calls.
	if len(rs) != 2 || rs[0].Auth != rs[1].Auth || !equalJSON(rs[0].Body, rs[1].Body) {
		t.Fatalf("requests %+v", rs)
	}
}

func TestCreateRoomFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answers   []answer
		wantCalls int
		check     func(error) bool
	}{
		{"503 then 200 is one room", []answer{{503, `{"message":"busy"}`}, {200, roomAnswer}}, 2, func(err error) bool { return err == nil }},
		{"429 then 200", []answer{{429, ``}, {200, roomAnswer}}, 2, func(err error) bool { return err == nil }},
		{"503 until retries run out is temporary", []answer{{503, ``}}, 3, isTemporary},
		{"400 is permanent and not retried", []answer{{400, `{"code":400,"message":"template not found"}`}}, 1, isPermanent},
		{"401 is permanent and not retried", []answer{{401, `{"message":"Token validation error"}`}}, 1, isPermanent},
		{"200 without an id is temporary", []answer{{200, `{}`}}, 1, isTemporary},
		{"200 that is not JSON is temporary", []answer{{200, `<html>`}}, 1, isTemporary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("POST", "/v2/rooms", tc.answers...)
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"})
			if !tc.check(err) {
				t.Fatalf("err %v (%T)", err, err)
			}
			if err == nil && room.ProviderID != "631b2654f771854d9bf633df" {
				t.Fatalf("room %+v", room)
			}
			if n := len(m.requests()); n != tc.wantCalls {
				t.Fatalf("%d calls, want %d", n, tc.wantCalls)
			}
			for _, r := range m.requests() {
				checkManagement(t, r.Auth)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Fatal("error leaks the secret")
			}
		})
	}
	p, _ := newTestProvider(t, nil)
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("no call id: %v", err)
	}
}

func TestManagementTokenCacheAndRefresh(t *testing.T) {
	now := testNow
	p, m := newTestProvider(t, func(c *Config) { c.Now = func() time.Time { return now } })
	m.on("POST", "/v2/rooms", answer{200, roomAnswer})
	create := func() string {
		t.Helper()
		if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"}); err != nil {
			t.Fatal(err)
		}
		rs := m.requests()
		return rs[len(rs)-1].Auth
	}
	first := create()
	now = testNow.Add(23 * time.Hour)
	if create() != first {
		t.Fatal("a token valid for another hour was not reused")
	}
	now = testNow.Add(24*time.Hour - 5*time.Minute)
	renewed := create()
	if renewed == first {
		t.Fatal("a token about to expire was reused")
	}

	// A 401 drops the cached token: the next call mints a fresh one.
	m.mt.Reset()
	m.on("POST", "/v2/rooms", answer{401, `{"message":"Token validation error"}`})
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"}); !isPermanent(err) {
		t.Fatalf("401: %v", err)
	}
	m.mt.Reset()
	m.on("POST", "/v2/rooms", answer{200, roomAnswer})
	now = now.Add(time.Second)
	if create() == renewed {
		t.Fatal("the refused token was reused")
	}
}

func TestEndRoom(t *testing.T) {
	room := calls.Room{Name: "call-abc", ProviderID: "631b2654f771854d9bf633df"}
	endPath := "/v2/active-rooms/631b2654f771854d9bf633df/end-room"
	roomPath := "/v2/rooms/631b2654f771854d9bf633df"
	for _, tc := range []struct {
		name    string
		end     []answer
		disable []answer
		want    []string // method path of each request
		check   func(error) bool
	}{
		{"active session ends, room locked", []answer{{200, `{"message":"session is ending"}`}}, nil, []string{"POST " + endPath}, func(err error) bool { return err == nil }},
		{"no active session: the room is disabled", []answer{{404, `{"code":404,"message":"session not found"}`}}, []answer{{200, `{"id":"631b2654f771854d9bf633df","enabled":false}`}}, []string{"POST " + endPath, "POST " + roomPath}, func(err error) bool { return err == nil }},
		{"room gone altogether", []answer{{404, ``}}, []answer{{404, ``}}, []string{"POST " + endPath, "POST " + roomPath}, func(err error) bool { return err == nil }},
		{"5xx then ok", []answer{{502, ``}, {200, `{}`}}, nil, []string{"POST " + endPath, "POST " + endPath}, func(err error) bool { return err == nil }},
		{"5xx throughout is temporary", []answer{{503, ``}}, nil, []string{"POST " + endPath, "POST " + endPath, "POST " + endPath}, isTemporary},
		{"403 is permanent", []answer{{403, ``}}, nil, []string{"POST " + endPath}, isPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("POST", endPath, tc.end...)
			if tc.disable != nil {
				m.on("POST", roomPath, tc.disable...)
			}
			err := p.EndRoom(context.Background(), room)
			if !tc.check(err) {
				t.Fatalf("err %v", err)
			}
			rs := m.requests()
			var got []string
			for _, r := range rs {
				got = append(got, r.Method+" "+r.Path)
				checkManagement(t, r.Auth)
				switch r.Path {
				case endPath:
					if !equalJSON(r.Body, map[string]any{"reason": "The call has ended", "lock": true}) {
						t.Errorf("end-room body %v", r.Body)
					}
				case roomPath:
					if !equalJSON(r.Body, map[string]any{"enabled": false}) {
						t.Errorf("disable body %v", r.Body)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("requests %v, want %v", got, tc.want)
			}
		})
	}
	p, m := newTestProvider(t, nil)
	if err := p.EndRoom(context.Background(), calls.Room{Name: "x"}); err != nil || len(m.requests()) != 0 {
		t.Fatalf("a room without an id: %v, %d requests", err, len(m.requests()))
	}
}

func TestRoomStatus(t *testing.T) {
	room := calls.Room{Name: "call-abc", ProviderID: "r1"}
	peers := `{"peers":{"p1":{"id":"p1","name":"Ann","user_id":"slack:U1","role":"host","joined_at":"2025-03-04T05:00:00Z"},"p2":{"id":"p2","name":"Guest","user_id":"","joined_at":"2025-03-04T05:01:00Z"}}}`
	for _, tc := range []struct {
		name     string
		room     []answer
		peers    []answer
		want     calls.RoomStatus
		wantErr  bool
		wantSent int
	}{
		{"disabled room is gone", []answer{{200, `{"id":"r1","name":"call-abc","enabled":false}`}}, nil, calls.RoomStatus{Gone: true}, false, 1},
		{"enabled room lists its peers", []answer{{200, `{"id":"r1","enabled":true}`}}, []answer{{200, peers}}, calls.RoomStatus{Listed: true, Participants: []calls.Participant{
			{Identity: "p2", Name: "Guest", JoinedAt: time.Date(2025, 3, 4, 5, 1, 0, 0, time.UTC)},
			{Identity: "slack:U1", Name: "Ann", JoinedAt: time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)},
		}}, false, 2},
		{"enabled room, empty active session", []answer{{200, `{"id":"r1","enabled":true}`}}, []answer{{200, `{"peers":{}}`}}, calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}, false, 2},
		{"no active session is unknown, not gone or empty", []answer{{200, `{"id":"r1","enabled":true}`}}, []answer{{404, `{"code":404,"message":"room not active"}`}}, calls.RoomStatus{}, true, 2},
		{"room 404 is unknown", []answer{{404, ``}}, nil, calls.RoomStatus{}, true, 1},
		{"room 5xx is unknown", []answer{{500, ``}}, nil, calls.RoomStatus{}, true, 3},
		{"answer without enabled is unknown", []answer{{200, `{"id":"r1"}`}}, nil, calls.RoomStatus{}, true, 1},
		{"peers 5xx is unknown", []answer{{200, `{"id":"r1","enabled":true}`}}, []answer{{503, ``}}, calls.RoomStatus{}, true, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("GET", "/v2/rooms/r1", tc.room...)
			if tc.peers != nil {
				m.on("GET", "/v2/active-rooms/r1/peers", tc.peers...)
			}
			st, err := p.RoomStatus(context.Background(), room)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			sortParticipants(st.Participants)
			if !equalStatus(st, tc.want) {
				t.Fatalf("status %+v, want %+v", st, tc.want)
			}
			if n := len(m.requests()); n != tc.wantSent {
				t.Fatalf("%d requests, want %d", n, tc.wantSent)
			}
			for _, r := range m.requests() {
				checkManagement(t, r.Auth)
			}
		})
	}
}

func TestCredential(t *testing.T) {
	room := calls.Room{Name: "call-abc", ProviderID: "631b2654f771854d9bf633df"}
	for _, tc := range []struct {
		name     string
		mod      func(*Config)
		role     calls.Role
		ttl      time.Duration
		wantRole string
		wantTTL  time.Duration
	}{
		{"owner is host", nil, calls.RoleOwner, time.Hour, "host", time.Hour},
		{"panelist is host", nil, calls.RolePanelist, time.Hour, "host", time.Hour},
		{"participant is guest", nil, calls.RoleParticipant, time.Hour, "guest", time.Hour},
		{"presenter is guest", nil, calls.RolePresenter, time.Hour, "guest", time.Hour},
		{"listener is viewer", nil, calls.RoleListener, time.Hour, "viewer", time.Hour},
		{"roles map overrides", func(c *Config) { c.Roles = map[calls.Role]string{calls.RoleListener: "audience"} }, calls.RoleListener, time.Hour, "audience", time.Hour},
		{"token_ttl bounds a longer request", func(c *Config) { c.TokenTTL = 10 * time.Minute }, calls.RoleParticipant, time.Hour, "guest", 10 * time.Minute},
		{"a shorter request wins", nil, calls.RoleParticipant, 5 * time.Minute, "guest", 5 * time.Minute},
		{"no lifetime asked: token_ttl", nil, calls.RoleParticipant, 0, "guest", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, tc.mod)
			cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{CallID: "call-abc", UserID: "slack:U1", Name: "Ann", Role: tc.role, TTL: tc.ttl, IssuedAt: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.requests()) != 0 {
				t.Fatal("a join token is minted locally, without REST")
			}
			c := claimsOf(t, cred.Token)
			iat := float64(testNow.Add(-10 * time.Second).Unix())
			exp := testNow.Add(tc.wantTTL)
			if c["access_key"] != testAccessKey || c["type"] != "app" || c["version"] != float64(2) || c["room_id"] != room.ProviderID ||
				c["role"] != tc.wantRole || c["user_id"] != "slack:U1" || c["iat"] != iat || c["nbf"] != iat || c["exp"] != float64(exp.Unix()) || c["jti"] == nil || len(c) != 10 {
				t.Fatalf("claims %v", c)
			}
			if !cred.ExpiresAt.Equal(exp) {
				t.Fatalf("expires %v, want %v", cred.ExpiresAt, exp)
			}
			want := map[string]any{"room_id": room.ProviderID, "room_name": "call-abc", "role": tc.wantRole}
			if !equalJSON(cred.Fields, want) || cred.JoinURL != "" {
				t.Fatalf("fields %v, join url %q", cred.Fields, cred.JoinURL)
			}
		})
	}
	// Every token gets its own jti.
	p, _ := newTestProvider(t, nil)
	a, _ := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "u", IssuedAt: testNow})
	b, _ := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "u", IssuedAt: testNow})
	if claimsOf(t, a.Token)["jti"] == claimsOf(t, b.Token)["jti"] {
		t.Fatal("two tokens share a jti")
	}
	for _, bad := range []struct {
		room calls.Room
		req  calls.CredentialRequest
	}{
		{calls.Room{Name: "x"}, calls.CredentialRequest{UserID: "u"}},
		{room, calls.CredentialRequest{}},
		{room, calls.CredentialRequest{UserID: "u", TTL: -time.Second}},
	} {
		if _, err := p.Credential(context.Background(), bad.room, bad.req); !errors.Is(err, calls.ErrInvalidInput) {
			t.Errorf("%+v %+v: %v", bad.room, bad.req, err)
		}
	}
}

func TestCredentialJoinURLTemplate(t *testing.T) {
	p, _ := newTestProvider(t, func(c *Config) {
		c.JoinURLTemplate = "https://team.app.100ms.live/preview/{{.RoomID}}/{{.Role}}?token={{.Token}}&name={{.Room}}"
	})
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-abc", ProviderID: "r1"}, calls.CredentialRequest{UserID: "u1", Role: calls.RoleOwner, IssuedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://team.app.100ms.live/preview/r1/host?token=" + cred.Token + "&name=call-abc"; cred.JoinURL != want {
		t.Fatalf("join url %q, want %q", cred.JoinURL, want)
	}
	if _, err := New(Config{AccessKey: "a", AppSecret: testSecret, JoinURLTemplate: "{{.Nope}}"}); err == nil {
		t.Fatal("a template naming an unknown field was accepted")
	}
}

func TestStreamCall(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	got := p.StreamCall(calls.Room{Name: "call-abc", ProviderID: "r1"})
	if !equalJSON(got, map[string]any{"room": "call-abc", "room_id": "r1", "room_name": "call-abc"}) {
		t.Fatalf("stream call %v", got)
	}
}

// equalJSON compares two values by their JSON encoding.
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func equalStatus(a, b calls.RoomStatus) bool {
	return a.Gone == b.Gone && a.Listed == b.Listed && equalJSON(a.Participants, b.Participants)
}

func sortParticipants(ps []calls.Participant) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Identity < ps[j-1].Identity; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// A room-strategy name replaces the call id as the room's name.
func TestCreateRoomUsesTheStrategyName(t *testing.T) {
	p, m := newTestProvider(t, nil)
	var got string
	m.mt.RegisterResponder("POST", testAPI+"/v2/rooms", func(r *http.Request) (*http.Response, error) {
		var body struct{ Name string }
		json.NewDecoder(r.Body).Decode(&body)
		got = body.Name
		return httpmock.NewStringResponse(200, `{"id":"r-1","name":"`+got+`"}`), nil
	})
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-2", Name: "cgc0123456789abcdef012345"})
	if err != nil || got != "cgc0123456789abcdef012345" || room.Name != got {
		t.Fatalf("room %+v, name %q, err %v", room, got, err)
	}
}
