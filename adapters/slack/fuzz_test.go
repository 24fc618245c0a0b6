package slack

import (
	"context"
	"errors"
	"testing"

	"github.com/callgate/callgate/calls"
)

// FuzzParseChat feeds signed bodies of any shape to every endpoint: the
// parser never panics, and refuses with a webhook error or parses.
func FuzzParseChat(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		f.Add("commands", v.Body)
	}
	f.Add("commands", commandBody("audio <@U1|a> <!here> &amp; <#C1|x> <http://a|b> title"))
	f.Add("interactions", interactionBody("join", "c1", "https://hooks.slack.com/x"))
	f.Add("interactions", "payload=%7B%22type%22%3A%22block_actions%22%7D")
	f.Add("events", `{"type":"url_verification","challenge":"x"}`)
	f.Add("events", `{"type":"event_callback","event_id":"Ev1","team_id":"T1","event":{"type":"app_uninstalled"}}`)
	f.Add("events", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`)
	a, _ := newTestApp(f, nil)
	f.Fuzz(func(t *testing.T, path, body string) {
		req, err := a.ParseChat(context.Background(), path, signed("POST", body, testNow, testSecret))
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookMalformed) && !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if req.Command != nil && req.Action != nil {
			t.Fatal("both a command and an action")
		}
		if req.Action != nil && (req.Action.CallID == "" || len(req.Action.CallID) > calls.MaxIDLength) {
			t.Fatalf("bad call id %q", req.Action.CallID)
		}
		if req.Reply == nil {
			if _, err := a.ReplyChat(context.Background(), req, calls.ChatOutcome{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// BenchmarkParseChat is verify + parse of a /call slash command.
func BenchmarkParseChat(b *testing.B) {
	a, _ := newTestApp(b, nil)
	req := signed("POST", commandBody("audio <@U123|ada> Standup &amp; plan"), testNow, testSecret)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ParseChat(context.Background(), "commands", req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseReply is a whole slash command answer: verify, parse and
// the ephemeral reply.
func BenchmarkParseReply(b *testing.B) {
	a, _ := newTestApp(b, nil)
	req := signed("POST", commandBody("video Standup"), testNow, testSecret)
	out := calls.ChatOutcome{Call: calls.Call{ID: "c1", State: calls.StateCreated, Title: "Standup"}, Created: true, PersonalURL: "https://gw.example/j/c1?t=x"}
	b.ReportAllocs()
	for b.Loop() {
		r, err := a.ParseChat(context.Background(), "commands", req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.ReplyChat(context.Background(), r, out); err != nil {
			b.Fatal(err)
		}
	}
}
