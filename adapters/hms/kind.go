package hms

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// Kind is the 100ms provider kind: `providers.<name>: {kind: hms, ...}`.
var Kind = adapters.Provider("hms", defaultSettings, build)

// Settings is a 100ms provider block of the configuration.
type Settings struct {
	// AccessKey and AppSecret are the app's credentials (dashboard →
	// Developer → "App Access Key" / "App Secret"); AppSecret signs the
	// management and join tokens.
	AccessKey string `yaml:"access_key"`
	AppSecret string `yaml:"app_secret" secret:"true"`
	// TemplateID is the template new rooms get; empty means the app's
	// default template.
	TemplateID string `yaml:"template_id"`
	// Region is where rooms are created: us, eu, in or auto (empty: the
	// template's region).
	Region string `yaml:"region"`
	// WebhookHeaders are the secret headers configured with the webhook in
	// the dashboard; every one must arrive with its value. Without them no
	// webhook is accepted.
	WebhookHeaders map[string]string `yaml:"webhook_headers" secret:"true"`
	// PreviousWebhookHeaders stay valid during a rotation: a delivery that
	// carries either whole set is accepted.
	PreviousWebhookHeaders map[string]string `yaml:"previous_webhook_headers" secret:"true"`
	// Roles maps callgate roles to the template's role names. Roles left
	// out keep their default (DefaultRoles).
	Roles map[string]string `yaml:"roles"`
	// APIURL is the REST base, default DefaultAPIURL.
	APIURL string `yaml:"api_url"`
	// TokenTTL bounds a join token's lifetime, default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// JoinURLTemplate builds a browser link from a credential (100ms has no
	// link for a bare room id): a Go template over .Room .RoomID .Role
	// .Token .UID .Identity .URL, e.g.
	// https://myteam.app.100ms.live/meeting/<room code>?token={{.Token}} or
	// https://myteam.app.100ms.live/preview/{{.RoomID}}/{{.Role}}?token={{.Token}}.
	// Empty: credentials carry no link, only the token.
	JoinURLTemplate string `yaml:"join_url_template"`
}

// DefaultRoles maps callgate's roles onto the roles of 100ms's templates:
// host (may moderate), guest (publishes) and viewer (receives only). The
// "Video Conferencing" starter template has host and guest but no viewer:
// add a receive-only role named viewer to it, or map listener to a role that
// exists. A role the template lacks makes 100ms refuse the join, which is
// safer than letting a listener publish.
var DefaultRoles = map[calls.Role]string{
	calls.RoleOwner:       "host",
	calls.RolePanelist:    "host",
	calls.RolePresenter:   "guest",
	calls.RoleCoPresenter: "guest",
	calls.RolePromoted:    "guest",
	calls.RoleParticipant: "guest",
	calls.RoleListener:    "viewer",
}

func defaultSettings() *Settings {
	return &Settings{APIURL: DefaultAPIURL, TokenTTL: time.Hour}
}

// regions 100ms accepts for a room.
var regions = []string{"us", "eu", "in", "auto"}

// roleName is what 100ms accepts as a role name in a template.
var roleName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

// Validate reports what is wrong with the settings, field by field (see
// config.Validator). It never quotes a secret.
func (s *Settings) Validate(report func(field, message string, near ...string)) {
	if s.AccessKey == "" {
		report("access_key", "is required (100ms dashboard → Developer → App Access Key)")
	} else if strings.TrimSpace(s.AccessKey) != s.AccessKey || strings.ContainsAny(s.AccessKey, " \t\r\n") {
		report("access_key", "must not contain white space")
	}
	if s.AppSecret == "" {
		report("app_secret", "is required (100ms dashboard → Developer → App Secret)")
	} else if len(s.AppSecret) < 16 {
		report("app_secret", "is too short to be a 100ms app secret")
	}
	if s.Region != "" && !slices.Contains(regions, s.Region) {
		report("region", "{value} is not one of us, eu, in, auto")
	}
	if s.APIURL != "" {
		adapters.ValidateBaseURL("api_url", s.APIURL, report)
	}
	if s.TokenTTL < 0 {
		report("token_ttl", "must not be negative")
	} else if s.TokenTTL > 0 && s.TokenTTL < time.Minute {
		report("token_ttl", "must be at least 1m")
	}
	validateHeaders("webhook_headers", s.WebhookHeaders, report)
	validateHeaders("previous_webhook_headers", s.PreviousWebhookHeaders, report)
	if len(s.PreviousWebhookHeaders) > 0 && len(s.WebhookHeaders) == 0 {
		report("previous_webhook_headers", "set only together with webhook_headers, during a rotation")
	}
	for _, k := range sortedKeys(s.Roles) {
		if _, err := calls.ParseRole(k); err != nil || k == "" {
			report("roles."+k, "is not a callgate role (owner, panelist, presenter, co-presenter, promoted, participant, listener)", "roles")
			continue
		}
		if !roleName.MatchString(s.Roles[k]) {
			report("roles."+k, "{value} is not a 100ms role name", "roles")
		}
	}
	if s.JoinURLTemplate != "" {
		if _, err := adapters.ParseJoinTemplate(s.JoinURLTemplate, joinData{}); err != nil {
			report("join_url_template", "does not parse: "+err.Error())
		}
	}
}

// validateHeaders checks header names (values are secrets and never
// quoted).
func validateHeaders(field string, h map[string]string, report func(field, message string, near ...string)) {
	for _, name := range sortedKeys(h) {
		if !validHeaderName(name) {
			report(field, "holds a name that is not a valid HTTP header name")
			continue
		}
		if h[name] == "" {
			report(field+"."+name, "must not be empty: an empty header proves nothing", field)
		}
	}
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// joinData is what join_url_template sees.
type joinData struct {
	Room     string // the room name (the call id)
	RoomID   string // 100ms's room id
	Role     string // the 100ms role
	Token    string // the app token
	UID      string // the user id in the token
	Identity string // the same: 100ms has no numeric uid
	URL      string // the room's URL, empty: 100ms rooms have none
}

// config turns settings into the provider's Config.
func (s *Settings) config() Config {
	roles := map[calls.Role]string{}
	for k, v := range s.Roles {
		roles[calls.Role(k)] = v
	}
	var sets []http.Header
	for _, m := range []map[string]string{s.WebhookHeaders, s.PreviousWebhookHeaders} {
		if len(m) == 0 {
			continue
		}
		h := http.Header{}
		for k, v := range m {
			h.Set(k, v)
		}
		sets = append(sets, h)
	}
	return Config{
		AccessKey: s.AccessKey, AppSecret: s.AppSecret,
		TemplateID: s.TemplateID, Region: s.Region,
		WebhookHeaders: sets, Roles: roles,
		APIURL: s.APIURL, TokenTTL: s.TokenTTL, JoinURLTemplate: s.JoinURLTemplate,
	}
}

// build makes the provider. Without webhook headers it takes no webhooks:
// the value does not implement the webhook capability, so
// /webhooks/providers/<name> answers 404 rather than refusing every delivery.
func build(_ context.Context, s *Settings, deps adapters.Deps) (calls.Provider, error) {
	cfg := s.config()
	cfg.Now = deps.Now
	cfg.Logger = deps.Logger
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookHeaders) == 0 {
		return adapters.WithoutWebhooks(p), nil
	}
	return p, nil
}
