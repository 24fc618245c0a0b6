package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/jitsi"
)

func kindOf(k adapters.ProviderKind) Kind { return Kind{Name: k.Name, NewSettings: k.NewSettings} }

// testKinds is what the binary supports today: jitsi, and no chat platform.
var testKinds = Kinds{Providers: []Kind{kindOf(jitsi.Kind)}}

// defaults is Default(testKinds), which cannot fail.
func defaults() *Config {
	c, err := Default(testKinds)
	if err != nil {
		panic(err)
	}
	return c
}

// jitsiOf returns a provider's jitsi settings.
func jitsiOf(t *testing.T, b Block) *jitsi.Settings {
	t.Helper()
	s, ok := b.Settings.(*jitsi.Settings)
	if !ok {
		t.Fatalf("settings %T, want *jitsi.Settings", b.Settings)
	}
	return s
}

// secret is what every environment variable holds in the secret-leak checks.
const secret = "S3CR3T-from-the-environment-0123456789"

// doc drops the newline after a raw string's opening backtick, so that the
// YAML's first line is line 1.
func doc(s string) string { return strings.TrimPrefix(s, "\n") }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

type parseCase struct {
	name string
	yaml string
	env  map[string]string
	// want is every problem line, exactly and in order; nil means Parse
	// must succeed.
	want  []string
	check func(t *testing.T, c *Config)
}

