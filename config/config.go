// Package config is callgate's YAML schema: the types, the embedded defaults,
// ${ENV} interpolation for secrets, and validation that names the file, line
// and field of every mistake.
package config

import "time"

// Config is the whole gateway configuration.
type Config struct {
	Server    Server              `yaml:"server"`
	Store     Store               `yaml:"store"`
	API       API                 `yaml:"api"`
	Providers map[string]Provider `yaml:"providers"`
	// DefaultProvider names the entry of Providers used when a call names none.
	DefaultProvider string          `yaml:"default_provider"`
	Calls           Calls           `yaml:"calls"`
	Chats           map[string]Chat `yaml:"chats"`
	Templates       Templates       `yaml:"templates"`
	Log             Log             `yaml:"log"`

	// File is the path the configuration was read from; empty for the
	// embedded defaults. Not part of the YAML.
	File string `yaml:"-"`
}

// Server is the HTTP listener.
type Server struct {
	// Addr is the listen address, default ":8080".
	Addr string `yaml:"addr"`
	// PublicURL is the gateway's address as people reach it; join links are
	// built from it. When empty, the gateway uses http://localhost plus the
	// port it listens on.
	PublicURL string `yaml:"public_url"`
	// BodyLimit caps request bodies in bytes, default 1 MiB.
	BodyLimit int64 `yaml:"body_limit"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM, default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// LinkSecret signs personal join links. When empty, a random secret is
	// generated once and kept in <data-dir>/link-secret; replicas behind one
	// public URL must share one, so set it for them.
	LinkSecret string `yaml:"link_secret"`
	// PreviousLinkSecret still admits links signed before a rotation.
	PreviousLinkSecret string `yaml:"previous_link_secret"`
	// DataDir holds the SQLite file and generated secrets, default
	// "./callgate-data". The --data-dir flag and CALLGATE_DATA_DIR win over it.
	DataDir string `yaml:"data_dir"`
}

// Store selects the storage engine.
type Store struct {
	// Kind is "sqlite" (default) or "postgres".
	Kind string `yaml:"kind"`
	// Path is the SQLite file, default "<data-dir>/callgate.db".
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (postgres://…).
	DSN string `yaml:"dsn"`
}

// API is the REST API.
type API struct {
	// Enabled turns the REST API on; default true.
	Enabled *bool `yaml:"enabled"`
	// Keys are server-side credentials, sent as "Authorization: Bearer <key>".
	// Several may be valid at once, which is how keys are rotated. When none
	// is configured a key is generated into <data-dir>/api-key.
	Keys []APIKey `yaml:"keys"`
	// UserTokenSecret signs user tokens: HS256 JWTs {user_id, exp} that an
	// app's backend mints for client apps, which act as that user only.
	UserTokenSecret string `yaml:"user_token_secret"`
	// PreviousUserTokenSecret stays valid during a secret rotation.
	PreviousUserTokenSecret string `yaml:"previous_user_token_secret"`
}

// IsEnabled reports whether the REST API is served (default true).
func (a API) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// APIKey is one named server key.
type APIKey struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

// Provider is one configured video provider. Kind selects the adapter; the
// other fields are that kind's credentials, and a kind rejects fields it does
// not use.
type Provider struct {
	// Kind is the adapter: "jitsi" (more kinds arrive with their adapters).
	Kind string `yaml:"kind"`
	// APIURL overrides the provider's base URL (self-hosted servers, tests).
	// For jitsi it is the Meet server, default "https://meet.jit.si".
	APIURL string `yaml:"api_url"`
	// AppID and AppSecret enable token auth on a self-hosted Jitsi: an HS256
	// JWT is appended to join links as ?jwt=.
	AppID     string `yaml:"app_id"`
	AppSecret string `yaml:"app_secret"`
	// Audience is the JWT "aud" for Jitsi token auth, default "jitsi".
	Audience string `yaml:"audience"`
	// Subject is the JWT "sub" for Jitsi token auth, default the host of APIURL.
	Subject string `yaml:"subject"`
	// WebhookSecret verifies the provider's status webhooks.
	WebhookSecret string `yaml:"webhook_secret"`
	// PreviousWebhookSecret stays valid during a secret rotation.
	PreviousWebhookSecret string `yaml:"previous_webhook_secret"`
}

// Calls holds call-lifecycle limits.
type Calls struct {
	// RingTimeout turns an unanswered ringing call into missed; default 120s.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// MaxDuration ends a call that has lasted this long; 0 (default) means no limit.
	MaxDuration time.Duration `yaml:"max_duration"`
	// TokenTTL is how long personal join links and provider credentials are
	// valid; default 1h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// GuestJoin lets anyone holding the stable link /join/{id} in as a guest
	// participant; default true. With false only personal links admit.
	GuestJoin *bool `yaml:"guest_join"`
}

// AllowsGuests reports whether stable links admit guests (default true).
func (c Calls) AllowsGuests() bool { return c.GuestJoin == nil || *c.GuestJoin }

// Chat is one chat platform connection. The platforms arrive with their
// adapters; until then every kind is reported as unsupported.
type Chat struct {
	Kind string `yaml:"kind"`
}

// Templates points at a directory whose files override the embedded ones.
type Templates struct {
	Dir string `yaml:"dir"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
}
