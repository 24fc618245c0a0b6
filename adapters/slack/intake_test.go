package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// TestOfficialCommandVector: the derived /call vector, signed with the
// official secret, parses on a clock at its timestamp.
func TestOfficialCommandVector(t *testing.T) {
	var v = loadVectors(t).Vectors[4]
	a, _ := newTestApp(t, func(s *Settings) { s.SigningSecret = v.SigningSecret })
	h := http.Header{}
	h.Set(HeaderTimestamp, v.Timestamp)
	h.Set(HeaderSignature, v.ExpectedSignature)
	req, err := a.ParseChat(context.Background(), "commands", calls.WebhookRequest{Method: "POST", Header: h, Body: []byte(v.Body)})
	if err != nil {
		t.Fatal(err)
	}
	if req.Command == nil || req.Command.Title != "standup" || req.Surface.Workspace != "T0001" || req.Surface.Channel != "C2147483705" || req.User.ID != "U2147483697" || req.User.Name != "Steve" {
		t.Fatalf("parsed %+v %+v", req, req.Command)
	}
	if req.DeliveryID != "" {
		t.Fatalf("slash commands are not retried: no delivery id, got %q", req.DeliveryID)
	}
}

func TestParseCommand(t *testing.T) {
	a, _ := newTestApp(t, nil)
	tests := []struct {
		text string
		want *calls.Command
		bad  bool
	}{
		{"", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}, false},
		{"audio <@U123|ada> <@W456> daily Sync &amp; plan", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio, Mentions: []string{"U123", "W456"}, Provider: "daily", Title: "Sync & plan"}, false},
		{"new Retro &lt;3", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, New: true, Title: "Retro <3"}, false},
		{"end", &calls.Command{Kind: calls.CommandEnd}, false},
		{"help", &calls.Command{Kind: calls.CommandHelp}, false},
		// <!here> becomes a plain word: nothing rings a whole channel.
		{"<!here> standup", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "here standup"}, false},
		{"<#C1|general> <https://x.example|site>", &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "#general site"}, false},
		{"@ada", nil, true}, // not escaped by Slack: who is ada?
		{"end now", nil, true},
		{strings.Repeat("x", 1001), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			req, err := a.ParseChat(context.Background(), "commands", signed("POST", commandBody(tt.text), testNow, testSecret))
			if err != nil {
				t.Fatal(err)
			}
			p := req.Private.(*pending)
			if tt.bad {
				if req.Command != nil || p.commandErr == nil {
					t.Fatalf("accepted: %+v", req.Command)
				}
				return
			}
			if p.commandErr != nil || !reflect.DeepEqual(req.Command, tt.want) {
				t.Fatalf("got %+v (%v), want %+v", req.Command, p.commandErr, tt.want)
			}
		})
	}
}

// TestCommandEndToEnd: a signed /call goes through ParseChat, the outcome
// the gateway would produce, and ReplyChat's ephemeral JSON.
func TestCommandEndToEnd(t *testing.T) {
	a, _ := newTestApp(t, nil)
	call := calls.Call{ID: "c1", Type: calls.TypeVideo, State: calls.StateCreated, Title: "Standup <!channel>", CreatedBy: "slack:U2147483697"}
	tests := []struct {
		name string
		text string
		out  calls.ChatOutcome
		want map[string]any
	}{
		{"created", "video Standup", calls.ChatOutcome{Call: call, Created: true, JoinURL: "https://gw.example/j/c1", PersonalURL: "https://gw.example/j/c1?t=abc&u=1"},
			map[string]any{"response_type": "ephemeral",
				"text": "*Standup &lt;!channel&gt;*: Starting…\nYour personal link to join (for you only, valid for a while):",
				"blocks": []any{
					map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*Standup &lt;!channel&gt;*: Starting…\nYour personal link to join (for you only, valid for a while):", "verbatim": true}},
					map[string]any{"type": "actions", "block_id": "callgate_personal", "elements": []any{map[string]any{
						"type": "button", "action_id": "personal_link", "text": map[string]any{"type": "plain_text", "text": "Join", "emoji": false},
						"url": "https://gw.example/j/c1?t=abc&u=1", "style": "primary"}}},
				}}},
		{"found", "", calls.ChatOutcome{Call: call, PersonalURL: "https://gw.example/p"}, nil},
		{"help", "help", calls.ChatOutcome{}, map[string]any{"response_type": "ephemeral",
			"text":   "Start a call: /call [audio|video] [@person …] [provider] [title …] · End it: /call end · This help: /call help",
			"blocks": []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "Start a call: /call [audio|video] [@person …] [provider] [title …] · End it: /call end · This help: /call help", "verbatim": true}}}}},
		{"bad command", "end now", calls.ChatOutcome{}, nil},
		{"not the owner", "end", calls.ChatOutcome{Call: call, Err: fmt.Errorf("%w: only the owner", calls.ErrForbidden)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := a.ParseChat(context.Background(), "commands", signed("POST", commandBody(tt.text), testNow, testSecret))
			if err != nil {
				t.Fatal(err)
			}
			reply, err := a.ReplyChat(context.Background(), req, tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if reply.Status != 200 || reply.ContentType != "application/json" {
				t.Fatalf("reply %d %s", reply.Status, reply.ContentType)
			}
			var got map[string]any
			if err := json.Unmarshal(reply.Body, &got); err != nil {
				t.Fatal(err)
			}
			if got["response_type"] != "ephemeral" {
				t.Fatalf("not ephemeral: %s", reply.Body)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("reply\n%s\nwant\n%v", reply.Body, tt.want)
			}
			switch tt.name {
			case "found":
				if !strings.Contains(string(reply.Body), "A call is already live here") || !strings.Contains(string(reply.Body), "https://gw.example/p") {
					t.Fatalf("found: %s", reply.Body)
				}
			case "bad command":
				if !strings.Contains(string(reply.Body), "takes nothing after it") || !strings.Contains(string(reply.Body), "/call help") {
					t.Fatalf("bad command: %s", reply.Body)
				}
			case "not the owner":
				if !strings.Contains(string(reply.Body), "Only the person who started the call can end it.") {
					t.Fatalf("not owner: %s", reply.Body)
				}
			}
		})
	}
}

