package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/discord"
	"github.com/callgate/callgate/adapters/mattermost"
	"github.com/callgate/callgate/adapters/slack"
	"github.com/callgate/callgate/adapters/streamchat"
	"github.com/callgate/callgate/calls"
)

// Secrets of the chat platforms' end-to-end configurations.
const (
	slackSecret     = "slack-signing-secret-0123456789"
	mmCommandToken  = "mm-command-token-0123456789"
	mmActionSecret  = "mm-action-secret-0123456789abcdef"
	streamKey       = "streamkey"
	streamSecret    = "stream-secret-0123456789abcdef"
	discordAppID    = "111111111111111111"
	discordGuild    = "222222222222222222"
	discordChannel  = "333333333333333333"
	discordCaller   = "444444444444444444"
	discordBotToken = "discord-bot-token"
)

// platformRequest is one request a fake chat platform received.
type platformRequest struct {
	at     time.Time
	method string
	path   string
	body   []byte
	status int
}

// fakePlatform is a chat platform's REST API on loopback: it records
// every request, answers card writes as the platform does, and can be
// told to answer the next card writes with 429 and a Retry-After.
type fakePlatform struct {
	t   testing.TB
	mu  sync.Mutex
	got []platformRequest
	// throttle is how many card writes to answer 429 next; retryAfter the
	// seconds to ask for.
	throttle   int
	retryAfter int
	// isCard tells a card write (post or edit) from other calls.
	isCard func(r *http.Request) bool
	// answer writes the success answer of a request.
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
	// limited writes the platform's 429.
	limited func(w http.ResponseWriter, retryAfter int)
	srv     *httptest.Server
}

func newFakePlatform(t testing.TB, isCard func(*http.Request) bool, answer func(http.ResponseWriter, *http.Request, []byte), limited func(http.ResponseWriter, int)) *fakePlatform {
	p := &fakePlatform{t: t, isCard: isCard, answer: answer, limited: limited}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakePlatform) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := platformRequest{at: time.Now(), method: r.Method, path: r.URL.Path, body: body, status: 200}
	p.mu.Lock()
	limited := false
	if p.isCard(r) && p.throttle > 0 {
		p.throttle--
		limited = true
		rec.status = http.StatusTooManyRequests
	}
	retryAfter := p.retryAfter
	p.got = append(p.got, rec)
	p.mu.Unlock()
	if limited {
		p.limited(w, retryAfter)
		return
	}
	p.answer(w, r, body)
}

// cards returns the card writes (posts and edits), in order.
func (p *fakePlatform) cards() []platformRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []platformRequest
	for _, r := range p.got {
		if r.method != http.MethodGet && p.isCardPath(r) {
			out = append(out, r)
		}
	}
	return out
}

func (p *fakePlatform) isCardPath(r platformRequest) bool {
	req, _ := http.NewRequest(r.method, "http://x"+r.path, nil)
	return p.isCard(req)
}

// lastAccepted is the newest card write the platform accepted.
func (p *fakePlatform) lastAccepted() (platformRequest, bool) {
	cs := p.cards()
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].status == 200 {
			return cs[i], true
		}
	}
	return platformRequest{}, false
}

