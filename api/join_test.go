package api_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestJoinPagesRevealNothingToStrangers: without a valid personal link a
// page never shows the call's title, and where guests are not admitted an
// unknown id, an ended call and a live call answer alike, so ids cannot be
// probed through /join.
func TestJoinPagesRevealNothingToStrangers(t *testing.T) {
	const secret = "Board Q3 secret title"
	for _, guests := range []bool{false, true} {
		g := newGateway(t, gatewayOptions{guestJoin: guests})
		for _, id := range []string{"board-q3", "board-q2"} {
			if res := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": id, "title": secret, "guests": guests, "members": []map[string]any{{"user_id": "ada"}}}); res.status != 201 {
				t.Fatalf("create: %d %s", res.status, res.body)
			}
		}
		tok := g.post("/v1/calls/board-q2/token", bearer(apiKey), map[string]any{"user_id": "ada"})
		personal, _ := url.Parse(tok.json(t)["join_url"].(string))
		g.post("/v1/calls/board-q2/end", bearer(apiKey), nil)

		unknown := g.get("/join/no-such-call", "")
		tests := []struct {
			name       string
			path       string
			wantStatus int
			sameAs404  bool // the page is byte for byte the unknown id's
			wantTitle  bool
		}{
			{"unknown id", "/join/no-such-call", 404, true, false},
			{"invalid id", "/join/bad%20id!", 404, true, false},
			{"live call, stable link", "/join/board-q3", map[bool]int{false: 404, true: 200}[guests], !guests, false},
			{"ended call, stable link", "/join/board-q2", map[bool]int{false: 404, true: 410}[guests], !guests, false},
			{"ended call, personal link", personal.RequestURI(), 410, false, true},
			{"ended call, altered link", "/join/board-q2?t=" + url.QueryEscape(personal.Query().Get("t")+"x"), 403, false, false},
		}
		for _, tt := range tests {
			t.Run(map[bool]string{false: "guests off/", true: "guests on/"}[guests]+tt.name, func(t *testing.T) {
				res := g.get(tt.path, "")
				if res.status != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
				}
				if got := strings.Contains(string(res.body), secret); got != tt.wantTitle {
					t.Fatalf("title shown = %v, want %v:\n%s", got, tt.wantTitle, res.body)
				}
				if tt.sameAs404 && string(res.body) != string(unknown.body) {
					t.Fatalf("the page differs from an unknown id's:\n%s\nvs\n%s", res.body, unknown.body)
				}
				if tt.wantStatus == 410 && !strings.Contains(string(res.body), "This call has ended") {
					t.Fatalf("ended page does not say so: %s", res.body)
				}
			})
		}
	}
}
