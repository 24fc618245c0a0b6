package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

func testCall() calls.Call {
	return calls.Call{
		ID: "c1", Type: calls.TypeVideo, State: calls.StateActive, Title: "Standup", CreatedBy: "slack:U1",
		CreatedAt: testNow.Add(-3 * time.Minute), Version: 3,
		Participants: []calls.Participant{
			{Identity: "slack:U1", JoinedAt: testNow.Add(-2 * time.Minute)},
			{Identity: "guest-7", Name: "Bob & <!here>", JoinedAt: testNow.Add(-time.Minute)},
		},
	}
}

func delivery(c calls.Call, ref string) calls.CardDelivery {
	return calls.CardDelivery{
		Call: c, Version: c.Version, DeliveryID: "d1", JoinURL: "https://gw.example/j/c1",
		Surface: calls.Surface{Chat: "slack", Workspace: "T1", Channel: "C1", Delivery: calls.SurfaceDelivery{MessageRef: ref}},
	}
}

func apiApp(t *testing.T, f *fakeSlack, mutate func(*Settings)) *App {
	a, _ := newTestApp(t, func(s *Settings) {
		s.APIURL = f.GetAPIURL()
		if mutate != nil {
			mutate(s)
		}
	})
	return a
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

const liveBlocks = `[
 {"type":"header","text":{"type":"plain_text","text":"Standup","emoji":false}},
 {"type":"section","text":{"type":"mrkdwn","verbatim":true,"text":":video_camera: *In progress* · 3 min\nStarted by <@U1>\n<@U1> and Bob &amp; &lt;!here&gt; are in the call"}},
 {"type":"actions","block_id":"callgate_actions","elements":[
  {"type":"button","action_id":"join","value":"c1","url":"https://gw.example/j/c1","style":"primary","text":{"type":"plain_text","text":"Join","emoji":false}},
  {"type":"button","action_id":"end","value":"c1","style":"danger","text":{"type":"plain_text","text":"Hang up","emoji":false}}]}
]`

const finalBlocks = `[
 {"type":"header","text":{"type":"plain_text","text":"Standup","emoji":false}},
 {"type":"section","text":{"type":"mrkdwn","verbatim":true,"text":":video_camera: *Call ended · 14 min · 2 people*\nStarted by <@U1>"}},
 {"type":"context","block_id":"callgate_recordings","elements":[{"type":"mrkdwn","verbatim":true,"text":"<https://rec.example/r?a=1&amp;b=%7C2|Recording>"}]}
]`

// TestPostCardPostsThenEdits: the first delivery posts the exact card with
// chat.postMessage, the next edits that message with chat.update, final.
func TestPostCardPostsThenEdits(t *testing.T) {
	f := newFakeSlack(t)
	a := apiApp(t, f, nil)
	ref, err := a.PostCard(context.Background(), delivery(testCall(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if ref != "C1:1700000000.000101" {
		t.Fatalf("ref %q", ref)
	}
	ended := testCall()
	end := ended.CreatedAt.Add(14 * time.Minute)
	ended.State, ended.EndedAt, ended.Version, ended.Participants = calls.StateEnded, &end, 9, nil
	ended.Seqs = map[string]calls.RosterMark{"slack:U1": {}, "guest-7": {}}
	ended.Recordings = []calls.Recording{{Kind: "recording", URL: "https://rec.example/r?a=1&b=|2"}, {Kind: "recording", URL: "javascript:alert(1)"}}
	ref2, err := a.PostCard(context.Background(), delivery(ended, ref))
	if err != nil {
		t.Fatal(err)
	}
	if ref2 != ref {
		t.Fatalf("ref changed: %q", ref2)
	}
	got := f.calls()
	if len(got) != 2 || got[0].Method != "chat.postMessage" || got[1].Method != "chat.update" {
		t.Fatalf("calls %+v", got)
	}
	post, upd := got[0].Form, got[1].Form
	if post.Get("token") != testToken || post.Get("channel") != "C1" || post.Get("unfurl_links") != "false" {
		t.Fatalf("post form %v", post)
	}
	if g, w := compact(t, post.Get("blocks")), compact(t, liveBlocks); g != w {
		t.Fatalf("posted blocks\n%s\nwant\n%s", g, w)
	}
	if post.Get("text") != "Standup · In progress" {
		t.Fatalf("fallback %q", post.Get("text"))
	}
	if upd.Get("channel") != "C1" || upd.Get("ts") != "1700000000.000101" {
		t.Fatalf("update form %v", upd)
	}
	if g, w := compact(t, upd.Get("blocks")), compact(t, finalBlocks); g != w {
		t.Fatalf("edited blocks\n%s\nwant\n%s", g, w)
	}
}

// TestHostileText: user text that would mention everyone, format or link
// never reaches a card unescaped.
func TestHostileText(t *testing.T) {
	f := newFakeSlack(t)
	a := apiApp(t, f, nil)
	hostile := "<!channel> *bold* <https://evil|click> <@U999> @here <script>\uE0000\uE001"
	c := testCall()
	c.Title = hostile
	c.Participants = append(c.Participants, calls.Participant{Identity: "x", Name: hostile}, calls.Participant{Identity: "slack:<!everyone>", Name: "n"})
	c.State = calls.StateRinging
	if _, err := a.PostCard(context.Background(), delivery(c, "")); err != nil {
		t.Fatal(err)
	}
	form := f.calls()[0].Form
	for _, field := range []string{"blocks", "text"} {
		// As Slack reads it: JSON's \u003c is a <.
		v := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(form.Get(field))
		for _, bad := range []string{"<!channel>", "<!here>", "<!everyone>", "<https://evil", "<@U999>", "<script>", "\uE000"} {
			if strings.Contains(v, bad) {
				t.Errorf("%s holds %q: %s", field, bad, v)
			}
		}
		if !strings.Contains(v, "&lt;!channel&gt;") {
			t.Errorf("%s lost the escaped title: %s", field, v)
		}
	}
	// Every mrkdwn text is verbatim: no auto-linking of @here or URLs.
	var blocks []map[string]any
	_ = json.Unmarshal([]byte(form.Get("blocks")), &blocks)
	for _, b := range blocks {
		if txt, ok := b["text"].(map[string]any); ok && txt["type"] == "mrkdwn" && txt["verbatim"] != true {
			t.Errorf("mrkdwn not verbatim: %v", b)
		}
	}
	if got := Escape("a&b<c>d"); got != "a&amp;b&lt;c&gt;d" {
		t.Fatal(got)
	}
}

// TestPostCardErrors: 429 with Retry-After is temporary with that delay;
// Slack's refusals are permanent with a reason for the admin.
func TestPostCardErrors(t *testing.T) {
	tests := []struct {
		name      string
		reply     func(w http.ResponseWriter)
		temporary bool
		retry     time.Duration
		reason    string
	}{
		{"429", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "7"); w.WriteHeader(429) }, true, 7 * time.Second, ""},
		{"429 without Retry-After", func(w http.ResponseWriter) { w.WriteHeader(429) }, true, 0, ""},
		{"503", func(w http.ResponseWriter) { w.WriteHeader(503) }, true, 0, ""},
		{"ratelimited code", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`)) }, true, 0, ""},
		{"channel_not_found", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"channel_not_found"}`)) }, false, 0, "channel does not exist"},
		{"not_in_channel", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"not_in_channel"}`)) }, false, 0, "invite it"},
		{"invalid_auth", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`)) }, false, 0, "check bot_token"},
		{"account_inactive", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"account_inactive"}`)) }, false, 0, "deactivated"},
		{"token_revoked", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"token_revoked"}`)) }, false, 0, "revoked"},
		{"404", func(w http.ResponseWriter) { w.WriteHeader(404) }, false, 0, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.override("chat.postMessage", func(w http.ResponseWriter, _ url.Values) bool { tt.reply(w); return true })
			a := apiApp(t, f, nil)
			_, err := a.PostCard(context.Background(), delivery(testCall(), ""))
			var te *calls.TemporaryError
			var pe *calls.PermanentError
			switch {
			case tt.temporary:
				if !errors.As(err, &te) || te.RetryAfter != tt.retry {
					t.Fatalf("err %v, want temporary after %s", err, tt.retry)
				}
			default:
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.reason) {
					t.Fatalf("err %v, want permanent %q", err, tt.reason)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("the error holds the token")
			}
			if n := len(f.calls()); n != 1 {
				t.Fatalf("%d attempts: the outbox retries, not the client", n)
			}
		})
	}
}