func (p *fakePlatform) requests(method, pathPrefix string) []platformRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []platformRequest
	for _, r := range p.got {
		if r.method == method && strings.HasPrefix(r.path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

func (p *fakePlatform) limit(n, retryAfter int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.throttle, p.retryAfter = n, retryAfter
}

// chatPlatform is how one platform's end-to-end test talks to the gateway
// and reads its fake: the YAML block, a signed command, a signed End
// click, and what a card write shows.
type chatPlatform struct {
	name string
	fake *fakePlatform
	// yaml is the chat's block under chats:.
	yaml string
	// command sends a signed /call and returns the status and the body.
	command func(t testing.TB, base, text string) (int, string)
	// end ends the call (an End click, or /call end).
	end func(t testing.TB, base, callID string) (int, string)
	// text is the readable content of a card write; buttons whether it
	// still carries the call's buttons.
	text    func(body []byte) string
	buttons func(body []byte) bool
}

// chatsConfig writes a configuration with JaaS webhooks on the jitsi
// provider, the given chat blocks, and fast delivery knobs (pace: card
// writes a second per destination).
func chatsConfig(t testing.TB, dir string, pace int, providers, chats string) string {
	t.Helper()
	if providers == "" {
		providers = fmt.Sprintf("  jitsi: {kind: jitsi, webhook_secret: %s}\n", e2eJaasSecret)
	}
	cfg := fmt.Sprintf(`server:
  addr: 127.0.0.1:0
  link_secret: e2e-link-secret-0123456789abcdef0123
api:
  keys: [{name: e2e, key: %s}]
providers:
%schats:
%sdelivery:
  min_backoff: 100ms
  max_backoff: 400ms
  max_attempts: 8
  rate: %d
  burst: %d
  timeout: 2s
  lease: 5s
  poll: 100ms
rooms:
  poll: 100ms
  workers: 4
`, e2eKey, providers, chats, pace, pace)
	path := filepath.Join(dir, "callgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func post(t testing.TB, u string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

// ---- Slack -------------------------------------------------------------

func slackPlatform(t testing.TB) *chatPlatform {
	var mu sync.Mutex
	n := 0
	fake := newFakePlatform(t,
		func(r *http.Request) bool {
			return strings.HasSuffix(r.URL.Path, "/chat.postMessage") || strings.HasSuffix(r.URL.Path, "/chat.update")
		},
		func(w http.ResponseWriter, r *http.Request, body []byte) {
			form, _ := url.ParseQuery(string(body))
			w.Header().Set("Content-Type", "application/json")
			switch {
			case strings.HasSuffix(r.URL.Path, "/chat.postMessage"):
				mu.Lock()
				n++
				ts := fmt.Sprintf("1700000000.%06d", n)
				mu.Unlock()
				fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, form.Get("channel"), ts)
			case strings.HasSuffix(r.URL.Path, "/chat.update"):
				fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, form.Get("channel"), form.Get("ts"))
			case strings.HasSuffix(r.URL.Path, "/conversations.open"):
				fmt.Fprintf(w, `{"ok":true,"channel":{"id":"D%s"}}`, strings.TrimPrefix(form.Get("users"), "U"))
			case strings.HasSuffix(r.URL.Path, "/conversations.members"):
				fmt.Fprint(w, `{"ok":true,"members":["U0ADA","U0BEN"],"response_metadata":{"next_cursor":""}}`)
			default:
				fmt.Fprint(w, `{"ok":true}`)
			}
		},
		func(w http.ResponseWriter, retryAfter int) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			w.WriteHeader(http.StatusTooManyRequests)
		})
	p := &chatPlatform{name: "slack", fake: fake}
	p.yaml = fmt.Sprintf("  slack: {kind: slack, signing_secret: %s, bot_token: xoxb-e2e, api_url: %s/api/}\n", slackSecret, fake.srv.URL)
	send := func(t testing.TB, base, path string, body []byte) (int, string) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h := http.Header{}
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		h.Set("X-Slack-Request-Timestamp", ts)
		h.Set("X-Slack-Signature", slack.Sign([]byte(slackSecret), ts, body))
		return post(t, base+"/webhooks/chats/slack/"+path, h, body)
	}
	p.command = func(t testing.TB, base, text string) (int, string) {
		form := url.Values{"team_id": {"T0E2E"}, "channel_id": {"C0E2E"}, "user_id": {"U0ADA"}, "user_name": {"ada"},
			"command": {"/call"}, "text": {text}, "response_url": {"https://hooks.slack.com/commands/T0E2E/1/x"}}
		return send(t, base, "commands", []byte(form.Encode()))
	}
	p.end = func(t testing.TB, base, callID string) (int, string) {
		payload := fmt.Sprintf(`{"type":"block_actions","team":{"id":"T0E2E"},"user":{"id":"U0ADA","name":"ada"},"channel":{"id":"C0E2E"},"response_url":"https://hooks.slack.com/actions/T0E2E/1/x","actions":[{"action_id":"end","block_id":"callgate_actions","value":%q,"type":"button"}]}`, callID)
		return send(t, base, "interactions", []byte(url.Values{"payload": {payload}}.Encode()))
	}
	p.text = func(body []byte) string {
		form, _ := url.ParseQuery(string(body))
		return form.Get("blocks")
	}
	p.buttons = func(body []byte) bool {
		form, _ := url.ParseQuery(string(body))
		return strings.Contains(form.Get("blocks"), `"action_id":"end"`)
	}
	return p
}

