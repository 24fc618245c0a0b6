// Package config is callgate's YAML schema: the types, the embedded defaults,
// ${ENV} interpolation for secrets, and validation that names the file, line
// and field of every mistake.
package config

import "time"

// Config is the whole gateway configuration.
type Config struct {
	Server Server `yaml:"server"`
	Store  Store  `yaml:"store"`
	API    API    `yaml:"api"`
	// Providers are the video providers by name, each decoded into its
	// kind's settings (see Kinds).
	Providers map[string]Block `yaml:"providers"`
	// DefaultProvider names the entry of Providers used when a call names none.
	DefaultProvider string `yaml:"default_provider"`
	Calls           Calls  `yaml:"calls"`
	// Rooms and Delivery are the room worker's and the card outbox's
	// policies.
	Rooms    Rooms    `yaml:"rooms"`
	Delivery Delivery `yaml:"delivery"`
	// Retention bounds how long the store keeps event rows and webhook
	// delivery marks.
	Retention Retention `yaml:"retention"`
	// WS is the WebSocket API for client apps (GET /v1/ws).
	WS WS `yaml:"ws"`
	// Chats are the chat platform connections by name, like Providers.
	Chats     map[string]Block `yaml:"chats"`
	Templates Templates        `yaml:"templates"`
	// Admin is the admin page (/admin).
	Admin Admin `yaml:"admin"`
	Log   Log   `yaml:"log"`

	// File is the path the configuration was read from; empty for the
	// embedded defaults. Not part of the YAML.
	File string `yaml:"-"`
}

// Admin protects the admin page (/admin). With neither set the page is off
// (404). It is never opened by an API key.
type Admin struct {
	// Token is the admin secret: typed into the login form (then kept in a
	// cookie) or sent as Authorization: Bearer. At least 16 characters.
	Token string `yaml:"token" secret:"true"`
	// SSOHeader names a header a trusted proxy (server.trusted_proxies)
	// sets to the signed-in person after single sign-on, such as
	// X-Forwarded-User. It is believed only from those proxies.
	SSOHeader string `yaml:"sso_header"`
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
	LinkSecret string `yaml:"link_secret" secret:"true"`
	// PreviousLinkSecret still admits links signed before a rotation.
	PreviousLinkSecret string `yaml:"previous_link_secret" secret:"true"`
	// DataDir holds the SQLite file and generated secrets, default
	// "./callgate-data". The --data-dir flag and CALLGATE_DATA_DIR win over it.
	DataDir string `yaml:"data_dir"`
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string `yaml:"metrics_token" secret:"true"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed when
	// telling a client's address (rate limits, logs).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Limits of the HTTP server itself, against slow or greedy clients.
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// RateLimits budget failures per client address.
	RateLimits RateLimits `yaml:"rate_limits"`
}

// RateLimits budget what a client address may get wrong.
type RateLimits struct {
	// AuthFailures: wrong or expired API keys and user tokens.
	AuthFailures RateLimit `yaml:"auth_failures"`
	// Join: refused /join visits (unknown, ended-and-hidden, forbidden).
	Join RateLimit `yaml:"join"`
	// MaxClients bounds the addresses tracked at once (memory).
	MaxClients int `yaml:"max_clients"`
}

// RateLimit is one budget: Burst at once, refilled at Rate a second.
type RateLimit struct {
	Enabled *bool   `yaml:"enabled"`
	Rate    float64 `yaml:"rate"`
	Burst   int     `yaml:"burst"`
}

// IsEnabled reports whether the limit applies (default true).
func (r RateLimit) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// Store selects the storage engine.
type Store struct {
	// Kind is "sqlite" (default) or "postgres".
	Kind string `yaml:"kind"`
	// Path is the SQLite file, default "<data-dir>/callgate.db".
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (postgres://…).
	DSN string `yaml:"dsn" secret:"true"`
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
	UserTokenSecret string `yaml:"user_token_secret" secret:"true"`
	// PreviousUserTokenSecret stays valid during a secret rotation.
	PreviousUserTokenSecret string `yaml:"previous_user_token_secret" secret:"true"`
}

// IsEnabled reports whether the REST API is served (default true).
func (a API) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// APIKey is one named server key.
type APIKey struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key" secret:"true"`
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
	// EndWhenEmpty ends a call whose room has been empty, or held one
	// person, this long; 0 never does.
	EndWhenEmpty time.Duration `yaml:"end_when_empty"`
	// GuestJoin lets anyone holding the stable link /join/{id} in as a guest
	// participant; default true. With false only personal links admit.
	GuestJoin *bool `yaml:"guest_join"`
}

