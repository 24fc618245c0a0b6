package discord

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

	"github.com/callgate/callgate/calls"
)

const (
	channel  = "645027906669510667"
	joinURL  = "https://gw.example/join/call-1"
	postURL  = testAPI + "/channels/" + channel + "/messages"
	patchURL = postURL + "/1200"
)

func liveCall(now time.Time) calls.Call {
	return calls.Call{
		ID: "call-1", Type: calls.TypeVideo, State: calls.StateActive, Title: "Standup",
		CreatedBy: "disco:53908232506183680", CreatedAt: now.Add(-14 * time.Minute),
		Participants: []calls.Participant{{Identity: "disco:53908232506183680", Name: "Ada"}, {Identity: "guest-1", Name: "Ben"}},
	}
}

func delivery(c calls.Call, ref string) calls.CardDelivery {
	return calls.CardDelivery{
		Call: c, Version: 3, DeliveryID: "d-1", JoinURL: joinURL,
		Surface: calls.Surface{Chat: "disco", Workspace: "290926798626357999", Channel: channel, Delivery: calls.SurfaceDelivery{MessageRef: ref}},
	}
}

// recorder answers with status and body and keeps what it was sent.
type recorder struct {
	bodies  []string
	headers []http.Header
}

func (r *recorder) responder(status int, body string, headers ...string) httpmock.Responder {
	return func(req *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(req.Body)
		r.bodies = append(r.bodies, string(b))
		r.headers = append(r.headers, req.Header.Clone())
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			resp.Header.Set(headers[i], headers[i+1])
		}
		return resp, nil
	}
}

const (
	wantLive  = `{"embeds":[{"title":"🎥 Standup","description":"**In progress**\nStarted by Ada\nAda and Ben are in the call\n⏱ 14 min","timestamp":"2020-12-22T00:18:15Z","color":5763719}],"components":[{"components":[{"label":"Join","style":5,"disabled":false,"url":"https://gw.example/join/call-1","type":2},{"label":"My link","style":2,"disabled":false,"custom_id":"callgate:join:call-1","type":2},{"label":"Hang up","style":4,"disabled":false,"custom_id":"callgate:end:call-1","type":2}],"type":1}],"allowed_mentions":{"parse":[],"replied_user":false}}`
	wantFinal = `{"embeds":[{"title":"🎥 Standup","description":"**Call ended · 14 min · 2 people**\nStarted by <@53908232506183680>","timestamp":"2020-12-22T00:18:15Z","color":9807270,"fields":[{"name":"Recording","value":"[Recording](https://rec.example/r%281%29)","inline":true},{"name":"Transcript","value":"[Transcript](https://rec.example/t.txt)","inline":true}]}],"components":[],"allowed_mentions":{"parse":[],"replied_user":false}}`
	wantRing  = `{"embeds":[{"title":"📞 Audio call","description":"**Ringing…**\nIncoming call from <@53908232506183680>\nNobody has joined yet","timestamp":"2020-12-22T00:32:15Z","color":5793266}],"components":[{"components":[{"label":"Accept","style":3,"disabled":false,"custom_id":"callgate:accept:call-1","type":2},{"label":"Reject","style":4,"disabled":false,"custom_id":"callgate:decline:call-1","type":2}],"type":1}],"allowed_mentions":{"parse":[],"replied_user":false}}`
)

// TestPostCardPostThenEdit: the first delivery posts the bot's message,
// later ones edit it, the final one has the summary, the recording links
// and no buttons.
func TestPostCardPostThenEdit(t *testing.T) {
	a, clk, mock := newTestApp(t)
	var post, patch recorder
	mock.RegisterResponder(http.MethodPost, postURL, post.responder(200, `{"id":"1200","channel_id":"`+channel+`"}`))
	mock.RegisterResponder(http.MethodPatch, patchURL, patch.responder(200, `{"id":"1200"}`))

	ringing := calls.Call{ID: "call-1", Type: calls.TypeAudio, State: calls.StateRinging, CreatedBy: "disco:53908232506183680", CreatedAt: clk.t}
	ref, err := a.PostCard(context.Background(), delivery(ringing, ""))
	if err != nil || ref != "1200" {
		t.Fatalf("post = %q, %v", ref, err)
	}
	if len(post.bodies) != 1 || post.bodies[0] != wantRing {
		t.Fatalf("posted\n%s\nwant\n%s", post.bodies, wantRing)
	}
	h := post.headers[0]
	if h.Get("Authorization") != "Bot "+botToken || h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("User-Agent"), "DiscordBot (") {
		t.Fatalf("headers = %v", h)
	}

	live := liveCall(clk.t)
	if ref, err = a.PostCard(context.Background(), delivery(live, "1200")); err != nil || ref != "1200" {
		t.Fatalf("edit = %q, %v", ref, err)
	}
	if len(patch.bodies) != 1 || patch.bodies[0] != wantLive {
		t.Fatalf("edited\n%s\nwant\n%s", patch.bodies, wantLive)
	}

	ended := live
	end := clk.t
	ended.State, ended.EndedAt, ended.Participants = calls.StateEnded, &end, nil
	ended.Seqs = map[string]calls.RosterMark{"disco:53908232506183680": {}, "guest-1": {}}
	ended.Recordings = []calls.Recording{{Kind: "recording", URL: "https://rec.example/r(1)"}, {Kind: "transcript", URL: "https://rec.example/t.txt"}, {Kind: "recording", URL: "javascript:alert(1)"}}
	if _, err = a.PostCard(context.Background(), delivery(ended, "1200")); err != nil {
		t.Fatal(err)
	}
	if len(patch.bodies) != 2 || patch.bodies[1] != wantFinal {
		t.Fatalf("final\n%s\nwant\n%s", patch.bodies[1], wantFinal)
	}
	if len(post.bodies) != 1 {
		t.Fatalf("an edit posted a new message")
	}
}

