package config

import (
	"fmt"
	"strings"
)

// ProviderNames returns the names of the configured providers, sorted.
func (c *Config) ProviderNames() []string { return sortedKeys(c.Providers) }

// Summary is one line for the startup log, free of secrets: the file, the
// listen address and public URL, the store kind (never its DSN or path),
// the providers with their kinds, the default provider, whether the API is
// on and with how many configured keys, the chats, and the log settings.
// For example:
//
//	config=defaults addr=:8080 public_url=derived store=sqlite providers=jitsi(jitsi) default_provider=jitsi api=on keys=0 chats=none log=info/text
func (c *Config) Summary() string {
	file := c.File
	if file == "" {
		file = "defaults"
	}
	providers := make([]string, 0, len(c.Providers))
	for _, name := range c.ProviderNames() {
		providers = append(providers, fmt.Sprintf("%s(%s)", name, c.Providers[name].Kind))
	}
	chats := make([]string, 0, len(c.Chats))
	for _, name := range sortedKeys(c.Chats) {
		chats = append(chats, fmt.Sprintf("%s(%s)", name, c.Chats[name].Kind))
	}
	api := "off"
	if c.API.IsEnabled() {
		api = "on"
	}
	publicURL := c.Server.PublicURL
	if publicURL == "" {
		publicURL = "derived"
	}
	return fmt.Sprintf("config=%s addr=%s public_url=%s store=%s providers=%s default_provider=%s api=%s keys=%d chats=%s log=%s/%s",
		file, c.Server.Addr, publicURL, c.Store.Kind, orNone(providers), c.DefaultProvider,
		api, len(c.API.Keys), orNone(chats), c.Log.Level, c.Log.Format)
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ",")
}
