package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/agora"
	"github.com/callgate/callgate/adapters/daily"
	"github.com/callgate/callgate/adapters/discord"
	"github.com/callgate/callgate/adapters/hms"
	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/adapters/livekit"
	"github.com/callgate/callgate/adapters/mattermost"
	slackkind "github.com/callgate/callgate/adapters/slack"
	"github.com/callgate/callgate/adapters/streamchat"
	"github.com/callgate/callgate/adapters/streamvideo"
	"github.com/callgate/callgate/adapters/twilio"
	"github.com/callgate/callgate/adapters/voiplink"
	"github.com/callgate/callgate/adapters/zoom"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/webhooks"
)

// kindList is every provider and chat platform kind the binary supports.
type kindList struct {
	Providers []adapters.ProviderKind
	Chats     []adapters.ChatKind
}

// builtinKinds is the one list of kinds. Adding a kind is one entry here
// (see CONTRIBUTING.md).
func builtinKinds() kindList {
	return kindList{
		Providers: []adapters.ProviderKind{
			livekit.Kind,
			jitsi.Kind,
			agora.Kind,
			twilio.Kind,
			zoom.Kind,
			streamvideo.Kind,
			hms.Kind,
			daily.Kind,
		},
		Chats: []adapters.ChatKind{
			discord.Kind,
			slackkind.Kind,
			mattermost.Kind,
			streamchat.Kind,
			voiplink.Kind,
		},
	}
}

// config is the list as the configuration sees it.
func (k kindList) config() config.Kinds {
	var out config.Kinds
	for _, p := range k.Providers {
		out.Providers = append(out.Providers, config.Kind{Name: p.Name, NewSettings: p.NewSettings})
	}
	for _, c := range k.Chats {
		out.Chats = append(out.Chats, config.Kind{Name: c.Name, NewSettings: c.NewSettings})
	}
	return out
}

func (k kindList) provider(name string) (adapters.ProviderKind, bool) {
	for _, p := range k.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return adapters.ProviderKind{}, false
}

// builtProvider is one configured provider, built.
type builtProvider struct {
	provider calls.Provider
	kind     string
}

// buildProviders builds every configured provider with its kind's
// constructor. Webhook URLs sit under publicURL (no trailing slash).
func buildProviders(ctx context.Context, cfg *config.Config, kinds kindList, publicURL string, log *slog.Logger) (map[string]builtProvider, error) {
	out := map[string]builtProvider{}
	for _, name := range sortedKeys(cfg.Providers) {
		b := cfg.Providers[name]
		k, ok := kinds.provider(b.Kind)
		if !ok {
			return nil, fmt.Errorf("provider %s: kind %q is not supported", name, b.Kind)
		}
		p, err := k.New(ctx, b.Settings, adapters.Deps{
			Name:       name,
			PublicURL:  publicURL,
			WebhookURL: publicURL + "/webhooks/providers/" + name,
			Logger:     log.With("provider", name),
			Now:        time.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		out[name] = builtProvider{provider: p, kind: b.Kind}
	}
	return out, nil
}

// configuredProviders are the built providers as serve hands them on.
type configuredProviders struct {
	byName    map[string]calls.Provider
	receivers map[string]webhooks.ProviderReceiver
	kinds     map[string]string
}

// configureProviders builds the providers and sorts out their
// capabilities: a provider that receives status webhooks gets its URL.
func configureProviders(ctx context.Context, cfg *config.Config, kinds kindList, publicURL string, log *slog.Logger) (configuredProviders, error) {
	out := configuredProviders{byName: map[string]calls.Provider{}, receivers: map[string]webhooks.ProviderReceiver{}, kinds: map[string]string{}}
	built, err := buildProviders(ctx, cfg, kinds, publicURL, log)
	if err != nil {
		return out, err
	}
	for name, b := range built {
		out.byName[name] = b.provider
		out.kinds[name] = b.kind
		if p, ok := b.provider.(webhooks.ProviderReceiver); ok {
			out.receivers[name] = p
		}
	}
	return out, nil
}

func (p configuredProviders) describe() string {
	var parts []string
	for _, name := range sortedKeys(p.kinds) {
		parts = append(parts, name+"("+p.kinds[name]+")")
	}
	return strings.Join(parts, ",")
}

func (k kindList) chat(name string) (adapters.ChatKind, bool) {
	for _, c := range k.Chats {
		if c.Name == name {
			return c, true
		}
	}
	return adapters.ChatKind{}, false
}

// configuredChats are the built chat platforms and their capabilities.
type configuredChats struct {
	intakes map[string]calls.ChatIntake
	posters map[string]calls.CardPoster
	names   map[string]bool
	// strategies are the chats' room_strategy settings (absent: per_call).
	strategies map[string]calls.RoomStrategy
}

// chatDeps are what chat platforms get besides their settings.
type chatDeps struct {
	publicURL     string
	log           *slog.Logger
	templates     *templates.Set
	installations calls.InstallationStore
}

// configureChats builds every configured chat platform with its kind's
// constructor; a platform that posts cards gets an outbox lane.
func configureChats(ctx context.Context, cfg *config.Config, kinds kindList, deps chatDeps) (configuredChats, error) {
	publicURL, log := deps.publicURL, deps.log
	out := configuredChats{intakes: map[string]calls.ChatIntake{}, posters: map[string]calls.CardPoster{}, names: map[string]bool{}, strategies: map[string]calls.RoomStrategy{}}
	isProvider := func(name string) bool { _, ok := cfg.Providers[name]; return ok }
	for _, name := range sortedKeys(cfg.Chats) {
		b := cfg.Chats[name]
		k, ok := kinds.chat(b.Kind)
		if !ok {
			return out, fmt.Errorf("chat %s: kind %q is not supported", name, b.Kind)
		}
		intake, err := k.New(ctx, b.Settings, adapters.Deps{
			Name:       name,
			PublicURL:  publicURL,
			WebhookURL: publicURL + "/webhooks/chats/" + name,
			Logger:     log.With("chat", name),
			Now:        time.Now,
			IsProvider: isProvider,
			Templates:  deps.templates, Installations: deps.installations,
		})
		if err != nil {
			return out, fmt.Errorf("chat %s: %w", name, err)
		}
		out.intakes[name] = intake
		out.names[name] = true
		if b.RoomStrategy != "" {
			out.strategies[name] = calls.RoomStrategy(b.RoomStrategy)
		}
		if p, ok := intake.(calls.CardPoster); ok {
			out.posters[name] = p
		}
	}
	return out, nil
}
