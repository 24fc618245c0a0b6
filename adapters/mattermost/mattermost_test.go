package mattermost

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const (
	testToken  = "cmd-token-0123456789"
	testPrev   = "old-cmd-token-987654"
	testAction = "action-secret-0123456789"
)

func testSettings() *Settings {
	s := NewSettings()
	s.CommandToken, s.BotToken, s.ActionSecret, s.APIURL = testToken, "bot-token-xyz", testAction, "https://mm.example.com"
	return s
}

func newApp(t testing.TB, s *Settings) *App {
	t.Helper()
	if s == nil {
		s = testSettings()
	}
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(s, adapters.Deps{Name: "mm", WebhookURL: "https://gw.example/webhooks/chats/mm", Now: func() time.Time { return testNow }, Templates: tpl})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSettingsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Settings)
		want []string
	}{
		{"valid", func(*Settings) {}, nil},
		{"empty", func(s *Settings) { *s = *NewSettings() }, []string{
			"command_token: required (the slash command's token)",
			"bot_token: required (the bot account's access token, which posts the cards)",
			"action_secret: required (signs the card buttons; any random string of 16 bytes or more)",
			"api_url: required (the Mattermost server, https://mm.example.com)"}},
		{"short action secret", func(s *Settings) { s.ActionSecret = "short-secret" }, []string{"action_secret: must be at least 16 bytes"}},
		{"previous alone", func(s *Settings) { s.CommandToken, s.PreviousCommandToken = "", "x" }, []string{
			"command_token: required (the slash command's token)", "previous_command_token: set only together with command_token, during a rotation"}},
		{"api url", func(s *Settings) { s.APIURL = "mm.example.com" }, []string{"api_url: must be an absolute http or https URL"}},
		{"locale", func(s *Settings) { s.DefaultLocale = "pt" }, []string{"default_locale: must be one of en, fr, de, es"}},
		{"timeout", func(s *Settings) { s.Timeout = -1 }, []string{"timeout: must be positive"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSettings()
			c.edit(s)
			var got []string
			s.Validate(func(f, m string, _ ...string) { got = append(got, f+": "+m) })
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
			for _, secret := range []string{s.CommandToken, s.BotToken, s.ActionSecret} {
				if secret != "" && strings.Contains(strings.Join(got, ""), secret) {
					t.Fatal("a message holds a secret")
				}
			}
		})
	}
}