// interactionBody is a block_actions click on a card button.
func interactionBody(actionID, value, responseURL string) string {
	payload := map[string]any{
		"type": "block_actions", "user": map[string]any{"id": "U7", "username": "ada", "name": "ada", "team_id": "T1"},
		"team": map[string]any{"id": "T1"}, "channel": map[string]any{"id": "C1"},
		"container":    map[string]any{"type": "message", "message_ts": "1.2", "channel_id": "C1"},
		"response_url": responseURL,
		"actions":      []any{map[string]any{"action_id": actionID, "block_id": "callgate_actions", "value": value, "type": "button"}},
	}
	b, _ := json.Marshal(payload)
	return url.Values{"payload": {string(b)}}.Encode()
}

// TestInteractionJoin: a Join click is acked with an empty 200 and the
// personal link is POSTed, ephemeral, to the response_url.
func TestInteractionJoin(t *testing.T) {
	a, _ := newTestApp(t, nil)
	var mu sync.Mutex
	var posted []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second) // a slow Slack must not delay the ack
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		posted = append(posted, m)
		mu.Unlock()
	}))
	defer srv.Close()
	a.responseURLAllowed = func(u *url.URL) bool { return "http://"+u.Host == srv.URL }

	req, err := a.ParseChat(context.Background(), "interactions", signed("POST", interactionBody("join", "c1", srv.URL+"/actions/T1/1/x"), testNow, testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if req.Action == nil || *req.Action != (calls.ChatAction{Kind: "join", CallID: "c1"}) || req.User.ID != "U7" || req.Surface.Workspace != "T1" || req.Surface.Channel != "C1" {
		t.Fatalf("parsed %+v", req)
	}
	start := time.Now()
	reply, err := a.ReplyChat(context.Background(), req, calls.ChatOutcome{Call: calls.Call{ID: "c1", State: calls.StateActive}, PersonalURL: "https://gw.example/j/c1?t=personal"})
	if err != nil || reply.Status != 200 || len(reply.Body) != 0 {
		t.Fatalf("ack %+v %v", reply, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the ack waited %s", d)
	}
	a.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 1 {
		t.Fatalf("posted %d", len(posted))
	}
	m := posted[0]
	if m["response_type"] != "ephemeral" || m["replace_original"] != false || !strings.Contains(fmt.Sprint(m["blocks"]), "https://gw.example/j/c1?t=personal") {
		t.Fatalf("posted %v", m)
	}
}

// TestInteractionAcks: URL-only buttons, other apps' buttons and other
// interaction types are acked without running anything; a response_url
// off Slack's hosts is never posted to.
func TestInteractionAcks(t *testing.T) {
	a, _ := newTestApp(t, nil)
	for _, body := range []string{
		interactionBody("personal_link", "", "https://hooks.slack.com/x"),
		interactionBody("something_else", "v", "https://hooks.slack.com/x"),
		url.Values{"payload": {`{"type":"view_submission","user":{"id":"U1"}}`}}.Encode(),
	} {
		req, err := a.ParseChat(context.Background(), "interactions", signed("POST", body, testNow, testSecret))
		if err != nil {
			t.Fatal(err)
		}
		if req.Reply == nil || req.Reply.Status != 200 || req.Action != nil {
			t.Fatalf("not a bare ack: %+v", req)
		}
	}
	if _, err := a.ParseChat(context.Background(), "interactions", signed("POST", interactionBody("end", "../../x", ""), testNow, testSecret)); !errors.Is(err, calls.ErrWebhookMalformed) {
		t.Fatalf("bad call id: %v", err)
	}
	for _, u := range []string{"http://hooks.slack.com/x", "https://evil.example/x", "https://slack.com.evil.example/x", "https://u:p@hooks.slack.com/x"} {
		pu, _ := url.Parse(u)
		if slackHost(pu) {
			t.Errorf("%s allowed as response_url", u)
		}
	}
	if pu, _ := url.Parse("https://hooks.slack.com/actions/T1/1/x"); !slackHost(pu) {
		t.Error("hooks.slack.com refused")
	}
}

// TestEvents: url_verification is answered with the challenge; a retried
// event has the same delivery id; app_uninstalled and tokens_revoked remove
// the workspace's token, but a late retry does not remove a newer install.
func TestEvents(t *testing.T) {
	v := loadVectors(t).Vectors[3]
	a, store := newTestApp(t, func(s *Settings) { s.SigningSecret = v.SigningSecret })
	h := http.Header{}
	h.Set(HeaderTimestamp, v.Timestamp)
	h.Set(HeaderSignature, v.ExpectedSignature)
	a.now = func() time.Time { return time.Unix(1531420618, 0) }
	req, err := a.ParseChat(context.Background(), "events", calls.WebhookRequest{Method: "POST", Header: h, Body: []byte(v.Body)})
	if err != nil {
		t.Fatal(err)
	}
	if req.Reply == nil || string(req.Reply.Body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || req.Reply.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("challenge reply %+v", req.Reply)
	}
	a.now = func() time.Time { return testNow }

	event := func(typ string, at time.Time) string {
		return fmt.Sprintf(`{"token":"x","team_id":"T9","api_app_id":"A1","type":"event_callback","event_id":"Ev0001","event_time":%d,"event":{"type":%q,"tokens":{"bot":["UBOT"]}}}`, at.Unix(), typ)
	}
	first := signed("POST", event("app_mention", testNow), testNow, testSecret)
	retry := signed("POST", event("app_mention", testNow), testNow.Add(time.Minute), testSecret)
	retry.Header.Set(HeaderRetryNum, "1")
	retry.Header.Set(HeaderRetryReason, "http_timeout")
	a.now = func() time.Time { return testNow.Add(time.Minute) }
	r1, err1 := a.ParseChat(context.Background(), "events", first)
	r2, err2 := a.ParseChat(context.Background(), "events", retry)
	if err1 != nil || err2 != nil || r1.DeliveryID == "" || r1.DeliveryID != r2.DeliveryID || r1.Reply == nil {
		t.Fatalf("retry dedupe: %q %q %v %v", r1.DeliveryID, r2.DeliveryID, err1, err2)
	}
	a.now = func() time.Time { return testNow }

	for _, typ := range []string{"app_uninstalled", "tokens_revoked"} {
		_ = store.PutInstallation(context.Background(), calls.Installation{Chat: "slack", Workspace: "T9", Secret: []byte("x"), UpdatedAt: testNow.Add(-time.Hour)})
		if _, err := a.ParseChat(context.Background(), "events", signed("POST", event(typ, testNow), testNow, testSecret)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetInstallation(context.Background(), "slack", "T9"); !errors.Is(err, calls.ErrNotFound) {
			t.Fatalf("%s left the token", typ)
		}
	}
	// Reinstalled after the uninstall; Slack retries the old event.
	_ = store.PutInstallation(context.Background(), calls.Installation{Chat: "slack", Workspace: "T9", Secret: []byte("x"), UpdatedAt: testNow})
	late := signed("POST", event("app_uninstalled", testNow.Add(-10*time.Minute)), testNow, testSecret)
	late.Header.Set(HeaderRetryNum, "3")
	if _, err := a.ParseChat(context.Background(), "events", late); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetInstallation(context.Background(), "slack", "T9"); err != nil {
		t.Fatalf("a late retry removed the new install: %v", err)
	}
}
