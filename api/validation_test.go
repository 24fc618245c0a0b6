package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestTextInputIsValidated: control characters (a NUL is a 500 on
// PostgreSQL), invalid ids, JSON that parsers read differently and
// oversized identifiers and names are refused with a 400 naming the field,
// on both stores, and change nothing.
func TestTextInputIsValidated(t *testing.T) {
	long := func(n int) string { return strings.Repeat("u", n) }
	tests := []struct {
		name        string
		path        string
		auth        string // "" : the API key; "user:<id>": a user token for id
		body        string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"NUL in title", "/v1/calls", "", `{"id":"v-1","title":"a\u0000b"}`, 400, "invalid_request", "title holds the control character U+0000"},
		{"newline in title", "/v1/calls", "", `{"id":"v-1","title":"a\nb"}`, 400, "invalid_request", "title"},
		{"NUL in member", "/v1/calls", "", `{"id":"v-1","members":[{"user_id":"ok"},{"user_id":"a\u0000"}]}`, 400, "invalid_request", "members[1].user_id"},
		{"NUL in acting user", "/v1/calls", "", `{"id":"v-1","user_id":"a\u0000"}`, 400, "invalid_request", "user_id"},
		{"NUL in user token", "/v1/calls", "user:a\x00b", `{"id":"v-1"}`, 400, "invalid_request", "user token's user_id claim"},
		{"NUL in token user", "/v1/calls/existing/token", "", `{"user_id":"a\u0000"}`, 400, "invalid_request", "user_id"},
		{"NUL in token name", "/v1/calls/existing/token", "", `{"user_id":"ada","name":"A\u0000"}`, 400, "invalid_request", "name holds"},
		{"NUL in end user", "/v1/calls/existing/end", "", `{"user_id":"\u0000"}`, 400, "invalid_request", "user_id"},
		{"NUL in Stream title", "/channels/messaging/general/call", "", `{"id":"v-1","type":"video","options":{"title":"\u0000"}}`, 400, "invalid_request", "options.title"},
		{"NUL in Stream user", "/calls/existing", "", `{"user_id":"\u0000"}`, 400, "invalid_request", "user_id"},

		{"Kelvin sign in id", "/v1/calls", "", `{"id":"\u212aelvin"}`, 400, "invalid_id", "ASCII"},
		{"dotted capital I in id", "/v1/calls", "", `{"id":"\u0130d"}`, 400, "invalid_id", "ASCII"},
		{"null body", "/v1/calls", "", `null`, 400, "malformed_json", "got JSON null"},
		{"string body", "/v1/calls", "", `"v-1"`, 400, "malformed_json", "JSON object"},
		{"null body on Stream", "/channels/messaging/general/call", "", `null`, 400, "malformed_json", "JSON object"},
		{"duplicate key", "/v1/calls", "", `{"id":"v-1","id":"v-2"}`, 400, "malformed_json", `duplicate key "id"`},
		{"duplicate nested key", "/v1/calls", "", `{"id":"v-1","members":[{"user_id":"a","user_id":"b"}]}`, 400, "malformed_json", `duplicate key "members[0].user_id"`},
		{"duplicate key on Stream", "/channels/messaging/general/call", "", `{"id":"v-1","type":"video","id":"v-2"}`, 400, "malformed_json", `duplicate key "id"`},
		{"duplicate key in Stream options", "/channels/messaging/general/call", "", `{"id":"v-1","type":"video","options":{"x":{"a":1,"a":2}}}`, 400, "malformed_json", `duplicate key "options.x.a"`},
		{"upper-case field names", "/v1/calls", "", `{"ID":"v-1","TITLE":"t"}`, 400, "malformed_json", `unknown field "ID" (field names are case-sensitive: did you mean "id"?)`},
		{"upper-case nested field name", "/v1/calls", "", `{"id":"v-1","members":[{"User_ID":"a"}]}`, 400, "malformed_json", `unknown field "members[0].User_ID"`},
		{"upper-case token field", "/v1/calls/existing/token", "", `{"USER_ID":"ada"}`, 400, "malformed_json", `unknown field "USER_ID"`},

		{"long acting user by API key", "/v1/calls", "", `{"id":"v-1","user_id":"` + long(1000) + `"}`, 400, "invalid_request", "at most 255"},
		{"long user token user", "/v1/calls", "user:" + long(5000), `{"id":"v-1"}`, 400, "invalid_request", "at most 255"},
		{"long member", "/v1/calls", "", `{"id":"v-1","members":[{"user_id":"` + long(256) + `"}]}`, 400, "invalid_request", "members[0].user_id"},
		{"long token user", "/v1/calls/existing/token", "", `{"user_id":"` + long(256) + `"}`, 400, "invalid_request", "at most 255"},
		{"long name", "/v1/calls/existing/token", "", `{"user_id":"ada","name":"` + strings.Repeat("n", 65) + `"}`, 400, "invalid_request", "at most 64"},
		{"huge name", "/v1/calls/existing/token", "", `{"user_id":"ada","name":"` + strings.Repeat("n", 3000) + `"}`, 400, "invalid_request", "name"},

		{"user id at the limit", "/v1/calls", "", `{"id":"v-ok-1","user_id":"` + long(255) + `"}`, 201, "", ""},
		{"name at the limit", "/v1/calls/existing/token", "", `{"user_id":"ada","name":"` + strings.Repeat("é", 64) + `"}`, 200, "", ""},
		{"Unicode title", "/v1/calls", "", `{"id":"v-ok-2","title":"Revue — été 🎉"}`, 201, "", ""},
	}
	for storeName, dsn := range stores() {
		t.Run(storeName, func(t *testing.T) {
			g := newGateway(t, gatewayOptions{guestJoin: true, postgresDSN: dsn})
			if res := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "existing"}); res.status != 201 {
				t.Fatalf("create: %d %s", res.status, res.body)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					auth := bearer(apiKey)
					if u, ok := strings.CutPrefix(tt.auth, "user:"); ok {
						auth = bearer(userToken(t, userSecret, u, g.clock.Now().Add(time.Hour)))
					}
					res := g.do(http.MethodPost, tt.path, auth, "application/json", []byte(tt.body))
					if res.status != tt.wantStatus {
						t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
					}
					if tt.wantCode == "" {
						return
					}
					msg, _ := res.json(t)["error"].(map[string]any)["message"].(string)
					if res.errorCode(t) != tt.wantCode || !strings.Contains(msg, tt.wantMessage) {
						t.Fatalf("got %s, want code %s and a message containing %q", res.body, tt.wantCode, tt.wantMessage)
					}
					if strings.ContainsRune(msg, 0) {
						t.Fatalf("the message echoes the NUL: %q", msg)
					}
				})
			}
			for _, id := range []string{"v-1", "v-2", "kelvin", "id"} {
				if res := g.get("/v1/calls/"+id, bearer(apiKey)); res.status != 404 {
					t.Errorf("a refused request created %s: %d %s", id, res.status, res.body)
				}
			}
			counts, err := g.store.CountByState(context.Background())
			if err != nil || counts["created"] != 3 {
				t.Fatalf("calls in the store: %v %v, want existing, v-ok-1, v-ok-2", counts, err)
			}
		})
	}
}

// TestGuestNameIsCleanedAndBounded: a guest's ?name= is never refused
// (anyone types it) but loses control characters and is cut to 64
// characters, so the join link stays short.
func TestGuestNameIsCleanedAndBounded(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "guests", "guests": true})
	res := g.get("/join/guests?name="+url.QueryEscape("Ad\x00a "+strings.Repeat("é", 5000)), "")
	if res.status != http.StatusOK {
		t.Fatalf("guest join: %d %s", res.status, res.body)
	}
	loc, err := url.Parse(res.joinTarget())
	if err != nil {
		t.Fatal(err)
	}
	frag, _ := url.PathUnescape(loc.Fragment)
	if len(res.joinTarget()) > 2000 || strings.ContainsRune(frag, 0) || !strings.Contains(frag, "Ada") {
		t.Fatalf("join URL is %d bytes: %.300s", len(res.joinTarget()), res.joinTarget())
	}
	if n := strings.Count(frag, "é"); n == 0 || n > 63 || !utf8.ValidString(frag) {
		t.Fatalf("name not cut to 64 characters: %d é in %q", n, frag)
	}
}
