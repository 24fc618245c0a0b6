package streamvideo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
	testKey    = "mmhfdzb5evj2"
	testSecret = "test_secret_do_not_use_in_production"
	apiBase    = "https://video.stream-io-api.com"
)

type seen struct {
	Method, Path, Query, Auth, AuthType, Body string
}

type mock struct {
	tr   *httpmock.MockTransport
	mu   sync.Mutex
	reqs []seen
}

func newMock(p *Provider) *mock {
	m := &mock{tr: httpmock.NewMockTransport()}
	p.http.HTTPClient.Transport = m.tr
	return m
}

func (m *mock) on(method, url string, answers ...httpmock.Responder) {
	i := 0
	m.tr.RegisterResponder(method, url, func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		m.mu.Lock()
		m.reqs = append(m.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Stream-Auth-Type"), string(body)})
		m.mu.Unlock()
		a := answers[min(i, len(answers)-1)]
		i++
		return a(r)
	})
}

func (m *mock) count(method, path string) int {
	n := 0
	for _, r := range m.reqs {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func jsonAnswer(status int, v any) httpmock.Responder {
	return func(*http.Request) (*http.Response, error) { return httpmock.NewJsonResponse(status, v) }
}

func newTestProvider(t testing.TB, mod func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		APIKey: testKey, Secrets: []string{testSecret}, Now: func() time.Time { return testNow },
		HTTP: httpx.Options{RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond},
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

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body %s\nwant %s", got, want)
	}
}

var callJSON = map[string]any{"call": map[string]any{"cid": "default:call-1", "id": "call-1", "type": "default"}, "created": true}

func TestServerToken(t *testing.T) {
	p := newTestProvider(t, nil)
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(p.serverToken, claims, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(claims, jwt.MapClaims{"server": true}) {
		t.Fatalf("server claims %v", claims)
	}
}

func TestCreateRoom(t *testing.T) {
	p := newTestProvider(t, nil)
	m := newMock(p)
	m.on("POST", apiBase+"/api/v2/users", jsonAnswer(201, map[string]any{"users": map[string]any{}}))
	m.on("POST", apiBase+"/api/v2/video/call/default/call-1", jsonAnswer(201, callJSON), jsonAnswer(200, map[string]any{"call": callJSON["call"], "created": false}))
	req := calls.RoomRequest{CallID: "call-1", Type: calls.TypeVideo, MaxDuration: 30 * time.Minute}
	want := calls.Room{Name: "call-1", ProviderID: "default:call-1", Data: map[string]string{"call_type": "default"}}
	for range 2 {
		room, err := p.CreateRoom(context.Background(), req)
		if err != nil || !reflect.DeepEqual(room, want) {
			t.Fatalf("room %+v err %v", room, err)
		}
	}
	if len(m.reqs) != 3 || m.count("POST", "/api/v2/users") != 1 {
		t.Fatalf("requests %+v", m.reqs)
	}
	for _, r := range m.reqs {
		if r.Query != "api_key="+testKey || r.Auth != p.serverToken || r.AuthType != "jwt" {
			t.Fatalf("auth of %+v", r)
		}
	}
	jsonEqual(t, m.reqs[0].Body, `{"users":{"callgate":{"id":"callgate","name":"callgate"}}}`)
	jsonEqual(t, m.reqs[1].Body, `{"video":true,"data":{"created_by_id":"callgate","custom":{"callgate_id":"call-1"},"settings_override":{"limits":{"max_duration_seconds":1800}}}}`)
}

func TestAudioCallType(t *testing.T) {
	p := newTestProvider(t, func(c *Config) { c.AudioCallType = "audio_room"; c.CreatedByID = "bot" })
	m := newMock(p)
	m.on("POST", apiBase+"/api/v2/users", jsonAnswer(201, nil))
	m.on("POST", apiBase+"/api/v2/video/call/audio_room/c2", jsonAnswer(201, map[string]any{"call": map[string]any{"cid": "audio_room:c2", "id": "c2"}}))
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "c2", Type: calls.TypeAudio})
	if err != nil || room.ProviderID != "audio_room:c2" || room.Data["call_type"] != "audio_room" {
		t.Fatalf("room %+v %v", room, err)
	}
	jsonEqual(t, m.reqs[1].Body, `{"video":false,"data":{"created_by_id":"bot","custom":{"callgate_id":"c2"}}}`)
}

func TestOutboundFaults(t *testing.T) {
	path := apiBase + "/api/v2/video/call/default/call-1"
	for _, tc := range []struct {
		name      string
		answers   []httpmock.Responder
		wantPosts int
		wantTemp  bool
		wantPerm  bool
	}{
		{"503 then ok", []httpmock.Responder{jsonAnswer(503, nil), jsonAnswer(201, callJSON)}, 2, false, false},
		{"retries run out", []httpmock.Responder{jsonAnswer(502, nil)}, 3, true, false},
		{"403 is not retried", []httpmock.Responder{jsonAnswer(403, map[string]any{"code": 17, "message": "not allowed"})}, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(p)
			m.on("POST", apiBase+"/api/v2/users", jsonAnswer(201, nil))
			m.on("POST", path, tc.answers...)
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1"})
			if n := m.count("POST", "/api/v2/video/call/default/call-1"); n != tc.wantPosts {
				t.Fatalf("%d posts, want %d", n, tc.wantPosts)
			}
			var temp *calls.TemporaryError
			var perm *calls.PermanentError
			switch {
			case tc.wantTemp && !errors.As(err, &temp):
				t.Fatalf("err %v", err)
			case tc.wantPerm && !errors.As(err, &perm):
				t.Fatalf("err %v", err)
			case !tc.wantTemp && !tc.wantPerm && (err != nil || room.Name != "call-1"):
				t.Fatalf("room %+v err %v", room, err)
			}
		})
	}
	// A failed creator upsert is retried on the next CreateRoom.
	p := newTestProvider(t, nil)
	m := newMock(p)
	m.on("POST", apiBase+"/api/v2/users", jsonAnswer(400, nil), jsonAnswer(201, nil))
	m.on("POST", path, jsonAnswer(201, callJSON))
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1"}); err == nil {
		t.Fatal("creator upsert failure ignored")
	}
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1"}); err != nil {
		t.Fatal(err)
	}
}