// TestCardHostileText: no title or name can mention, ping, link or format.
func TestCardHostileText(t *testing.T) {
	hostile := []string{
		"@everyone", "@here", "<@&123456789012345678>", "<@123456789012345678>", "<!channel>", "<!here>",
		"[free nitro](https://evil.example)", "<script>alert(1)</script>", "**bold** __u__ ~~s~~ ||spoiler|| `code`",
		"# heading", "> quote", "https://evil.example/x", "<#645027906669510667>", "<t:0:R>", "\u202eevil", "line\nbreak",
	}
	forbidden := []string{"@everyone", "@here", "<@", "<!", "<#", "<t:", "](http", "<script", "**bold", "||spoiler", "\u202e", "://evil"}
	a, clk, mock := newTestApp(t)
	var post recorder
	mock.RegisterResponder(http.MethodPost, postURL, post.responder(200, `{"id":"1200"}`))
	for _, h := range hostile {
		c := liveCall(clk.t)
		c.Title = "Call " + h
		c.CreatedBy = "disco:" + h // not a snowflake: shown escaped
		c.Participants = []calls.Participant{{Identity: "x", Name: h}, {Identity: h}}
		if _, err := a.PostCard(context.Background(), delivery(c, "")); err != nil {
			t.Fatal(err)
		}
		body := post.bodies[len(post.bodies)-1]
		if !strings.Contains(body, `"allowed_mentions":{"parse":[]`) {
			t.Fatalf("no allowed_mentions in %s", body)
		}
		for _, f := range forbidden {
			if unescaped(t, body, f) {
				t.Errorf("title %q: %q reached the card unescaped: %s", h, f, body)
			}
		}
		// And the replies: errors and confirmations quote titles too.
		c.Title = h
		r := jsonBody(a.Response(calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandStart}, Private: &pending{}}, calls.ChatOutcome{Call: c, Created: true, PersonalURL: "https://gw.example/p"}))
		for _, f := range forbidden {
			if unescaped(t, string(r), f) {
				t.Errorf("reply to %q carries %q unescaped: %s", h, f, r)
			}
		}
	}
	if got := Escape("@everyone [x](https://e) <@1> a_b"); got != "@\u200beveryone \\[x\\]\\(https\\://e\\) \\<@\u200b1\\> a\\_b" {
		t.Fatalf("Escape = %q", got)
	}
}

