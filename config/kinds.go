package config

import (
	"net/url"
	"slices"
	"strings"
)

// providerKind describes one provider adapter's configuration.
type providerKind struct {
	// fields are the YAML settings the kind accepts besides "kind".
	fields []string
	// defaults fills in what the file left empty; it runs before validation.
	defaults func(*Provider)
	// validate checks the kind's own settings; field is "providers.<name>".
	validate func(v *validator, field string, p *Provider)
}

// providerKinds is every supported provider kind. Adding a kind is one entry.
var providerKinds = map[string]providerKind{
	"jitsi": jitsiKind,
}

// chatKind describes one chat platform adapter's configuration.
type chatKind struct {
	fields   []string
	validate func(v *validator, field string, c *Chat)
}

// chatKinds is every supported chat platform; none yet. Adding one is one
// entry (its settings become fields of Chat).
var chatKinds = map[string]chatKind{}

// kindNames lists a kind table's names, sorted, for messages.
func kindNames[T any](table map[string]T) string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none yet"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

var jitsiKind = providerKind{
	fields: []string{"api_url", "app_id", "app_secret", "audience", "subject", "webhook_secret", "previous_webhook_secret"},
	defaults: func(p *Provider) {
		if p.APIURL == "" {
			p.APIURL = "https://meet.jit.si"
		}
		if p.Audience == "" {
			p.Audience = "jitsi"
		}
		if u, err := url.Parse(p.APIURL); p.Subject == "" && err == nil {
			p.Subject = u.Hostname()
		}
	},
	validate: func(v *validator, field string, p *Provider) {
		switch {
		case p.AppID != "" && p.AppSecret == "":
			v.problem(field+".app_secret", "required when app_id is set", field+".app_id")
		case p.AppID == "" && p.AppSecret != "":
			v.problem(field+".app_id", "required when app_secret is set", field+".app_secret")
		case p.AppSecret != "" && len(p.AppSecret) < 16:
			v.problem(field+".app_secret", "must be at least 16 characters")
		}
		v.rotation(field+".webhook_secret", p.WebhookSecret, field+".previous_webhook_secret", p.PreviousWebhookSecret, 0)
	},
}