// ---- Discord -----------------------------------------------------------

func discordPlatform(t testing.TB) *chatPlatform {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	fake := newFakePlatform(t,
		func(r *http.Request) bool {
			return strings.HasPrefix(r.URL.Path, "/api/v10/channels/") && strings.Contains(r.URL.Path, "/messages")
		},
		func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
				mu.Lock()
				n++
				id := 900000000000000000 + n
				mu.Unlock()
				fmt.Fprintf(w, `{"id":"%d"}`, id)
			case r.Method == http.MethodPatch:
				parts := strings.Split(r.URL.Path, "/")
				fmt.Fprintf(w, `{"id":%q}`, parts[len(parts)-1])
			case r.URL.Path == "/api/v10/users/@me/channels":
				var in struct {
					Recipient string `json:"recipient_id"`
				}
				json.Unmarshal(body, &in)
				fmt.Fprintf(w, `{"id":"8%s","type":1}`, in.Recipient[1:])
			default:
				fmt.Fprint(w, `{}`)
			}
		},
		func(w http.ResponseWriter, retryAfter int) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"message":"You are being rate limited.","retry_after":%d,"global":false}`, retryAfter)
		})
	p := &chatPlatform{name: "discord", fake: fake}
	p.yaml = fmt.Sprintf("  discord: {kind: discord, application_id: %q, public_key: %s, bot_token: %s, api_url: %s/api/v10}\n",
		discordAppID, hex.EncodeToString(pub), discordBotToken, fake.srv.URL)
	var seq int64
	var seqMu sync.Mutex
	send := func(t testing.TB, base, interaction string) (int, string) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(discord.HeaderTimestamp, ts)
		h.Set(discord.HeaderSignature, discord.Sign(priv, ts, []byte(interaction)))
		return post(t, base+"/webhooks/chats/discord/interactions", h, []byte(interaction))
	}
	nextID := func() string {
		seqMu.Lock()
		defer seqMu.Unlock()
		seq++
		return strconv.FormatInt(time.Now().UnixNano()/1000+seq, 10)
	}
	envelope := func(typ int, data string) string {
		return fmt.Sprintf(`{"id":%q,"application_id":%q,"type":%d,"token":"tok","version":1,"guild_id":%q,"channel_id":%q,"locale":"en-US","member":{"user":{"id":%q,"username":"ada"}},"data":%s}`,
			nextID(), discordAppID, typ, discordGuild, discordChannel, discordCaller, data)
	}
	p.command = func(t testing.TB, base, text string) (int, string) {
		// The typed options of /call start: the test's texts are a type
		// and a title.
		typ, title, _ := strings.Cut(text, " ")
		opts := fmt.Sprintf(`[{"type":3,"name":"type","value":%q},{"type":3,"name":"title","value":%q}]`, typ, title)
		return send(t, base, envelope(2, fmt.Sprintf(`{"id":"1","name":"call","type":1,"options":[{"type":1,"name":"start","options":%s}]}`, opts)))
	}
	p.end = func(t testing.TB, base, callID string) (int, string) {
		return send(t, base, envelope(3, fmt.Sprintf(`{"custom_id":%q,"component_type":2}`, discord.CustomID("end", callID))))
	}
	p.text = func(body []byte) string { return string(body) }
	p.buttons = func(body []byte) bool { return strings.Contains(string(body), "callgate:end:") }
	return p
}

// ---- Stream Chat -------------------------------------------------------

func streamPlatform(t testing.TB) *chatPlatform {
	fake := newFakePlatform(t,
		func(r *http.Request) bool {
			return strings.HasPrefix(r.URL.Path, "/messages/") || (strings.HasPrefix(r.URL.Path, "/channels/") && strings.HasSuffix(r.URL.Path, "/message"))
		},
		func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			var in struct {
				Message struct {
					ID string `json:"id"`
				} `json:"message"`
			}
			json.Unmarshal(body, &in)
			fmt.Fprintf(w, `{"message":{"id":%q}}`, in.Message.ID)
		},
		func(w http.ResponseWriter, retryAfter int) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"code":9,"message":"Too many requests"}`)
		})
	p := &chatPlatform{name: "stream", fake: fake}
	p.yaml = fmt.Sprintf("  stream: {kind: stream, api_key: %s, api_secret: %s, api_url: %s}\n", streamKey, streamSecret, fake.srv.URL)
	var n int64
	var mu sync.Mutex
	send := func(t testing.TB, base, form, text string) (int, string) {
		mu.Lock()
		n++
		id := fmt.Sprintf("msg-%d-%d", time.Now().UnixNano(), n)
		mu.Unlock()
		body := fmt.Sprintf(`{"type":"custom_action","message":{"id":%q,"text":%q,"command":"call","args":%q,"cid":"messaging:e2e","type":"regular","created_at":%q},"user":{"id":"ada","name":"Ada"},"form_data":%s}`,
			id, "/call "+text, text, time.Now().UTC().Format(time.RFC3339Nano), form)
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(streamchat.HeaderSignature, streamchat.Sign([]byte(streamSecret), []byte(body)))
		h.Set(streamchat.HeaderWebhookID, "wh-"+id)
		return post(t, base+"/webhooks/chats/stream/commands", h, []byte(body))
	}
	p.command = func(t testing.TB, base, text string) (int, string) { return send(t, base, "{}", text) }
	p.end = func(t testing.TB, base, callID string) (int, string) {
		return send(t, base, fmt.Sprintf(`{%q:%q}`, streamchat.ActionField, "end:"+callID), "")
	}
	p.text = func(body []byte) string { return string(body) }
	p.buttons = func(body []byte) bool { return strings.Contains(string(body), `"end:`) }
	return p
}

