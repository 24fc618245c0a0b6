package webhooks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/webhooks"
)

// toyChat understands a body "<verb> <arg>" and answers with what it was
// told, so the test sees the whole path through the intake.
type toyChat struct{}

func (toyChat) ParseChat(_ context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	if req.Header.Get("X-Toy-Signature") != "ok" {
		return calls.ChatRequest{}, fmt.Errorf("%w: toy: bad signature", calls.ErrWebhookUnauthenticated)
	}
	verb, arg, _ := strings.Cut(string(req.Body), " ")
	out := calls.ChatRequest{User: calls.ChatUser{ID: "u1", Name: "Ada"}, Surface: calls.Surface{Channel: "c1"}, Private: path}
	switch verb {
	case "challenge":
		out.Reply = &calls.WebhookReply{ContentType: "text/plain", Body: []byte(arg)}
	case "call":
		out.Command = &calls.Command{Kind: calls.CommandStart, Title: arg}
	case "join":
		out.Action = &calls.ChatAction{Kind: "join", CallID: arg}
	default:
		return calls.ChatRequest{}, fmt.Errorf("%w: toy: unknown verb", calls.ErrWebhookMalformed)
	}
	return out, nil
}

func (toyChat) ReplyChat(_ context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	msg := fmt.Sprintf("path=%v call=%s join=%s personal=%t err=%v", req.Private, out.Call.ID, out.JoinURL, out.PersonalURL != "", out.Err)
	return calls.WebhookReply{ContentType: "text/plain", Body: []byte(msg)}, nil
}

type toyRunner struct{ got []string }

func (r *toyRunner) RunChat(_ context.Context, chat string, req calls.ChatRequest) calls.ChatOutcome {
	r.got = append(r.got, chat+":"+req.Surface.Channel)
	if req.Command != nil {
		return calls.ChatOutcome{Call: calls.Call{ID: "c-" + req.Command.Title}, Created: true}
	}
	return calls.ChatOutcome{Call: calls.Call{ID: req.Action.CallID}}
}

func TestChatIntake(t *testing.T) {
	signer, err := joinlink.NewSigner(nil, []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 1024})
	runner := &toyRunner{}
	err = webhooks.RegisterChats(srv.Echo, webhooks.ChatOptions{
		Chats: map[string]calls.ChatIntake{"toy": toyChat{}}, Runner: runner,
		Links:     joinlink.Links{PublicURL: "https://gw.test", Signer: signer},
		PublicURL: "https://gw.test", LinkTTL: time.Minute, Registry: srv.Registry,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Echo)
	defer ts.Close()
	for _, tc := range []struct {
		name, path, body, sig string
		want                  int
		wantBody              string
		runs                  int
	}{
		{"command", "/webhooks/chats/toy", "call standup", "ok", 200, "path= call=c-standup join=https://gw.test/join/c-standup personal=true err=<nil>", 1},
		{"sub-path", "/webhooks/chats/toy/commands", "call x", "ok", 200, "path=commands call=c-x", 1},
		{"join click mints a personal link", "/webhooks/chats/toy/interactions", "join c9", "ok", 200, "call=c9 join=https://gw.test/join/c9 personal=true", 1},
		{"challenge answered as is, nothing run", "/webhooks/chats/toy", "challenge 3eZbrw1aB", "ok", 200, "3eZbrw1aB", 0},
		{"unsigned", "/webhooks/chats/toy", "call x", "", 401, "unauthenticated", 0},
		{"malformed", "/webhooks/chats/toy", "dance", "ok", 400, "malformed_webhook", 0},
		{"unknown chat", "/webhooks/chats/nope", "call x", "ok", 404, "not_found", 0},
		{"oversized", "/webhooks/chats/toy", "call " + strings.Repeat("x", 2000), "ok", 413, "body_too_large", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runner.got = nil
			req, _ := http.NewRequest(http.MethodPost, ts.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("X-Toy-Signature", tc.sig)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.want || !strings.Contains(string(b), tc.wantBody) {
				t.Fatalf("%d %s, want %d containing %q", res.StatusCode, b, tc.want, tc.wantBody)
			}
			if len(runner.got) != tc.runs {
				t.Fatalf("ran %d requests (%v), want %d", len(runner.got), runner.got, tc.runs)
			}
			if tc.runs == 1 && !strings.HasPrefix(runner.got[0], "toy:") {
				t.Fatalf("ran for %v: the runner must be told the configured chat name", runner.got)
			}
		})
	}
}

// memberChat is toyChat on a platform that can tell channel membership.
type memberChat struct {
	toyChat
	member bool
	err    error
	asked  int
}

func (m *memberChat) IsMember(context.Context, calls.Surface, string) (bool, error) {
	m.asked++
	return m.member, m.err
}

// A Join click mints a personal link only for someone the platform says is
// still in the conversation; an unclear answer refuses too.
func TestJoinClicksRecheckMembership(t *testing.T) {
	signer, _ := joinlink.NewSigner(nil, []byte(strings.Repeat("k", 32)))
	for _, tc := range []struct {
		name         string
		member       bool
		err          error
		wantPersonal bool
		wantErr      string
	}{
		{"still a member", true, nil, true, "<nil>"},
		{"left the channel", false, nil, false, "not in this conversation"},
		{"platform did not answer", true, fmt.Errorf("timeout"), false, "could not confirm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chat := &memberChat{member: tc.member, err: tc.err}
			srv := httpserver.New(httpserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			err := webhooks.RegisterChats(srv.Echo, webhooks.ChatOptions{
				Chats: map[string]calls.ChatIntake{"toy": chat}, Runner: &toyRunner{},
				Links: joinlink.Links{PublicURL: "https://gw.test", Signer: signer}, PublicURL: "https://gw.test",
			})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv.Echo)
			defer ts.Close()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/webhooks/chats/toy", strings.NewReader("join c9"))
			req.Header.Set("X-Toy-Signature", "ok")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if chat.asked != 1 || !strings.Contains(string(b), fmt.Sprintf("personal=%t", tc.wantPersonal)) || !strings.Contains(string(b), tc.wantErr) {
				t.Fatalf("asked %d; answer %s", chat.asked, b)
			}
		})
	}
}
