package voiplink

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Settings)
		want   []string // "field: message"
	}{
		{name: "valid", change: func(*Settings) {}},
		{name: "no previous secret", change: func(s *Settings) { s.PreviousSecret = "" }},
		{name: "http", change: func(s *Settings) { s.CallbackURL = "http://localhost:9000/hook" }},
		{name: "query kept", change: func(s *Settings) { s.CallbackURL = "https://chat.example/hook?token=abc" }},
		{name: "missing secret", change: func(s *Settings) { s.Secret, s.PreviousSecret = "", "" }, want: []string{"secret: required"}},
		{name: "short secret", change: func(s *Settings) { s.Secret = "short-secret" }, want: []string{"secret: must be at least 16 bytes"}},
		{name: "previous without current", change: func(s *Settings) { s.Secret = "" }, want: []string{"secret: required", "previous_secret: set only together with secret, during a rotation"}},
		{name: "short previous", change: func(s *Settings) { s.PreviousSecret = "tiny-secret" }, want: []string{"previous_secret: must be at least 16 bytes"}},
		{name: "missing callback", change: func(s *Settings) { s.CallbackURL = "" }, want: []string{"callback_url: required"}},
		{name: "relative callback", change: func(s *Settings) { s.CallbackURL = "chat.example/hook" }, want: []string{"callback_url: must be an absolute http or https URL"}},
		{name: "other scheme", change: func(s *Settings) { s.CallbackURL = "ftp://chat.example/hook" }, want: []string{"callback_url: must be an absolute http or https URL"}},
		{name: "no host", change: func(s *Settings) { s.CallbackURL = "https:///hook" }, want: []string{"callback_url: has no host"}},
		{name: "unparsable", change: func(s *Settings) { s.CallbackURL = "https://chat example/%zz" }, want: []string{"callback_url: is not a valid URL"}},
		{name: "credentials", change: func(s *Settings) { s.CallbackURL = "https://user:pw@chat.example/hook" }, want: []string{"callback_url: must not contain a user name or password (the signature authenticates the gateway)"}},
		{name: "fragment", change: func(s *Settings) { s.CallbackURL = "https://chat.example/hook#x" }, want: []string{"callback_url: must not have a fragment"}},
		{name: "zero timeout", change: func(s *Settings) { s.Timeout = 0 }, want: []string{"timeout: must be positive"}},
		{name: "negative max_skew", change: func(s *Settings) { s.MaxSkew = -time.Second }, want: []string{"max_skew: must be positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			tt.change(s)
			var got []string
			s.Validate(func(field, message string, _ ...string) { got = append(got, field+": "+message) })
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Validate reported %q, want %q", got, tt.want)
			}
			for _, p := range got {
				for _, secret := range []string{s.Secret, s.PreviousSecret, "pw", "token=abc"} {
					if secret != "" && strings.Contains(p, secret) {
						t.Fatalf("problem %q repeats a secret", p)
					}
				}
			}
			_, err := New(s, adapters.Deps{Name: "acme"})
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("New error = %v, want problems %q", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "chat acme: ") {
				t.Fatalf("New error = %q, want it to name the chat", err)
			}
		})
	}
}