func parseUserToken(t *testing.T, token, secret string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return testNow }), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func TestCredential(t *testing.T) {
	room := calls.Room{Name: "call-1", ProviderID: "default:call-1", Data: map[string]string{"call_type": "default"}}
	for _, tc := range []struct {
		role calls.Role
		want string
	}{
		{calls.RoleOwner, "admin"}, {calls.RolePanelist, "admin"}, {calls.RolePresenter, "call_member"},
		{calls.RoleParticipant, "call_member"}, {calls.RoleListener, "user"},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			p := newTestProvider(t, func(c *Config) {
				c.TokenTTL = 20 * time.Minute
				c.JoinURLTemplate = "https://app.example/join/{{.CallType}}/{{.Room}}?api_key={{.APIKey}}&token={{.Token}}&u={{.Identity}}"
			})
			m := newMock(p)
			cred, err := p.Credential(context.Background(), room, calls.CredentialRequest{UserID: "ada", Role: tc.role, TTL: time.Hour, IssuedAt: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.reqs) != 0 {
				t.Fatal("credential made a request")
			}
			claims := parseUserToken(t, cred.Token, testSecret)
			want := jwt.MapClaims{"user_id": "ada", "iat": float64(testNow.Add(-clockSkew).Unix()), "exp": float64(testNow.Add(20 * time.Minute).Unix()),
				"call_cids": []any{"default:call-1"}, "role": tc.want}
			if !reflect.DeepEqual(claims, want) {
				t.Fatalf("claims %v, want %v", claims, want)
			}
			if !cred.ExpiresAt.Equal(testNow.Add(20 * time.Minute)) {
				t.Fatalf("expires %v", cred.ExpiresAt)
			}
			if !reflect.DeepEqual(cred.Fields, map[string]any{"api_key": testKey, "call_type": "default", "call_id": "call-1", "user_id": "ada", "role": tc.want}) {
				t.Fatalf("fields %v", cred.Fields)
			}
			if cred.JoinURL != "https://app.example/join/default/call-1?api_key="+testKey+"&token="+cred.Token+"&u=ada" {
				t.Fatalf("join url %s", cred.JoinURL)
			}
		})
	}
	p := newTestProvider(t, nil)
	if _, err := p.Credential(context.Background(), room, calls.CredentialRequest{Role: calls.RoleOwner}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("no user id: %v", err)
	}
}

func TestEndRoomAndStatus(t *testing.T) {
	room := calls.Room{Name: "call-1", ProviderID: "default:call-1", Data: map[string]string{"call_type": "default"}}
	for _, tc := range []struct {
		name    string
		answer  httpmock.Responder
		wantErr bool
	}{
		{"ended", jsonAnswer(201, map[string]any{"duration": "1ms"}), false},
		{"already gone", jsonAnswer(404, map[string]any{"code": 16}), false},
		{"5xx", jsonAnswer(500, nil), true},
	} {
		t.Run("end "+tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(p)
			m.on("POST", apiBase+"/api/v2/video/call/default/call-1/mark_ended", tc.answer)
			if err := p.EndRoom(context.Background(), room); (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if r := m.reqs[0]; r.Body != "" || r.Auth != p.serverToken || r.Query != "api_key="+testKey {
				t.Fatalf("end request %+v", r)
			}
		})
	}
	joined := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		answer  httpmock.Responder
		want    calls.RoomStatus
		wantErr bool
	}{
		{"ended is gone", jsonAnswer(200, map[string]any{"call": map[string]any{"id": "call-1", "ended_at": "2026-03-14T15:05:00Z"}}), calls.RoomStatus{Gone: true}, false},
		{"session roster", jsonAnswer(200, map[string]any{"call": map[string]any{"id": "call-1", "session": map[string]any{"participants": []any{
			map[string]any{"joined_at": "2026-03-14T15:00:00Z", "user": map[string]any{"id": "ada", "name": "Ada"}}}}}}),
			calls.RoomStatus{Listed: true, Participants: []calls.Participant{{Identity: "ada", Name: "Ada", JoinedAt: joined}}}, false},
		{"no session: empty", jsonAnswer(200, map[string]any{"call": map[string]any{"id": "call-1"}}), calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}, false},
		{"404 is ambiguous", jsonAnswer(404, nil), calls.RoomStatus{}, true},
		{"5xx is ambiguous", jsonAnswer(503, nil), calls.RoomStatus{}, true},
	} {
		t.Run("status "+tc.name, func(t *testing.T) {
			p := newTestProvider(t, nil)
			m := newMock(p)
			m.on("GET", apiBase+"/api/v2/video/call/default/call-1", tc.answer)
			st, err := p.RoomStatus(context.Background(), room)
			if (err != nil) != tc.wantErr || !reflect.DeepEqual(st, tc.want) {
				t.Fatalf("status %+v err %v", st, err)
			}
		})
	}
}
