package discord

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
		want   []string
	}{
		{name: "valid", change: func(*Settings) {}},
		{name: "rotation", change: func(s *Settings) { s.PreviousPublicKey = test2Public }},
		{name: "guild and locale", change: func(s *Settings) { s.GuildID, s.DefaultLocale = "290926798626357999", "fr" }},
		{name: "http api", change: func(s *Settings) { s.APIURL = "http://127.0.0.1:9000/api/v10" }},
		{name: "missing all", change: func(s *Settings) { s.ApplicationID, s.PublicKey, s.BotToken = "", "", "" }, want: []string{
			"application_id: required (Developer Portal → your application → General Information → Application ID)",
			"public_key: required (Developer Portal → General Information → Public Key)",
			"bot_token: required (Developer Portal → Bot → Reset Token): cards are posted as the bot",
		}},
		{name: "application id not numeric", change: func(s *Settings) { s.ApplicationID = "my-app" }, want: []string{"application_id: must be the application's numeric id"}},
		{name: "public key not hex", change: func(s *Settings) { s.PublicKey = strings.Repeat("g", 64) }, want: []string{"public_key: must be hex (64 digits, as the Developer Portal shows it)"}},
		{name: "public key short", change: func(s *Settings) { s.PublicKey = test1Public[:62] }, want: []string{"public_key: must be 32 bytes (64 hex digits), not 31"}},
		{name: "previous key bad", change: func(s *Settings) { s.PreviousPublicKey = "abc" }, want: []string{"previous_public_key: must be hex (64 digits, as the Developer Portal shows it)"}},
		{name: "token with Bot prefix", change: func(s *Settings) { s.BotToken = "Bot " + botToken }, want: []string{`bot_token: must not contain white space (paste the token alone, without "Bot ")`}},
		{name: "guild", change: func(s *Settings) { s.GuildID = "guild" }, want: []string{"guild_id: must be a server's numeric id"}},
		{name: "locale", change: func(s *Settings) { s.DefaultLocale = "pt" }, want: []string{"default_locale: must be one of en, fr, de, es"}},
		{name: "api url", change: func(s *Settings) { s.APIURL = "discord.com/api" }, want: []string{"api_url: must be an absolute http or https URL"}},
		{name: "api url query", change: func(s *Settings) { s.APIURL = "https://discord.com/api?x=1" }, want: []string{"api_url: must be a base URL without credentials, query or fragment"}},
		{name: "max age", change: func(s *Settings) { s.MaxAge = 0 }, want: []string{"max_age: must be positive"}},
		{name: "max age long", change: func(s *Settings) { s.MaxAge = 2 * time.Hour }, want: []string{"max_age: must be at most 1h0m0s"}},
		{name: "timeout", change: func(s *Settings) { s.Timeout = -1 }, want: []string{"timeout: must be positive"}},
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
				if strings.Contains(p, botToken) {
					t.Fatalf("problem %q repeats the token", p)
				}
			}
			_, err := New(s, adapters.Deps{Name: "disco"})
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("New error = %v, want problems %q", err, tt.want)
			}
			if err != nil && (!strings.HasPrefix(err.Error(), "chat disco: ") || strings.Contains(err.Error(), botToken)) {
				t.Fatalf("New error = %q", err)
			}
		})
	}
}

