package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// vectorFile is testdata/slack.json (a copy of the shared vectors).
type vectorFile struct {
	Vectors []struct {
		Name              string          `json:"name"`
		Kind              string          `json:"kind"`
		SigningSecret     string          `json:"signing_secret"`
		Timestamp         string          `json:"timestamp"`
		Body              string          `json:"body"`
		PayloadJSON       string          `json:"payload_json"`
		ExpectedSignature string          `json:"expected_signature"`
		Negative          json.RawMessage `json:"negative"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/slack.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	testSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	testToken  = "xoxb-test-token-1234"
	testKeyB64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
)

var testNow = time.Unix(1700000000, 0)

// memInstalls is an in-memory calls.InstallationStore.
type memInstalls struct {
	mu      sync.Mutex
	m       map[string]calls.Installation
	deleted []string
}

func newMemInstalls() *memInstalls { return &memInstalls{m: map[string]calls.Installation{}} }

func (s *memInstalls) PutInstallation(_ context.Context, in calls.Installation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[in.Chat+"/"+in.Workspace] = in
	return nil
}

func (s *memInstalls) GetInstallation(_ context.Context, chat, ws string) (calls.Installation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.m[chat+"/"+ws]
	if !ok {
		return calls.Installation{}, calls.ErrNotFound
	}
	return in, nil
}

func (s *memInstalls) DeleteInstallation(_ context.Context, chat, ws string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, chat+"/"+ws)
	s.deleted = append(s.deleted, chat+"/"+ws)
	return nil
}

func testTemplates(t testing.TB) *templates.Set {
	t.Helper()
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// newTestApp builds an app on the gateway's clock testNow.
func newTestApp(t testing.TB, mutate func(*Settings)) (*App, *memInstalls) {
	t.Helper()
	s := NewSettings()
	s.SigningSecret = testSecret
	s.BotToken = testToken
	if mutate != nil {
		mutate(s)
	}
	store := newMemInstalls()
	a, err := New(s, adapters.Deps{
		Name: "slack", PublicURL: "https://gw.example", WebhookURL: "https://gw.example/webhooks/chats/slack",
		Now: func() time.Time { return testNow }, Templates: testTemplates(t), Installations: store,
		IsProvider: func(w string) bool { return w == "daily" },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, store
}

// signed is a request signed as Slack signs, at ts.
func signed(method, body string, ts time.Time, secret string) calls.WebhookRequest {
	h := http.Header{}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	h.Set(HeaderTimestamp, stamp)
	h.Set(HeaderSignature, Sign([]byte(secret), stamp, []byte(body)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return calls.WebhookRequest{Method: method, URL: "https://gw.example/webhooks/chats/slack/x", Header: h, Body: []byte(body)}
}

func commandBody(text string) string {
	return url.Values{
		"token": {"x"}, "team_id": {"T0001"}, "team_domain": {"example"}, "channel_id": {"C2147483705"},
		"channel_name": {"test"}, "user_id": {"U2147483697"}, "user_name": {"Steve"}, "command": {"/call"},
		"text": {text}, "response_url": {"https://hooks.slack.com/commands/T0001/1234/5678"}, "trigger_id": {"1.2.3"},
	}.Encode()
}

// fakeSlack is a slacktest server with the methods slacktest lacks, each
// recording the forms it received.
type fakeSlack struct {
	*slacktest.Server
	mu    sync.Mutex
	got   []recorded
	reply map[string]func(w http.ResponseWriter, form url.Values) bool
	ts    int
}

type recorded struct {
	Method string
	Form   url.Values
}

func newFakeSlack(t testing.TB) *fakeSlack {
	t.Helper()
	f := &fakeSlack{reply: map[string]func(http.ResponseWriter, url.Values) bool{}}
	handle := func(method string, ok func(form url.Values) any) func(slacktest.Customize) {
		return func(c slacktest.Customize) {
			c.Handle("/"+method, func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				f.mu.Lock()
				f.got = append(f.got, recorded{Method: method, Form: r.PostForm})
				override := f.reply[method]
				f.mu.Unlock()
				if override != nil && override(w, r.PostForm) {
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(ok(r.PostForm))
			})
		}
	}
	f.Server = slacktest.NewTestServer(
		handle("chat.postMessage", func(form url.Values) any {
			f.mu.Lock()
			f.ts++
			ts := "1700000000.00010" + strconv.Itoa(f.ts)
			f.mu.Unlock()
			return map[string]any{"ok": true, "channel": form.Get("channel"), "ts": ts}
		}),
		handle("chat.update", func(form url.Values) any {
			return map[string]any{"ok": true, "channel": form.Get("channel"), "ts": form.Get("ts"), "text": form.Get("text")}
		}),
		handle("calls.add", func(form url.Values) any {
			return map[string]any{"ok": true, "call": map[string]any{"id": "R0E69JAIF", "external_unique_id": form.Get("external_unique_id"), "join_url": form.Get("join_url")}}
		}),
		handle("calls.participants.add", func(url.Values) any { return map[string]any{"ok": true} }),
		handle("calls.participants.remove", func(url.Values) any { return map[string]any{"ok": true} }),
		handle("calls.end", func(url.Values) any { return map[string]any{"ok": true} }),
		handle("conversations.members", func(form url.Values) any {
			// Two pages: U1 and U2, then U3.
			if form.Get("cursor") == "" {
				return map[string]any{"ok": true, "members": []string{"U1", "U2"}, "response_metadata": map[string]any{"next_cursor": "page2"}}
			}
			return map[string]any{"ok": true, "members": []string{"U3"}, "response_metadata": map[string]any{"next_cursor": ""}}
		}),
		handle("oauth.v2.access", func(form url.Values) any {
			return map[string]any{"ok": true, "access_token": "xoxb-installed-secret-token", "token_type": "bot", "scope": "commands,chat:write",
				"bot_user_id": "UBOT", "app_id": "A1", "team": map[string]any{"id": "T9", "name": "Nine <b>"}}
		}),
	)
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *fakeSlack) calls() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.got...)
}

func (f *fakeSlack) override(method string, fn func(w http.ResponseWriter, form url.Values) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply[method] = fn
}