// Rooms is how the room worker creates provider rooms, off the request
// path.
type Rooms struct {
	// Workers is how many rooms are created at once per replica; default 2.
	Workers int `yaml:"workers"`
	// MinBackoff, MaxBackoff and MaxAttempts bound retries of temporary
	// failures (network errors, 5xx, 429); a permanent one fails the call.
	MinBackoff  time.Duration `yaml:"min_backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
	MaxAttempts int           `yaml:"max_attempts"`
	// AttemptTimeout bounds one request to the provider.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// Deadline bounds the whole effort, from the call's creation.
	Deadline time.Duration `yaml:"deadline"`
	// Wait is how long a credential request waits for a room still being
	// created before it is told to retry (503 with Retry-After).
	Wait time.Duration `yaml:"wait"`
	// Poll is how often an idle worker looks for work (wake-ups usually
	// come sooner).
	Poll time.Duration `yaml:"poll"`
	// ReconcileInterval is how often quiet live calls are checked against
	// providers that report room status; ReconcileGrace how quiet a call
	// must be (and how long between two checks of one call), and
	// ReconcileBatch the most provider questions per check.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	ReconcileGrace    time.Duration `yaml:"reconcile_grace"`
	ReconcileBatch    int           `yaml:"reconcile_batch"`
}

// Delivery is the card outbox's policy: how cards are kept current on chat
// platforms.
type Delivery struct {
	// Workers is how many deliveries run at once per replica; default 4.
	Workers int `yaml:"workers"`
	// MinBackoff doubles per failure up to MaxBackoff, with jitter; a
	// Retry-After from the platform is honoured when longer.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxAttempts failed attempts park a delivery as dead: visible in the
	// API and metrics, retried on request.
	MaxAttempts int `yaml:"max_attempts"`
	// Rate and Burst pace card edits per destination (a webhook URL, a
	// channel): Burst at once, then Rate a second.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Timeout bounds one request to the platform.
	Timeout time.Duration `yaml:"timeout"`
	// Lease is how long a claimed delivery stays with one worker; a
	// replica that dies mid-delivery is taken over after it. Longer than
	// Timeout.
	Lease time.Duration `yaml:"lease"`
	// Poll is how often an idle worker looks for work.
	Poll time.Duration `yaml:"poll"`
}

// Retention is how long old rows are kept; the timers prune older ones.
// 0 keeps them forever.
type Retention struct {
	// EventsAfter prunes call events (the per-call event log) older than
	// this; default 720h.
	EventsAfter time.Duration `yaml:"events_after"`
	// MarksAfter prunes webhook delivery marks (redelivery dedupe) older
	// than this; default 168h. It must outlast every provider's retries
	// (at least 1h), or a late redelivery would be applied again.
	MarksAfter time.Duration `yaml:"marks_after"`
}

// AllowsGuests reports whether stable links admit guests (default true).
func (c Calls) AllowsGuests() bool { return c.GuestJoin == nil || *c.GuestJoin }

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

// WS is the WebSocket API: the videochat handshake and call events for
// client apps at GET /v1/ws.
type WS struct {
	// Enabled serves /v1/ws (with the REST API); default true.
	Enabled *bool `yaml:"enabled"`
	// AllowedOrigins are the Origin hosts browsers may connect from
	// ("app.example.com", "*.example.com", "*" for any). Empty: only pages
	// served from the gateway's own host. Clients that send no Origin
	// (native apps) are not affected.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Heartbeat is how often each socket is pinged; one that does not
	// answer within it is closed. Default 25s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// MaxMessageBytes bounds one inbound frame; default 65536.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// SendQueue bounds the frames waiting for one socket; a client that
	// falls this far behind is dropped. Default 64.
	SendQueue int `yaml:"send_queue"`
	// RingFresh: a ring older than this when a device connects is shown as
	// a missed-call notice instead of ringing. Default 5s.
	RingFresh time.Duration `yaml:"ring_fresh"`
	// Push wakes phones of users rung while offline everywhere.
	Push WSPush `yaml:"push"`
	// Webhooks receive every call event, signed like voiplink callbacks.
	Webhooks []WSWebhook `yaml:"webhooks"`
	// Deliveries is the retry policy of push requests and webhooks.
	Deliveries WSDeliveries `yaml:"deliveries"`
}

// WSDeliveries is how push requests and event webhooks are retried.
type WSDeliveries struct {
	MaxAttempts int           `yaml:"max_attempts"`
	MinBackoff  time.Duration `yaml:"min_backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
}

// IsEnabled reports whether /v1/ws is served (default true).
func (w WS) IsEnabled() bool { return w.Enabled == nil || *w.Enabled }

// WSPush is the app's push endpoint: callgate POSTs {type, userId, caller,
// callId, expiresAt} signed with Secret; without a URL, ringing a user who
// is offline everywhere answers 10011.
type WSPush struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret" secret:"true"`
}

// WSWebhook is one outbound event webhook.
type WSWebhook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret" secret:"true"`
}
