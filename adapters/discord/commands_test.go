package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
)

// wantPUT is testdata/register_put.json compacted: the exact body of the
// bulk overwrite for providers daily and jitsi.
func wantPUT(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/register_put.json")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func mockedClient() (*retryablehttp.Client, *httpmock.MockTransport) {
	c := httpx.New(httpx.Options{RetryMax: -1})
	mock := httpmock.NewMockTransport()
	c.HTTPClient.Transport = mock
	return c, mock
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name, guild, settingsGuild, path, where string
	}{
		{name: "global", path: "/applications/111111111111111111/commands", where: "globally"},
		{name: "guild flag", guild: "290926798626357999", path: "/applications/111111111111111111/guilds/290926798626357999/commands", where: "in server 290926798626357999"},
		{name: "guild from settings", settingsGuild: "42", path: "/applications/111111111111111111/guilds/42/commands", where: "in server 42"},
		{name: "flag wins", guild: "7", settingsGuild: "42", path: "/applications/111111111111111111/guilds/7/commands", where: "in server 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, mock := mockedClient()
			var rec recorder
			mock.RegisterResponder(http.MethodPut, testAPI+tt.path, rec.responder(200, `[{"id":"771825006014889984","application_id":"111111111111111111","name":"call","type":1}]`))
			s := testSettings()
			s.GuildID = tt.settingsGuild
			got, where, err := Register(context.Background(), s, RegisterOptions{Guild: tt.guild, Providers: []string{"jitsi", "daily"}, Client: client})
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.bodies) != 1 || rec.bodies[0] != wantPUT(t) {
				t.Fatalf("PUT body =\n%s\nwant\n%s", rec.bodies, wantPUT(t))
			}
			if rec.headers[0].Get("Authorization") != "Bot "+botToken {
				t.Fatalf("Authorization = %q", rec.headers[0].Get("Authorization"))
			}
			if len(got) != 1 || got[0] != (Registered{ID: "771825006014889984", Name: "call"}) || !strings.HasPrefix(where, tt.where) {
				t.Fatalf("Register = %+v, %q", got, where)
			}
		})
	}
	t.Run("refused token", func(t *testing.T) {
		client, mock := mockedClient()
		mock.RegisterResponder(http.MethodPut, testAPI+"/applications/111111111111111111/commands", (&recorder{}).responder(401, `{"message":"401: Unauthorized","code":0}`))
		_, _, err := Register(context.Background(), testSettings(), RegisterOptions{Client: client})
		var pe *calls.PermanentError
		if !errors.As(err, &pe) || strings.Contains(err.Error(), botToken) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCommandsShape(t *testing.T) {
	// Without providers there is no provider option; past 25 it is free text.
	none := Commands(nil)[0].Options[0].Options
	for _, o := range none {
		if o.Name == OptProvider {
			t.Fatal("provider option without providers")
		}
	}
	many := make([]string, 30)
	for i := range many {
		many[i] = "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for _, o := range Commands(many)[0].Options[0].Options {
		if o.Name == OptProvider && len(o.Choices) != 0 {
			t.Fatalf("%d choices, Discord allows 25", len(o.Choices))
		}
	}
	// Every option the parser knows is registered, and the other way round.
	names := map[string]bool{}
	for _, o := range Commands([]string{"jitsi"})[0].Options[0].Options {
		names[o.Name] = true
		if len(o.Description) > 100 || len(o.Name) > 32 {
			t.Fatalf("option %s exceeds Discord's bounds", o.Name)
		}
	}
	for _, n := range []string{OptType, OptWith, "with2", "with3", OptProvider, OptTitle, OptNew} {
		if !names[n] {
			t.Fatalf("option %s is not registered", n)
		}
	}
}

func TestCLIRegister(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "callgate.yaml")
	yaml := `providers:
  jitsi: {kind: jitsi}
  daily: {kind: jitsi, api_url: https://meet.example}
default_provider: jitsi
chats:
  disco:
    kind: discord
    application_id: "111111111111111111"
    public_key: ` + test1Public + `
    bot_token: ${DISCORD_BOT_TOKEN}
    api_url: ` + testAPI + `
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	kinds := config.Kinds{
		Providers: []config.Kind{{Name: jitsi.Kind.Name, NewSettings: jitsi.Kind.NewSettings}},
		Chats:     []config.Kind{{Name: Kind.Name, NewSettings: Kind.NewSettings}},
	}
	getenv := func(k string) (string, bool) {
		if k == "DISCORD_BOT_TOKEN" {
			return botToken, true
		}
		return "", false
	}
	client, mock := mockedClient()
	var rec recorder
	mock.RegisterResponder(http.MethodPut, testAPI+"/applications/111111111111111111/guilds/290926798626357999/commands", rec.responder(200, `[{"id":"9","name":"call"}]`))
	var stdout, stderr bytes.Buffer
	code := runCLI(context.Background(), []string{"register", "--guild", "290926798626357999", "--config", file}, &stdout, &stderr, getenv, kinds, client)
	if code != 0 || stdout.String() != "registered /call (id 9) in server 290926798626357999 for chat disco\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if len(rec.bodies) != 1 || rec.bodies[0] != wantPUT(t) {
		t.Fatalf("PUT body = %s", rec.bodies)
	}
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{args: nil, code: 2, err: "usage: callgate discord register"},
		{args: []string{"register"}, code: 2, err: "--config FILE is required"},
		{args: []string{"register", "--config", file, "--chat", "slack"}, code: 1, err: `has no Discord chat named "slack" (Discord chats: disco)`},
		{args: []string{"register", "--config", file, "extra"}, code: 2, err: `unexpected argument "extra"`},
	} {
		stderr.Reset()
		if code := runCLI(context.Background(), tt.args, &stdout, &stderr, getenv, kinds, client); code != tt.code || !strings.Contains(stderr.String(), tt.err) {
			t.Fatalf("%v: exit %d, stderr %q", tt.args, code, stderr.String())
		}
	}
}

func TestRingSubcommand(t *testing.T) {
	a := &App{}
	sub := func(opts ...*discordgo.ApplicationCommandInteractionDataOption) discordgo.ApplicationCommandInteractionData {
		return discordgo.ApplicationCommandInteractionData{Name: CommandName, Options: []*discordgo.ApplicationCommandInteractionDataOption{
			{Name: SubRing, Type: discordgo.ApplicationCommandOptionSubCommand, Options: opts}}}
	}
	opt := func(v any) *discordgo.ApplicationCommandInteractionDataOption {
		return &discordgo.ApplicationCommandInteractionDataOption{Name: OptRing, Type: discordgo.ApplicationCommandOptionString, Value: v}
	}
	for _, tc := range []struct {
		data   discordgo.ApplicationCommandInteractionData
		on, ok bool
	}{
		{sub(opt("off")), false, true},
		{sub(opt("on")), true, true},
		{sub(opt("maybe")), false, false},
		{sub(), false, false},
	} {
		cmd, err := a.commandFromOptions(tc.data)
		if (err == nil) != tc.ok || (tc.ok && (cmd.Kind != calls.CommandRing || cmd.RingOn != tc.on)) {
			t.Errorf("%+v: %+v, %v", tc.data.Options[0].Options, cmd, err)
		}
	}
}