var parseCases = []parseCase{
	// Overlay semantics.
	{
		name: "empty file is the defaults",
		yaml: "",
		check: func(t *testing.T, c *Config) {
			want := defaults()
			want.File = "test.yaml"
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v\nwant %+v", c, want)
			}
		},
	},
	{
		name: "comments only is the defaults",
		yaml: "# nothing here\n",
		check: func(t *testing.T, c *Config) {
			if c.Server.Addr != ":8080" || c.DefaultProvider != "jitsi" {
				t.Errorf("got %+v", c)
			}
		},
	},
	{
		name: "a scalar keeps every other default",
		yaml: doc(`
server:
  addr: ":9090"
`),
		check: func(t *testing.T, c *Config) {
			want := defaults()
			want.File = "test.yaml"
			want.Server.Addr = ":9090"
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v\nwant %+v", c, want)
			}
		},
	},
	{
		name: "null keeps the default",
		yaml: doc(`
server:
  addr:
  body_limit: ~
providers:
calls: {ring_timeout: null}
`),
		check: func(t *testing.T, c *Config) {
			if c.Server.Addr != ":8080" || c.Server.BodyLimit != 1<<20 || c.Calls.RingTimeout != 120*time.Second {
				t.Errorf("got %+v", c)
			}
			if names := c.ProviderNames(); !reflect.DeepEqual(names, []string{"jitsi"}) {
				t.Errorf("providers %v", names)
			}
		},
	},
	{
		name: "providers replace the defaults and a single one is the default",
		yaml: doc(`
providers:
  own:
    kind: jitsi
    api_url: https://meet.example.com/
    app_id: callgate
    app_secret: 0123456789abcdef
`),
		check: func(t *testing.T, c *Config) {
			// The URL's trailing slash and the subject are the adapter's
			// business, when it is built.
			want := map[string]Block{"own": {Name: "own", Kind: "jitsi", Line: 2, Settings: &jitsi.Settings{
				APIURL: "https://meet.example.com/", AppID: "callgate",
				AppSecret: "0123456789abcdef", Audience: "jitsi",
			}}}
			if !reflect.DeepEqual(c.Providers, want) || c.DefaultProvider != "own" {
				t.Errorf("got %+v default %q", c.Providers, c.DefaultProvider)
			}
		},
	},
	{
		name: "kind defaults to a provider name that is a kind",
		yaml: doc(`
providers:
  jitsi:
`),
		check: func(t *testing.T, c *Config) {
			if p := c.Providers["jitsi"]; p.Kind != "jitsi" || jitsiOf(t, p).APIURL != "https://meet.jit.si" || c.DefaultProvider != "jitsi" {
				t.Errorf("got %+v default %q", c.Providers, c.DefaultProvider)
			}
		},
	},
	{
		name: "several providers need a default_provider",
		yaml: doc(`
providers:
  a: {kind: jitsi}
  b: {kind: jitsi}
`),
		want: []string{"test.yaml:1: default_provider: required when several providers are configured (one of: a, b)"},
	},
	{
		name: "several providers with a default_provider",
		yaml: doc(`
providers:
  a: {kind: jitsi}
  b: {kind: jitsi, api_url: "https://b.example"}
default_provider: b
`),
		check: func(t *testing.T, c *Config) {
			if c.DefaultProvider != "b" || !reflect.DeepEqual(c.ProviderNames(), []string{"a", "b"}) {
				t.Errorf("got %v default %q", c.ProviderNames(), c.DefaultProvider)
			}
		},
	},
	{
		name: "default_provider must be configured",
		yaml: "default_provider: zoom\n",
		want: []string{`test.yaml:1: default_provider: "zoom" is not a configured provider (configured: jitsi)`},
	},
	{
		name: "default_provider may not be emptied",
		yaml: "default_provider: \"\"\n",
		want: []string{`test.yaml:1: default_provider: required (one of: jitsi)`},
	},
	{
		name: "api keys replace, pointers are set",
		yaml: doc(`
api:
  enabled: false
  keys:
    - name: backend
      key: 0123456789abcdef
calls:
  guest_join: FALSE
`),
		check: func(t *testing.T, c *Config) {
			if c.API.IsEnabled() || c.Calls.AllowsGuests() {
				t.Errorf("got %+v %+v", c.API, c.Calls)
			}
			if !reflect.DeepEqual(c.API.Keys, []APIKey{{Name: "backend", Key: "0123456789abcdef"}}) {
				t.Errorf("keys %+v", c.API.Keys)
			}
		},
	},
	{
		name: "x- keys, anchors and merges",
		yaml: doc(`
x-jitsi: &jitsi
  kind: jitsi
  app_id: callgate
  app_secret: shared-secret-0123
providers:
  a:
    <<: *jitsi
  b:
    <<: *jitsi
    api_url: https://b.example
    app_secret: ${B_SECRET}
default_provider: a
`),
		env: map[string]string{"B_SECRET": secret},
		check: func(t *testing.T, c *Config) {
			a, b := jitsiOf(t, c.Providers["a"]), jitsiOf(t, c.Providers["b"])
			if a.AppID != "callgate" || a.AppSecret != "shared-secret-0123" || a.APIURL != "https://meet.jit.si" {
				t.Errorf("a = %+v", a)
			}
			if b.AppID != "callgate" || b.AppSecret != secret || b.APIURL != "https://b.example" {
				t.Errorf("b = %+v", b)
			}
		},
	},
	{
		name: "postgres with a URL or key=value dsn",
		yaml: doc(`
store:
  kind: postgres
  dsn: host=db user=callgate password=x dbname=callgate
`),
		check: func(t *testing.T, c *Config) {
			if c.Store.Kind != "postgres" {
				t.Errorf("store %+v", c.Store)
			}
		},
	},
	{
		name: "public_url trailing slash is trimmed",
		yaml: doc(`
server:
  public_url: https://calls.example.com/gate/
  body_limit: 1_024
`),
		check: func(t *testing.T, c *Config) {
			if c.Server.PublicURL != "https://calls.example.com/gate" || c.Server.BodyLimit != 1024 {
				t.Errorf("server %+v", c.Server)
			}
		},
	},

	// The file as a whole.
	{
		name: "YAML syntax error names file and line",
		yaml: doc(`
server:
  addr: ":1"
 bad: [
`),
		want: []string{"test.yaml:2: invalid YAML: did not find expected key"},
	},
	{
		name: "YAML indentation error",
		yaml: "log:\n  level: info\n  format: text: json\n",
		want: []string{"test.yaml:3: invalid YAML: mapping values are not allowed in this context"},
	},
	{
		name: "one document only",
		yaml: "log: {level: info}\n---\nlog: {level: debug}\n",
		want: []string{"test.yaml:2: only one YAML document is allowed (remove the ---)"},
	},
	{
		name: "root must be a mapping",
		yaml: "- server\n",
		want: []string{"test.yaml:1: the file must be a mapping of settings (such as `server:`), not a list"},
	},

	// Decoding.
	{
		name: "unknown field with suggestion",
		yaml: doc(`
providers:
  jitsi:
    kind: jitsi
    app_secrt: x
`),
		want: []string{"test.yaml:4: providers.jitsi.app_secrt: unknown field (did you mean app_secret?)"},
	},
	{
		name: "unknown top-level field, spelling variants",
		yaml: doc(`
sever:
  addr: ":1"
defaultProvider: jitsi
log:
  colour: red
`),
		want: []string{
			"test.yaml:1: sever: unknown field (did you mean server?)",
			"test.yaml:3: defaultProvider: unknown field (did you mean default_provider?)",
			"test.yaml:5: log.colour: unknown field (known fields: format, level)",
		},
	},
	{
		name: "duplicate keys",
		yaml: doc(`
server:
  addr: ":1"
  addr: ":2"
providers:
  a: {kind: jitsi}
  a: {kind: jitsi}
`),
		want: []string{
			"test.yaml:3: server.addr: duplicate key (first defined on line 2)",
			"test.yaml:6: providers.a: duplicate key (first defined on line 5)",
		},
	},
	{
		name: "bad duration",
		yaml: doc(`
calls:
  ring_timeout: two minutes
  token_ttl: 3600
`),
		want: []string{
			`test.yaml:2: calls.ring_timeout: "two minutes" is not a duration such as 120s`,
			`test.yaml:3: calls.token_ttl: "3600" is not a duration such as 120s (add a unit: ms, s, m or h)`,
		},
	},
	{
		name: "bad scalar types and shapes",
		yaml: doc(`
server:
  body_limit: 1MB
api:
  enabled: maybe
  keys: {name: a}
calls: [1, 2]
log:
  level: {x: 1}
`),
		want: []string{
			`test.yaml:2: server.body_limit: "1MB" is not a whole number`,
			`test.yaml:4: api.enabled: "maybe" is not true or false`,
			`test.yaml:5: api.keys: expected a list, not a mapping`,
			`test.yaml:6: calls: expected a mapping of settings, not a list`,
			`test.yaml:8: log.level: expected a string, not a mapping`,
		},
	},
	{
		name: "provider kinds",
		yaml: doc(`
providers:
  zoom:
    kind: zoom
    api_key: x
  mine:
    api_url: https://x.example
  odd: just-a-string
default_provider: zoom
`),
		want: []string{
			`test.yaml:3: providers.zoom.kind: "zoom" is not a supported provider kind (supported: jitsi)`,
			`test.yaml:5: providers.mine.kind: required (supported provider kinds: jitsi)`,
			`test.yaml:7: providers.odd: expected a mapping of settings, not a single value`,
		},
	},
	{
		name: "chat platforms are not supported yet",
		yaml: doc(`
chats:
  team:
    kind: slack
    token: x
  other: {}
`),
		want: []string{
			`test.yaml:3: chats.team.kind: "slack" is not a supported chat platform kind (supported: none yet)`,
			`test.yaml:5: chats.other.kind: required (supported chat platform kinds: none yet)`,
		},
	},

	// Environment interpolation.
	{
		name: "env set, default, escape",
		yaml: doc(`
server:
  addr: ${ADDR}
  link_secret: ${LINK}
providers:
  jitsi:
    app_id: callgate
    app_secret: "pa$$word-${SUFFIX}"
log:
  level: ${LEVEL:-debug}
  format: ${FORMAT:-text}
`),
		env: map[string]string{"ADDR": "127.0.0.1:7000", "LINK": secret, "SUFFIX": "${ADDR}-0123456789", "FORMAT": "json"},
		check: func(t *testing.T, c *Config) {
			if c.Server.Addr != "127.0.0.1:7000" || c.Server.LinkSecret != secret || c.Server.PublicURL != "" {
				t.Errorf("server %+v", c.Server)
			}
			if got := jitsiOf(t, c.Providers["jitsi"]).AppSecret; got != "pa$word-${ADDR}-0123456789" {
				t.Errorf("app_secret %q", got)
			}
			if c.Log.Level != "debug" || c.Log.Format != "json" {
				t.Errorf("log %+v", c.Log)
			}
		},
	},
	{
		name: "env typed values",
		yaml: doc(`
server:
  body_limit: ${LIMIT}
calls:
  ring_timeout: ${RING}
  guest_join: ${GUESTS}
`),
		env: map[string]string{"LIMIT": "2048", "RING": "30s", "GUESTS": "false"},
		check: func(t *testing.T, c *Config) {
			if c.Server.BodyLimit != 2048 || c.Calls.RingTimeout != 30*time.Second || c.Calls.AllowsGuests() {
				t.Errorf("got %+v %+v", c.Server, c.Calls)
			}
		},
	},
	{
		name: "env missing, never in structure",
		yaml: doc(`
providers:
  jitsi:
    app_id: callgate
    app_secret: ${JITSI_SECRET}
    webhook_secret: ${A}${B:-}${C}
${KEY}: x
`),
		env: map[string]string{"A": secret},
		want: []string{
			"test.yaml:4: providers.jitsi.app_secret: environment variable JITSI_SECRET is not set",
			"test.yaml:5: providers.jitsi.webhook_secret: environment variable C is not set",
			"test.yaml:6: ${KEY}: unknown field (known fields: admin, api, calls, chats, default_provider, delivery, log, providers, retention, rooms, server, store, templates, ws)",
		},
	},
	{
		name: "env values are never shown",
		yaml: doc(`
server:
  addr: ${ADDR}
  public_url: ftp://${HOST}/x
calls:
  ring_timeout: ${RING}
  token_ttl: ${TTL}
log:
  level: ${LEVEL}
store:
  kind: ${STORE}
api:
  enabled: ${ENABLED}
  keys:
    - {name: a, key: "${KEY}"}
    - {name: b, key: "${KEY}"}
`),
		env: map[string]string{"ADDR": secret, "HOST": secret, "RING": secret, "TTL": "1s", "LEVEL": secret, "STORE": secret, "ENABLED": secret, "KEY": secret},
		want: []string{
			"test.yaml:2: server.addr: the value of ${ADDR} is not a listen address host:port, such as :8080",
			"test.yaml:3: server.public_url: the value built from ${HOST} is not an absolute http:// or https:// URL",
			"test.yaml:5: calls.ring_timeout: the value of ${RING} is not a duration such as 120s",
			"test.yaml:6: calls.token_ttl: must be between 1m and 24h",
			"test.yaml:8: log.level: the value of ${LEVEL} is not a log level (use debug, info, warn or error)",
			"test.yaml:10: store.kind: the value of ${STORE} is not a store kind (use sqlite or postgres)",
			"test.yaml:12: api.enabled: the value of ${ENABLED} is not true or false",
			"test.yaml:15: api.keys[1].key: the same key as api.keys[0] (keys must be unique)",
		},
	},
	{
		name: "env reference syntax",
		yaml: doc(`
log:
  level: "${LEVEL"
  format: ${1X}
`),
		want: []string{
			"test.yaml:2: log.level: unterminated ${ (write $$ for a literal $)",
			`test.yaml:3: log.format: "1X" is not a valid environment variable name in ${...} (write $$ for a literal $)`,
		},
	},

	// Validation: server.
	{
		name: "server addr",
		yaml: "server: {addr: \"8080\"}\n",
		want: []string{`test.yaml:1: server.addr: "8080" is not a listen address host:port, such as :8080`},
	},
	{
		name: "server addr port range and empty",
		yaml: "server:\n  addr: \":99999\"\n",
		want: []string{`test.yaml:2: server.addr: ":99999" is not a listen address host:port, such as :8080`},
	},
	{
		name: "server addr required",
		yaml: "server:\n  addr: ''\n",
		want: []string{`test.yaml:2: server.addr: required (host:port, such as :8080)`},
	},
	{
		name: "server public_url scheme",
		yaml: "server:\n  public_url: ftp://example.com\n",
		want: []string{`test.yaml:2: server.public_url: "ftp://example.com" is not an absolute http:// or https:// URL`},
	},
	{
		name: "server public_url relative",
		yaml: "server:\n  public_url: example.com/calls\n",
		want: []string{`test.yaml:2: server.public_url: "example.com/calls" is not an absolute http:// or https:// URL`},
	},
	{
		name: "server public_url query",
		yaml: "server:\n  public_url: https://example.com/?a=b\n",
		want: []string{`test.yaml:2: server.public_url: must not have a query (?) or fragment (#)`},
	},
	{
		name: "server public_url fragment",
		yaml: "server:\n  public_url: https://example.com#top\n",
		want: []string{`test.yaml:2: server.public_url: must not have a query (?) or fragment (#)`},
	},
	{
		name: "server public_url credentials are not shown",
		yaml: "server:\n  public_url: https://admin:hunter2@example.com\n",
		want: []string{`test.yaml:2: server.public_url: must not contain a user name or password`},
	},
	{
		name: "server body_limit too small",
		yaml: "server:\n  body_limit: 1023\n",
		want: []string{`test.yaml:2: server.body_limit: must be between 1024 (1 KiB) and 67108864 (64 MiB) bytes`},
	},
	{
		name: "server body_limit too large",
		yaml: "server:\n  body_limit: 67108865\n",
		want: []string{`test.yaml:2: server.body_limit: must be between 1024 (1 KiB) and 67108864 (64 MiB) bytes`},
	},
	{
		name: "server shutdown_timeout and link_secret",
		yaml: "server:\n  shutdown_timeout: -1s\n  link_secret: short\n",
		want: []string{
			`test.yaml:2: server.shutdown_timeout: must not be negative`,
			`test.yaml:3: server.link_secret: must be at least 32 bytes`,
		},
	},

	// Validation: store.
	{
		name: "store kind",
		yaml: "store:\n  kind: mysql\n",
		want: []string{`test.yaml:2: store.kind: "mysql" is not a store kind (use sqlite or postgres)`},
	},
	{
		name: "store postgres needs dsn",
		yaml: "store:\n  kind: postgres\n",
		want: []string{`test.yaml:2: store.dsn: required when kind is postgres`},
	},
	{
		name: "store postgres dsn form, path",
		yaml: "store:\n  kind: postgres\n  path: x.db\n  dsn: mysql://root:hunter2@db/x\n",
		want: []string{
			`test.yaml:3: store.path: only used when kind is sqlite`,
			`test.yaml:4: store.dsn: must be a postgres:// or postgresql:// URL, or key=value settings`,
		},
	},
	{
		name: "store sqlite forbids dsn",
		yaml: "store:\n  dsn: postgres://u:hunter2@db/x\n",
		want: []string{`test.yaml:2: store.dsn: only used when kind is postgres`},
	},

	// Validation: api.
	{
		name: "api keys",
		yaml: doc(`
api:
  keys:
    - name: a
      key: 0123456789abcdef
    - key: 0123456789abcdeg
    - name: c
    - name: a
      key: hunter2
    - name: e
      key: 0123456789abcdef
    - name: f
      key: "0123456789 abcdef"
`),
		want: []string{
			"test.yaml:5: api.keys[1].name: required",
			"test.yaml:6: api.keys[2].key: required",
			`test.yaml:7: api.keys[3].name: "a" is already the name of api.keys[0]`,
			"test.yaml:8: api.keys[3].key: must be at least 16 characters",
			"test.yaml:10: api.keys[4].key: the same key as api.keys[0] (keys must be unique)",
			"test.yaml:12: api.keys[5].key: must not contain spaces or control characters",
		},
	},
	{
		name: "api user token secrets",
		yaml: "api:\n  user_token_secret: hunter2\n  previous_user_token_secret: hunter3\n",
		want: []string{
			"test.yaml:2: api.user_token_secret: must be at least 32 bytes",
			"test.yaml:3: api.previous_user_token_secret: must be at least 32 bytes",
		},
	},
	{
		name: "link secret rotation",
		yaml: "server:\n  previous_link_secret: 0123456789abcdef0123456789abcdef\n",
		want: []string{"test.yaml:2: server.previous_link_secret: set only together with link_secret, during a rotation"},
	},
	{
		name: "api previous secret needs the current one",
		yaml: "api:\n  previous_user_token_secret: 0123456789abcdef0123456789abcdef\n",
		want: []string{"test.yaml:2: api.previous_user_token_secret: set only together with user_token_secret, during a rotation"},
	},

	// Validation: providers.
	{
		name: "provider names",
		yaml: doc(`
providers:
  Jitsi: {kind: jitsi}
  meet.example: {kind: jitsi}
default_provider: Jitsi
`),
		want: []string{
			"test.yaml:2: providers.Jitsi: a provider name must use only a-z, 0-9, _ and -",
			"test.yaml:3: providers.meet.example: a provider name must use only a-z, 0-9, _ and -",
		},
	},
	{
		name: "odd names are quoted in field paths",
		yaml: "providers:\n  \"a b\": {kind: jitsi}\n\"x\\ny\": 1\n",
		want: []string{
			`test.yaml:2: providers."a b": a provider name must use only a-z, 0-9, _ and -`,
			`test.yaml:3: "x\ny": unknown field (known fields: admin, api, calls, chats, default_provider, delivery, log, providers, retention, rooms, server, store, templates, ws)`,
		},
	},
	{
		name: "provider api_url",
		yaml: doc(`
providers:
  a: {kind: jitsi, api_url: "meet.example.com"}
  b: {kind: jitsi, api_url: "https://meet.example.com?x=1"}
  c: {kind: jitsi, api_url: "https://u:hunter2@meet.example.com"}
default_provider: a
`),
		want: []string{
			`test.yaml:2: providers.a.api_url: "meet.example.com" is not an absolute http:// or https:// URL`,
			`test.yaml:3: providers.b.api_url: must not have a query (?) or fragment (#)`,
			`test.yaml:4: providers.c.api_url: must not contain a user name or password`,
		},
	},
	{
		name: "jitsi token auth",
		yaml: doc(`
providers:
  a:
    kind: jitsi
    app_id: callgate
  b:
    kind: jitsi
    app_secret: 0123456789abcdef
  c:
    kind: jitsi
    app_id: callgate
    app_secret: hunter2
  d:
    kind: jitsi
    previous_webhook_secret: hunter2
default_provider: a
`),
		want: []string{
			"test.yaml:4: providers.a.app_secret: required when app_id is set",
			"test.yaml:7: providers.b.app_id: required when app_secret is set",
			"test.yaml:11: providers.c.app_secret: must be at least 16 characters",
			"test.yaml:14: providers.d.previous_webhook_secret: set only together with webhook_secret, during a rotation",
		},
	},
	{
		name: "providers must not be empty",
		yaml: "providers: {}\n",
		want: []string{"test.yaml:1: providers: at least one provider is required"},
	},

	// Validation: calls and log.
	{
		name: "calls limits",
		yaml: doc(`
calls:
  ring_timeout: 0s
  max_duration: -1m
  token_ttl: 30s
`),
		want: []string{
			"test.yaml:2: calls.ring_timeout: must be greater than 0",
			"test.yaml:3: calls.max_duration: must not be negative (0 means no limit)",
			"test.yaml:4: calls.token_ttl: must be between 1m and 24h",
		},
	},
	{
		name: "calls token_ttl upper bound",
		yaml: "calls:\n  token_ttl: 25h\n",
		want: []string{"test.yaml:2: calls.token_ttl: must be between 1m and 24h"},
	},
	{
		name: "log level and format",
		yaml: "log:\n  level: verbose\n  format: xml\n",
		want: []string{
			`test.yaml:2: log.level: "verbose" is not a log level (use debug, info, warn or error)`,
			`test.yaml:3: log.format: "xml" is not a log format (use text or json)`,
		},
	},

	// Everything at once, in order of line although found out of order.
	{
		name: "multiple problems in order of line",
		yaml: doc(`
log:
  level: loud
calls:
  ring_timeout: soon
providers:
  jitsi:
    kind: jitsi
    api_url: ftp://x
    app_secrt: y
server:
  addr: nowhere
  body_limit: 1
store:
  kind: postgres
`),
		want: []string{
			`test.yaml:2: log.level: "loud" is not a log level (use debug, info, warn or error)`,
			`test.yaml:4: calls.ring_timeout: "soon" is not a duration such as 120s`,
			`test.yaml:8: providers.jitsi.api_url: "ftp://x" is not an absolute http:// or https:// URL`,
			`test.yaml:9: providers.jitsi.app_secrt: unknown field (did you mean app_secret?)`,
			`test.yaml:11: server.addr: "nowhere" is not a listen address host:port, such as :8080`,
			`test.yaml:12: server.body_limit: must be between 1024 (1 KiB) and 67108864 (64 MiB) bytes`,
			`test.yaml:14: store.dsn: required when kind is postgres`,
		},
	},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(tc.yaml), envOf(tc.env), testKinds)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if c.File != "test.yaml" {
					t.Errorf("File = %q", c.File)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want:\n%s", strings.Join(tc.want, "\n"))
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *Error", err)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if len(ce.Problems) != len(tc.want) {
				t.Errorf("%d problems, want %d", len(ce.Problems), len(tc.want))
			}
			for _, s := range []string{secret, "hunter2", "hunter3"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret %q:\n%v", s, err)
				}
			}
		})
	}
}