// ---- Mattermost --------------------------------------------------------

func mattermostPlatform(t testing.TB) *chatPlatform {
	var mu sync.Mutex
	n := 0
	fake := newFakePlatform(t,
		func(r *http.Request) bool {
			return r.URL.Path == "/api/v4/posts" || strings.HasSuffix(r.URL.Path, "/patch")
		},
		func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.URL.Path == "/api/v4/posts":
				mu.Lock()
				n++
				id := fmt.Sprintf("post%022d", n)
				mu.Unlock()
				fmt.Fprintf(w, `{"id":%q}`, id)
			case strings.HasSuffix(r.URL.Path, "/patch"):
				fmt.Fprint(w, `{"id":"patched"}`)
			case strings.HasPrefix(r.URL.Path, "/api/v4/users/"):
				fmt.Fprint(w, `{"id":"u","username":"ada"}`)
			case r.URL.Path == "/api/v4/channels/direct":
				fmt.Fprint(w, `{"id":"dmchannel0000000000000000"}`)
			case strings.Contains(r.URL.Path, "/members/"):
				if strings.HasSuffix(r.URL.Path, "/members/outsider00000000000000000") {
					w.WriteHeader(http.StatusNotFound)
					fmt.Fprint(w, `{"id":"app.channel.get_member.missing.app_error","status_code":404}`)
					return
				}
				fmt.Fprint(w, `{"channel_id":"c","user_id":"u"}`)
			default:
				fmt.Fprint(w, `{}`)
			}
		},
		func(w http.ResponseWriter, retryAfter int) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			w.WriteHeader(http.StatusTooManyRequests)
		})
	p := &chatPlatform{name: "mattermost", fake: fake}
	p.yaml = fmt.Sprintf("  mattermost: {kind: mattermost, command_token: %s, bot_token: mm-bot, action_secret: %s, api_url: %s}\n", mmCommandToken, mmActionSecret, fake.srv.URL)
	p.command = func(t testing.TB, base, text string) (int, string) {
		form := url.Values{"token": {mmCommandToken}, "team_id": {"teame2e000000000000000000a"}, "channel_id": {"chane2e000000000000000000a"},
			"user_id": {"userada00000000000000000000"}, "user_name": {"ada"}, "command": {"/call"}, "text": {text}}
		h := http.Header{}
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		return post(t, base+"/webhooks/chats/mattermost/commands", h, []byte(form.Encode()))
	}
	p.end = func(t testing.TB, base, callID string) (int, string) {
		channel := "chane2e000000000000000000a"
		body := fmt.Sprintf(`{"user_id":"userada00000000000000000000","channel_id":%q,"team_id":"teame2e000000000000000000a","post_id":"p","context":{"action":"end","call_id":%q,"sig":%q}}`,
			channel, callID, mattermost.ActionSignature([]byte(mmActionSecret), "end", callID, channel))
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		return post(t, base+"/webhooks/chats/mattermost/actions", h, []byte(body))
	}
	p.text = func(body []byte) string { return string(body) }
	p.buttons = func(body []byte) bool { return strings.Contains(string(body), `"action":"end"`) }
	return p
}

