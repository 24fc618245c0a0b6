package streamchat

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/callgate/callgate/calls"
)

// vectorCommand is the derived /call vector of testdata/stream-chat.json,
// signed with tsec2.
const vectorCommand = `{"message":{"id":"xyz","text":"/call standup","command":"call","args":"standup","html":"","type":"regular","cid":"messaging:xyz","created_at":"2021-11-16T12:56:59.854Z","updated_at":"2021-11-16T12:56:59.854Z","attachments":[],"latest_reactions":[],"own_reactions":[],"reaction_counts":null,"reaction_scores":null,"reply_count":0,"mentioned_users":[],"silent":false},"user":{"id":"17f8ab2c-c7e7-4564-922b-e5450dbe4fe7","role":"user","banned":false,"online":false},"form_data":{}}`

const vectorSignature = "709c802b09fc01bc3aab2444ef0f52823c2b48f10ffffed9c183711ac4f738a7"

func mustBase64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(body, secret string, headers ...string) calls.WebhookRequest {
	h := http.Header{HeaderSignature: {Sign([]byte(secret), []byte(body))}, "Content-Type": {"application/json"}}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return calls.WebhookRequest{Method: http.MethodPost, Header: h, Body: []byte(body)}
}

// command builds a custom command body.
func command(text, args string, extra string) string {
	msg := `{"id":"m-1","text":` + jsonString(text) + `,"command":"call","args":` + jsonString(args) +
		`,"type":"regular","cid":"messaging:general","created_at":"2021-11-16T12:57:00Z"` + extra + `}`
	return `{"message":` + msg + `,"user":{"id":"ada","name":"Ada","language":"fr"},"form_data":{}}`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestParseChatVector(t *testing.T) {
	a := newApp(t, nil)
	req := calls.WebhookRequest{Method: http.MethodPost, Header: http.Header{HeaderSignature: {vectorSignature}}, Body: []byte(vectorCommand)}
	got, err := a.ParseChat(context.Background(), "commands", req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Command == nil || got.Command.Kind != calls.CommandStart || got.Command.Title != "standup" || got.Command.Type != calls.TypeVideo {
		t.Fatalf("command: %+v", got.Command)
	}
	if got.User.ID != "17f8ab2c-c7e7-4564-922b-e5450dbe4fe7" || got.Surface != (calls.Surface{Chat: "stream", Channel: "messaging:xyz"}) || got.DeliveryID != "message:xyz" {
		t.Fatalf("request: %+v", got)
	}
	req.Header.Set(HeaderWebhookID, "wh-1")
	if got, _ := a.ParseChat(context.Background(), "", req); got.DeliveryID != "wh-1" {
		t.Fatalf("X-Webhook-Id not the delivery id: %q", got.DeliveryID)
	}
}

func gz(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestParseChatAuthentication(t *testing.T) {
	body := command("/call Standup", "Standup", "")
	good := Sign([]byte(testSecret), []byte(body))
	s := testSettings()
	s.PreviousAPISecret = testPrev
	a := newApp(t, s)
	stale := strings.Replace(body, "2021-11-16T12:57:00Z", "2021-11-16T12:50:00Z", 1)
	future := strings.Replace(body, "2021-11-16T12:57:00Z", "2021-11-16T13:05:00Z", 1)
	cases := []struct {
		name    string
		req     calls.WebhookRequest
		wantErr error
	}{
		{"signed", signed(body, testSecret), nil},
		{"previous secret during rotation", signed(body, testPrev), nil},
		{"gzip body signed over the uncompressed JSON", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {good}}, Body: gz(t, body)}, nil},
		{"unsigned", calls.WebhookRequest{Method: "POST", Header: http.Header{}, Body: []byte(body)}, calls.ErrWebhookUnauthenticated},
		{"wrong secret", signed(body, "another-secret"), calls.ErrWebhookUnauthenticated},
		{"not hex", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {"zz" + good[2:]}}, Body: []byte(body)}, calls.ErrWebhookUnauthenticated},
		{"two signatures", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {good, good}}, Body: []byte(body)}, calls.ErrWebhookUnauthenticated},
		{"altered body", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {good}}, Body: []byte(strings.Replace(body, "Standup", "Standuq", 2))}, calls.ErrWebhookUnauthenticated},
		{"gzip signed over the compressed bytes", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {Sign([]byte(testSecret), gz(t, body))}}, Body: gz(t, body)}, calls.ErrWebhookUnauthenticated},
		{"stale (replayed later)", signed(stale, testSecret), calls.ErrWebhookUnauthenticated},
		{"from the future", signed(future, testSecret), calls.ErrWebhookUnauthenticated},
		{"another app's key", signed(body, testSecret, HeaderAPIKey, "other-key"), calls.ErrWebhookUnauthenticated},
		{"corrupt gzip", calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {good}}, Body: []byte{0x1f, 0x8b, 1, 2, 3}}, calls.ErrWebhookMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.ParseChat(context.Background(), "commands", c.req)
			if c.wantErr == nil {
				if err != nil || got.Command == nil || got.Command.Title != "Standup" {
					t.Fatalf("refused: %v %+v", err, got)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testPrev) {
				t.Fatal("error holds a secret")
			}
		})
	}
}

