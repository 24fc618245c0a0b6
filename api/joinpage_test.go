package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// TestJoinPageChecksBeforeJoining: a live call's join link answers a page,
// not a redirect, whose only script is the embedded join.js admitted by a
// fresh nonce; it carries the provider URL, the call type (audio asks for
// the microphone only), the seed's error ids in the visitor's language and
// a plain link for clients without scripts. A hostile title is escaped.
func TestJoinPageChecksBeforeJoining(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	const hostile = `<script>alert(1)</script>"'`
	if res := g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "hostile", "type": "audio", "title": hostile, "guests": true, "members": []map[string]any{{"user_id": "ada"}}}); res.status != 201 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	tok := g.post("/v1/calls/hostile/token", bearer(apiKey), map[string]any{"user_id": "ada", "name": "Ada"})
	link, _ := url.Parse(tok.json(t)["join_url"].(string))

	var nonces []string
	for range 2 {
		res := g.get(link.RequestURI(), "")
		body := string(res.body)
		if res.status != 200 || res.header.Get("Location") != "" {
			t.Fatalf("join: %d %v", res.status, res.header)
		}
		csp := res.header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9]+)'`).FindStringSubmatch(csp)
		if m == nil || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("CSP = %q", csp)
		}
		nonces = append(nonces, m[1])
		if !strings.Contains(body, `<script nonce="`+m[1]+`" src="/assets/join.js"></script>`) || strings.Count(body, "<script") != 1 {
			t.Fatalf("the page's scripts are not just join.js under the nonce:\n%s", body)
		}
		if regexp.MustCompile(`(?i)\son[a-z]+=`).MatchString(body) {
			t.Fatalf("inline event handler in the page:\n%s", body)
		}
		for _, h := range []string{"Cache-Control:no-store", "Referrer-Policy:no-referrer", "X-Frame-Options:DENY", "X-Content-Type-Options:nosniff"} {
			k, v, _ := strings.Cut(h, ":")
			if res.header.Get(k) != v {
				t.Fatalf("%s = %q, want %q", k, res.header.Get(k), v)
			}
		}
		if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("hostile title not escaped:\n%s", body)
		}
		if !strings.Contains(res.joinTarget(), "https://meet.jit.si/") || !strings.Contains(body, `data-type="audio"`) ||
			!strings.Contains(body, "<noscript>") || !strings.Contains(body, `id="join" class="button" href="https://meet.jit.si/`) {
			t.Fatalf("page lacks the provider link, the type or the noscript text:\n%s", body)
		}
		for _, id := range []string{"UNABLE_TO_CONNECT", "BROWSER_NOT_SUPPORTED", "NO_CAMERA_ACCESS", "AGENT_DISCONNECTED"} {
			if !strings.Contains(body, `data-error="`+id+`" hidden`) {
				t.Fatalf("error %s missing or shown:\n%s", id, body)
			}
		}
	}
	if nonces[0] == nonces[1] {
		t.Fatal("the nonce is not fresh per response")
	}
	// In French, the errors are in French.
	fr := g.send(g.newRequest("GET", link.RequestURI(), nil, "Accept-Language", "fr-CA,fr;q=0.9"))
	if !strings.Contains(string(fr.body), "caméra") || !strings.Contains(string(fr.body), `lang="fr"`) {
		t.Fatalf("French page:\n%s", fr.body)
	}
	// The script is served from the binary, as JavaScript.
	js := g.get("/assets/join.js", "")
	if js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(js.body), "getUserMedia") {
		t.Fatalf("join.js: %d %v", js.status, js.header)
	}
	if res := g.get("/assets/..%2fpage.html", ""); res.status != 404 {
		t.Fatalf("asset traversal: %d", res.status)
	}
}

// TestEndedPageSaysWhoAndHowLong: someone allowed to know (a personal link,
// or the stable link of a call that admits guests) learns that the call is
// over, with the summary of its card; a stranger of a closed call learns
// nothing.
func TestEndedPageSaysWhoAndHowLong(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "retro", "title": "Retro", "guests": true, "members": []map[string]any{{"user_id": "ada"}}})
	tok := g.post("/v1/calls/retro/token", bearer(apiKey), map[string]any{"user_id": "ada"})
	link, _ := url.Parse(tok.json(t)["join_url"].(string))
	g.post("/v1/calls/retro/end", bearer(apiKey), nil)
	for _, path := range []string{link.RequestURI(), "/join/retro"} {
		res := g.get(path, "")
		body := string(res.body)
		if res.status != 410 || !strings.Contains(body, "This call has ended") || !strings.Contains(body, `id="summary">Call ended`) {
			t.Fatalf("%s: %d\n%s", path, res.status, body)
		}
		if res.joinTarget() != "" || !strings.Contains(res.header.Get("Content-Security-Policy"), "script-src 'nonce-") {
			t.Fatalf("%s: an ended page must not join: %v", path, res.header)
		}
	}
}

// request builds a request to the gateway with headers as name, value pairs.
func (g *gateway) newRequest(method, path string, body io.Reader, headers ...string) *http.Request {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, body)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return req
}

// send sends req without following redirects.
func (g *gateway) send(req *http.Request) response {
	g.t.Helper()
	res, err := noRedirect.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestMissedAndFailedCallsSaySo: a missed (or declined) and a failed call
// get their own words, and the people who were in the call are named.
func TestMissedAndFailedCallsSaySo(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	for _, tc := range []struct {
		state calls.State
		want  string
	}{
		{calls.StateMissed, "This call was missed"},
		{calls.StateRejected, "This call was missed"},
		{calls.StateFailed, "This call could not start"},
		{calls.StateEnded, "This call has ended"},
	} {
		id := "over-" + string(tc.state)
		g.post("/v1/calls", bearer(apiKey), map[string]any{"id": id, "guests": true})
		_, err := g.store.UpdateCall(context.Background(), id, nil, func(c *calls.Call) ([]calls.Event, error) {
			now := time.Now()
			c.State, c.EndedAt = tc.state, &now
			c.Seqs = map[string]calls.RosterMark{"ada": {Seq: 1}, "<b>ben</b>": {Seq: 2}}
			return []calls.Event{{Kind: calls.EventUpdated, CallID: c.ID, State: c.State, At: now}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		res := g.get("/join/"+id, "")
		body := string(res.body)
		if res.status != 410 || !strings.Contains(body, tc.want) || !strings.Contains(body, "Who was there: &lt;b&gt;ben&lt;/b&gt;, ada") || !strings.Contains(body, "2 people") {
			t.Fatalf("%s: %d\n%s", tc.state, res.status, body)
		}
	}
}