func TestKind(t *testing.T) {
	s := Kind.NewSettings().(*Settings)
	if Kind.Name != "mattermost" || s.DefaultLocale != "en" || s.Timeout != DefaultTimeout {
		t.Fatalf("%s %+v", Kind.Name, s)
	}
	if _, err := Kind.New(context.Background(), s, adapters.Deps{}); err == nil {
		t.Fatal("built without tokens")
	}
	intake, err := Kind.New(context.Background(), testSettings(), adapters.Deps{Name: "mm", PublicURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	if intake.(*App).actionsURL != "https://gw.example/webhooks/chats/mm/actions" {
		t.Fatal(intake.(*App).actionsURL)
	}
	if _, ok := intake.(calls.CardPoster); !ok {
		t.Fatal("not a card poster")
	}
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func commandForm(text string, extra ...string) string {
	return form(append([]string{"token", testToken, "team_id", "team-1", "team_domain", "acme", "channel_id", "chan-1", "channel_name", "town-square",
		"user_id", "uid-ada", "user_name", "ada", "command", "/call", "text", text, "trigger_id", "trig-1",
		"response_url", "https://mm.example.com/hooks/commands/h1"}, extra...)...)
}

func post(body string, headers ...string) calls.WebhookRequest {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return calls.WebhookRequest{Method: http.MethodPost, URL: "https://gw.example/webhooks/chats/mm/commands", Header: h, Body: []byte(body)}
}

func TestParseCommandAuthentication(t *testing.T) {
	s := testSettings()
	s.PreviousCommandToken = testPrev
	a := newApp(t, s)
	noToken := strings.Replace(commandForm("Standup"), "token="+testToken+"&", "", 1)
	cases := []struct {
		name    string
		req     calls.WebhookRequest
		wantErr error
	}{
		{"token field and header (as Mattermost sends)", post(commandForm("Standup"), "Authorization", "Token "+testToken), nil},
		{"token field only", post(commandForm("Standup")), nil},
		{"header only", post(noToken, "Authorization", "Token "+testToken), nil},
		{"previous token during rotation", post(strings.Replace(commandForm("Standup"), testToken, testPrev, 1)), nil},
		{"GET with query", calls.WebhookRequest{Method: "GET", URL: "https://gw.example/webhooks/chats/mm/commands?" + commandForm("Standup")}, nil},
		{"no token", post(noToken), calls.ErrWebhookUnauthenticated},
		{"wrong token", post(strings.Replace(commandForm("Standup"), testToken, "cmd-token-0123456780", 1)), calls.ErrWebhookUnauthenticated},
		{"field and header differ", post(commandForm("Standup"), "Authorization", "Token other"), calls.ErrWebhookUnauthenticated},
		{"bearer header", post(noToken, "Authorization", "Bearer "+testToken), calls.ErrWebhookUnauthenticated},
		{"no channel", post(strings.Replace(commandForm("Standup"), "channel_id=chan-1&", "", 1)), calls.ErrWebhookMalformed},
		{"two user ids", post(commandForm("Standup", "user_id", "uid-eve")), calls.ErrWebhookMalformed},
		{"PUT", calls.WebhookRequest{Method: "PUT", Body: []byte(commandForm("x"))}, calls.ErrWebhookMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.ParseChat(context.Background(), "commands", c.req)
			if c.wantErr == nil {
				if err != nil || got.Command == nil || got.Command.Title != "Standup" ||
					got.Surface != (calls.Surface{Chat: "mm", Workspace: "team-1", Channel: "chan-1"}) || got.User != (calls.ChatUser{ID: "uid-ada", Name: "ada"}) {
					t.Fatalf("%+v %v", got, err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testPrev) {
				t.Fatal("error holds a token")
			}
		})
	}
	if _, err := a.ParseChat(context.Background(), "events", post(commandForm("x"))); !errors.Is(err, calls.ErrWebhookMalformed) {
		t.Fatalf("unknown path: %v", err)
	}
}

func TestParseCommandGrammar(t *testing.T) {
	a := newApp(t, nil)
	got, err := a.ParseChat(context.Background(), "commands", post(commandForm("audio @ben @cy Sync", "user_mentions", "ben,cy", "user_mentions_ids", "uid-ben,uid-cy")))
	if err != nil || got.Command.Type != calls.TypeAudio || strings.Join(got.Command.Mentions, ",") != "uid-ben,uid-cy" || got.Command.Title != "Sync" {
		t.Fatalf("%+v %v", got.Command, err)
	}
	got, err = a.ParseChat(context.Background(), "commands", post(commandForm("end now")))
	if err != nil || got.Command != nil || got.Private.(*pending).commandErr == nil {
		t.Fatalf("%+v %v", got, err)
	}
}

func actionBody(action, callID, channel, sig string) string {
	b, _ := json.Marshal(map[string]any{
		"user_id": "uid-ben", "user_name": "ben", "channel_id": channel, "channel_name": "town-square", "team_id": "team-1",
		"team_domain": "acme", "post_id": "post-1", "trigger_id": "t", "type": "", "data_source": "",
		"context": map[string]string{"action": action, "call_id": callID, "sig": sig},
	})
	return string(b)
}

func TestParseAction(t *testing.T) {
	a := newApp(t, nil)
	sig := ActionSignature([]byte(testAction), "end", "c-1", "chan-1")
	cases := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"signed", actionBody("end", "c-1", "chan-1", sig), nil},
		{"unsigned", actionBody("end", "c-1", "chan-1", ""), calls.ErrWebhookUnauthenticated},
		{"signed with another secret", actionBody("end", "c-1", "chan-1", ActionSignature([]byte("another-secret-123456"), "end", "c-1", "chan-1")), calls.ErrWebhookUnauthenticated},
		{"action changed", actionBody("join", "c-1", "chan-1", sig), calls.ErrWebhookUnauthenticated},
		{"call changed", actionBody("end", "c-2", "chan-1", sig), calls.ErrWebhookUnauthenticated},
		{"from another channel", actionBody("end", "c-1", "chan-2", sig), calls.ErrWebhookUnauthenticated},
		{"unknown action, signed", actionBody("explode", "c-1", "chan-1", ActionSignature([]byte(testAction), "explode", "c-1", "chan-1")), calls.ErrWebhookMalformed},
		{"not JSON", "user_id=x", calls.ErrWebhookMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.ParseChat(context.Background(), "actions", calls.WebhookRequest{Method: "POST", Body: []byte(c.body)})
			if c.wantErr == nil {
				if err != nil || *got.Action != (calls.ChatAction{Kind: "end", CallID: "c-1"}) || got.User.ID != "uid-ben" || got.Surface.Channel != "chan-1" {
					t.Fatalf("%+v %v", got, err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func testCall() calls.Call {
	return calls.Call{
		ID: "c-1", Type: calls.TypeVideo, State: calls.StateActive, Provider: "jitsi", Title: "Standup", CreatedBy: "mm:uid-ada",
		Participants: []calls.Participant{{Identity: "mm:uid-ada", Name: "Ada", JoinedAt: testNow.Add(-4 * time.Minute)}},
		CreatedAt:    testNow.Add(-10 * time.Minute), UpdatedAt: testNow.Add(-time.Minute), Version: 4,
	}
}

func decode(t *testing.T, r calls.WebhookReply) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil || r.ContentType != "application/json" {
		t.Fatalf("%s %v", r.Body, err)
	}
	return m
}

func TestReplyChat(t *testing.T) {
	a := newApp(t, nil)
	cmd, _ := a.ParseChat(context.Background(), "commands", post(commandForm("Standup")))
	out := calls.ChatOutcome{Call: testCall(), Created: true, JoinURL: "https://gw.example/join/c-1", PersonalURL: "https://gw.example/join/c-1?t=p"}
	r, _ := a.ReplyChat(context.Background(), cmd, out)
	if m := decode(t, r); m["response_type"] != "ephemeral" || m["text"] != "**Standup** · In progress\nYour personal link to join \\(for you only, valid for a while\\)\\: https://gw.example/join/c-1?t=p" {
		t.Fatalf("%q", m["text"])
	}
	out.Created = false
	r, _ = a.ReplyChat(context.Background(), cmd, out)
	if m := decode(t, r); !strings.HasPrefix(m["text"].(string), "A call is already live here") {
		t.Fatalf("%q", m["text"])
	}
	help, _ := a.ParseChat(context.Background(), "commands", post(commandForm("help")))
	r, _ = a.ReplyChat(context.Background(), help, calls.ChatOutcome{})
	if m := decode(t, r); m["response_type"] != "ephemeral" || !strings.Contains(m["text"].(string), "/call") {
		t.Fatalf("%v", m)
	}

	click := func(action string) calls.ChatRequest {
		req, err := a.ParseChat(context.Background(), "actions", calls.WebhookRequest{Method: "POST", Body: []byte(actionBody(action, "c-1", "chan-1", ActionSignature([]byte(testAction), action, "c-1", "chan-1")))})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	r, _ = a.ReplyChat(context.Background(), click("join"), calls.ChatOutcome{Call: testCall(), PersonalURL: "https://gw.example/join/c-1?t=ben"})
	if m := decode(t, r); m["ephemeral_text"] != "Your personal link to join \\(for you only, valid for a while\\)\\: https://gw.example/join/c-1?t=ben" {
		t.Fatalf("%v", m)
	}
	r, _ = a.ReplyChat(context.Background(), click("end"), calls.ChatOutcome{Err: errors.New("forbidden: only the person who started the call can end it")})
	if m := decode(t, r); m["ephemeral_text"] != "only the person who started the call can end it." {
		t.Fatalf("%v", m)
	}
	ended := testCall()
	at := testNow
	ended.State, ended.EndedAt, ended.Participants = calls.StateEnded, &at, nil
	r, _ = a.ReplyChat(context.Background(), click("end"), calls.ChatOutcome{Call: ended})
	m := decode(t, r)
	att := m["update"].(map[string]any)["props"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
	if att["actions"] != nil || att["color"] != ColorEnded || !strings.Contains(att["text"].(string), "**Call ended · 10 min**") {
		t.Fatalf("%v", att)
	}
}

type got struct {
	Method, Path string
	Header       http.Header
	Body         map[string]any
}

type fakeMM struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []got
}

func newFakeMM(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fakeMM {
	f := &fakeMM{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, got{r.Method, r.URL.Path, r.Header.Clone(), m})
		f.mu.Unlock()
		handle(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMM) requests() []got {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]got(nil), f.reqs...)
}

func mmServer(w http.ResponseWriter, r *http.Request, _ int) {
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v4/users/uid-ada":
		io.WriteString(w, `{"id":"uid-ada","username":"ada"}`)
	case r.Method == "POST" && r.URL.Path == "/api/v4/posts":
		w.WriteHeader(201)
		io.WriteString(w, `{"id":"post-1"}`)
	case r.Method == "PUT" && r.URL.Path == "/api/v4/posts/post-1/patch":
		io.WriteString(w, `{"id":"post-1"}`)
	default:
		w.WriteHeader(404)
	}
}

func delivery(c calls.Call, ref string) calls.CardDelivery {
	s := calls.Surface{Chat: "mm", Workspace: "team-1", Channel: "chan-1", Delivery: calls.SurfaceDelivery{MessageRef: ref}}
	return calls.CardDelivery{Call: c, Surface: s, Version: c.Version, DeliveryID: calls.DeliveryID(c.ID, s.Key(), c.Version), JoinURL: "https://gw.example/join/c-1"}
}

func appAt(t *testing.T, f *fakeMM) *App {
	s := testSettings()
	s.APIURL = f.URL
	return newApp(t, s)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPostCard(t *testing.T) {
	f := newFakeMM(t, mmServer)
	a := appAt(t, f)
	ref, err := a.PostCard(context.Background(), delivery(testCall(), ""))
	if err != nil || ref != "post-1" {
		t.Fatalf("%q %v", ref, err)
	}
	r := f.requests()
	if len(r) != 2 || r[0].Path != "/api/v4/users/uid-ada" || r[1].Method != "POST" || r[1].Path != "/api/v4/posts" {
		t.Fatalf("%+v", r)
	}
	if r[1].Header.Get("Authorization") != "Bearer bot-token-xyz" {
		t.Fatal(r[1].Header)
	}
	action := func(id, name, style string) map[string]any {
		return map[string]any{"id": id, "name": name, "type": "button", "style": style, "integration": map[string]any{
			"url":     "https://gw.example/webhooks/chats/mm/actions",
			"context": map[string]any{"action": id, "call_id": "c-1", "sig": ActionSignature([]byte(testAction), id, "c-1", "chan-1")}}}
	}
	want := map[string]any{"channel_id": "chan-1", "message": "", "props": map[string]any{"attachments": []any{map[string]any{
		"fallback": "Standup · In progress", "color": ColorLive, "title": "Standup", "title_link": "https://gw.example/join/c-1",
		"text":    "Started by Ada\nAda is in the call",
		"fields":  []any{map[string]any{"title": "", "value": "In progress", "short": true}, map[string]any{"title": "", "value": "10 min", "short": true}},
		"actions": []any{action("join", "Join", "primary"), action("end", "Hang up", "danger")},
	}}}}
	if mustJSON(r[1].Body) != mustJSON(want) {
		t.Fatalf("posted\n%s\nwant\n%s", mustJSON(r[1].Body), mustJSON(want))
	}

	// Someone joins: the post is patched; the username is cached.
	c := testCall()
	c.Participants = append(c.Participants, calls.Participant{Identity: "mm:uid-ben", Name: "Ben", JoinedAt: testNow})
	if ref, err := a.PostCard(context.Background(), delivery(c, "post-1")); err != nil || ref != "post-1" {
		t.Fatalf("%q %v", ref, err)
	}
	r = f.requests()[2:]
	if len(r) != 1 || r[0].Method != "PUT" || r[0].Path != "/api/v4/posts/post-1/patch" {
		t.Fatalf("%+v", r)
	}
	att := r[0].Body["props"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
	if att["text"] != "Started by Ada\nAda and Ben are in the call" || r[0].Body["message"] != "" {
		t.Fatalf("%v", att["text"])
	}

	// The end: final, no buttons, summary and recording.
	at := testNow
	c.State, c.EndedAt, c.Participants = calls.StateEnded, &at, nil
	c.Seqs = map[string]calls.RosterMark{"mm:uid-ada": {}, "mm:uid-ben": {}}
	c.Recordings = []calls.Recording{{Kind: "recording", URL: "https://rec.example/1"}}
	if _, err := a.PostCard(context.Background(), delivery(c, "post-1")); err != nil {
		t.Fatal(err)
	}
	att = f.requests()[3].Body["props"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
	if att["actions"] != nil || att["title_link"] != nil || att["color"] != ColorEnded || att["text"] != "Started by ada\n**Call ended · 10 min · 2 people**\n[Recording](https://rec.example/1)" {
		t.Fatalf("final: %s", mustJSON(att))
	}
}

func TestPostCardErrors(t *testing.T) {
	cases := []struct {
		name      string
		code      int
		header    string
		temporary bool
		wait      time.Duration
	}{
		{"429", 429, "9", true, 9 * time.Second},
		{"500", 500, "", true, 0},
		{"403", 403, "", false, 0},
		{"404 deleted post", 404, "", false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeMM(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				if r.Method == "GET" {
					w.WriteHeader(500) // a failed name lookup does not fail the card
					return
				}
				if c.header != "" {
					w.Header().Set("Retry-After", c.header)
				}
				w.WriteHeader(c.code)
			})
			a := appAt(t, f)
			_, err := a.PostCard(context.Background(), delivery(testCall(), "post-1"))
			var temp *calls.TemporaryError
			var perm *calls.PermanentError
			if c.temporary && (!errors.As(err, &temp) || temp.RetryAfter != c.wait) || !c.temporary && !errors.As(err, &perm) {
				t.Fatalf("%#v", err)
			}
			if strings.Contains(err.Error(), "bot-token-xyz") {
				t.Fatal("error holds the bot token")
			}
		})
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	f := newFakeMM(t, mmServer)
	a := appAt(t, f)
	c := testCall()
	c.Title = "<!channel> @all @here @ben [x](https://evil.example) ![i](https://evil.example/i.png) <script>x</script> **b** :smile:"
	c.Participants[0].Name = "@channel [y](javascript:alert(1))"
	if _, err := a.PostCard(context.Background(), delivery(c, "")); err != nil {
		t.Fatal(err)
	}
	att := f.requests()[1].Body["props"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
	shown := mustJSON([]any{att["title"], att["text"], att["fallback"]})
	var s []string
	json.Unmarshal([]byte(shown), &s)
	all := strings.Join(s, "\n")
	for _, bad := range []string{"@channel", "@all", "@here", "@ben", "[x](", "![i]", "[y](", "<script>", "**b**", ":smile:"} {
		if strings.Contains(all, bad) {
			t.Errorf("card holds %q: %q", bad, all)
		}
	}
}

func BenchmarkParseChat(b *testing.B) {
	a := newApp(b, nil)
	req := post(commandForm("audio Standup"), "Authorization", "Token "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ParseChat(context.Background(), "commands", req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAction(b *testing.B) {
	a := newApp(b, nil)
	req := calls.WebhookRequest{Method: "POST", Body: []byte(actionBody("end", "c-1", "chan-1", ActionSignature([]byte(testAction), "end", "c-1", "chan-1")))}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ParseChat(context.Background(), "actions", req); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseChat(f *testing.F) {
	f.Add([]byte(commandForm("audio @ben Sync", "user_mentions", "ben", "user_mentions_ids", "uid-ben")), "commands")
	f.Add([]byte(commandForm("end now")), "commands")
	f.Add([]byte(actionBody("end", "c-1", "chan-1", ActionSignature([]byte(testAction), "end", "c-1", "chan-1"))), "actions")
	f.Add([]byte(`{"context":null}`), "actions")
	f.Add([]byte("token=%zz"), "commands")
	a := newApp(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		got, err := a.ParseChat(context.Background(), path, calls.WebhookRequest{Method: "POST", Body: body})
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookMalformed) && !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got.User.ID == "" || got.Surface.Channel == "" || (got.Command != nil && got.Action != nil) {
			t.Fatalf("accepted: %+v", got)
		}
		if _, err := a.ReplyChat(context.Background(), got, calls.ChatOutcome{}); err != nil {
			t.Fatal(err)
		}
	})
}
