// Package adapters holds one package per provider and chat platform kind.
// This file is the seam they plug into: each kind's package exports a
// descriptor (ProviderKind or ChatKind) and cmd/callgate lists them once.
//
// A descriptor gives the kind's name, a fresh settings struct holding the
// kind's defaults (the YAML block is decoded into it; see package config),
// and a constructor. Optional capabilities are small interfaces the built
// value may implement, discovered by type assertion where they are used:
// webhook receivers, card posters, room status, the Stream-compatible call
// object.
package adapters

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Deps is what the gateway gives a kind's constructor.
type Deps struct {
	// Name is the configured name (`providers.<name>`, `chats.<name>`).
	Name string
	// PublicURL is the gateway's external base URL, without trailing slash.
	PublicURL string
	// WebhookURL is where this provider's or chat platform's webhooks
	// arrive: PublicURL + /webhooks/providers/<name> or /webhooks/chats/<name>.
	WebhookURL string
	Logger     *slog.Logger
	Now        func() time.Time
	// IsProvider tells whether a word names a configured provider (chat
	// commands may name one); nil when none may be named.
	IsProvider func(name string) bool
	// Templates holds the card words (templates.Set.Card) in every
	// language, with the admin's overrides.
	Templates *templates.Set
	// Installations keeps per-workspace installations (chat platforms
	// installed through OAuth); seal secrets before putting them.
	Installations calls.InstallationStore
}

// ProviderKind describes a provider adapter.
type ProviderKind struct {
	Name string
	// NewSettings returns a pointer to a new settings struct holding the
	// kind's defaults.
	NewSettings func() any
	// New builds the provider from decoded, validated settings.
	New func(ctx context.Context, settings any, deps Deps) (calls.Provider, error)
}

// ChatKind describes a chat platform adapter.
type ChatKind struct {
	Name        string
	NewSettings func() any
	// New builds the platform's intake; the value may also implement
	// calls.CardPoster and other optional capabilities.
	New func(ctx context.Context, settings any, deps Deps) (calls.ChatIntake, error)
}

// Provider builds a ProviderKind from typed functions, so a kind's package
// never handles `any`.
func Provider[S any](name string, defaults func() *S, build func(context.Context, *S, Deps) (calls.Provider, error)) ProviderKind {
	return ProviderKind{
		Name:        name,
		NewSettings: func() any { return defaults() },
		New: func(ctx context.Context, settings any, deps Deps) (calls.Provider, error) {
			s, ok := settings.(*S)
			if !ok {
				return nil, fmt.Errorf("provider kind %s: settings are %T, want %T", name, settings, (*S)(nil))
			}
			return build(ctx, s, deps)
		},
	}
}

// Chat builds a ChatKind from typed functions.
func Chat[S any](name string, defaults func() *S, build func(context.Context, *S, Deps) (calls.ChatIntake, error)) ChatKind {
	return ChatKind{
		Name:        name,
		NewSettings: func() any { return defaults() },
		New: func(ctx context.Context, settings any, deps Deps) (calls.ChatIntake, error) {
			s, ok := settings.(*S)
			if !ok {
				return nil, fmt.Errorf("chat kind %s: settings are %T, want %T", name, settings, (*S)(nil))
			}
			return build(ctx, s, deps)
		},
	}
}
