package daily

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

	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

const (
	testAPI    = "https://api.daily.test/v1"
	testAPIKey = "7d6f3c0a9b1e4f2a8c5d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b"
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type recorded struct {
	Method, Path, Auth, ContentType string
	Body                            map[string]any
}

type mock struct {
	t  *testing.T
	mt *httpmock.MockTransport
	mu sync.Mutex
	rs []recorded
}

type answer struct {
	status int
	body   string
}

func newTestProvider(t *testing.T, mod func(*Config)) (*Provider, *mock) {
	t.Helper()
	m := &mock{t: t, mt: httpmock.NewMockTransport()}
	client := httpx.New(httpx.Options{RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	client.HTTPClient.Transport = m.mt
	cfg := Config{APIKey: testAPIKey, Domain: "team.daily.co", APIURL: testAPI, HTTP: client, Now: func() time.Time { return testNow }}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func (m *mock) on(method, path string, answers ...answer) {
	i := 0
	m.mt.RegisterResponder(method, testAPI+path, func(r *http.Request) (*http.Response, error) {
		rec := recorded{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, "/v1"), Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
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

func (m *mock) requests() []recorded {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recorded(nil), m.rs...)
}

func (m *mock) calls() []string {
	var out []string
	for _, r := range m.requests() {
		out = append(out, r.Method+" "+r.Path)
		if r.Auth != "Bearer "+testAPIKey {
			m.t.Errorf("%s %s: authorization %q", r.Method, r.Path, r.Auth)
		}
	}
	return out
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func isTemporary(err error) bool {
	var te *calls.TemporaryError
	return errors.As(err, &te)
}

func isPermanent(err error) bool {
	var pe *calls.PermanentError
	return errors.As(err, &pe)
}

const roomAnswer = `{"id":"d61cd7b2-a273-42b4-89bd-be763fd562c1","name":"call-abc","api_created":true,"privacy":"private","url":"https://team.daily.co/call-abc","created_at":"2025-03-04T05:06:07.000Z","config":{"exp":1741151167,"eject_at_room_exp":true}}`

func TestCreateRoomRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     time.Duration
		wantExp int64
	}{
		{"no limit: a day", 0, testNow.Add(24 * time.Hour).Unix()},
		{"limit", 90 * time.Minute, testNow.Add(90 * time.Minute).Unix()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("POST", "/rooms", answer{200, roomAnswer})
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc", MaxDuration: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(room, calls.Room{Name: "call-abc", ProviderID: "d61cd7b2-a273-42b4-89bd-be763fd562c1", URL: "https://team.daily.co/call-abc"}) {
				t.Fatalf("room %+v", room)
			}
			rs := m.requests()
			if got := m.calls(); strings.Join(got, ",") != "POST /rooms" {
				t.Fatalf("calls %v", got)
			}
			want := map[string]any{"name": "call-abc", "privacy": "private", "properties": map[string]any{"exp": tc.wantExp, "eject_at_room_exp": true}}
			if rs[0].ContentType != "application/json" || !equalJSON(rs[0].Body, want) {
				t.Fatalf("body %v, want %v", rs[0].Body, want)
			}
		})
	}
}

// Daily refuses a taken name with 400 "already exists": the room is then
// fetched, so a retried create gives the same single room.
func TestCreateRoomAlreadyExists(t *testing.T) {
	p, m := newTestProvider(t, nil)
	m.on("POST", "/rooms", answer{400, `{"error":"invalid-request-error","info":"a room named call-abc already exists"}`})
	m.on("GET", "/rooms/call-abc", answer{200, roomAnswer})
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"})
	if err != nil {
		t.Fatal(err)
	}
	if room.Name != "call-abc" || room.ProviderID != "d61cd7b2-a273-42b4-89bd-be763fd562c1" || room.URL != "https://team.daily.co/call-abc" {
		t.Fatalf("room %+v", room)
	}
	if got := m.calls(); strings.Join(got, ",") != "POST /rooms,GET /rooms/call-abc" {
		t.Fatalf("calls %v", got)
	}
	// Another 400 is a refusal, not "exists".
	p, m = newTestProvider(t, nil)
	m.on("POST", "/rooms", answer{400, `{"error":"invalid-request-error","info":"exp must be in the future"}`})
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"}); !isPermanent(err) || len(m.calls()) != 1 {
		t.Fatalf("other 400: %v, calls %v", err, m.calls())
	}
}

func TestCreateRoomFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answers   []answer
		wantCalls int
		check     func(error) bool
	}{
		{"503 then 200 is one room", []answer{{503, ``}, {200, roomAnswer}}, 2, func(err error) bool { return err == nil }},
		{"429 then 200", []answer{{429, `{"error":"rate-limit"}`}, {200, roomAnswer}}, 2, func(err error) bool { return err == nil }},
		{"5xx until retries run out is temporary", []answer{{500, ``}}, 3, isTemporary},
		{"401 is permanent, not retried", []answer{{401, `{"error":"authentication-error"}`}}, 1, isPermanent},
		{"403 is permanent, not retried", []answer{{403, ``}}, 1, isPermanent},
		{"200 without a name is temporary", []answer{{200, `{}`}}, 1, isTemporary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("POST", "/rooms", tc.answers...)
			_, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"})
			if !tc.check(err) {
				t.Fatalf("err %v", err)
			}
			if n := len(m.calls()); n != tc.wantCalls {
				t.Fatalf("%d calls, want %d", n, tc.wantCalls)
			}
			if err != nil && strings.Contains(err.Error(), testAPIKey) {
				t.Fatal("error leaks the API key")
			}
		})
	}
}

