package livekit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/livekit/protocol/auth"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

const twirpBase = "https://project.livekit.cloud/twirp/livekit.RoomService/"

// mocked builds a provider whose outbound HTTP goes to an httpmock
// transport, with fast retries (2 retries after the first attempt).
func mocked(t *testing.T, mutate func(*Config)) (*Provider, *httpmock.MockTransport) {
	t.Helper()
	mock := httpmock.NewMockTransport()
	c := httpx.New(httpx.Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, Timeout: time.Second})
	c.HTTPClient.Transport = mock
	p := newTestProvider(t, func(cfg *Config) {
		cfg.HTTP = c
		if mutate != nil {
			mutate(cfg)
		}
	})
	return p, mock
}

// request is what one Twirp call carried.
type request struct {
	Method, Path, ContentType string
	Grants                    *auth.ClaimGrants
	Body                      map[string]any
}

// capture checks the auth header against the key pair and records the
// request.
func capture(t *testing.T, r *http.Request) request {
	t.Helper()
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Errorf("Authorization %q is not a bearer token", h)
	}
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	if v.APIKey() != testKey {
		t.Errorf("token for key %q", v.APIKey())
	}
	_, grants, err := v.Verify(testSecret)
	if err != nil {
		t.Fatalf("the server would refuse the token: %v", err)
	}
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Grants: grants, Body: body}
}

func twirpError(code, msg string, status int) httpmock.Responder {
	return httpmock.NewStringResponder(status, `{"code":"`+code+`","msg":"`+msg+`"}`).HeaderSet(http.Header{"Content-Type": {"application/json"}})
}

func jsonOK(body string) httpmock.Responder {
	return httpmock.NewStringResponder(200, body).HeaderSet(http.Header{"Content-Type": {"application/json"}})
}