func TestKind(t *testing.T) {
	if Kind.Name != "voiplink" {
		t.Fatalf("Kind.Name = %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok {
		t.Fatalf("NewSettings gave %T", Kind.NewSettings())
	}
	if !reflect.DeepEqual(*s, Settings{Timeout: 10 * time.Second, MaxSkew: 5 * time.Minute}) {
		t.Fatalf("defaults = %+v", *s)
	}
	// The secrets are marked for config's redaction.
	typ := reflect.TypeFor[Settings]()
	for _, f := range []string{"Secret", "PreviousSecret"} {
		sf, _ := typ.FieldByName(f)
		if sf.Tag.Get("secret") != "true" {
			t.Errorf("%s is not tagged secret:\"true\"", f)
		}
	}
	if _, err := Kind.New(context.Background(), s, adapters.Deps{Name: "acme"}); err == nil {
		t.Fatal("built from settings without a secret")
	}
	s.Secret, s.CallbackURL = testSecret, testCallback
	intake, err := Kind.New(context.Background(), s, adapters.Deps{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intake.(calls.CardPoster); !ok {
		t.Fatal("the built intake is not a CardPoster")
	}
	if _, ok := intake.(calls.DestinationLimiter); !ok {
		t.Fatal("the built intake is not a DestinationLimiter")
	}
}

func TestReplyChat(t *testing.T) {
	a := newApp(t, nil)
	start := &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "Standup"}
	active := testCall()
	ended := testCall()
	endedAt := testNow
	ended.State, ended.EndedAt, ended.EndReason, ended.Participants, ended.Version = calls.StateEnded, &endedAt, "hung_up", nil, 5
	audio := testCall()
	audio.Type, audio.Title = calls.TypeAudio, ""
	_, parseErr := calls.ParseCommand("/call end now", nil)
	endedCallJSON := `{"id":"call-1","type":"video","state":"ended","title":"Standup","provider":"jitsi","created_by":"u-7",` +
		`"members":[{"user_id":"u-7","role":"owner"},{"user_id":"bob","role":"participant"}],"participants":[],` +
		`"ended_at":"2026-03-14T15:09:26Z","end_reason":"hung_up","created_at":"2026-03-14T14:59:26Z","updated_at":"2026-03-14T15:08:26Z"}`
	help := jsonString(HelpText)

	tests := []struct {
		name string
		req  calls.ChatRequest
		out  calls.ChatOutcome
		want string
	}{
		{
			name: "created",
			req:  calls.ChatRequest{Command: start},
			out:  calls.ChatOutcome{Call: active, Created: true, JoinURL: "https://gw.example/join/call-1", PersonalURL: "https://gw.example/join/call-1?t=personal"},
			want: `{"parts":[{"mime_type":"text/plain","body":"Started a video call: Standup."},` +
				`{"mime_type":"application/voip-link","body":"https://gw.example/join/call-1"}],` +
				`"call":` + wantCallJSON + `,"version":4,"personal_url":"https://gw.example/join/call-1?t=personal"}`,
		},
		{
			name: "found",
			req:  calls.ChatRequest{Command: start},
			out:  calls.ChatOutcome{Call: active, JoinURL: "https://gw.example/join/call-1"},
			want: `{"parts":[{"mime_type":"text/plain","body":"There is already a video call here: Standup."},` +
				`{"mime_type":"application/voip-link","body":"https://gw.example/join/call-1"}],` +
				`"call":` + wantCallJSON + `,"version":4}`,
		},
		{
			name: "audio without title",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio}},
			out:  calls.ChatOutcome{Call: audio, Created: true, JoinURL: "https://gw.example/join/call-1"},
			want: `{"parts":[{"mime_type":"text/plain","body":"Started an audio call."},` +
				`{"mime_type":"application/voip-link","body":"https://gw.example/join/call-1"}],` +
				`"call":` + strings.Replace(strings.Replace(compact(t, wantCallJSON), `"type":"video"`, `"type":"audio"`, 1), `"title":"Standup"`, `"title":""`, 1) + `,"version":4}`,
		},
		{
			name: "ended",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandEnd}},
			out:  calls.ChatOutcome{Call: ended, JoinURL: "https://gw.example/join/call-1"},
			want: `{"parts":[{"mime_type":"text/plain","body":"The video call has ended: Standup."},` +
				`{"mime_type":"application/voip-link","body":"https://gw.example/join/call-1"}],` +
				`"call":` + endedCallJSON + `,"version":5}`,
		},
		{
			name: "domain error",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandEnd}},
			out:  calls.ChatOutcome{Err: fmt.Errorf("%w: there is no live call in this conversation", calls.ErrNotFound)},
			want: `{"parts":[{"mime_type":"text/plain","body":"Sorry, that did not work: there is no live call in this conversation."}]}`,
		},
		{
			name: "forbidden",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandEnd}},
			out:  calls.ChatOutcome{Err: calls.ErrForbidden},
			want: `{"parts":[{"mime_type":"text/plain","body":"Sorry, that did not work: forbidden."}]}`,
		},
		{
			name: "help",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandHelp}},
			want: `{"parts":[{"mime_type":"text/plain","body":` + help + `}]}`,
		},
		{
			name: "command the grammar rejected",
			req:  calls.ChatRequest{Private: &pending{commandErr: parseErr}},
			want: `{"parts":[{"mime_type":"text/plain","body":` + jsonString("That is not a command I know: `/call end` takes nothing after it.\n\n"+HelpText) + `}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.ReplyChat(context.Background(), tt.req, tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != 200 || got.ContentType != "application/json" {
				t.Fatalf("reply status %d, content type %q", got.Status, got.ContentType)
			}
			if want := compact(t, tt.want); string(got.Body) != want {
				t.Fatalf("body =\n%s\nwant\n%s", got.Body, want)
			}
		})
	}
}

// TestCommandRoundTrip is the whole inbound flow of a rejected command: it
// is authentic, so it is parsed, runs nothing, and is answered 200.
func TestCommandRoundTrip(t *testing.T) {
	a := newApp(t, nil)
	req, err := a.ParseChat(context.Background(), "", signed(`{"conversation_id":"c","sender":"u","text":"/call end please"}`, testSecret, testNow))
	if err != nil {
		t.Fatal(err)
	}
	if req.Command != nil {
		t.Fatalf("Command = %+v, want none", req.Command)
	}
	reply, err := a.ReplyChat(context.Background(), req, calls.ChatOutcome{})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != 200 || !strings.Contains(string(reply.Body), "takes nothing after it") || !strings.Contains(string(reply.Body), "/call help") {
		t.Fatalf("reply = %d %s", reply.Status, reply.Body)
	}
}
