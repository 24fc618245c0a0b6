package zoom

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

var (
	_ calls.Provider           = (*Provider)(nil)
	_ calls.RoomStatusReporter = (*Provider)(nil)
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const (
	testAccount = "acct-123"
	testClient  = "client-abc"
	testSecret  = "client+secret/with=odd"
	apiBase     = "https://api.zoom.us/v2"
	tokenURL    = "https://zoom.us/oauth/token"
)

// seen is one request the mock answered.
type seen struct {
	Method, Path, Query, Auth, Body string
}

type mock struct {
	t  *testing.T
	tr *httpmock.MockTransport
	mu sync.Mutex
	// reqs in order
	reqs []seen
}

func newMock(t *testing.T, p *Provider) *mock {
	m := &mock{t: t, tr: httpmock.NewMockTransport()}
	p.http.HTTPClient.Transport = m.tr
	return m
}

// on answers method+url with the statuses in order (the last repeats).
func (m *mock) on(method, url string, answers ...httpmock.Responder) {
	i := 0
	m.tr.RegisterResponder(method, url, func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		m.mu.Lock()
		m.reqs = append(m.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(body)})
		m.mu.Unlock()
		a := answers[min(i, len(answers)-1)]
		i++
		return a(r)
	})
}

func (m *mock) count(method, path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.reqs {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func jsonAnswer(status int, v any) httpmock.Responder {
	return func(*http.Request) (*http.Response, error) {
		return httpmock.NewJsonResponse(status, v)
	}
}

func tokenAnswer(tok string) httpmock.Responder {
	return jsonAnswer(200, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3599, "scope": "meeting:write:admin"})
}

func newTestProvider(t testing.TB, mod func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		AccountID: testAccount, ClientID: testClient, ClientSecret: testSecret, UserID: "host@example.com",
		WebhookSecrets: []string{"test_secret_token"},
		Now:            func() time.Time { return testNow },
		HTTP:           httpx.Options{RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var meetingJSON = map[string]any{
	"id": 85746065432, "uuid": "4444AAAiAAAAAiAiAiiAii==", "topic": "Standup", "agenda": "callgate:call-1",
	"status": "waiting", "join_url": "https://us05web.zoom.us/j/85746065432?pwd=abc", "password": "p4ss",
	"start_url": "https://us05web.zoom.us/s/85746065432?zak=eyFRESH",
}

func TestCreateRoomAndTokenCache(t *testing.T) {
	p := newTestProvider(t, nil)
	m := newMock(t, p)
	m.on("POST", tokenURL, tokenAnswer("tok-1"))
	list := apiBase + "/users/host@example.com/meetings"
	// First lookup finds nothing; the second finds the meeting made.
	m.on("GET", list, jsonAnswer(200, map[string]any{"meetings": []any{map[string]any{"id": 1, "agenda": "callgate:other"}}}),
		jsonAnswer(200, map[string]any{"meetings": []any{meetingJSON}}))
	m.on("POST", list, jsonAnswer(201, meetingJSON))
	m.on("GET", apiBase+"/meetings/85746065432", jsonAnswer(200, meetingJSON))

	req := calls.RoomRequest{CallID: "call-1", Title: "Standup", Type: calls.TypeAudio, MaxDuration: 90 * time.Minute}
	room, err := p.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := calls.Room{Name: "85746065432", ProviderID: "85746065432", URL: "https://us05web.zoom.us/j/85746065432?pwd=abc",
		Data: map[string]string{"password": "p4ss", "uuid": "4444AAAiAAAAAiAiAiiAii=="}}
	if !reflect.DeepEqual(room, want) {
		t.Fatalf("room %+v, want %+v", room, want)
	}
	again, err := p.CreateRoom(context.Background(), req)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("second create: %+v %v", again, err)
	}

	// Exact requests: token once, list, create, list, get.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(testClient+":"+testSecret))
	if len(m.reqs) != 5 {
		t.Fatalf("requests %+v", m.reqs)
	}
	tok := m.reqs[0]
	if tok.Method != "POST" || tok.Path != "/oauth/token" || tok.Query != "account_id=acct-123&grant_type=account_credentials" || tok.Auth != basic || tok.Body != "" {
		t.Errorf("token request %+v", tok)
	}
	if r := m.reqs[1]; r.Method != "GET" || r.Path != "/v2/users/host@example.com/meetings" || r.Query != "page_size=300&type=scheduled" || r.Auth != "Bearer tok-1" {
		t.Errorf("list request %+v", r)
	}
	create := m.reqs[2]
	if create.Method != "POST" || create.Path != "/v2/users/host@example.com/meetings" || create.Auth != "Bearer tok-1" {
		t.Errorf("create request %+v", create)
	}
	var body, wantBody map[string]any
	json.Unmarshal([]byte(create.Body), &body)
	json.Unmarshal([]byte(`{"topic":"Standup","type":2,"start_time":"2026-03-14T15:09:26Z","duration":90,"timezone":"UTC",
		"agenda":"callgate:call-1","settings":{"join_before_host":true,"jbh_time":0,"waiting_room":false,
		"host_video":false,"participant_video":false,"approval_type":2,"audio":"both"}}`), &wantBody)
	if !reflect.DeepEqual(body, wantBody) {
		t.Errorf("create body %s", create.Body)
	}
	if r := m.reqs[4]; r.Method != "GET" || r.Path != "/v2/meetings/85746065432" || r.Auth != "Bearer tok-1" {
		t.Errorf("get request %+v", r)
	}
	if n := m.count("POST", "/v2/users/host@example.com/meetings"); n != 1 {
		t.Errorf("%d meetings created, want 1", n)
	}
}

func TestTokenExpiryAndRefreshOn401(t *testing.T) {
	p := newTestProvider(t, nil)
	now := testNow
	p.now = func() time.Time { return now }
	m := newMock(t, p)
	m.on("POST", tokenURL, tokenAnswer("tok-1"), tokenAnswer("tok-2"), tokenAnswer("tok-3"))
	var auths []string
	m.tr.RegisterResponder("GET", apiBase+"/meetings/1", func(r *http.Request) (*http.Response, error) {
		auths = append(auths, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") == "Bearer tok-1" && len(auths) == 2 {
			return httpmock.NewJsonResponse(401, map[string]any{"code": 124, "message": "Invalid access token."})
		}
		return httpmock.NewJsonResponse(200, map[string]any{"id": 1, "status": "started"})
	})
	ctx := context.Background()
	for range 2 {
		if _, err := p.RoomStatus(ctx, calls.Room{Name: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	// The second call met a 401 with tok-1 and went on with tok-2.
	if want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}; !reflect.DeepEqual(auths, want) {
		t.Fatalf("auths %v, want %v", auths, want)
	}
	// Past expiry (less the margin) a new token is fetched.
	now = now.Add(3599*time.Second - tokenMargin + time.Second)
	if _, err := p.RoomStatus(ctx, calls.Room{Name: "1"}); err != nil {
		t.Fatal(err)
	}
	if auths[len(auths)-1] != "Bearer tok-3" || m.count("POST", "/oauth/token") != 3 {
		t.Fatalf("after expiry: %v, %d token requests", auths, m.count("POST", "/oauth/token"))
	}
}

func TestRefreshOnlyOnce(t *testing.T) {
	p := newTestProvider(t, nil)
	m := newMock(t, p)
	m.on("POST", tokenURL, tokenAnswer("tok-1"), tokenAnswer("tok-2"))
	m.on("GET", apiBase+"/meetings/1", jsonAnswer(401, map[string]any{"code": 124}))
	_, err := p.RoomStatus(context.Background(), calls.Room{Name: "1"})
	var perm *calls.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(perm.Reason, "credentials were refused") {
		t.Fatalf("err %v", err)
	}
	if m.count("POST", "/oauth/token") != 2 || m.count("GET", "/v2/meetings/1") != 2 {
		t.Fatalf("requests %+v", m.reqs)
	}
}

func TestOutboundFaults(t *testing.T) {
	list := apiBase + "/users/host@example.com/meetings"
	empty := jsonAnswer(200, map[string]any{"meetings": []any{}})
	for _, tc := range []struct {
		name      string
		answers   []httpmock.Responder
		wantPosts int
		wantTemp  bool
		wantPerm  bool
	}{
		{"503 then created", []httpmock.Responder{jsonAnswer(503, nil), jsonAnswer(201, meetingJSON)}, 2, false, false},
		{"503 until retries run out", []httpmock.Responder{jsonAnswer(503, nil)}, 3, true, false},
		{"429 until retries run out", []httpmock.Responder{jsonAnswer(429, nil)}, 3, true, false},
		{"400 is not retried", []httpmock.Responder{jsonAnswer(400, map[string]any{"code": 300, "message": "Invalid field"})}, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(t, p)
			m.on("POST", tokenURL, tokenAnswer("tok"))
			m.on("GET", list, empty)
			m.on("POST", list, tc.answers...)
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1"})
			if n := m.count("POST", "/v2/users/host@example.com/meetings"); n != tc.wantPosts {
				t.Fatalf("%d create requests, want %d", n, tc.wantPosts)
			}
			var temp *calls.TemporaryError
			var perm *calls.PermanentError
			switch {
			case tc.wantTemp && !errors.As(err, &temp):
				t.Fatalf("err %v, want temporary", err)
			case tc.wantPerm && !errors.As(err, &perm):
				t.Fatalf("err %v, want permanent", err)
			case !tc.wantTemp && !tc.wantPerm && (err != nil || room.Name != "85746065432"):
				t.Fatalf("room %+v err %v", room, err)
			}
			if err != nil && strings.Contains(err.Error(), "tok") {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestCredential(t *testing.T) {
	room := calls.Room{Name: "85746065432", ProviderID: "85746065432", URL: "https://us05web.zoom.us/j/85746065432?pwd=abc", Data: map[string]string{"password": "p4ss"}}
	t.Run("owner gets a fresh start_url", func(t *testing.T) {
		p := newTestProvider(t, nil)
		m := newMock(t, p)
		m.on("POST", tokenURL, tokenAnswer("tok"))
		m.on("GET", apiBase+"/meetings/85746065432", jsonAnswer(200, meetingJSON))
		cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{Role: calls.RoleOwner, UserID: "ada", TTL: 30 * time.Minute, IssuedAt: testNow})
		if err != nil {
			t.Fatal(err)
		}
		if cred.JoinURL != "https://us05web.zoom.us/s/85746065432?zak=eyFRESH" || !cred.ExpiresAt.Equal(testNow.Add(30*time.Minute)) {
			t.Fatalf("cred %+v", cred)
		}
		if !reflect.DeepEqual(cred.Fields, map[string]any{"meeting_id": "85746065432", "password": "p4ss"}) {
			t.Fatalf("fields %v", cred.Fields)
		}
		if m.count("GET", "/v2/meetings/85746065432") != 1 {
			t.Fatal("start_url was not fetched at click time")
		}
	})
	t.Run("start_url lifetime caps the expiry", func(t *testing.T) {
		p := newTestProvider(t, func(c *Config) { c.TokenTTL = 5 * time.Hour })
		m := newMock(t, p)
		m.on("POST", tokenURL, tokenAnswer("tok"))
		m.on("GET", apiBase+"/meetings/85746065432", jsonAnswer(200, meetingJSON))
		cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{Role: calls.RoleOwner, TTL: 4 * time.Hour, IssuedAt: testNow})
		if err != nil || !cred.ExpiresAt.Equal(testNow.Add(2*time.Hour)) {
			t.Fatalf("cred %+v %v", cred, err)
		}
	})
	for _, role := range []calls.Role{calls.RolePanelist, calls.RoleParticipant, calls.RoleListener} {
		t.Run(string(role)+" gets the join_url without a request", func(t *testing.T) {
			p := newTestProvider(t, func(c *Config) { c.JoinURLTemplate = "{{.URL}}&uname={{.Identity}}&m={{.Room}}" })
			m := newMock(t, p)
			cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{Role: role, UserID: "bob", TTL: 10 * time.Minute, IssuedAt: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if cred.JoinURL != room.URL+"&uname=bob&m=85746065432" || cred.Token != "" || !cred.ExpiresAt.Equal(testNow.Add(10*time.Minute)) {
				t.Fatalf("cred %+v", cred)
			}
			if len(m.reqs) != 0 {
				t.Fatalf("requests %+v", m.reqs)
			}
		})
	}
}

func TestEndRoomAndStatus(t *testing.T) {
	for _, tc := range []struct {
		name       string
		end, del   httpmock.Responder
		wantErr    bool
		wantDelete bool
	}{
		{"ended and deleted", jsonAnswer(204, nil), jsonAnswer(204, nil), false, true},
		{"already gone", jsonAnswer(404, map[string]any{"code": 3001}), jsonAnswer(404, map[string]any{"code": 3001}), false, true},
		{"not in progress, already ended", jsonAnswer(400, map[string]any{"code": 3000}), jsonAnswer(400, map[string]any{"code": 3007}), false, true},
		{"5xx is an error", jsonAnswer(500, nil), nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(t, p)
			m.on("POST", tokenURL, tokenAnswer("tok"))
			m.on("PUT", apiBase+"/meetings/42/status", tc.end)
			if tc.del != nil {
				m.on("DELETE", apiBase+"/meetings/42", tc.del)
			}
			err := p.EndRoom(context.Background(), calls.Room{Name: "42"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if got := m.count("DELETE", "/v2/meetings/42"); (got == 1) != tc.wantDelete {
				t.Fatalf("%d deletes", got)
			}
			for _, r := range m.reqs {
				if r.Method == "PUT" && (r.Body != `{"action":"end"}` || r.Auth != "Bearer tok") {
					t.Fatalf("end request %+v", r)
				}
			}
		})
	}

	for _, tc := range []struct {
		name     string
		answer   httpmock.Responder
		wantGone bool
		wantErr  bool
	}{
		{"finished is gone", jsonAnswer(200, map[string]any{"id": 42, "status": "finished"}), true, false},
		{"started", jsonAnswer(200, map[string]any{"id": 42, "status": "started"}), false, false},
		{"waiting says nothing", jsonAnswer(200, map[string]any{"id": 42, "status": "waiting"}), false, false},
		{"404 is ambiguous", jsonAnswer(404, map[string]any{"code": 3001}), false, true},
		{"5xx is ambiguous", jsonAnswer(503, nil), false, true},
	} {
		t.Run("status "+tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(t, p)
			m.on("POST", tokenURL, tokenAnswer("tok"))
			m.on("GET", apiBase+"/meetings/42", tc.answer)
			st, err := p.RoomStatus(context.Background(), calls.Room{Name: "42"})
			if (err != nil) != tc.wantErr || st.Gone != tc.wantGone || st.Listed {
				t.Fatalf("status %+v err %v", st, err)
			}
		})
	}
}