// chatCallID finds the newest call of a chat through the history API.
func chatCallOf(t testing.TB, c client, chat string) string {
	t.Helper()
	var id string
	eventually(t, 5*time.Second, "the call in the history", func() bool {
		_, body, _ := c.do("GET", "/v1/calls?chat="+chat, nil)
		list, _ := body["calls"].([]any)
		if len(list) == 0 {
			return false
		}
		id = list[0].(map[string]any)["id"].(string)
		return true
	})
	return id
}

// TestChatPlatformsEndToEnd drives every chat platform on loopback: a
// signed command → the card posted at the fake platform → three JaaS
// webhooks (join, join, leave) → the card edited to the exact roster
// (while the platform answers 429 for a while) → the call ended by a
// click → the final card, with the summary and no buttons.
func TestChatPlatformsEndToEnd(t *testing.T) {
	for _, mk := range []func(testing.TB) *chatPlatform{slackPlatform, discordPlatform, streamPlatform, mattermostPlatform} {
		p := mk(t)
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := chatsConfig(t, dir, 5, "", p.yaml)
			base, stop := startGateway(t, filepath.Join(dir, "data"), cfg, &syncBuffer{})
			defer stop()
			c := client{t: t, base: base, key: e2eKey}

			status, answer := p.command(t, base, "video Standup")
			if status != 200 {
				t.Fatalf("command: %d %s", status, answer)
			}
			callID := chatCallOf(t, c, p.name)
			eventually(t, 10*time.Second, "the card posted", func() bool { _, ok := p.fake.lastAccepted(); return ok })
			first, _ := p.fake.lastAccepted()
			if !strings.Contains(p.text(first.body), "Standup") || !p.buttons(first.body) {
				t.Fatalf("first card: %s", first.body)
			}
			if p.name == "stream" && (first.method != http.MethodPut || !strings.HasPrefix(first.path, "/messages/msg-")) {
				// On Stream the command's own message is the card: the
				// first delivery updates it, no bot message is posted.
				t.Fatalf("first Stream card write: %s %s, want PUT /messages/<the command's message>", first.method, first.path)
			}
			room := roomOf(t, c, callID)
			settled(t, c, callID)

			// The platform is rate limiting card writes for a while: the
			// edits wait (Retry-After: 1) and the last one still lands.
			p.fake.limit(2, 1)
			ts := time.Now().UnixMilli()
			for i, ev := range []struct {
				who    string
				joined bool
			}{{"pat", true}, {"quinn", true}, {"pat", false}} {
				if code, err := jaasEvent(base, room, ev.who, ev.joined, ts+int64(i), fmt.Sprintf("%s-k-%d", p.name, i)); err != nil || code != 200 {
					t.Fatalf("webhook %d: %d %v", i, code, err)
				}
			}
			eventually(t, 15*time.Second, "the card showing the roster", func() bool {
				last, ok := p.fake.lastAccepted()
				return ok && strings.Contains(p.text(last.body), "QUINN is in the call")
			})
			settled(t, c, callID)
			last, _ := p.fake.lastAccepted()
			if txt := p.text(last.body); strings.Contains(txt, "PAT") || !p.buttons(last.body) {
				t.Fatalf("card after join, join, leave: %s", txt)
			}
			var limited, after *platformRequest
			cards := p.fake.cards()
			for i := range cards {
				if cards[i].status == http.StatusTooManyRequests {
					limited = &cards[i]
				} else if limited != nil && after == nil {
					after = &cards[i]
				}
			}
			if limited == nil || after == nil {
				t.Fatalf("no 429 and a write after it among %d card writes", len(cards))
			}
			if gap := after.at.Sub(limited.at); gap < 900*time.Millisecond {
				t.Fatalf("card written again %s after a 429 asking for 1s", gap)
			}

			status, answer = p.end(t, base, callID)
			if status != 200 {
				t.Fatalf("end: %d %s", status, answer)
			}
			eventually(t, 10*time.Second, "the final card", func() bool {
				last, ok := p.fake.lastAccepted()
				return ok && strings.Contains(p.text(last.body), "Call ended")
			})
			settled(t, c, callID)
			final, _ := p.fake.lastAccepted()
			if txt := p.text(final.body); !strings.Contains(txt, "2 people") || p.buttons(final.body) {
				t.Fatalf("final card: %s", txt)
			}
			_, body, _ := c.do("GET", "/v1/calls/"+callID, nil)
			if st := body["call"].(map[string]any)["state"]; st != "ended" {
				t.Fatalf("call state %v, want ended", st)
			}
		})
	}
}