// TestNativeCalls: native mode adds the call to Slack's Calls API, posts
// the call block, sends roster differences and ends the call with its
// duration.
func TestNativeCalls(t *testing.T) {
	f := newFakeSlack(t)
	a := apiApp(t, f, func(s *Settings) { s.NativeCalls = true })
	c := testCall()
	ref, err := a.PostCard(context.Background(), delivery(c, ""))
	if err != nil {
		t.Fatal(err)
	}
	got := f.calls()
	if len(got) != 2 || got[0].Method != "calls.add" || got[1].Method != "chat.postMessage" {
		t.Fatalf("calls %+v", got)
	}
	add := got[0].Form
	if add.Get("external_unique_id") != "c1" || add.Get("join_url") != "https://gw.example/j/c1" || add.Get("created_by") != "U1" || add.Get("title") != "Standup" {
		t.Fatalf("calls.add %v", add)
	}
	if compact(t, add.Get("users")) != compact(t, `[{"slack_id":"U1"},{"external_id":"guest-7","display_name":"Bob & <!here>"}]`) {
		t.Fatalf("users %s", add.Get("users"))
	}
	if !strings.Contains(got[1].Form.Get("blocks"), `{"type":"call","call_id":"R0E69JAIF"}`) || strings.Contains(got[1].Form.Get("blocks"), `"action_id":"join"`) {
		t.Fatalf("blocks %s", got[1].Form.Get("blocks"))
	}
	if !strings.HasPrefix(ref, "C1:1700000000.000101:R0E69JAIF:") {
		t.Fatalf("ref %q", ref)
	}

	// Bob leaves, Cy (a Slack user) joins.
	c.Participants = []calls.Participant{c.Participants[0], {Identity: "slack:U3", JoinedAt: testNow}}
	c.Version = 4
	ref2, err := a.PostCard(context.Background(), delivery(c, ref))
	if err != nil {
		t.Fatal(err)
	}
	got = f.calls()[2:]
	if len(got) != 3 || got[0].Method != "calls.participants.add" || got[1].Method != "calls.participants.remove" || got[2].Method != "chat.update" {
		t.Fatalf("calls %+v", got)
	}
	if got[0].Form.Get("id") != "R0E69JAIF" || compact(t, got[0].Form.Get("users")) != `[{"slack_id":"U3"}]` {
		t.Fatalf("add %v", got[0].Form)
	}
	if compact(t, got[1].Form.Get("users")) != `[{"display_name":"guest-7","external_id":"guest-7"}]` {
		t.Fatalf("remove %v", got[1].Form)
	}

	// The call ends after 14 minutes.
	end := c.CreatedAt.Add(14 * time.Minute)
	c.State, c.EndedAt, c.Participants, c.Version = calls.StateEnded, &end, nil, 5
	if _, err := a.PostCard(context.Background(), delivery(c, ref2)); err != nil {
		t.Fatal(err)
	}
	got = f.calls()[5:]
	if len(got) != 3 || got[0].Method != "calls.participants.remove" || got[1].Method != "chat.update" || got[2].Method != "calls.end" {
		t.Fatalf("calls %+v", got)
	}
	if got[2].Form.Get("id") != "R0E69JAIF" || got[2].Form.Get("duration") != "840" {
		t.Fatalf("calls.end %v", got[2].Form)
	}
	if strings.Contains(got[1].Form.Get("blocks"), `"type":"actions"`) {
		t.Fatalf("final card has buttons: %s", got[1].Form.Get("blocks"))
	}
}

