package discord

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/config"
)

// CLIUsage is the `callgate discord` usage.
const CLIUsage = `usage: callgate discord register [--guild ID] [--chat NAME] [--config FILE]

Installs /call (start, end, help) for a Discord chat of the configuration,
replacing the application's commands (a bulk overwrite). --guild (or the
chat's guild_id) installs them in one server at once; without, globally.
--chat picks the chat block when there are several of kind discord.
--config defaults to CALLGATE_CONFIG.
`

// Main runs `callgate discord …` (args are what follows "discord") and
// returns the exit code. kinds are the binary's kinds, to read the file.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool), kinds config.Kinds) int {
	return runCLI(ctx, args, stdout, stderr, getenv, kinds, nil)
}

func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool), kinds config.Kinds, client *retryablehttp.Client) int {
	if len(args) == 0 || args[0] != "register" {
		fmt.Fprint(stderr, CLIUsage)
		return 2
	}
	fs := flag.NewFlagSet("discord register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, CLIUsage) }
	file, _ := getenv("CALLGATE_CONFIG")
	var guild, chat string
	fs.StringVar(&file, "config", file, "YAML configuration file")
	fs.StringVar(&guild, "guild", "", "server id: install there instead of globally")
	fs.StringVar(&chat, "chat", "", "the chat block (chats.<name>) to register")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "callgate discord register: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if file == "" {
		fmt.Fprint(stderr, "callgate discord register: --config FILE is required (or CALLGATE_CONFIG)\n")
		return 2
	}
	cfg, err := config.Load(file, getenv, kinds)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var names []string
	for name, b := range cfg.Chats {
		if b.Kind == KindName {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	switch {
	case chat != "":
		b, ok := cfg.Chats[chat]
		if !ok || b.Kind != KindName {
			fmt.Fprintf(stderr, "callgate discord register: %s has no Discord chat named %q (Discord chats: %s)\n", file, chat, listOrNone(names))
			return 1
		}
	case len(names) == 1:
		chat = names[0]
	case len(names) == 0:
		fmt.Fprintf(stderr, "callgate discord register: %s has no chat of kind discord\n", file)
		return 1
	default:
		fmt.Fprintf(stderr, "callgate discord register: %s has several Discord chats (%s): pick one with --chat\n", file, strings.Join(names, ", "))
		return 2
	}
	s, ok := cfg.Chats[chat].Settings.(*Settings)
	if !ok {
		fmt.Fprintf(stderr, "callgate discord register: chat %s: unexpected settings %T\n", chat, cfg.Chats[chat].Settings)
		return 1
	}
	var providers []string
	for name := range cfg.Providers {
		providers = append(providers, name)
	}
	got, where, err := Register(ctx, s, RegisterOptions{Guild: guild, Providers: providers, Client: client})
	if err != nil {
		fmt.Fprintf(stderr, "callgate discord register: chat %s: %v\n", chat, err)
		return 1
	}
	for _, c := range got {
		fmt.Fprintf(stdout, "registered /%s (id %s) %s for chat %s\n", c.Name, c.ID, where, chat)
	}
	return 0
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