// slowRooms is a provider that takes six seconds to create a room (or
// until released), recording when each attempt started and returned.
type slowRooms struct {
	mu       sync.Mutex
	entered  map[string]time.Time
	returned map[string]time.Time
	release  chan struct{}
	delay    time.Duration
}

func newSlowRooms(delay time.Duration) *slowRooms {
	return &slowRooms{entered: map[string]time.Time{}, returned: map[string]time.Time{}, release: make(chan struct{}), delay: delay}
}

func (s *slowRooms) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	s.mu.Lock()
	s.entered[req.CallID] = time.Now()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.returned[req.CallID] = time.Now()
		s.mu.Unlock()
	}()
	select {
	case <-time.After(s.delay):
	case <-s.release:
	case <-ctx.Done():
		return calls.Room{}, calls.Temporary(ctx.Err(), 0)
	}
	return calls.Room{Name: "slow-" + req.CallID, URL: "https://slow.example/" + req.CallID}, nil
}

func (s *slowRooms) Credential(_ context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	return calls.Credential{JoinURL: room.URL, Token: "t", ExpiresAt: req.IssuedAt.Add(req.TTL)}, nil
}

func (s *slowRooms) EndRoom(context.Context, calls.Room) error { return nil }

// state says whether the room of callID is being created (entered, not
// returned) and whether it has returned.
func (s *slowRooms) state(callID string) (inside, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, in := s.entered[callID]
	_, out := s.returned[callID]
	return in && !out, out
}

type slowSettings struct{}

// slowGateway runs a gateway whose only provider is rooms, with the
// given chat blocks.
func slowGateway(tb testing.TB, rooms *slowRooms, chats string) (string, func() error) {
	kinds := builtinKinds()
	kinds.Providers = append(kinds.Providers, adapters.Provider("slowrooms",
		func() *slowSettings { return &slowSettings{} },
		func(context.Context, *slowSettings, adapters.Deps) (calls.Provider, error) { return rooms, nil }))
	dir := tb.TempDir()
	cfg := chatsConfig(tb, dir, 5, "  slow: {kind: slowrooms}\n", chats)
	return startGatewayTB(tb, kinds, serveOptions{addr: "127.0.0.1:0", dataDir: filepath.Join(dir, "data"), configFile: cfg, getenv: noEnv}, &syncBuffer{})
}

