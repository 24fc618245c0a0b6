package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
)

func TestValidate(t *testing.T) {
	ok := func(s *Settings) { s.SigningSecret, s.BotToken = "secret-secret", "xoxb-1" }
	tests := []struct {
		name   string
		mutate func(*Settings)
		want   []string
	}{
		{"single workspace", ok, nil},
		{"many workspaces", func(s *Settings) {
			s.SigningSecret, s.ClientID, s.ClientSecret, s.TokenEncryptionKey = "s", "1.2", "cs", strings.Repeat("0f", 32)
		}, nil},
		{"empty", func(*Settings) {}, []string{"signing_secret: required", "bot_token: set bot_token for one workspace"}},
		{"user token", func(s *Settings) { ok(s); s.BotToken = "xoxp-1" }, []string{"bot_token: must be a bot token"}},
		{"client id alone", func(s *Settings) { s.SigningSecret, s.ClientID = "s", "1" }, []string{"client_secret: required with client_id", "token_encryption_key: required"}},
		{"short key", func(s *Settings) {
			s.SigningSecret, s.ClientID, s.ClientSecret, s.TokenEncryptionKey = "s", "1", "2", "c2hvcnQ="
		}, []string{"token_encryption_key: must be 32 bytes (this is 5)"}},
		{"bad key", func(s *Settings) { ok(s); s.TokenEncryptionKey = "not a key!" }, []string{"token_encryption_key: must be 32 bytes written as base64"}},
		{"previous alone", func(s *Settings) { s.BotToken, s.PreviousSigningSecret = "xoxb-1", "p" }, []string{"signing_secret: required", "previous_signing_secret: set only together"}},
		{"locale", func(s *Settings) { ok(s); s.DefaultLocale = "it" }, []string{"default_locale: must be one of"}},
		{"api_url", func(s *Settings) { ok(s); s.APIURL = "ftp://x" }, []string{"api_url: must be an absolute"}},
		{"scopes", func(s *Settings) { ok(s); s.Scopes = []string{"commands", "a b"} }, []string{"scopes[1]: must be one scope"}},
		{"no scopes", func(s *Settings) { ok(s); s.Scopes = nil }, []string{"scopes: must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSettings()
			tt.mutate(s)
			var got []string
			s.Validate(func(field, msg string, _ ...string) { got = append(got, field+": "+msg) })
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Fatalf("got %q, want %q", got[i], tt.want[i])
				}
				for _, secret := range []string{"secret-secret", "xoxp-1", "c2hvcnQ=", "not a key!"} {
					if strings.Contains(got[i], secret) {
						t.Fatalf("message quotes a secret: %q", got[i])
					}
				}
			}
		})
	}
}

func TestKind(t *testing.T) {
	if Kind.Name != "slack" {
		t.Fatal(Kind.Name)
	}
	s := Kind.NewSettings().(*Settings)
	if s.DefaultLocale != "en" || s.APIURL != DefaultAPIURL || !reflect.DeepEqual(s.Scopes, DefaultScopes) || s.NativeCalls {
		t.Fatalf("defaults %+v", s)
	}
	s.SigningSecret, s.BotToken = "s", "xoxb-1"
	intake, err := Kind.New(context.Background(), s, adapters.Deps{Name: "work", WebhookURL: "https://gw/webhooks/chats/work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intake.(calls.CardPoster); !ok {
		t.Fatal("not a card poster")
	}
	if d := intake.(calls.DestinationLimiter).Destination(calls.Surface{Workspace: "T1", Channel: "C1"}); d != "work/T1/C1" {
		t.Fatal(d)
	}
	s.BotToken = ""
	if _, err := Kind.New(context.Background(), s, adapters.Deps{}); err == nil || strings.Contains(err.Error(), "xoxb") {
		t.Fatalf("invalid settings built: %v", err)
	}
	s.ClientID, s.ClientSecret, s.TokenEncryptionKey = "1", "2", testKeyB64
	if _, err := Kind.New(context.Background(), s, adapters.Deps{}); err == nil {
		t.Fatal("installs without a store built")
	}
}

func TestManifest(t *testing.T) {
	m, err := Manifest("work", "https://gw.example/", NewSettings())
	if err != nil {
		t.Fatal(err)
	}
	base := "https://gw.example/webhooks/chats/work/"
	if c := m.Features.SlashCommands[0]; c.Command != "/call" || c.URL != base+"commands" || !c.ShouldEscape {
		t.Fatalf("command %+v", c)
	}
	if m.Settings.Interactivity.RequestURL != base+"interactions" || !m.Settings.Interactivity.IsEnabled ||
		m.Settings.EventSubscriptions.RequestURL != base+"events" || m.OAuthConfig.RedirectURLs[0] != base+"oauth" {
		t.Fatalf("urls %+v", m)
	}
	for _, sc := range []string{"commands", "chat:write", "calls:write", "calls:read"} {
		found := false
		for _, x := range m.OAuthConfig.Scopes.Bot {
			found = found || x == sc
		}
		if !found {
			t.Fatalf("scope %s missing: %v", sc, m.OAuthConfig.Scopes.Bot)
		}
	}
	if !reflect.DeepEqual(m.Settings.EventSubscriptions.BotEvents, []string{"app_uninstalled", "tokens_revoked"}) {
		t.Fatal(m.Settings.EventSubscriptions.BotEvents)
	}
	if _, err := Manifest("work", "http://localhost:8080", nil); err == nil {
		t.Fatal("http public URL accepted")
	}
}

func TestManifestCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "callgate.yaml")
	yaml := "server: {public_url: https://calls.example.org}\nchats:\n  team-a: {kind: slack, signing_secret: s, bot_token: xoxb-1, scopes: [commands, chat:write]}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	kinds := config.Kinds{
		Providers: []config.Kind{{Name: jitsi.Kind.Name, NewSettings: jitsi.Kind.NewSettings}},
		Chats:     []config.Kind{{Name: Kind.Name, NewSettings: Kind.NewSettings}},
	}
	getenv := func(string) (string, bool) { return "", false }
	var out, errb bytes.Buffer
	if code := Command([]string{"manifest", "--config", file}, &out, &errb, getenv, kinds); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m AppManifest
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Features.SlashCommands[0].URL != "https://calls.example.org/webhooks/chats/team-a/commands" || !reflect.DeepEqual(m.OAuthConfig.Scopes.Bot, []string{"chat:write", "commands"}) {
		t.Fatalf("%s", out.String())
	}
	if strings.Contains(out.String(), "xoxb-1") {
		t.Fatal("the manifest holds the token")
	}
	errb.Reset()
	if code := Command([]string{"manifest", "--config", file, "--chat", "nope"}, &out, &errb, getenv, kinds); code != 1 {
		t.Fatalf("unknown chat: exit %d", code)
	}
	if code := Command([]string{"frobnicate"}, &out, &errb, getenv, kinds); code != 2 {
		t.Fatal("unknown subcommand accepted")
	}
	out.Reset()
	if code := Command([]string{"manifest", "--public-url", "https://x.example"}, &out, &errb, getenv, kinds); code != 0 || !strings.Contains(out.String(), "https://x.example/webhooks/chats/slack/events") {
		t.Fatalf("no config: %s", out.String())
	}
}