func TestParseChatGzipBomb(t *testing.T) {
	a := newApp(t, nil)
	big := `{"type":"message.new","pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	req := calls.WebhookRequest{Method: "POST", Header: http.Header{HeaderSignature: {Sign([]byte(testSecret), []byte(big))}}, Body: gz(t, big)}
	if _, err := a.ParseChat(context.Background(), "events", req); !errors.Is(err, calls.ErrWebhookMalformed) {
		t.Fatalf("inflated past the bound: %v", err)
	}
}

func TestParseChatMalformed(t *testing.T) {
	a := newApp(t, nil)
	cases := []struct {
		name, path string
		req        calls.WebhookRequest
	}{
		{"unknown path", "install", signed(command("/call", "", ""), testSecret)},
		{"GET", "", calls.WebhookRequest{Method: "GET", Header: http.Header{}}},
		{"not JSON", "", signed("text", testSecret)},
		{"no user id", "", signed(strings.Replace(command("/call", "", ""), `"id":"ada"`, `"id":""`, 1), testSecret)},
		{"bad cid", "", signed(strings.Replace(command("/call", "", ""), `messaging:general`, `general`, 1), testSecret)},
		{"bad action", "", signed(strings.Replace(command("/call", "", ""), `"form_data":{}`, `"form_data":{"callgate_action":"explode:x"}`, 1), testSecret)},
		{"bad call id", "", signed(strings.Replace(command("/call", "", ""), `"form_data":{}`, `"form_data":{"callgate_action":"end:../x"}`, 1), testSecret)},
		{"invalid UTF-8", "", signed("{\"type\":\"\xff\"}", testSecret)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := a.ParseChat(context.Background(), c.path, c.req); !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestParseChatEventsAcknowledged(t *testing.T) {
	a := newApp(t, nil)
	for _, path := range []string{"events", ""} {
		body := `{"type":"message.new","cid":"messaging:general","message":{"id":"m","text":"/call x","command":"call","cid":"messaging:general"},"user":{"id":"ada"}}`
		got, err := a.ParseChat(context.Background(), path, signed(body, testSecret, HeaderWebhookID, "w-1"))
		if err != nil || got.Reply == nil || got.Reply.Status != 200 || got.Command != nil {
			t.Fatalf("%q: %+v %v", path, got, err)
		}
		if _, err := a.ParseChat(context.Background(), path, calls.WebhookRequest{Method: "POST", Header: http.Header{}, Body: []byte(body)}); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
			t.Fatalf("unsigned event: %v", err)
		}
	}
}

func TestParseChatCommands(t *testing.T) {
	a := newApp(t, nil)
	cases := []struct {
		name, text, args, extra string
		want                    *calls.Command
		foreign, bad            bool
	}{
		{"plain", "/call", "", "", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}, false, false},
		{"audio with provider", "/call audio daily Sync", "audio daily Sync", "", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio, Provider: "daily", Title: "Sync"}, false, false},
		{"mention by display name", "/call @Ben Jones Sync", "@Ben Jones Sync", `,"mentioned_users":[{"id":"ben","name":"Ben Jones"}]`,
			&calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Mentions: []string{"ben"}, Title: "Sync"}, false, false},
		{"end", "/call end", "end", "", &calls.Command{Kind: calls.CommandEnd}, false, false},
		{"help", "/call help", "help", "", &calls.Command{Kind: calls.CommandHelp}, false, false},
		{"args missing", "/call new", "", "", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, New: true}, false, false},
		{"grammar error", "/call end now", "end now", "", nil, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.ParseChat(context.Background(), "", signed(command(c.text, c.args, c.extra), testSecret))
			if err != nil {
				t.Fatal(err)
			}
			p := got.Private.(*pending)
			if c.bad != (p.commandErr != nil) || c.foreign != p.foreign {
				t.Fatalf("pending: %+v", p)
			}
			if c.want == nil {
				if got.Command != nil {
					t.Fatalf("command: %+v", got.Command)
				}
				return
			}
			w, _ := json.Marshal(c.want)
			g, _ := json.Marshal(got.Command)
			if string(w) != string(g) {
				t.Fatalf("got %s, want %s", g, w)
			}
			if got.User != (calls.ChatUser{ID: "ada", Name: "Ada", Locale: "fr"}) {
				t.Fatalf("user: %+v", got.User)
			}
		})
	}
	other := strings.Replace(command("/ticket x", "x", ""), `"command":"call"`, `"command":"ticket"`, 1)
	got, err := a.ParseChat(context.Background(), "", signed(other, testSecret))
	if err != nil || got.Command != nil || !got.Private.(*pending).foreign {
		t.Fatalf("another command: %+v %v", got, err)
	}
}

func TestParseChatAction(t *testing.T) {
	a := newApp(t, nil)
	// A click may come long after the message was sent.
	body := strings.Replace(command("/call", "", ""), `"form_data":{}`, `"form_data":{"callgate_action":"end:c-1"}`, 1)
	body = strings.Replace(body, "2021-11-16T12:57:00Z", "2021-11-10T10:00:00Z", 1)
	got, err := a.ParseChat(context.Background(), "", signed(body, testSecret))
	if err != nil || got.Action == nil || *got.Action != (calls.ChatAction{Kind: "end", CallID: "c-1"}) || got.Command != nil {
		t.Fatalf("%+v %v", got, err)
	}
}

func BenchmarkParseChat(b *testing.B) {
	a := newApp(b, nil)
	req := calls.WebhookRequest{Method: http.MethodPost, Header: http.Header{HeaderSignature: {vectorSignature}}, Body: []byte(vectorCommand)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ParseChat(context.Background(), "commands", req); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseChat(f *testing.F) {
	for _, seed := range []string{
		vectorCommand,
		command("/call audio @Ben x", "audio @Ben x", `,"mentioned_users":[{"id":"ben","name":"Ben"}]`),
		strings.Replace(command("/call", "", ""), `"form_data":{}`, `"form_data":{"callgate_action":"join:abc"}`, 1),
		`{"type":"message.new"}`, `{"message":null}`, `{"message":{"cid":":"}}`, `[]`, ``,
	} {
		f.Add([]byte(seed), "")
	}
	f.Add([]byte(vectorCommand), "events")
	a := newApp(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		got, err := a.ParseChat(context.Background(), path, signed(string(body), testSecret))
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookMalformed) && !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got.Reply != nil {
			return
		}
		if got.User.ID == "" || !strings.Contains(got.Surface.Channel, ":") || got.Private == nil {
			t.Fatalf("accepted without user or channel: %+v", got)
		}
		if got.Command != nil && got.Action != nil {
			t.Fatal("both a command and an action")
		}
		if _, err := a.ReplyChat(context.Background(), got, calls.ChatOutcome{}); err != nil {
			t.Fatal(err)
		}
	})
}