// startGatewayTB is startGatewayKinds for benchmarks too.
func startGatewayTB(tb testing.TB, kinds kindList, opts serveOptions, logs io.Writer) (string, func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	errCh := make(chan error, 1)
	go func() { errCh <- serve(ctx, kinds, opts, logs, func(addr string) { addrCh <- addr }) }()
	select {
	case addr := <-addrCh:
		// Stopping twice (a deferred stop after an explicit one) is harmless.
		return "http://" + addr, sync.OnceValue(func() error { cancel(); return <-errCh })
	case err := <-errCh:
		cancel()
		tb.Fatalf("gateway did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		tb.Fatal("gateway did not start within 20s")
	}
	return "", nil
}

// TestChatAnswersWhileTheProviderIsSlow: a provider that takes 6 s to
// create rooms. Each platform's command is answered while the room of its
// call is still being created (observed at the provider), so the answer
// cannot depend on the provider; and inside the platform's deadline
// (Slack and Discord 3 s, Stream 1 s), the contract those platforms
// enforce, asserted with that bound only.
func TestChatAnswersWhileTheProviderIsSlow(t *testing.T) {
	rooms := newSlowRooms(6 * time.Second)
	platforms := []*chatPlatform{slackPlatform(t), discordPlatform(t), streamPlatform(t)}
	deadline := map[string]time.Duration{"slack": 3 * time.Second, "discord": 3 * time.Second, "stream": time.Second}
	var chats string
	for _, p := range platforms {
		chats += p.yaml
	}
	base, stop := slowGateway(t, rooms, chats)
	defer stop()
	defer close(rooms.release)
	c := client{t: t, base: base, key: e2eKey}
	for _, p := range platforms {
		started := time.Now()
		status, answer := p.command(t, base, "video Standup")
		took := time.Since(started)
		if status != 200 {
			t.Fatalf("%s: %d %s", p.name, status, answer)
		}
		if took > deadline[p.name] {
			t.Errorf("%s answered in %s, past its %s deadline", p.name, took, deadline[p.name])
		}
		callID := chatCallOf(t, c, p.name)
		if _, done := rooms.state(callID); done {
			t.Fatalf("%s: the room was created before the answer was checked", p.name)
		}
		// The worker is inside CreateRoom for this very call, and has not
		// come back: the answer above was given without it.
		eventually(t, 5*time.Second, p.name+": the provider working on the room", func() bool {
			inside, _ := rooms.state(callID)
			return inside
		})
		_, body, _ := c.do("GET", "/v1/calls/"+callID, nil)
		if st := body["call"].(map[string]any)["room"].(map[string]any)["status"]; st != "preparing" {
			t.Fatalf("%s: room %v while the provider is blocked", p.name, st)
		}
		// The card is posted without the room too.
		eventually(t, 5*time.Second, p.name+": the card posted", func() bool { _, ok := p.fake.lastAccepted(); return ok })
	}
}

// BenchmarkChatCommandSlowProvider measures Slack command intake (verify,
// parse, create the call, answer) while every room creation is stuck at
// the provider.
func BenchmarkChatCommandSlowProvider(b *testing.B) {
	rooms := newSlowRooms(time.Hour)
	p := slackPlatform(b)
	base, stop := slowGateway(b, rooms, p.yaml)
	defer stop()
	defer close(rooms.release)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if status, answer := p.command(b, base, "new video Standup"); status != 200 {
			b.Fatalf("%d %s", status, answer)
		}
	}
}