// Problems are found section by section (decoding, then validation in its
// own order) but reported by line.
func TestProblemsSortedByLine(t *testing.T) {
	_, err := Parse("t.yaml", []byte("log:\n  level: loud\nserver:\n  addr: nowhere\ncalls:\n  token_ttl: 1s\n"), nil, testKinds)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	var lines []int
	for _, p := range ce.Problems {
		lines = append(lines, p.Line)
	}
	if !reflect.DeepEqual(lines, []int{2, 4, 6}) {
		t.Errorf("lines %v", lines)
	}
}

// The outbox and room worker knobs refuse values that would break them.
func TestWorkerPolicies(t *testing.T) {
	_, err := Parse("test.yaml", []byte(doc(`
delivery:
  rate: 0
  max_attempts: 0
  timeout: 10s
  lease: 5s
rooms:
  min_backoff: 2s
  max_backoff: 1s
  wait: 1m
`)), noEnv, testKinds)
	want := []string{
		"test.yaml:2: delivery.rate: must be more than 0 and at most 1000 (card edits a second per destination)",
		"test.yaml:3: delivery.max_attempts: must be between 1 and 100",
		"test.yaml:5: delivery.lease: must be longer than delivery.timeout, or a slow delivery could be taken over while it still runs",
		"test.yaml:8: rooms.max_backoff: must not be shorter than rooms.min_backoff",
		"test.yaml:9: rooms.wait: must be at most 25s: a request waiting longer than that is likely to time out anyway",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestAdminValidation(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
	}{
		{"admin: {token: 0123456789abcdef}\n", ""},
		{"admin: {token: short}\n", "admin.token: must be at least 16 characters"},
		{"admin: {sso_header: X-Forwarded-User}\n", "needs server.trusted_proxies"},
		{"server: {trusted_proxies: [10.0.0.0/8]}\nadmin: {sso_header: X-Forwarded-User}\n", ""},
		{"server: {trusted_proxies: [10.0.0.0/8]}\nadmin: {sso_header: \"X User\"}\n", "is not a header name"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, func(string) (string, bool) { return "", false }, testKinds)
		if tc.want == "" && err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: got %v, want a problem with %s", tc.yaml, err, tc.want)
		}
	}
}