// unescaped reports whether any string in the JSON document holds pattern
// with its first character not escaped by a backslash: what Discord would
// render as markdown, a mention or a link.
func unescaped(t *testing.T, doc, pattern string) bool {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			for i := 0; ; {
				j := strings.Index(x[i:], pattern)
				if j < 0 {
					return false
				}
				at := i + j
				k := 0
				for at-k-1 >= 0 && x[at-k-1] == '\\' {
					k++
				}
				if k%2 == 0 {
					return true
				}
				i = at + 1
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for key, e := range x {
				if key == "url" {
					continue // link buttons carry the gateway's URLs
				}
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func TestCardLongTitle(t *testing.T) {
	a, clk, _ := newTestApp(t)
	c := liveCall(clk.t)
	c.Title = strings.Repeat("_", 300)
	e := a.Card(delivery(c, "")).Embeds[0]
	if n := len([]rune(e.Title)); n > maxEmbedTitle {
		t.Fatalf("title has %d runes", n)
	}
	if strings.HasSuffix(strings.TrimSuffix(e.Title, "…"), "\\") && !strings.HasSuffix(strings.TrimSuffix(e.Title, "…"), "\\_") {
		t.Fatalf("title ends in a lone backslash: %q", e.Title)
	}
}

func TestPostCardRateLimits(t *testing.T) {
	t.Run("429 on a route", func(t *testing.T) {
		a, clk, mock := newTestApp(t)
		var post recorder
		mock.RegisterResponder(http.MethodPost, postURL, post.responder(429, `{"message":"You are being rate limited.","retry_after":1.5,"global":false}`, "Retry-After", "2", "X-RateLimit-Reset-After", "1.5", "X-RateLimit-Bucket", "abcd"))
		_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), ""))
		assertTemporary(t, err, 1500*time.Millisecond)
		// The next card to that route waits without asking Discord.
		clk.t = clk.t.Add(time.Second)
		_, err = a.PostCard(context.Background(), delivery(liveCall(clk.t), ""))
		assertTemporary(t, err, 500*time.Millisecond)
		if len(post.bodies) != 1 {
			t.Fatalf("%d requests, want 1", len(post.bodies))
		}
		// Another channel is another bucket.
		var other recorder
		mock.RegisterResponder(http.MethodPost, testAPI+"/channels/1/messages", other.responder(200, `{"id":"5"}`))
		d := delivery(liveCall(clk.t), "")
		d.Surface.Channel = "1"
		if ref, err := a.PostCard(context.Background(), d); err != nil || ref != "5" {
			t.Fatalf("other channel = %q, %v", ref, err)
		}
		// Once reset, the route is used again.
		clk.t = clk.t.Add(600 * time.Millisecond)
		mock.RegisterResponder(http.MethodPost, postURL, post.responder(200, `{"id":"1200"}`))
		if ref, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "")); err != nil || ref != "1200" {
			t.Fatalf("after reset = %q, %v", ref, err)
		}
	})
	t.Run("global 429", func(t *testing.T) {
		a, clk, mock := newTestApp(t)
		var post recorder
		mock.RegisterResponder(http.MethodPost, postURL, post.responder(429, `{"message":"You are being rate limited.","retry_after":0.25,"global":true}`, "X-RateLimit-Global", "true"))
		_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), ""))
		assertTemporary(t, err, 250*time.Millisecond)
		d := delivery(liveCall(clk.t), "")
		d.Surface.Channel = "1"
		_, err = a.PostCard(context.Background(), d)
		assertTemporary(t, err, 250*time.Millisecond)
		if len(post.bodies) != 1 {
			t.Fatalf("the global limit did not hold back the other channel")
		}
	})
	t.Run("429 without body", func(t *testing.T) {
		a, clk, mock := newTestApp(t)
		mock.RegisterResponder(http.MethodPatch, patchURL, (&recorder{}).responder(429, ``, "X-RateLimit-Reset-After", "3.001"))
		_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "1200"))
		assertTemporary(t, err, 3001*time.Millisecond)
	})
	t.Run("empty bucket on success", func(t *testing.T) {
		a, clk, mock := newTestApp(t)
		var patch recorder
		mock.RegisterResponder(http.MethodPatch, patchURL, patch.responder(200, `{"id":"1200"}`, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset-After", "2.25", "X-RateLimit-Limit", "5"))
		if _, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "1200")); err != nil {
			t.Fatal(err)
		}
		_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "1200"))
		assertTemporary(t, err, 2250*time.Millisecond)
		// Posting a new message is another route.
		mock.RegisterResponder(http.MethodPost, postURL, (&recorder{}).responder(200, `{"id":"1300"}`))
		if ref, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "")); err != nil || ref != "1300" {
			t.Fatalf("post = %q, %v", ref, err)
		}
		clk.t = clk.t.Add(2250 * time.Millisecond)
		if _, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "1200")); err != nil {
			t.Fatal(err)
		}
		if len(patch.bodies) != 2 {
			t.Fatalf("%d edits, want 2", len(patch.bodies))
		}
	})
}

func assertTemporary(t *testing.T, err error, retryAfter time.Duration) {
	t.Helper()
	var te *calls.TemporaryError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a TemporaryError", err)
	}
	if te.RetryAfter != retryAfter {
		t.Fatalf("RetryAfter = %s, want %s (%v)", te.RetryAfter, retryAfter, err)
	}
}

func TestPostCardErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		permanent string // part of the reason; "" means temporary
	}{
		{name: "missing access", status: 403, body: `{"message":"Missing Access","code":50001}`, permanent: "invite it to the server"},
		{name: "missing permissions", status: 403, body: `{"message":"Missing Permissions","code":50013}`, permanent: "Embed Links"},
		{name: "unknown channel", status: 404, body: `{"message":"Unknown Channel","code":10003}`, permanent: "does not know this channel"},
		{name: "bad token", status: 401, body: `{"message":"401: Unauthorized","code":0}`, permanent: "bot_token"},
		{name: "invalid form", status: 400, body: `{"message":"Invalid Form Body","code":50035}`, permanent: "refused the card (HTTP 400)"},
		{name: "server error", status: 502, body: `bad gateway`},
		{name: "unavailable", status: 503, body: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, clk, mock := newTestApp(t)
			mock.RegisterResponder(http.MethodPost, postURL, (&recorder{}).responder(tt.status, tt.body))
			_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), ""))
			if strings.Contains(err.Error(), botToken) {
				t.Fatalf("error carries the token: %v", err)
			}
			if tt.permanent == "" {
				var te *calls.TemporaryError
				if !errors.As(err, &te) {
					t.Fatalf("err = %v, want temporary", err)
				}
				return
			}
			var pe *calls.PermanentError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.permanent) {
				t.Fatalf("err = %v, want permanent with %q", err, tt.permanent)
			}
		})
	}
	t.Run("network", func(t *testing.T) {
		a, clk, mock := newTestApp(t)
		mock.RegisterResponder(http.MethodPost, postURL, httpmock.NewErrorResponder(errors.New("connection reset")))
		_, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), ""))
		var te *calls.TemporaryError
		if !errors.As(err, &te) || strings.Contains(err.Error(), "/channels/") && strings.Contains(err.Error(), "?") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not a channel id", func(t *testing.T) {
		a, clk, _ := newTestApp(t)
		d := delivery(liveCall(clk.t), "")
		d.Surface.Channel = "../../guilds/1"
		var pe *calls.PermanentError
		if _, err := a.PostCard(context.Background(), d); !errors.As(err, &pe) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestPostCardDeletedMessage: an edit of a card someone deleted posts a
// new one and returns its id.
func TestPostCardDeletedMessage(t *testing.T) {
	a, clk, mock := newTestApp(t)
	var post, patch recorder
	mock.RegisterResponder(http.MethodPatch, patchURL, patch.responder(404, `{"message":"Unknown Message","code":10008}`))
	mock.RegisterResponder(http.MethodPost, postURL, post.responder(200, `{"id":"1300"}`))
	ref, err := a.PostCard(context.Background(), delivery(liveCall(clk.t), "1200"))
	if err != nil || ref != "1300" || len(patch.bodies) != 1 || len(post.bodies) != 1 || post.bodies[0] != wantLive {
		t.Fatalf("ref %q, err %v, patches %d, posts %v", ref, err, len(patch.bodies), post.bodies)
	}
}

func TestDestination(t *testing.T) {
	a, _, _ := newTestApp(t)
	if got := a.Destination(calls.Surface{Chat: "disco", Workspace: "1", Channel: channel}); got != channel {
		t.Fatalf("Destination = %q", got)
	}
}

// Ringing someone by name: their DM channel with the bot is opened, the
// card posted there, and later edits go straight to that message.
func TestPostCardToADirectMessage(t *testing.T) {
	a, clk, mock := newTestApp(t)
	var open, post, patch recorder
	const user, dm = "80351110224678912", "319674150115610528"
	mock.RegisterResponder(http.MethodPost, testAPI+"/users/@me/channels", open.responder(200, `{"id":"`+dm+`","type":1}`))
	mock.RegisterResponder(http.MethodPost, testAPI+"/channels/"+dm+"/messages", post.responder(200, `{"id":"1300","channel_id":"`+dm+`"}`))
	mock.RegisterResponder(http.MethodPatch, testAPI+"/channels/"+dm+"/messages/1300", patch.responder(200, `{"id":"1300"}`))

	ringing := calls.Call{ID: "call-1", Type: calls.TypeVideo, State: calls.StateRinging, CreatedBy: "disco:53908232506183680", CreatedAt: clk.t}
	d := delivery(ringing, "")
	d.Surface.Channel = "dm:" + user
	ref, err := a.PostCard(context.Background(), d)
	if err != nil || ref != dm+"/1300" {
		t.Fatalf("post = %q, %v", ref, err)
	}
	if len(open.bodies) != 1 || open.bodies[0] != `{"recipient_id":"`+user+`"}` || len(post.bodies) != 1 || !strings.Contains(post.bodies[0], `"callgate:accept:call-1"`) {
		t.Fatalf("open %v, post %v", open.bodies, post.bodies)
	}
	d = delivery(liveCall(clk.t), ref)
	d.Surface.Channel = "dm:" + user
	if ref2, err := a.PostCard(context.Background(), d); err != nil || ref2 != ref {
		t.Fatalf("edit = %q, %v", ref2, err)
	}
	if len(open.bodies) != 1 || len(patch.bodies) != 1 {
		t.Fatalf("the edit opened the DM again (%d) or did not patch (%d)", len(open.bodies), len(patch.bodies))
	}
}