// TestSlackRingsByNameAndRoomPerChannel: `/call @U0BEN` rings Ben with a
// direct-message card (posted to his user id) showing Accept and Decline;
// his Accept click follows on both cards; `/call ring off` makes a later
// mention ring nobody and say so; and with room_strategy per_channel two
// calls of one channel get the same provider room.
func TestSlackRingsByNameAndRoomPerChannel(t *testing.T) {
	p := slackPlatform(t)
	dir := t.TempDir()
	yaml := strings.TrimSuffix(p.yaml, "}\n") + ", room_strategy: per_channel}\n"
	// Slack answers a post to a user id with the DM channel.
	p.fake.answer = func(inner func(http.ResponseWriter, *http.Request, []byte)) func(http.ResponseWriter, *http.Request, []byte) {
		return func(w http.ResponseWriter, r *http.Request, body []byte) {
			form, _ := url.ParseQuery(string(body))
			if strings.HasSuffix(r.URL.Path, "/chat.postMessage") && form.Get("channel") == "U0BEN" {
				fmt.Fprint(w, `{"ok":true,"channel":"DBEN","ts":"1700000001.000001"}`)
				return
			}
			inner(w, r, body)
		}
	}(p.fake.answer)
	cfg := chatsConfig(t, dir, 5, "", yaml)
	base, stop := startGateway(t, filepath.Join(dir, "data"), cfg, &syncBuffer{})
	defer stop()
	c := client{t: t, base: base, key: e2eKey}

	if status, answer := p.command(t, base, "<@U0BEN|ben> Standup"); status != 200 {
		t.Fatalf("command: %d %s", status, answer)
	}
	callID := chatCallOf(t, c, "slack")
	dmCard := func() (platformRequest, bool) {
		var last platformRequest
		found := false
		for _, r := range p.fake.cards() {
			form, _ := url.ParseQuery(string(r.body))
			if r.status == 200 && (form.Get("channel") == "U0BEN" || form.Get("channel") == "DBEN") {
				last, found = r, true
			}
		}
		return last, found
	}
	eventually(t, 10*time.Second, "Ben's direct-message card", func() bool { _, ok := dmCard(); return ok })
	dm, _ := dmCard()
	if blocks := p.text(dm.body); !strings.Contains(blocks, `"action_id":"accept"`) || !strings.Contains(blocks, `"action_id":"decline"`) {
		t.Fatalf("the ringing card has no Accept and Decline: %s", blocks)
	}
	// Ben accepts from his DM: both cards follow (Join and End now).
	payload := fmt.Sprintf(`{"type":"block_actions","team":{"id":"T0E2E"},"user":{"id":"U0BEN","name":"ben"},"channel":{"id":"DBEN"},"response_url":"https://hooks.slack.com/actions/T0E2E/2/x","actions":[{"action_id":"accept","block_id":"callgate_actions","value":%q,"type":"button"}]}`, callID)
	body := []byte(url.Values{"payload": {payload}}.Encode())
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", slack.Sign([]byte(slackSecret), ts, body))
	if status, answer := post(t, base+"/webhooks/chats/slack/interactions", h, body); status != 200 {
		t.Fatalf("accept: %d %s", status, answer)
	}
	eventually(t, 10*time.Second, "the DM card after the accept", func() bool {
		dm, _ := dmCard()
		return strings.Contains(p.text(dm.body), `"action_id":"end"`) && strings.Contains(string(dm.path), "chat.update")
	})
	room1 := roomOf(t, c, callID)
	if status, _ := p.end(t, base, callID); status != 200 {
		t.Fatal("end")
	}

	// Cy opts out; mentioning only Cy rings nobody and says why.
	cy := url.Values{"team_id": {"T0E2E"}, "channel_id": {"C0E2E"}, "user_id": {"U0CY"}, "user_name": {"cy"}, "command": {"/call"}, "text": {"ring off"}}
	cyBody := []byte(cy.Encode())
	h.Set("X-Slack-Signature", slack.Sign([]byte(slackSecret), ts, cyBody))
	if status, answer := post(t, base+"/webhooks/chats/slack/commands", h, cyBody); status != 200 || !strings.Contains(answer, "not be rung by name") {
		t.Fatalf("ring off: %d %s", status, answer)
	}
	if status, answer := p.command(t, base, "<@U0CY|cy> Sync"); status != 200 || !strings.Contains(answer, "asked not to be rung") {
		t.Fatalf("mentioning an opted-out person: %d %s", status, answer)
	}

	// per_channel: the next call in the channel reuses the room.
	if status, answer := p.command(t, base, "video Again"); status != 200 {
		t.Fatalf("second call: %d %s", status, answer)
	}
	var second string
	eventually(t, 5*time.Second, "the second call", func() bool {
		second = chatCallOf(t, c, "slack")
		return second != callID
	})
	if room2 := roomOf(t, c, second); room2 != room1 || !strings.HasPrefix(room1, "cgc") {
		t.Fatalf("rooms %q and %q, want one per channel", room1, room2)
	}
}