func TestKind(t *testing.T) {
	if Kind.Name != "discord" {
		t.Fatalf("Kind.Name = %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	if !ok {
		t.Fatalf("NewSettings gave %T", Kind.NewSettings())
	}
	want := Settings{DefaultLocale: "en", APIURL: "https://discord.com/api/v10", MaxAge: 5 * time.Minute, Timeout: 10 * time.Second}
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("defaults = %+v", *s)
	}
	typ := reflect.TypeFor[Settings]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if (f.Tag.Get("secret") == "true") != (f.Name == "BotToken") {
			t.Fatalf("field %s secret tag = %q", f.Name, f.Tag.Get("secret"))
		}
		if f.Tag.Get("yaml") == "" {
			t.Fatalf("field %s has no yaml tag", f.Name)
		}
	}
	*s = *testSettings()
	intake, err := Kind.New(context.Background(), s, adapters.Deps{Name: "disco"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intake.(calls.CardPoster); !ok {
		t.Fatal("not a CardPoster")
	}
	if _, ok := intake.(calls.DestinationLimiter); !ok {
		t.Fatal("not a DestinationLimiter")
	}
}

// TestReplyChat: the exact interaction responses.
func TestReplyChat(t *testing.T) {
	a, clk, _ := newTestApp(t)
	live := liveCall(clk.t)
	p := func(locale string) *pending { return &pending{InteractionID: "1", Token: "t", Locale: locale} }
	start := &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}
	const noMention = `"allowed_mentions":{"parse":[],"replied_user":false},"flags":64`
	eph := func(content string) string {
		return `{"type":4,"data":{"content":` + fmt.Sprintf("%q", content) + `,` + noMention + `}}`
	}
	link := `"components":[{"components":[{"label":"Join","style":5,"disabled":false,"url":"https://gw.example/p/ada","type":2}],"type":1}]`
	tests := []struct {
		name string
		req  calls.ChatRequest
		out  calls.ChatOutcome
		want string
	}{
		{name: "start created",
			req:  calls.ChatRequest{Command: start, Private: p("en-US")},
			out:  calls.ChatOutcome{Call: live, Created: true, JoinURL: joinURL, PersonalURL: "https://gw.example/p/ada"},
			want: `{"type":4,"data":{"content":"**Standup** · In progress\nYour personal link to join (for you only, valid for a while):\nhttps://gw.example/p/ada",` + link + `,` + noMention + `}}`},
		{name: "start found a live call, in French",
			req:  calls.ChatRequest{Command: start, Private: p("fr")},
			out:  calls.ChatOutcome{Call: live, PersonalURL: "https://gw.example/p/ada"},
			want: `{"type":4,"data":{"content":"Un appel est déjà en cours ici. Rejoignez-le, ou tapez /call new pour en lancer un autre.\n**Standup** · En cours\nVotre lien personnel pour rejoindre (pour vous seul, valable un moment) :\nhttps://gw.example/p/ada",` + strings.Replace(link, `"Join"`, `"Rejoindre"`, 1) + `,` + noMention + `}}`},
		{name: "help in German",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandHelp}, Private: p("de")},
			want: eph(a.tpl.Text("de", "card.help"))},
		{name: "bad options",
			req:  calls.ChatRequest{Private: &pending{Locale: "es-ES", commandErr: invalid("type must be audio or video")}},
			want: eph("Type must be audio or video.\n" + a.tpl.Text("es", "card.help"))},
		{name: "unknown interaction",
			req:  calls.ChatRequest{Private: &pending{unknown: true, Locale: "ja"}},
			want: eph(a.tpl.Text("en", "card.help"))},
		{name: "end by a non-owner",
			req:  calls.ChatRequest{Action: &calls.ChatAction{Kind: "end", CallID: "call-1"}, Private: p("fr")},
			out:  calls.ChatOutcome{Call: live, Err: fmt.Errorf("%w: only the owner may end the call", calls.ErrForbidden)},
			want: eph("Seule la personne qui a lancé l'appel peut le terminer.")},
		{name: "end click",
			req:  calls.ChatRequest{Action: &calls.ChatAction{Kind: "end", CallID: "call-1"}, Private: p("en")},
			out:  calls.ChatOutcome{Call: live},
			want: `{"type":6}`},
		{name: "decline click",
			req:  calls.ChatRequest{Action: &calls.ChatAction{Kind: "decline", CallID: "call-1"}, Private: p("en")},
			out:  calls.ChatOutcome{Call: live},
			want: `{"type":6}`},
		{name: "join click",
			req:  calls.ChatRequest{Action: &calls.ChatAction{Kind: "join", CallID: "call-1"}, Private: p("en")},
			out:  calls.ChatOutcome{Call: live, PersonalURL: "https://gw.example/p/ada"},
			want: `{"type":4,"data":{"content":"Your personal link to join (for you only, valid for a while):\nhttps://gw.example/p/ada",` + link + `,` + noMention + `}}`},
		{name: "join click on an ended call",
			req:  calls.ChatRequest{Action: &calls.ChatAction{Kind: "join", CallID: "call-1"}, Private: p("en")},
			out:  calls.ChatOutcome{Call: live, Err: fmt.Errorf("%w: this call is over", calls.ErrCallEnded)},
			want: eph("This call is over.")},
		{name: "/call end",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandEnd}, Private: p("en")},
			out:  calls.ChatOutcome{Call: calls.Call{ID: "call-1", Type: calls.TypeAudio, State: calls.StateEnded}},
			want: eph("**Audio call** · Call ended")},
		{name: "/call end with no call",
			req:  calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandEnd}, Private: p("en")},
			out:  calls.ChatOutcome{Err: fmt.Errorf("there is no call to end in this conversation: %w", calls.ErrNotFound)},
			want: eph("There is no call to end in this conversation\\: call not found.")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.ReplyChat(context.Background(), tt.req, tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != 200 || got.ContentType != "application/json" || string(got.Body) != tt.want {
				t.Fatalf("ReplyChat =\n%s\nwant\n%s", got.Body, tt.want)
			}
		})
	}
}
