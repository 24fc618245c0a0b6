package streamchat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

type got struct {
	Method, Path string
	Query        string
	Header       http.Header
	Body         map[string]any
}

// fakeStream is Stream's REST API on loopback: it records each request and
// answers with the scripted handlers in turn (the last repeats).
type fakeStream struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []got
	answers []http.HandlerFunc
}

func newFakeStream(t *testing.T, answers ...http.HandlerFunc) *fakeStream {
	f := &fakeStream{answers: answers}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, got{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), m})
		f.mu.Unlock()
		if len(f.answers) == 0 {
			w.Write([]byte(`{"message":{"id":"ignored"}}`))
			return
		}
		f.answers[min(n, len(f.answers)-1)](w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeStream) requests() []got {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]got(nil), f.reqs...)
}

func answer(code int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func testCall() calls.Call {
	return calls.Call{
		ID: "c-1", Type: calls.TypeVideo, State: calls.StateActive, Provider: "jitsi", Title: "Standup",
		CreatedBy:    "stream:ada",
		Participants: []calls.Participant{{Identity: "stream:ada", Name: "Ada", JoinedAt: testNow.Add(-4 * time.Minute)}},
		CreatedAt:    testNow.Add(-10 * time.Minute), UpdatedAt: testNow.Add(-time.Minute), Version: 4,
	}
}

// delivery is a delivery of c; a ref means the card was shown before.
func delivery(c calls.Call, ref string) calls.CardDelivery {
	s := calls.Surface{Chat: "stream", Channel: "messaging:general", Delivery: calls.SurfaceDelivery{MessageRef: ref}}
	if ref != "" {
		s.Delivery.Shown = 1
	}
	return calls.CardDelivery{Call: c, Surface: s, Version: c.Version, DeliveryID: calls.DeliveryID(c.ID, s.Key(), c.Version), JoinURL: "https://gw.example/join/c-1"}
}

func appAt(t *testing.T, f *fakeStream, edit func(*Settings)) *App {
	s := testSettings()
	s.APIURL = f.URL
	if edit != nil {
		edit(s)
	}
	return newApp(t, s)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const wantCardText = "**Standup** · In progress\nStarted by Ada\nAda is in the call\n10 min"

func wantAttachment(actions bool) map[string]any {
	att := map[string]any{
		"type": "call", "title": "Standup", "title_link": "https://gw.example/join/c-1", "text": "Ada is in the call",
		"fallback": "Standup · In progress",
		"call": map[string]any{
			"id": "c-1", "type": "video", "state": "active", "live": true, "provider": "jitsi", "title": "Standup",
			"join_url": "https://gw.example/join/c-1", "created_by": "ada", "created_at": "2021-11-16T12:47:02Z",
			"participants": []any{map[string]any{"id": "ada", "name": "Ada", "joined_at": "2021-11-16T12:53:02Z"}}, "version": float64(4),
		},
	}
	if actions {
		att["actions"] = []any{
			map[string]any{"name": "callgate_action", "text": "Join", "style": "primary", "type": "button", "value": "join:c-1"},
			map[string]any{"name": "callgate_action", "text": "Hang up", "style": "default", "type": "button", "value": "end:c-1"},
		}
	}
	return att
}

func TestPostCardFirstPostAndUpdate(t *testing.T) {
	f := newFakeStream(t, answer(201, `{"message":{"id":"callgate-c-1-x"}}`), answer(200, `{}`))
	a := appAt(t, f, func(s *Settings) { s.ChannelCallField, s.CustomEvents = true, true })
	ref, err := a.PostCard(context.Background(), delivery(testCall(), ""))
	msgID := CardMessageID("c-1", delivery(testCall(), "").Surface)
	if err != nil || ref != msgID || !strings.HasPrefix(ref, "callgate-c-1-") {
		t.Fatalf("ref %q, err %v", ref, err)
	}
	r := f.requests()
	if len(r) != 3 {
		t.Fatalf("%d requests", len(r))
	}
	for _, q := range r {
		if q.Header.Get("Authorization") != ServerToken([]byte(testSecret)) || q.Header.Get("Stream-Auth-Type") != "jwt" || q.Query != "api_key="+testKey {
			t.Fatalf("auth: %v %q", q.Header, q.Query)
		}
	}
	want := map[string]any{"message": map[string]any{"id": msgID, "text": wantCardText, "attachments": []any{wantAttachment(true)}, "user_id": "callgate"}}
	if r[0].Method != "POST" || r[0].Path != "/channels/messaging/general/message" || mustJSON(r[0].Body) != mustJSON(want) {
		t.Fatalf("send: %s %s\n%s\nwant\n%s", r[0].Method, r[0].Path, mustJSON(r[0].Body), mustJSON(want))
	}
	if r[1].Method != "PATCH" || r[1].Path != "/channels/messaging/general" || mustJSON(r[1].Body) != mustJSON(map[string]any{"set": map[string]any{"call": wantAttachment(true)["call"]}}) {
		t.Fatalf("channel: %s %s %s", r[1].Method, r[1].Path, mustJSON(r[1].Body))
	}
	if r[2].Path != "/channels/messaging/general/event" || mustJSON(r[2].Body) != mustJSON(map[string]any{"event": map[string]any{"call": wantAttachment(true)["call"], "type": "call.created", "user_id": "callgate"}}) {
		t.Fatalf("event: %s %s", r[2].Path, mustJSON(r[2].Body))
	}

	// Later: a partial update of the same message, call.updated, then the
	// final card and call.ended.
	c := testCall()
	c.Participants = append(c.Participants, calls.Participant{Identity: "stream:ben", Name: "Ben", JoinedAt: testNow})
	c.Version = 5
	if ref, err := a.PostCard(context.Background(), delivery(c, msgID)); err != nil || ref != msgID {
		t.Fatalf("update: %q %v", ref, err)
	}
	r = f.requests()[3:]
	if r[0].Method != "PUT" || r[0].Path != "/messages/"+msgID || r[0].Body["user_id"] != "callgate" {
		t.Fatalf("partial update: %s %s %v", r[0].Method, r[0].Path, r[0].Body)
	}
	set := r[0].Body["set"].(map[string]any)
	if set["text"] != "**Standup** · In progress\nStarted by Ada\nAda and Ben are in the call\n10 min" || len(set) != 2 {
		t.Fatalf("set: %v", mustJSON(set))
	}
	if r[2].Body["event"].(map[string]any)["type"] != "call.updated" {
		t.Fatal(r[2].Body)
	}
	ended := testNow
	c.State, c.EndedAt, c.Version = calls.StateEnded, &ended, 6
	c.Participants = nil
	c.Seqs = map[string]calls.RosterMark{"stream:ada": {}, "stream:ben": {}}
	c.Recordings = []calls.Recording{{Kind: "recording", URL: "https://rec.example/r(1)"}}
	if _, err := a.PostCard(context.Background(), delivery(c, msgID)); err != nil {
		t.Fatal(err)
	}
	r = f.requests()[6:]
	set = r[0].Body["set"].(map[string]any)
	att := set["attachments"].([]any)[0].(map[string]any)
	if set["text"] != "**Standup** · Call ended\nStarted by ada\nCall ended · 10 min · 2 people\n[Recording](https://rec.example/r%281%29)" {
		t.Fatalf("final text: %q", set["text"])
	}
	if att["actions"] != nil || att["title_link"] != nil || att["call"].(map[string]any)["live"] != false || att["call"].(map[string]any)["join_url"] != nil {
		t.Fatalf("final attachment: %s", mustJSON(att))
	}
	if r[2].Body["event"].(map[string]any)["type"] != "call.ended" {
		t.Fatal(r[2].Body)
	}
}

func TestPostCardWithoutChannelFieldOrEvents(t *testing.T) {
	f := newFakeStream(t)
	a := appAt(t, f, nil)
	if _, err := a.PostCard(context.Background(), delivery(testCall(), "")); err != nil {
		t.Fatal(err)
	}
	if r := f.requests(); len(r) != 1 || r[0].Method != "POST" {
		t.Fatalf("%+v", r)
	}
}

func TestPostCardRetriedFirstPostAdoptsTheMessage(t *testing.T) {
	f := newFakeStream(t, answer(400, `{"code":4,"message":"SendMessage failed with error: \"a message with ID callgate-c-1 already exists\""}`), answer(200, `{}`))
	a := appAt(t, f, nil)
	d := delivery(testCall(), "")
	ref, err := a.PostCard(context.Background(), d)
	if err != nil || ref != CardMessageID("c-1", d.Surface) {
		t.Fatalf("%q %v", ref, err)
	}
	if r := f.requests(); len(r) != 2 || r[1].Method != "PUT" || r[1].Path != "/messages/"+ref {
		t.Fatalf("%+v", r)
	}
}

func TestPostCardErrors(t *testing.T) {
	reset := time.Now().Add(30 * time.Second).Unix()
	cases := []struct {
		name      string
		answer    http.HandlerFunc
		temporary bool
		minWait   time.Duration
	}{
		{"429 retry-after", answer(429, `{}`, "Retry-After", "7"), true, 7 * time.Second},
		{"429 rate limit reset", answer(429, `{}`, "X-RateLimit-Reset", itoa(reset)), true, 20 * time.Second},
		{"503", answer(503, `oops`), true, 0},
		{"403", answer(403, `{"message":"no"}`), false, 0},
		{"404 message deleted", answer(404, `{}`), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeStream(t, c.answer)
			a := appAt(t, f, nil)
			_, err := a.PostCard(context.Background(), delivery(testCall(), "m-1"))
			var temp *calls.TemporaryError
			var perm *calls.PermanentError
			switch {
			case c.temporary && (!errors.As(err, &temp) || temp.RetryAfter < c.minWait):
				t.Fatalf("want temporary with wait >= %s: %#v", c.minWait, err)
			case !c.temporary && !errors.As(err, &perm):
				t.Fatalf("want permanent: %v", err)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "api_key") {
				t.Fatalf("error leaks: %v", err)
			}
		})
	}
	a := newApp(t, nil)
	d := delivery(testCall(), "")
	d.Surface.Channel = "general"
	if _, err := a.PostCard(context.Background(), d); err == nil {
		t.Fatal("posted to a channel without a type")
	}
}

func itoa(n int64) string { return strings.TrimSpace(mustJSON(n)) }

func TestReplyChat(t *testing.T) {
	a := newApp(t, nil)
	parse := func(body string) calls.ChatRequest {
		r, err := a.ParseChat(context.Background(), "", signed(body, testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	reply := func(req calls.ChatRequest, out calls.ChatOutcome) map[string]any {
		r, err := a.ReplyChat(context.Background(), req, out)
		if err != nil || r.Status != 200 || r.ContentType != "application/json" {
			t.Fatalf("%+v %v", r, err)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		return m["message"].(map[string]any)
	}
	start := parse(command("/call Standup", "Standup", ""))
	c := testCall()
	c.State, c.Participants = calls.StateCreated, nil
	m := reply(start, calls.ChatOutcome{Call: c, Created: true, JoinURL: "https://gw.example/join/c-1", PersonalURL: "https://gw.example/join/c-1?t=personal"})
	att := m["attachments"].([]any)[0].(map[string]any)
	if m["type"] != "regular" || m["id"] != "m-1" || m["cid"] != "messaging:general" || att["type"] != "call" || att["call"].(map[string]any)["id"] != "c-1" {
		t.Fatalf("start: %s", mustJSON(m))
	}
	if strings.Contains(mustJSON(m), "personal") {
		t.Fatal("the personal link reached the channel")
	}
	// Ada's Stream language is French: the words are hers.
	if m["text"] != "**Standup** · "+a.templates.Text("fr", "card.state.created")+"\n"+strings.ReplaceAll(a.templates.Text("fr", "card.started_by"), "{name}", "Ada")+"\n"+templates.EscapeMarkdown(a.templates.Text("fr", "card.people.none"))+"\n10 min" {
		t.Fatalf("text: %q", m["text"])
	}
	if v := att["actions"].([]any)[1].(map[string]any)["value"]; v != "end:c-1" {
		t.Fatal(v)
	}
	// A call is live already: ephemeral, with the personal link.
	m = reply(start, calls.ChatOutcome{Call: testCall(), JoinURL: "https://gw.example/join/c-1", PersonalURL: "https://gw.example/join/c-1?t=personal"})
	if m["type"] != "ephemeral" || !strings.Contains(m["text"].(string), "https://gw.example/join/c-1?t=personal") {
		t.Fatalf("live: %s", mustJSON(m))
	}
	// Help, grammar errors and domain errors: type error (sender only).
	for _, req := range []calls.ChatRequest{parse(command("/call help", "help", "")), parse(command("/call end now", "end now", ""))} {
		if m := reply(req, calls.ChatOutcome{}); m["type"] != "error" || !strings.Contains(m["text"].(string), "/call") {
			t.Fatalf("help: %s", mustJSON(m))
		}
	}
	m = reply(start, calls.ChatOutcome{Err: errors.New("invalid input: no such provider")})
	if m["type"] != "error" || m["text"] != "no such provider." {
		t.Fatalf("error: %s", mustJSON(m))
	}
	// Another command's message comes back unchanged.
	other := parse(strings.Replace(command("/ticket x", "x", ""), `"command":"call"`, `"command":"ticket"`, 1))
	if m := reply(other, calls.ChatOutcome{}); m["text"] != "/ticket x" || m["type"] != "regular" {
		t.Fatalf("foreign: %s", mustJSON(m))
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	f := newFakeStream(t)
	a := appAt(t, f, nil)
	c := testCall()
	c.Title = "<!everyone> @here @channel [x](https://evil.example) <script>alert(1)</script> **b**"
	c.Participants[0].Name = "@all [y](javascript:alert(1))"
	if _, err := a.PostCard(context.Background(), delivery(c, "")); err != nil {
		t.Fatal(err)
	}
	body := f.requests()[0].Body["message"].(map[string]any)
	text := body["text"].(string)
	att := mustJSON(body["attachments"])
	for _, bad := range []string{"@here", "@channel", "@all", "@everyone", "[x](", "[y](", "<script>", "**b**"} {
		if strings.Contains(text, bad) {
			t.Errorf("text holds %q: %q", bad, text)
		}
	}
	for _, bad := range []string{"@here", "@channel", "@all"} {
		// The attachment's plain fields: mentions defused (the call object
		// keeps the raw values as data).
		if strings.Contains(mustJSON(map[string]any{"t": body["attachments"].([]any)[0].(map[string]any)["title"], "x": body["attachments"].([]any)[0].(map[string]any)["text"]}), bad) {
			t.Errorf("attachment holds %q: %s", bad, att)
		}
	}
	if !strings.Contains(text, `\[x\]\(https://evil.example\)`) || !strings.Contains(text, `\<script\>`) {
		t.Fatalf("escaping: %q", text)
	}
}

func BenchmarkReplyChat(b *testing.B) {
	a := newApp(b, nil)
	req := calls.WebhookRequest{Method: http.MethodPost, Header: http.Header{HeaderSignature: {vectorSignature}}, Body: []byte(vectorCommand)}
	out := calls.ChatOutcome{Call: testCall(), Created: true, JoinURL: "https://gw.example/join/c-1"}
	b.ReportAllocs()
	for b.Loop() {
		parsed, err := a.ParseChat(context.Background(), "commands", req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.ReplyChat(context.Background(), parsed, out); err != nil {
			b.Fatal(err)
		}
	}
}

// A call started by /call is shown on the command's own message: the first
// delivery updates that message (no bot card), and a message Stream has not
// stored yet is worth a retry, not a dead card.
func TestPostCardAdoptsTheCommandMessage(t *testing.T) {
	f := newFakeStream(t, answer(404, `{"code":4,"message":"message not found"}`), answer(200, `{}`))
	a := appAt(t, f, nil)
	d := delivery(testCall(), "")
	d.Surface.Delivery.MessageRef = "cmd-msg-1" // set from the command, never shown yet
	_, err := a.PostCard(context.Background(), d)
	var temp *calls.TemporaryError
	if !errors.As(err, &temp) || temp.RetryAfter != time.Second {
		t.Fatalf("first update of a message not stored yet: %v", err)
	}
	ref, err := a.PostCard(context.Background(), d)
	if err != nil || ref != "cmd-msg-1" {
		t.Fatalf("retry: %q %v", ref, err)
	}
	for _, r := range f.requests() {
		if r.Method != "PUT" || r.Path != "/messages/cmd-msg-1" {
			t.Fatalf("request %s %s: the command's message is the card, no other is posted", r.Method, r.Path)
		}
	}
}
