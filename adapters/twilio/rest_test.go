package twilio

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/calls"
)

const (
	roomSID  = "RM0123456789abcdef0123456789abcdef"
	roomJSON = `{"sid":"` + roomSID + `","status":"in-progress","unique_name":"call-1","type":"group"}`
	form     = "application/x-www-form-urlencoded"
)

func TestCreateRoom(t *testing.T) {
	created := `StatusCallback=https%3A%2F%2Fgw.example%2Fwebhooks%2Fproviders%2Ftw&StatusCallbackMethod=POST&Type=group&UniqueName=call-1`
	for _, tc := range []struct {
		name     string
		cfg      func(*Config)
		req      calls.RoomRequest
		answers  []*httpmock.Responder
		want     []seen
		wantRoom calls.Room
		wantErr  string // "temporary", "permanent"
	}{
		{
			name:     "created",
			req:      calls.RoomRequest{CallID: "call-1", Type: calls.TypeVideo},
			answers:  []*httpmock.Responder{answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:     "without an auth token there is no status callback; room type from the config",
			cfg:      func(c *Config) { c.StatusCallback, c.AuthTokens, c.RoomType = "", nil, "go" },
			req:      calls.RoomRequest{CallID: "call-1"},
			answers:  []*httpmock.Responder{answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, "Type=go&UniqueName=call-1"}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:     "max duration in seconds",
			req:      calls.RoomRequest{CallID: "call-1", MaxDuration: 90 * time.Minute},
			answers:  []*httpmock.Responder{answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, "MaxParticipantDuration=5400&" + created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:     "max duration raised to Twilio's minimum",
			req:      calls.RoomRequest{CallID: "call-1", MaxDuration: time.Minute},
			answers:  []*httpmock.Responder{answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, "MaxParticipantDuration=600&" + created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:     "max duration lowered to Twilio's maximum",
			req:      calls.RoomRequest{CallID: "call-1", MaxDuration: 48 * time.Hour},
			answers:  []*httpmock.Responder{answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, "MaxParticipantDuration=86400&" + created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name: "room exists (53113): the in-progress room is fetched by name",
			req:  calls.RoomRequest{CallID: "call-1"},
			answers: []*httpmock.Responder{
				answer(400, `{"code": 53113, "message": "Room exists", "more_info": "https://www.twilio.com/docs/errors/53113", "status": 400}`),
				answer(200, roomJSON),
			},
			want: []seen{
				{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created},
				{http.MethodGet, "/v1/Rooms/call-1", "", wantAuth, "", ""},
			},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name: "room exists, then completed before the fetch: temporary",
			req:  calls.RoomRequest{CallID: "call-1"},
			answers: []*httpmock.Responder{
				answer(400, `{"code": 53113, "message": "Room exists", "status": 400}`),
				answer(404, `{"code": 20404, "status": 404}`),
			},
			want: []seen{
				{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created},
				{http.MethodGet, "/v1/Rooms/call-1", "", wantAuth, "", ""},
			},
			wantErr: "temporary",
		},
		{
			name:     "503 then 201: one room",
			req:      calls.RoomRequest{CallID: "call-1"},
			answers:  []*httpmock.Responder{answer(503, `{"code": 20500}`), answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}, {http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:    "retries exhausted: temporary",
			req:     calls.RoomRequest{CallID: "call-1"},
			answers: []*httpmock.Responder{answer(503, `{"code": 20500}`)},
			want: []seen{
				{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created},
				{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created},
				{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created},
			},
			wantErr: "temporary",
		},
		{
			name:     "429 is retried",
			req:      calls.RoomRequest{CallID: "call-1"},
			answers:  []*httpmock.Responder{answer(429, `{"code": 20429}`), answer(201, roomJSON)},
			want:     []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}, {http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}},
			wantRoom: calls.Room{Name: "call-1", ProviderID: roomSID},
		},
		{
			name:    "4xx is permanent and not retried",
			req:     calls.RoomRequest{CallID: "call-1"},
			answers: []*httpmock.Responder{answer(400, `{"code": 53101, "message": "Room name is too long", "status": 400}`)},
			want:    []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}},
			wantErr: "permanent",
		},
		{
			name:    "refused credentials",
			req:     calls.RoomRequest{CallID: "call-1"},
			answers: []*httpmock.Responder{answer(401, `{"code": 20003, "message": "Authenticate", "status": 401}`)},
			want:    []seen{{http.MethodPost, "/v1/Rooms", "", wantAuth, form, created}},
			wantErr: "permanent",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var muts []func(*Config)
			if tc.cfg != nil {
				muts = append(muts, tc.cfg)
			}
			p, mock := newTestProvider(t, muts...)
			var rec recorder
			r := rec.responder(tc.answers...)
			mock.RegisterResponder(http.MethodPost, testBase+"/v1/Rooms", r)
			mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/call-1", r)
			room, err := p.CreateRoom(context.Background(), tc.req)
			checkErr(t, err, tc.wantErr)
			if !reflect.DeepEqual(room, tc.wantRoom) {
				t.Errorf("room %+v, want %+v", room, tc.wantRoom)
			}
			if got := rec.all(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("requests\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	var temp *calls.TemporaryError
	var perm *calls.PermanentError
	switch want {
	case "":
		if err != nil {
			t.Fatalf("error %v", err)
		}
	case "temporary":
		if !errors.As(err, &temp) {
			t.Fatalf("error %v (%T), want temporary", err, err)
		}
	case "permanent":
		if !errors.As(err, &perm) || errors.As(err, &temp) {
			t.Fatalf("error %v (%T), want permanent", err, err)
		}
		if perm.Reason == "" {
			t.Fatal("permanent error without a reason")
		}
	}
}

func TestEndRoom(t *testing.T) {
	endBody := "Status=completed"
	for _, tc := range []struct {
		name    string
		room    calls.Room
		path    string
		answers []*httpmock.Responder
		calls   int
		wantErr string
	}{
		{"completed", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(200, `{"sid":"`+roomSID+`","status":"completed"}`)}, 1, ""},
		{"by name without a SID", calls.Room{Name: "call-1"}, "/v1/Rooms/call-1", []*httpmock.Responder{answer(200, `{"status":"completed"}`)}, 1, ""},
		{"not found is gone", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(404, `{"code": 20404, "message": "The requested resource was not found", "status": 404}`)}, 1, ""},
		{"not in progress (53112) is gone", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(400, `{"code": 53112, "message": "Status is invalid", "status": 400}`)}, 1, ""},
		{"completed already (53118) is gone", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(400, `{"code": 53118, "message": "Room completed", "status": 400}`)}, 1, ""},
		{"503 then 200", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(503, ""), answer(200, `{}`)}, 2, ""},
		{"retries exhausted", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(503, "")}, 3, "temporary"},
		{"refused", calls.Room{Name: "call-1", ProviderID: roomSID}, "/v1/Rooms/" + roomSID, []*httpmock.Responder{answer(403, `{"code": 20403}`)}, 1, "permanent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, mock := newTestProvider(t)
			var rec recorder
			mock.RegisterResponder(http.MethodPost, testBase+tc.path, rec.responder(tc.answers...))
			checkErr(t, p.EndRoom(context.Background(), tc.room), tc.wantErr)
			got := rec.all()
			if len(got) != tc.calls {
				t.Fatalf("%d requests, want %d", len(got), tc.calls)
			}
			for _, r := range got {
				if r != (seen{http.MethodPost, tc.path, "", wantAuth, form, endBody}) {
					t.Errorf("request %+v", r)
				}
			}
		})
	}
	p, mock := newTestProvider(t)
	if err := p.EndRoom(context.Background(), calls.Room{}); err != nil || mock.GetTotalCallCount() != 0 {
		t.Errorf("a room without name or SID: %v, %d calls", err, mock.GetTotalCallCount())
	}
}