// A public room's name is keyed by the API key: unguessable from the call
// id, yet the same on every attempt.
func TestPublicRoomName(t *testing.T) {
	p, m := newTestProvider(t, func(c *Config) { c.Privacy = "public" })
	name := p.RoomName("call-abc")
	if !strings.HasPrefix(name, "call-abc-") || len(name) != len("call-abc-")+10 || name != p.RoomName("call-abc") || name == p.RoomName("call-abd") {
		t.Fatalf("public name %q", name)
	}
	other, _ := New(Config{APIKey: "another-key", Privacy: "public"})
	if other.RoomName("call-abc") == name {
		t.Fatal("the name does not depend on the key")
	}
	m.on("POST", "/rooms", answer{200, `{"id":"x","name":"` + name + `","url":"https://team.daily.co/` + name + `"}`})
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-abc"}); err != nil {
		t.Fatal(err)
	}
	if b := m.requests()[0].Body; b["name"] != name || b["privacy"] != "public" {
		t.Fatalf("body %v", b)
	}
	priv, _ := New(Config{APIKey: testAPIKey})
	if priv.RoomName("call-abc") != "call-abc" {
		t.Fatal("a private room is not named after the call")
	}
}

func TestEndRoom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []answer
		calls   int
		check   func(error) bool
	}{
		{"deleted", []answer{{200, `{"deleted":true,"name":"call-abc"}`}}, 1, func(err error) bool { return err == nil }},
		{"already gone", []answer{{404, `{"error":"not-found","info":"room call-abc not found"}`}}, 1, func(err error) bool { return err == nil }},
		{"5xx then ok", []answer{{502, ``}, {200, `{"deleted":true}`}}, 2, func(err error) bool { return err == nil }},
		{"5xx throughout", []answer{{503, ``}}, 3, isTemporary},
		{"401", []answer{{401, ``}}, 1, isPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("DELETE", "/rooms/call-abc", tc.answers...)
			if err := p.EndRoom(context.Background(), calls.Room{Name: "call-abc"}); !tc.check(err) {
				t.Fatalf("err %v", err)
			}
			got := m.calls()
			if len(got) != tc.calls || got[0] != "DELETE /rooms/call-abc" || m.requests()[0].Body != nil {
				t.Fatalf("calls %v", got)
			}
		})
	}
}