func TestCreateRoomRequest(t *testing.T) {
	p, mock := mocked(t, func(c *Config) {
		c.EmptyTimeout, c.DepartureTimeout, c.MaxParticipants = 10*time.Minute, 30*time.Second, 25
	})
	var got []request
	mock.RegisterResponder("POST", twirpBase+"CreateRoom", func(r *http.Request) (*http.Response, error) {
		got = append(got, capture(t, r))
		return jsonOK(`{"sid":"RM_abc","name":"call-1","emptyTimeout":600,"creationTime":"1772366400","unknownNewField":true}`)(r)
	})
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1", Type: calls.TypeVideo, Title: "Standup"})
	if err != nil {
		t.Fatal(err)
	}
	if room.Name != "call-1" || room.ProviderID != "RM_abc" {
		t.Fatalf("room %+v", room)
	}
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	if r.Method != "POST" || r.Path != "/twirp/livekit.RoomService/CreateRoom" || r.ContentType != "application/json" {
		t.Errorf("request %+v", r)
	}
	if g := r.Grants.Video; g == nil || !g.RoomCreate || !g.RoomAdmin || !g.RoomList || g.Room != "call-1" || g.RoomJoin {
		t.Errorf("grants %+v", r.Grants.Video)
	}
	want := map[string]any{
		"name": "call-1", "empty_timeout": float64(600), "departure_timeout": float64(30), "max_participants": float64(25),
		"metadata": `{"callgate_call_id":"call-1","type":"video","title":"Standup"}`,
	}
	if !jsonEqual(r.Body, want) {
		t.Errorf("body %v\nwant %v", r.Body, want)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestCreateRoomFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses []httpmock.Responder
		calls     int
		check     func(t *testing.T, room calls.Room, err error)
	}{
		{
			name:      "retry then success makes one room",
			responses: []httpmock.Responder{httpmock.NewStringResponder(503, "upstream unavailable"), jsonOK(`{"sid":"RM_1","name":"call-1"}`)},
			calls:     2,
			check: func(t *testing.T, room calls.Room, err error) {
				if err != nil || room.ProviderID != "RM_1" {
					t.Fatalf("%+v %v", room, err)
				}
			},
		},
		{
			name:      "twirp unavailable until retries run out is temporary",
			responses: []httpmock.Responder{twirpError("unavailable", "no nodes", 503)},
			calls:     3,
			check: func(t *testing.T, _ calls.Room, err error) {
				var te *calls.TemporaryError
				if !errors.As(err, &te) || !strings.Contains(err.Error(), "unavailable") {
					t.Fatalf("%v", err)
				}
			},
		},
		{
			name:      "network error until retries run out is temporary",
			responses: []httpmock.Responder{httpmock.NewErrorResponder(errors.New("connection refused"))},
			calls:     3,
			check: func(t *testing.T, _ calls.Room, err error) {
				var te *calls.TemporaryError
				if !errors.As(err, &te) {
					t.Fatalf("%T %v", err, err)
				}
			},
		},
		{
			name:      "429 is retried",
			responses: []httpmock.Responder{twirpError("resource_exhausted", "slow down", 429), jsonOK(`{"sid":"RM_2","name":"call-1"}`)},
			calls:     2,
			check: func(t *testing.T, room calls.Room, err error) {
				if err != nil || room.ProviderID != "RM_2" {
					t.Fatalf("%+v %v", room, err)
				}
			},
		},
		{
			name:      "401 from the auth middleware is permanent and not retried",
			responses: []httpmock.Responder{httpmock.NewStringResponder(401, "invalid token: ..., error: go-jose/go-jose: error in cryptographic primitive")},
			calls:     1,
			check: func(t *testing.T, _ calls.Room, err error) {
				var pe *calls.PermanentError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "api_key and api_secret") || strings.Contains(pe.Reason, "go-jose") {
					t.Fatalf("%v", err)
				}
			},
		},
		{
			name:      "invalid argument is permanent",
			responses: []httpmock.Responder{twirpError("invalid_argument", "room name too long", 400)},
			calls:     1,
			check: func(t *testing.T, _ calls.Room, err error) {
				var pe *calls.PermanentError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "invalid") {
					t.Fatalf("%v", err)
				}
			},
		},
		{
			name:      "a 404 page from a proxy names the URL as the problem",
			responses: []httpmock.Responder{httpmock.NewStringResponder(404, "<html>not found</html>")},
			calls:     1,
			check: func(t *testing.T, _ calls.Room, err error) {
				var pe *calls.PermanentError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "api_url") {
					t.Fatalf("%v", err)
				}
			},
		},
		{
			name:      "a redirect is not followed",
			responses: []httpmock.Responder{httpmock.NewStringResponder(302, "").HeaderSet(http.Header{"Location": {"https://elsewhere.example/"}})},
			calls:     1,
			check: func(t *testing.T, _ calls.Room, err error) {
				var pe *calls.PermanentError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "redirected") {
					t.Fatalf("%v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, mock := mocked(t, nil)
			n := 0
			mock.RegisterResponder("POST", twirpBase+"CreateRoom", func(r *http.Request) (*http.Response, error) {
				capture(t, r)
				resp := tc.responses[min(n, len(tc.responses)-1)]
				n++
				return resp(r)
			})
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-1"})
			tc.check(t, room, err)
			if n != tc.calls {
				t.Errorf("%d requests, want %d", n, tc.calls)
			}
			if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "Bearer")) {
				t.Errorf("error shows a credential: %v", err)
			}
		})
	}
}

func TestCreateRoomTimeout(t *testing.T) {
	p, mock := mocked(t, nil)
	mock.RegisterResponder("POST", twirpBase+"CreateRoom", func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: "call-1"})
	var te *calls.TemporaryError
	if !errors.As(err, &te) {
		t.Fatalf("%T %v", err, err)
	}
}

func TestEndRoom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resp    httpmock.Responder
		wantErr bool
	}{
		{name: "deleted", resp: jsonOK(`{}`)},
		{name: "already gone", resp: twirpError("not_found", "requested room does not exist", 404)},
		{name: "404 from a proxy is an error", resp: httpmock.NewStringResponder(404, "nope"), wantErr: true},
		{name: "5xx is an error", resp: twirpError("internal", "boom", 500), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, mock := mocked(t, nil)
			var got []request
			mock.RegisterResponder("POST", twirpBase+"DeleteRoom", func(r *http.Request) (*http.Response, error) {
				got = append(got, capture(t, r))
				return tc.resp(r)
			})
			err := p.EndRoom(context.Background(), calls.Room{Name: "call-1", ProviderID: "RM_1"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if len(got) == 0 || !jsonEqual(got[0].Body, map[string]any{"room": "call-1"}) || !got[0].Grants.Video.RoomCreate {
				t.Fatalf("requests %+v", got)
			}
		})
	}
	p, mock := mocked(t, nil)
	if err := p.EndRoom(context.Background(), calls.Room{}); err != nil || mock.GetTotalCallCount() != 0 {
		t.Fatalf("a room without a name: %v", err)
	}
}