func TestMessageRef(t *testing.T) {
	r := messageRef{Channel: "C1", TS: "1.2", CallID: "R1", Roster: []string{"s:U1", "e:guest:7"}}
	back, err := parseRef(r.String())
	if err != nil || back.CallID != "R1" || len(back.Roster) != 2 || back.Roster[1] != "e:guest:7" {
		t.Fatalf("%+v %v", back, err)
	}
	for _, bad := range []string{"C1", "C1:1:2", "C1:1:R:!!"} {
		if _, err := parseRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A Slack call made for a card whose message could not be posted is ended
// again, so the retry (which makes a new one) leaves no orphan call.
func TestNativeCallEndedWhenItsMessageFails(t *testing.T) {
	f := newFakeSlack(t)
	a := apiApp(t, f, func(s *Settings) { s.NativeCalls = true })
	f.mu.Lock()
	f.reply["chat.postMessage"] = func(w http.ResponseWriter, _ url.Values) bool {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":false,"error":"not_in_channel"}`))
		return true
	}
	f.mu.Unlock()
	if _, err := a.PostCard(context.Background(), delivery(testCall(), "")); err == nil {
		t.Fatal("the failed post was reported as delivered")
	}
	got := f.calls()
	if len(got) != 3 || got[0].Method != "calls.add" || got[1].Method != "chat.postMessage" || got[2].Method != "calls.end" || got[2].Form.Get("id") != "R0E69JAIF" {
		t.Fatalf("calls %+v", got)
	}
}

// With check_membership, a person is in the channel if conversations.members
// lists them on any page; without it, everyone is.
func TestIsMember(t *testing.T) {
	f := newFakeSlack(t)
	a := apiApp(t, f, func(s *Settings) { s.CheckMembership = true })
	sf := calls.Surface{Chat: "slack", Workspace: "T1", Channel: "C1"}
	for user, want := range map[string]bool{"U1": true, "U3": true, "U9": false} {
		if got, err := a.IsMember(context.Background(), sf, user); err != nil || got != want {
			t.Errorf("IsMember(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	off := apiApp(t, f, nil)
	if got, err := off.IsMember(context.Background(), sf, "U9"); err != nil || !got {
		t.Errorf("without check_membership: %v, %v", got, err)
	}
}