func TestRetentionValidation(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
	}{
		{"retention: {events_after: 0s, marks_after: 0s}\n", ""},
		{"retention: {marks_after: 10m}\n", "retention.marks_after"},
		{"retention: {events_after: -1h}\n", "retention.events_after"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, func(string) (string, bool) { return "", false }, testKinds)
		if tc.want == "" && err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: got %v, want a problem with %s", tc.yaml, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := defaults()
	yes := true
	want := &Config{
		Server: Server{
			Addr: ":8080", BodyLimit: 1 << 20,
			ShutdownTimeout: 15 * time.Second, DataDir: "./callgate-data",
			TrustedProxies: []string{}, MaxHeaderBytes: 32 << 10,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
			RateLimits: RateLimits{
				AuthFailures: RateLimit{Enabled: &yes, Rate: 0.2, Burst: 20},
				Join:         RateLimit{Enabled: &yes, Rate: 0.5, Burst: 30},
				MaxClients:   100000,
			},
		},
		Store: Store{Kind: "sqlite"},
		API:   API{Enabled: &yes, Keys: []APIKey{}},
		Providers: map[string]Block{"jitsi": {
			Name: "jitsi", Kind: "jitsi", Line: lineOf(t, DefaultsYAML(), "  jitsi:"),
			Settings: &jitsi.Settings{APIURL: "https://meet.jit.si", Audience: "jitsi"},
		}},
		DefaultProvider: "jitsi",
		Calls:           Calls{RingTimeout: 120 * time.Second, TokenTTL: time.Hour, GuestJoin: &yes, EndWhenEmpty: 5 * time.Minute},
		Rooms: Rooms{Workers: 2, MinBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxAttempts: 6,
			AttemptTimeout: 15 * time.Second, Deadline: 2 * time.Minute, Wait: 3 * time.Second, Poll: time.Second,
			ReconcileInterval: time.Minute, ReconcileGrace: 2 * time.Minute, ReconcileBatch: 20},
		Delivery: Delivery{Workers: 4, MinBackoff: time.Second, MaxBackoff: 5 * time.Minute, MaxAttempts: 10,
			Rate: 1, Burst: 3, Timeout: 10 * time.Second, Lease: 30 * time.Second, Poll: time.Second},
		Retention: Retention{EventsAfter: 720 * time.Hour, MarksAfter: 168 * time.Hour},
		WS: WS{Enabled: &yes, AllowedOrigins: []string{}, Heartbeat: 25 * time.Second, MaxMessageBytes: 65536,
			SendQueue: 64, RingFresh: 5 * time.Second, Webhooks: []WSWebhook{},
			Deliveries: WSDeliveries{MaxAttempts: 10, MinBackoff: 2 * time.Second, MaxBackoff: 10 * time.Minute}},
		Chats: map[string]Block{},
		Log:   Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults() =\n%+v\nwant\n%+v", c, want)
	}
	// Each call is fresh.
	c.Providers["x"] = Block{}
	if len(defaults().Providers) != 1 {
		t.Error("Default shares state between calls")
	}
	// The embedded file is itself a valid configuration file.
	d, err := Parse("defaults.yaml", DefaultsYAML(), nil, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	d.File = ""
	if !reflect.DeepEqual(d, defaults()) {
		t.Errorf("defaults.yaml as a file = %+v", d)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "callgate.yaml")
	if err := os.WriteFile(path, []byte("server:\n  addr: \":9000\"\nlog:\n  level: ${LVL}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, envOf(map[string]string{"LVL": "warn"}), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path || c.Server.Addr != ":9000" || c.Log.Level != "warn" {
		t.Errorf("got %+v", c)
	}

	_, err = Load(path, envOf(nil), testKinds)
	if want := path + ":4: log.level: environment variable LVL is not set"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	var p Problem
	if !errors.As(err, &p) || p.File != path || p.Line != 4 || p.Field != "log.level" {
		t.Errorf("errors.As Problem = %+v", p)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil, testKinds); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestProblemFormat(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"a.yaml", 3, "calls.ring_timeout", "bad"}, "a.yaml:3: calls.ring_timeout: bad"},
		{Problem{"a.yaml", 0, "", "invalid YAML: x"}, "a.yaml: invalid YAML: x"},
		{Problem{"a.yaml", 1, "", "whole file"}, "a.yaml:1: whole file"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	e := &Error{Problems: []Problem{{"a", 1, "x", "m"}, {"a", 2, "y", "n"}}}
	if got := e.Error(); got != "a:1: x: m\na:2: y: n" {
		t.Errorf("got %q", got)
	}
}

func TestSummaryAndNames(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(doc(`
store:
  kind: postgres
  dsn: postgres://callgate:hunter2@db/callgate
providers:
  zeta: {kind: jitsi}
  alpha: {kind: jitsi}
default_provider: zeta
api:
  keys: [{name: a, key: hunter2hunter2hunter2}]
`)), nil, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ProviderNames(); !reflect.DeepEqual(got, []string{"alpha", "zeta"}) {
		t.Errorf("ProviderNames = %v", got)
	}
	want := "config=gw.yaml addr=:8080 public_url=derived store=postgres providers=alpha(jitsi),zeta(jitsi) default_provider=zeta api=on keys=1 chats=none log=info/text"
	if got := c.Summary(); got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	if got := defaults().Summary(); !strings.HasPrefix(got, "config=defaults addr=:8080 ") {
		t.Errorf("default Summary = %s", got)
	}
}

func TestEnvFromProcess(t *testing.T) {
	t.Setenv("CALLGATE_TEST_LEVEL", "error")
	c, err := Parse("t.yaml", []byte("templates:\n  dir: $${CALLGATE_TEST_LEVEL}x\n"), nil, testKinds)
	if err != nil || c.Templates.Dir != "${CALLGATE_TEST_LEVEL}x" {
		t.Fatalf("escape: %v %+v", err, c)
	}
	c, err = Parse("t.yaml", []byte("log:\n  level: ${CALLGATE_TEST_LEVEL}\n"), nil, testKinds)
	if err != nil || c.Log.Level != "error" {
		t.Fatalf("nil getenv reads the process environment: %v", err)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {kind: jitsi}\n")
	for i := 1; i < 30; i++ {
		b.WriteString("x-" + string(rune('0'+i%10)) + string(rune('a'+i)) + ": &a" + itoa(i) + "\n")
		b.WriteString("  <<: [*a" + itoa(i-1) + ", *a" + itoa(i-1) + ", *a" + itoa(i-1) + "]\n")
	}
	b.WriteString("providers:\n  p:\n    <<: *a29\n")
	done := make(chan error, 1)
	go func() {
		_, err := Parse("bomb.yaml", []byte(b.String()), nil, testKinds)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "too many aliases and merges") {
			t.Errorf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alias bomb not contained")
	}
}

func TestWideAliases(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-a: &a {")
	for i := range 2000 {
		b.WriteString("x-" + itoa(i) + ": 1, ")
	}
	b.WriteString("name: n}\napi:\n  keys: [")
	for range 1000 {
		b.WriteString("*a, ")
	}
	b.WriteString("]\n")
	start := time.Now()
	_, err := Parse("wide.yaml", []byte(b.String()), nil, testKinds)
	if err == nil || !strings.Contains(err.Error(), "too large once its aliases are expanded") {
		t.Errorf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// lineOf is the 1-based line of data that is exactly line.
func lineOf(t *testing.T, data []byte, line string) int {
	t.Helper()
	for i, l := range strings.Split(string(data), "\n") {
		if l == line {
			return i + 1
		}
	}
	t.Fatalf("no line %q", line)
	return 0
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestExpand(t *testing.T) {
	get := envOf(map[string]string{"A": "1", "E": ""})
	for _, tc := range []struct {
		in, out string
		names   []string
		probs   int
	}{
		{"plain", "plain", nil, 0},
		{"$", "$", nil, 0},
		{"a$b", "a$b", nil, 0},
		{"$$", "$", nil, 0},
		{"$${A}", "${A}", nil, 0},
		{"${A}${A}", "11", []string{"A"}, 0},
		{"${E}", "", []string{"E"}, 0},
		{"${E:-d}", "d", []string{"E"}, 0},
		{"${U:-}", "", []string{"U"}, 0},
		{"${U:-a:-b}", "a:-b", []string{"U"}, 0},
		{"${U}", "", []string{"U"}, 1},
		{"${", "", nil, 1},
		{"${}", "", nil, 1},
	} {
		out, names, probs := expand(tc.in, get, true)
		if out != tc.out && tc.probs == 0 || !reflect.DeepEqual(names, tc.names) || len(probs) != tc.probs {
			t.Errorf("expand(%q) = %q %v %v", tc.in, out, names, probs)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.yaml))
	}
	f.Add(DefaultsYAML())
	f.Fuzz(func(t *testing.T, data []byte) {
		getenv := func(string) (string, bool) { return secret, true }
		c, err := Parse("fuzz.yaml", data, getenv, testKinds)
		if err != nil {
			if c != nil {
				t.Fatal("config with error")
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a *Error with problems", err)
			}
			if !strings.Contains(string(data), secret[:8]) && strings.Contains(err.Error(), secret[:8]) {
				t.Fatalf("error shows an environment value:\n%v", err)
			}
			return
		}
		if _, ok := c.Providers[c.DefaultProvider]; !ok {
			t.Fatalf("valid config without providers: %+v", c)
		}
		_ = c.Summary()
	})
}

func TestWebSocketSettings(t *testing.T) {
	c, err := Parse("test.yaml", []byte(doc(`
ws:
  allowed_origins: ["app.example.com", "*.example.org"]
  heartbeat: 10s
  push: {url: "https://push.example.com/voip", secret: "0123456789abcdef"}
  webhooks:
    - {url: "https://hooks.example.com/calls", secret: "fedcba9876543210"}
`)), noEnv, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if c.WS.Heartbeat != 10*time.Second || len(c.WS.AllowedOrigins) != 2 || c.WS.Push.URL == "" || len(c.WS.Webhooks) != 1 || !c.WS.IsEnabled() || c.WS.SendQueue != 64 {
		t.Fatalf("ws = %+v", c.WS)
	}
	_, err = Parse("test.yaml", []byte(doc(`
ws:
  allowed_origins: ["https://app.example.com/"]
  heartbeat: 0s
  max_message_bytes: 10
  send_queue: 1
  push: {url: "ftp://push", secret: "short"}
  webhooks:
    - {url: "https://hooks.example.com/calls", secret: ""}
  deliveries: {max_attempts: 0, min_backoff: 1m, max_backoff: 1s}
`)), noEnv, testKinds)
	want := []string{
		"test.yaml:2: ws.allowed_origins[0]: must be a host pattern such as app.example.com, *.example.com or *",
		"test.yaml:3: ws.heartbeat: must be between 1s and 5m",
		"test.yaml:4: ws.max_message_bytes: must be between 1024 and 16777216",
		"test.yaml:5: ws.send_queue: must be between 8 and 65536",
		`test.yaml:6: ws.push.url: "ftp://push" is not an absolute http:// or https:// URL`,
		"test.yaml:6: ws.push.secret: must be at least 16 characters when ws.push.url is set",
		"test.yaml:8: ws.webhooks[0].secret: must be at least 16 characters",
		"test.yaml:9: ws.deliveries.max_backoff: must not be shorter than ws.deliveries.min_backoff",
		"test.yaml:9: ws.deliveries.max_attempts: must be between 1 and 100",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