func TestRoomStatus(t *testing.T) {
	twoPeople := `{"participants":[
		{"sid":"PA_1","identity":"ada","name":"Ada","state":"ACTIVE","joinedAt":"1772366400","joinedAtMs":"1772366400123"},
		{"sid":"PA_2","identity":"EG_1","kind":"EGRESS","joinedAt":"1772366401"},
		{"sid":"PA_3","identity":"bob","joinedAt":"1772366402"}]}`
	for _, tc := range []struct {
		name         string
		participants httpmock.Responder
		rooms        httpmock.Responder
		want         calls.RoomStatus
		wantErr      bool
		wantCalls    []string
	}{
		{
			name:         "people in the room",
			participants: jsonOK(twoPeople),
			want: calls.RoomStatus{Listed: true, Participants: []calls.Participant{
				{Identity: "ada", Name: "Ada", JoinedAt: time.UnixMilli(1772366400123).UTC()},
				{Identity: "bob", JoinedAt: time.Unix(1772366402, 0).UTC()},
			}},
			wantCalls: []string{"ListParticipants"},
		},
		{
			name:         "empty room that exists",
			participants: jsonOK(`{}`),
			rooms:        jsonOK(`{"rooms":[{"sid":"RM_1","name":"call-1"}]}`),
			want:         calls.RoomStatus{Listed: true, Participants: []calls.Participant{}},
			wantCalls:    []string{"ListParticipants", "ListRooms"},
		},
		{
			name:         "no such room: gone",
			participants: jsonOK(`{"participants":[]}`),
			rooms:        jsonOK(`{"rooms":[]}`),
			want:         calls.RoomStatus{Gone: true},
			wantCalls:    []string{"ListParticipants", "ListRooms"},
		},
		{
			name:         "twirp not_found: gone",
			participants: twirpError("not_found", "requested room does not exist", 404),
			want:         calls.RoomStatus{Gone: true},
			wantCalls:    []string{"ListParticipants"},
		},
		{
			name:         "404 from a proxy is ambiguous",
			participants: httpmock.NewStringResponder(404, "Not Found"),
			wantErr:      true,
			wantCalls:    []string{"ListParticipants"},
		},
		{
			name:         "5xx is ambiguous",
			participants: httpmock.NewStringResponder(502, "bad gateway"),
			wantErr:      true,
			wantCalls:    []string{"ListParticipants", "ListParticipants", "ListParticipants"},
		},
		{
			name:         "ListRooms failing is ambiguous",
			participants: jsonOK(`{}`),
			rooms:        twirpError("unavailable", "x", 503),
			wantErr:      true,
			wantCalls:    []string{"ListParticipants", "ListRooms", "ListRooms", "ListRooms"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, mock := mocked(t, nil)
			var seen []string
			for method, resp := range map[string]httpmock.Responder{"ListParticipants": tc.participants, "ListRooms": tc.rooms} {
				if resp == nil {
					continue
				}
				mock.RegisterResponder("POST", twirpBase+method, func(r *http.Request) (*http.Response, error) {
					req := capture(t, r)
					seen = append(seen, method)
					want := map[string]any{"room": "call-1"}
					if method == "ListRooms" {
						want = map[string]any{"names": []any{"call-1"}}
					}
					if !jsonEqual(req.Body, want) || !req.Grants.Video.RoomAdmin || req.Grants.Video.Room != "call-1" || !req.Grants.Video.RoomList {
						t.Errorf("%s request %+v %+v", method, req.Body, req.Grants.Video)
					}
					return resp(r)
				})
			}
			st, err := p.RoomStatus(context.Background(), calls.Room{Name: "call-1"})
			if tc.wantErr {
				if err == nil || st.Gone {
					t.Fatalf("want an error and not gone, got %+v %v", st, err)
				}
			} else if err != nil || !jsonEqual(st, tc.want) {
				t.Fatalf("status %+v %v\nwant %+v", st, err, tc.want)
			}
			if strings.Join(seen, ",") != strings.Join(tc.wantCalls, ",") {
				t.Errorf("calls %v, want %v", seen, tc.wantCalls)
			}
		})
	}
}
