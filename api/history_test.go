package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestCallHistory(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	for _, id := range []string{"h1", "h2", "h3"} {
		g.clock.Advance(time.Second)
		g.post("/v1/calls", g.userAuth("ada"), map[string]any{"id": id})
	}
	g.post("/v1/calls", g.userAuth("bob"), map[string]any{"id": "bobs"})
	g.post("/v1/calls/h1/end", g.userAuth("ada"), nil)

	list := func(auth, query string) (int, map[string]any) {
		res := g.get("/v1/calls?"+query, auth)
		return res.status, res.json(t)
	}
	ids := func(body map[string]any) []string {
		var out []string
		for _, c := range body["calls"].([]any) {
			out = append(out, c.(map[string]any)["id"].(string))
		}
		return out
	}
	// Ada sees her own calls only, newest first, a page at a time.
	status, page := list(g.userAuth("ada"), "limit=2")
	if status != 200 || len(ids(page)) != 2 || ids(page)[0] != "h3" || page["next"] == nil {
		t.Fatalf("first page: %d %v", status, page)
	}
	_, page2 := list(g.userAuth("ada"), "limit=2&cursor="+url.QueryEscape(page["next"].(string)))
	if got := ids(page2); len(got) != 1 || got[0] != "h1" || page2["next"] != nil {
		t.Fatalf("second page: %v", page2)
	}
	if c := page2["calls"].([]any)[0].(map[string]any); c["state"] != "ended" || c["duration_seconds"] == nil {
		t.Fatalf("an ended call in the history: %v", c)
	}
	if status, _ := list(g.userAuth("ada"), "user_id=bob"); status != http.StatusForbidden {
		t.Fatalf("ada listing bob's calls: %d", status)
	}
	// A server key sees everything and filters.
	if _, all := list(bearer(apiKey), ""); len(ids(all)) != 4 {
		t.Fatalf("server key: %v", ids(all))
	}
	if _, ended := list(bearer(apiKey), "state=ended"); len(ids(ended)) != 1 {
		t.Fatalf("by state: %v", ids(ended))
	}
	for _, bad := range []string{"state=dancing", "limit=0", "since=yesterday", "cursor=%21%21"} {
		if status, body := list(bearer(apiKey), bad); status != http.StatusBadRequest {
			t.Errorf("%s: %d %v", bad, status, body)
		}
	}
}
