package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
)

func TestBuiltinKindsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	k := builtinKinds()
	for _, p := range k.Providers {
		if p.Name == "" || seen["p:"+p.Name] || p.NewSettings == nil || p.New == nil {
			t.Errorf("provider kind %+v: empty, repeated or incomplete", p)
		}
		seen["p:"+p.Name] = true
	}
	for _, c := range k.Chats {
		if c.Name == "" || seen["c:"+c.Name] || c.NewSettings == nil || c.New == nil {
			t.Errorf("chat kind %+v: empty, repeated or incomplete", c)
		}
		seen["c:"+c.Name] = true
	}
	if _, err := config.Default(k.config()); err != nil {
		t.Errorf("the defaults need a kind the list lacks: %v", err)
	}
}

// toyProvider is a kind that exists only in tests.
type toyProvider struct {
	calls.Provider
	settings *toySettings
	deps     adapters.Deps
}

type toySettings struct {
	Greeting string `yaml:"greeting"`
}

var toyKind = adapters.Provider("toy",
	func() *toySettings { return &toySettings{Greeting: "hello"} },
	func(_ context.Context, s *toySettings, deps adapters.Deps) (calls.Provider, error) {
		return &toyProvider{settings: s, deps: deps}, nil
	})

func TestBuildProvidersWithAToyKind(t *testing.T) {
	kinds := builtinKinds()
	kinds.Providers = append(kinds.Providers, toyKind)
	cfg, err := config.Parse("t.yaml", []byte("providers:\n  toy: {greeting: hi}\n  meet: {kind: jitsi}\ndefault_provider: toy\n"), noEnv, kinds.config())
	if err != nil {
		t.Fatal(err)
	}
	built, err := buildProviders(context.Background(), cfg, kinds, "https://gw.example/base", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	toy, ok := built["toy"].provider.(*toyProvider)
	if !ok || built["toy"].kind != "toy" || built["meet"].kind != "jitsi" {
		t.Fatalf("built %+v", built)
	}
	if toy.settings.Greeting != "hi" || toy.deps.Name != "toy" || toy.deps.PublicURL != "https://gw.example/base" ||
		toy.deps.WebhookURL != "https://gw.example/base/webhooks/providers/toy" || toy.deps.Logger == nil || toy.deps.Now == nil {
		t.Errorf("toy got %+v %+v", toy.settings, toy.deps)
	}
	configured, err := configureProviders(context.Background(), cfg, kinds, "https://gw.example", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if len(configured.receivers) != 0 || configured.describe() != "meet(jitsi),toy(toy)" {
		t.Errorf("configured %+v %s", configured.receivers, configured.describe())
	}

	// A kind missing from the list fails at build time too.
	if _, err := buildProviders(context.Background(), cfg, builtinKinds(), "", slog.Default()); err == nil || !strings.Contains(err.Error(), `kind "toy" is not supported`) {
		t.Errorf("got %v", err)
	}
}