func TestRoomStatus(t *testing.T) {
	rm := calls.Room{Name: "call-1", ProviderID: roomSID}
	page1 := `{"participants":[{"identity":"ada","start_time":"2025-03-04T05:00:00Z","status":"connected"}],
		"meta":{"page":0,"page_size":1,"next_page_url":"https://video.twilio.com/v1/Rooms/` + roomSID + `/Participants?Status=connected&PageSize=1&Page=1&PageToken=PT1"}}`
	page2 := `{"participants":[{"identity":"bob","start_time":"2025-03-04T05:01:00Z","status":"connected"}],"meta":{"next_page_url":null}}`
	for _, tc := range []struct {
		name    string
		room    string
		parts   []*httpmock.Responder
		want    calls.RoomStatus
		queries []string
		wantErr bool
	}{
		{name: "completed is gone", room: `{"sid":"` + roomSID + `","status":"completed"}`, want: calls.RoomStatus{Gone: true}},
		{name: "failed is gone", room: `{"sid":"` + roomSID + `","status":"failed"}`, want: calls.RoomStatus{Gone: true}},
		{name: "in progress and empty", room: roomJSON, parts: []*httpmock.Responder{answer(200, `{"participants":[],"meta":{}}`)},
			want: calls.RoomStatus{Listed: true, Participants: []calls.Participant{}}, queries: []string{"Status=connected&PageSize=100"}},
		{name: "in progress, two pages, the next page read from the configured base", room: roomJSON, parts: []*httpmock.Responder{answer(200, page1), answer(200, page2)},
			want: calls.RoomStatus{Listed: true, Participants: []calls.Participant{
				{Identity: "ada", JoinedAt: time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)},
				{Identity: "bob", JoinedAt: time.Date(2025, 3, 4, 5, 1, 0, 0, time.UTC)},
			}},
			queries: []string{"Status=connected&PageSize=100", "Status=connected&PageSize=1&Page=1&PageToken=PT1"}},
		{name: "unknown status is not gone", room: `{"sid":"` + roomSID + `","status":"paused"}`, wantErr: true},
		{name: "participants fail", room: roomJSON, parts: []*httpmock.Responder{answer(500, "")}, wantErr: true,
			queries: []string{"Status=connected&PageSize=100", "Status=connected&PageSize=100", "Status=connected&PageSize=100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, mock := newTestProvider(t)
			var rooms, parts recorder
			mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, rooms.responder(answer(200, tc.room)))
			if tc.parts != nil {
				mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID+"/Participants", parts.responder(tc.parts...))
			}
			got, err := p.RoomStatus(context.Background(), rm)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("status %+v, want %+v", got, tc.want)
			}
			if r := rooms.all(); len(r) != 1 || r[0] != (seen{http.MethodGet, "/v1/Rooms/" + roomSID, "", wantAuth, "", ""}) {
				t.Errorf("room requests %+v", r)
			}
			var qs []string
			for _, r := range parts.all() {
				if r.Auth != wantAuth || r.Path != "/v1/Rooms/"+roomSID+"/Participants" {
					t.Errorf("participants request %+v", r)
				}
				qs = append(qs, r.Query)
			}
			if !reflect.DeepEqual(qs, tc.queries) {
				t.Errorf("participant queries %q, want %q", qs, tc.queries)
			}
		})
	}

	// Ambiguous answers are errors, never "gone".
	for _, a := range []*httpmock.Responder{answer(404, `{"code": 20404}`), answer(503, ""), answer(200, "not json")} {
		p, mock := newTestProvider(t)
		mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, *a)
		if st, err := p.RoomStatus(context.Background(), rm); err == nil || st.Gone {
			t.Errorf("ambiguous answer gave %+v, %v", st, err)
		}
	}
	// A timeout is an error too.
	p, mock := newTestProvider(t)
	mock.RegisterResponder(http.MethodGet, testBase+"/v1/Rooms/"+roomSID, httpmock.NewErrorResponder(context.DeadlineExceeded))
	if st, err := p.RoomStatus(context.Background(), rm); err == nil || st.Gone {
		t.Errorf("timeout gave %+v, %v", st, err)
	}
}

// A room-strategy name replaces the call id as the room's UniqueName, so
// calls of one channel share the room.
func TestCreateRoomUsesTheStrategyName(t *testing.T) {
	p, mock := newTestProvider(t)
	var got string
	mock.RegisterResponder("POST", testBase+"/v1/Rooms", func(r *http.Request) (*http.Response, error) {
		r.ParseForm()
		got = r.PostForm.Get("UniqueName")
		return httpmock.NewStringResponse(201, `{"sid":"RM1","unique_name":"`+got+`","status":"in-progress"}`), nil
	})
	room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: "call-2", Name: "cgc0123456789abcdef012345"})
	if err != nil || got != "cgc0123456789abcdef012345" || room.Name != got {
		t.Fatalf("room %+v, UniqueName %q, err %v", room, got, err)
	}
}