func TestRoomStatus(t *testing.T) {
	live := `{"id":"d6","name":"call-abc","url":"https://team.daily.co/call-abc","config":{"exp":` + jsonInt(testNow.Add(time.Hour).Unix()) + `}}`
	expired := `{"id":"d6","name":"call-abc","config":{"exp":` + jsonInt(testNow.Add(-time.Second).Unix()) + `}}`
	pres := `{"total_count":2,"data":[{"room":"call-abc","id":"s1","userId":"slack:U1","userName":"Ann","joinTime":"2025-03-04T05:00:00.000Z","duration":60},{"room":"call-abc","id":"s2","userId":null,"userName":"Guest","joinTime":"2025-03-04T05:01:00.000Z","duration":5}]}`
	for _, tc := range []struct {
		name     string
		room     []answer
		presence []answer
		want     calls.RoomStatus
		wantErr  bool
		calls    int
	}{
		{"live room lists presence", []answer{{200, live}}, []answer{{200, pres}}, calls.RoomStatus{Listed: true, Participants: []calls.Participant{
			{Identity: "slack:U1", Name: "Ann", JoinedAt: time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)},
			{Identity: "s2", Name: "Guest", JoinedAt: time.Date(2025, 3, 4, 5, 1, 0, 0, time.UTC)},
		}}, false, 2},
		{"snake_case presence", []answer{{200, live}}, []answer{{200, `{"total_count":1,"data":[{"id":"s1","user_id":"u1","user_name":"Bo","join_time":1741064400}]}`}}, calls.RoomStatus{Listed: true, Participants: []calls.Participant{
			{Identity: "u1", Name: "Bo", JoinedAt: time.Unix(1741064400, 0).UTC()},
		}}, false, 2},
		{"empty room", []answer{{200, `{"name":"call-abc","config":{}}`}}, []answer{{200, `{"total_count":0,"data":[]}`}}, calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}, false, 2},
		{"Daily's not-found: deleted, gone", []answer{{404, `{"error":"not-found","info":"room call-abc not found"}`}}, nil, calls.RoomStatus{Gone: true}, false, 1},
		{"expired room: gone", []answer{{200, expired}}, nil, calls.RoomStatus{Gone: true}, false, 1},
		{"another 404 is unknown", []answer{{404, `<html>Not Found</html>`}}, nil, calls.RoomStatus{}, true, 1},
		{"5xx is unknown", []answer{{503, ``}}, nil, calls.RoomStatus{}, true, 3},
		{"presence 404 is unknown", []answer{{200, live}}, []answer{{404, `{"error":"not-found"}`}}, calls.RoomStatus{}, true, 2},
		{"presence 5xx is unknown", []answer{{200, live}}, []answer{{500, ``}}, calls.RoomStatus{}, true, 4},
		{"presence without data is unknown", []answer{{200, live}}, []answer{{200, `{}`}}, calls.RoomStatus{}, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("GET", "/rooms/call-abc", tc.room...)
			if tc.presence != nil {
				m.on("GET", "/rooms/call-abc/presence", tc.presence...)
			}
			st, err := p.RoomStatus(context.Background(), calls.Room{Name: "call-abc"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if st.Gone != tc.want.Gone || st.Listed != tc.want.Listed || !equalJSON(st.Participants, tc.want.Participants) {
				t.Fatalf("status %+v, want %+v", st, tc.want)
			}
			if n := len(m.calls()); n != tc.calls {
				t.Fatalf("%d calls, want %d", n, tc.calls)
			}
		})
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestCredential(t *testing.T) {
	room := calls.Room{Name: "call-abc", URL: "https://team.daily.co/call-abc"}
	exp := testNow.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name  string
		req   calls.CredentialRequest
		props map[string]any
	}{
		{"owner is owner", calls.CredentialRequest{UserID: "slack:U1", Name: "Ann", Role: calls.RoleOwner, Type: calls.TypeVideo},
			map[string]any{"room_name": "call-abc", "user_name": "Ann", "user_id": "slack:U1", "is_owner": true, "exp": exp}},
		{"panelist is owner", calls.CredentialRequest{UserID: "u2", Role: calls.RolePanelist},
			map[string]any{"room_name": "call-abc", "user_id": "u2", "is_owner": true, "exp": exp}},
		{"participant", calls.CredentialRequest{UserID: "u3", Name: "Cy", Role: calls.RoleParticipant},
			map[string]any{"room_name": "call-abc", "user_name": "Cy", "user_id": "u3", "is_owner": false, "exp": exp}},
		{"audio call starts with the camera off", calls.CredentialRequest{UserID: "u4", Role: calls.RoleParticipant, Type: calls.TypeAudio},
			map[string]any{"room_name": "call-abc", "user_id": "u4", "is_owner": false, "exp": exp, "start_video_off": true}},
		{"listener cannot send", calls.CredentialRequest{UserID: "u5", Role: calls.RoleListener},
			map[string]any{"room_name": "call-abc", "user_id": "u5", "is_owner": false, "exp": exp, "start_video_off": true, "start_audio_off": true, "permissions": map[string]any{"canSend": false}}},
		{"token_ttl bounds a longer request", calls.CredentialRequest{UserID: "u6", TTL: 5 * time.Hour},
			map[string]any{"room_name": "call-abc", "user_id": "u6", "is_owner": false, "exp": exp}},
		{"a shorter request wins", calls.CredentialRequest{UserID: "u7", TTL: 10 * time.Minute},
			map[string]any{"room_name": "call-abc", "user_id": "u7", "is_owner": false, "exp": testNow.Add(10 * time.Minute).Unix()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newTestProvider(t, nil)
			m.on("POST", "/meeting-tokens", answer{200, `{"token":"eyJhbGciOi.tok.en"}`})
			tc.req.IssuedAt = testNow
			if tc.req.TTL == 0 {
				tc.req.TTL = time.Hour
			}
			cred, err := p.Credential(context.Background(), room, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.calls(); strings.Join(got, ",") != "POST /meeting-tokens" {
				t.Fatalf("calls %v", got)
			}
			if body := m.requests()[0].Body; !equalJSON(body, map[string]any{"properties": tc.props}) {
				t.Fatalf("body  %v\nwant %v", body, map[string]any{"properties": tc.props})
			}
			wantExp := time.Unix(tc.props["exp"].(int64), 0)
			if cred.Token != "eyJhbGciOi.tok.en" || cred.JoinURL != "https://team.daily.co/call-abc?t=eyJhbGciOi.tok.en" || !cred.ExpiresAt.Equal(wantExp) ||
				!equalJSON(cred.Fields, map[string]any{"room_name": "call-abc", "room_url": "https://team.daily.co/call-abc"}) {
				t.Fatalf("credential %+v", cred)
			}
		})
	}
}

func TestCredentialEdges(t *testing.T) {
	p, m := newTestProvider(t, func(c *Config) {
		c.JoinURLTemplate = "https://app.example/call?room={{.Room}}&url={{.URL}}&t={{.Token}}"
	})
	m.on("POST", "/meeting-tokens", answer{503, ``}, answer{200, `{"token":"tok"}`})
	// No room URL stored: built from the domain.
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-abc"}, calls.CredentialRequest{UserID: "u", IssuedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if cred.JoinURL != "https://app.example/call?room=call-abc&url=https://team.daily.co/call-abc&t=tok" || len(m.calls()) != 2 {
		t.Fatalf("join url %q, calls %v", cred.JoinURL, m.calls())
	}
	for _, bad := range []calls.CredentialRequest{
		{},
		{UserID: strings.Repeat("x", 37)},
		{UserID: "u", TTL: -time.Second},
	} {
		if _, err := p.Credential(context.Background(), calls.Room{Name: "call-abc"}, bad); !errors.Is(err, calls.ErrInvalidInput) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := p.Credential(context.Background(), calls.Room{}, calls.CredentialRequest{UserID: "u"}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Error("a room without a name")
	}
	// 4xx from Daily is permanent, not retried; an empty token is temporary.
	p, m = newTestProvider(t, nil)
	m.on("POST", "/meeting-tokens", answer{400, `{"error":"invalid-request-error","info":"room_name is not valid"}`})
	if _, err := p.Credential(context.Background(), calls.Room{Name: "call-abc"}, calls.CredentialRequest{UserID: "u"}); !isPermanent(err) || len(m.calls()) != 1 {
		t.Fatalf("400: %v %v", err, m.calls())
	}
	p, m = newTestProvider(t, nil)
	m.on("POST", "/meeting-tokens", answer{200, `{}`})
	if _, err := p.Credential(context.Background(), calls.Room{Name: "call-abc"}, calls.CredentialRequest{UserID: "u"}); !isTemporary(err) {
		t.Fatalf("no token: %v", err)
	}
}
