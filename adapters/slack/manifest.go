package slack

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/callgate/callgate/config"
)

// AppManifest is a Slack app manifest (the JSON form Slack's "Create an app
// → From an app manifest" accepts).
type AppManifest struct {
	DisplayInformation struct {
		Name            string `json:"name"`
		Description     string `json:"description,omitempty"`
		BackgroundColor string `json:"background_color,omitempty"`
	} `json:"display_information"`
	Features struct {
		BotUser struct {
			DisplayName  string `json:"display_name"`
			AlwaysOnline bool   `json:"always_online"`
		} `json:"bot_user"`
		SlashCommands []SlashCommand `json:"slash_commands"`
	} `json:"features"`
	OAuthConfig struct {
		RedirectURLs []string `json:"redirect_urls,omitempty"`
		Scopes       struct {
			Bot []string `json:"bot"`
		} `json:"scopes"`
	} `json:"oauth_config"`
	Settings struct {
		EventSubscriptions struct {
			RequestURL string   `json:"request_url"`
			BotEvents  []string `json:"bot_events"`
		} `json:"event_subscriptions"`
		Interactivity struct {
			IsEnabled  bool   `json:"is_enabled"`
			RequestURL string `json:"request_url"`
		} `json:"interactivity"`
		OrgDeployEnabled     bool `json:"org_deploy_enabled"`
		SocketModeEnabled    bool `json:"socket_mode_enabled"`
		TokenRotationEnabled bool `json:"token_rotation_enabled"`
	} `json:"settings"`
}

// SlashCommand is one command of the manifest.
type SlashCommand struct {
	Command      string `json:"command"`
	URL          string `json:"url"`
	Description  string `json:"description"`
	UsageHint    string `json:"usage_hint"`
	ShouldEscape bool   `json:"should_escape"`
}

// Manifest is the app manifest of the chat named name (its endpoints under
// publicURL/webhooks/chats/<name>/) with the settings' scopes.
func Manifest(name, publicURL string, s *Settings) (AppManifest, error) {
	var m AppManifest
	if s == nil {
		s = NewSettings()
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return m, errors.New("server.public_url must be the gateway's public https URL (Slack calls only https URLs)")
	}
	base := strings.TrimRight(publicURL, "/") + "/webhooks/chats/" + name + "/"
	m.DisplayInformation.Name = "callgate"
	m.DisplayInformation.Description = "Voice and video calls in Slack: type /call"
	m.DisplayInformation.BackgroundColor = "#1d4ed8"
	m.Features.BotUser.DisplayName = "callgate"
	m.Features.SlashCommands = []SlashCommand{{
		Command: "/call", URL: base + PathCommands,
		Description: "Start a call here, or end it",
		UsageHint:   "[audio|video] [@person …] [title …] · end · help",
		// Mentions then arrive as <@U123|name>: who, not just a name.
		ShouldEscape: true,
	}}
	m.OAuthConfig.RedirectURLs = []string{base + PathOAuth}
	scopes := append([]string(nil), s.Scopes...)
	for _, need := range []string{"commands", "chat:write"} {
		if !contains(scopes, need) {
			scopes = append(scopes, need)
		}
	}
	sort.Strings(scopes)
	m.OAuthConfig.Scopes.Bot = scopes
	m.Settings.EventSubscriptions.RequestURL = base + PathEvents
	m.Settings.EventSubscriptions.BotEvents = []string{"app_uninstalled", "tokens_revoked"}
	m.Settings.Interactivity.IsEnabled = true
	m.Settings.Interactivity.RequestURL = base + PathInteractions
	return m, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Command runs `callgate slack …` (today: `manifest`) and returns the exit
// code. kinds are the binary's kinds, to read the configuration.
//
//	callgate slack manifest [--chat NAME] [--config FILE] [--public-url URL]
func Command(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool), kinds config.Kinds) int {
	if len(args) == 0 || args[0] != "manifest" {
		fmt.Fprintln(stderr, "usage: callgate slack manifest [--chat NAME] [--config FILE] [--public-url URL]")
		return 2
	}
	fs := flag.NewFlagSet("slack manifest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file, _ := getenv("CALLGATE_CONFIG")
	fs.StringVar(&file, "config", file, "YAML configuration file")
	chat := fs.String("chat", "", "the chat's name in the YAML (default: the only slack chat)")
	public := fs.String("public-url", "", "the gateway's public URL (default: server.public_url)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	name, settings, publicURL := *chat, NewSettings(), *public
	if file != "" {
		cfg, err := config.Load(file, getenv, kinds)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if publicURL == "" {
			publicURL = cfg.Server.PublicURL
		}
		var found []string
		for n, b := range cfg.Chats {
			if b.Kind == KindName && (name == "" || n == name) {
				found = append(found, n)
				if s, ok := b.Settings.(*Settings); ok {
					settings = s
				}
			}
		}
		switch {
		case len(found) == 0 && name != "":
			fmt.Fprintf(stderr, "callgate slack manifest: %s has no slack chat named %q\n", file, name)
			return 1
		case len(found) == 0:
			fmt.Fprintf(stderr, "callgate slack manifest: %s has no chat of kind slack\n", file)
			return 1
		case len(found) > 1:
			sort.Strings(found)
			fmt.Fprintf(stderr, "callgate slack manifest: several slack chats (%s): name one with --chat\n", strings.Join(found, ", "))
			return 2
		}
		name = found[0]
	}
	if name == "" {
		name = KindName
	}
	m, err := Manifest(name, publicURL, settings)
	if err != nil {
		fmt.Fprintln(stderr, "callgate slack manifest:", err)
		return 1
	}
	out, _ := json.MarshalIndent(m, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}
