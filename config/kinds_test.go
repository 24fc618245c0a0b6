package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// toySettings is a kind's settings with every shape of field.
type toySettings struct {
	URL     string            `yaml:"url"`
	Token   string            `yaml:"token" secret:"true"`
	Pin     int               `yaml:"pin" secret:"true"`
	Retries int               `yaml:"retries"`
	Ratio   float64           `yaml:"ratio"`
	Timeout time.Duration     `yaml:"timeout"`
	Rooms   []string          `yaml:"rooms"`
	Labels  map[string]string `yaml:"labels"`
	Enabled *bool             `yaml:"enabled"`
	TLS     struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key" secret:"true"`
	} `yaml:"tls"`
}

func newToy() any {
	return &toySettings{Retries: 3, Ratio: 0.5, Timeout: 10 * time.Second, Rooms: []string{"lobby"}}
}

func (s *toySettings) Validate(report func(field, message string, near ...string)) {
	switch {
	case s.URL == "":
		report("url", "required")
	case !strings.HasPrefix(s.URL, "https://"):
		report("url", Value+" is not an https URL")
	}
	switch {
	case s.Token == "leaky-token-value":
		// A careless kind formats a secret into its message.
		report("token", "token "+s.Token+" is on the deny list")
	case len(s.Token) < 12:
		report("token", Value+" is shorter than 12 characters", "url")
	}
	if s.Retries > 5 {
		report("retries", Value+" is more than 5")
	}
	if s.Ratio > 1 {
		report("ratio", Value+" is more than 1")
	}
	for i, r := range s.Rooms {
		if r == "" {
			report(fmt.Sprintf("rooms[%d]", i), "must not be empty")
		}
	}
	if s.TLS.Cert != "" && s.TLS.Key == "" {
		report("tls.key", "required with tls.cert", "tls.cert")
	}
}

var toyKinds = Kinds{
	Providers: []Kind{jitsiKind(), {Name: "toy", NewSettings: newToy}},
	Chats:     []Kind{{Name: "toy", NewSettings: newToy}},
}

func jitsiKind() Kind { return testKinds.Providers[0] }

func TestToyKind(t *testing.T) {
	c, err := Parse("toy.yaml", []byte(doc(`
providers:
  t:
    kind: toy
    url: https://toy.example
    token: ${TOY_TOKEN}
    rooms: [a, b]
    labels: {team: blue}
    tls: {cert: c.pem, key: k.pem}
    pin: 1_234
    enabled: false
    ratio: ~
  toy:
    url: https://toy.example
    token: abcdefghijklmnop
  jitsi:
default_provider: t
chats:
  team:
    kind: toy
    url: https://chat.example
    token: abcdefghijklmnop
`)), envOf(map[string]string{"TOY_TOKEN": secret}), toyKinds)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	want := &toySettings{
		URL: "https://toy.example", Token: secret, Pin: 1234, Retries: 3, Ratio: 0.5,
		Timeout: 10 * time.Second, Rooms: []string{"a", "b"}, Labels: map[string]string{"team": "blue"}, Enabled: &no,
	}
	want.TLS.Cert, want.TLS.Key = "c.pem", "k.pem"
	if got := c.Providers["t"]; got.Name != "t" || got.Kind != "toy" || got.Line != 2 || !reflect.DeepEqual(got.Settings, want) {
		t.Errorf("providers.t = %+v\nsettings %+v\nwant %+v", got, got.Settings, want)
	}
	if got := c.Providers["toy"]; got.Kind != "toy" || got.Settings.(*toySettings).Retries != 3 {
		t.Errorf("kind from the name: %+v", got)
	}
	if got := c.Chats["team"]; got.Kind != "toy" || got.Line != 18 || got.Settings.(*toySettings).URL != "https://chat.example" {
		t.Errorf("chats.team = %+v", got)
	}
	if got := c.Summary(); !strings.Contains(got, "providers=jitsi(jitsi),t(toy),toy(toy) default_provider=t") || !strings.Contains(got, "chats=team(toy)") {
		t.Errorf("Summary = %s", got)
	}
	// Each block gets fresh defaults.
	if c.Providers["t"].Settings == c.Providers["toy"].Settings {
		t.Error("blocks share settings")
	}
}

func TestToyKindProblems(t *testing.T) {
	env := map[string]string{"PIN": "s3cr3t-env-pin", "URL": "ftp://s3cr3t-env-url", "TOKEN": "s3cr3t-env"}
	_, err := Parse("toy.yaml", []byte(doc(`
providers:
  t:
    kind: toy
    url: http://plain.example
    token: [s3cr3t-one, s3cr3t-two]
    pin: ${PIN}
    retries: 9
    rooms: ["", x]
    tls: {cert: c.pem}
    timeout: 5
    colour: red
    ratio: lots
  u:
    kind: toy
    url: ${URL}
    token: ${TOKEN}
    pin: s3cr3t-literal-pin
    tls: {cert: c.pem, key: {k: s3cr3t-nested}}
    retries: 99999999999999999999
  v:
    kind: toy
    token: leaky-token-value
    ratio: ${RATIO:-2}
  w:
    kind: toy
    url: https://w.example
    token: "s3cr3t-${not valid}"
    x-note: ignored
    enabled: maybe
default_provider: t
chats:
  Team:
    kind: toy
  other:
    kind: jitsi
`)), envOf(env), toyKinds)
	want := []string{
		`toy.yaml:4: providers.t.url: "http://plain.example" is not an https URL`,
		`toy.yaml:5: providers.t.token: expected a string, not a list`,
		`toy.yaml:6: providers.t.pin: the value of ${PIN} is not a whole number`,
		`toy.yaml:7: providers.t.retries: "9" is more than 5`,
		`toy.yaml:8: providers.t.rooms[0]: must not be empty`,
		`toy.yaml:9: providers.t.tls.key: required with tls.cert`,
		`toy.yaml:10: providers.t.timeout: "5" is not a duration such as 120s (add a unit: ms, s, m or h)`,
		`toy.yaml:11: providers.t.colour: unknown field (known fields: enabled, labels, pin, ratio, retries, rooms, timeout, tls, token, url)`,
		`toy.yaml:12: providers.t.ratio: "lots" is not a number`,
		`toy.yaml:15: providers.u.url: the value of ${URL} is not an https URL`,
		`toy.yaml:16: providers.u.token: the value of ${TOKEN} is shorter than 12 characters`,
		`toy.yaml:17: providers.u.pin: the value is not a whole number`,
		`toy.yaml:18: providers.u.tls.key: expected a string, not a mapping`,
		`toy.yaml:19: providers.u.retries: "99999999999999999999" is not a whole number (out of range)`,
		`toy.yaml:20: providers.v.url: required`,
		`toy.yaml:22: providers.v.token: token *** is on the deny list`,
		`toy.yaml:23: providers.v.ratio: the value of ${RATIO} is more than 1`,
		`toy.yaml:27: providers.w.token: not a valid environment variable name in ${...} (write $$ for a literal $)`,
		`toy.yaml:29: providers.w.enabled: "maybe" is not true or false`,
		`toy.yaml:32: chats.Team: a chat name must use only a-z, 0-9, _ and -`,
		`toy.yaml:32: chats.Team.url: required`,
		`toy.yaml:32: chats.Team.token: the value is shorter than 12 characters`,
		`toy.yaml:35: chats.other.kind: "jitsi" is not a supported chat platform kind (supported: toy)`,
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	for _, s := range []string{"s3cr3t", "leaky-token-value", "not valid"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows %q", s)
		}
	}
}

// A secret, given any shape, is never shown; neither is a secret from the
// environment anywhere in a kind's messages.
func TestSecretsNeverShown(t *testing.T) {
	for _, y := range []string{
		"token: [s3cr3t-a, s3cr3t-b]",
		"token: {s3cr3t-a: s3cr3t-b}",
		"pin: s3cr3t-a",
		"pin: [s3cr3t-a]",
		"pin: \"${S}\"",
		"token: \"${S}\"\n    url: ${S}",
		"tls: {key: [s3cr3t-a]}",
		"token: \"${s3cr3t-a}\"",
		"token: \"${S}x\"\n    retries: ${S}",
	} {
		data := "providers:\n  t:\n    kind: toy\n    " + y + "\n"
		_, err := Parse("s.yaml", []byte(data), envOf(map[string]string{"S": "s3cr3t-env"}), toyKinds)
		if err == nil {
			t.Errorf("%s: no error", y)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error shows a secret:\n%v", y, err)
		}
	}
}

func TestKindListMistakes(t *testing.T) {
	type wrongValidate struct{ A string }
	kinds := Kinds{Providers: []Kind{
		{Name: "noptr", NewSettings: func() any { return struct{}{} }},
		{Name: "nilfunc"},
		{Name: "oldsig", NewSettings: func() any { return &oldSig{} }},
	}}
	_, err := Parse("k.yaml", []byte(doc(`
providers:
  a: {kind: noptr}
  b: {kind: nilfunc}
  c: {kind: oldsig}
default_provider: a
`)), nil, kinds)
	want := []string{
		`k.yaml:2: providers.a.kind: internal error: provider kind "noptr": NewSettings must return a pointer to a struct`,
		`k.yaml:3: providers.b.kind: internal error: provider kind "nilfunc": NewSettings must return a pointer to a struct`,
		`k.yaml:4: providers.c.kind: internal error: *config.oldSig has a Validate method that does not match config.Validator`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

type oldSig struct{}

func (*oldSig) Validate(func(field, message string)) {}

// Without the kind the defaults use, the defaults fail, but a file that
// replaces the providers does not need it.
func TestKindsWithoutJitsi(t *testing.T) {
	toyOnly := Kinds{Providers: []Kind{{Name: "toy", NewSettings: newToy}}}
	if _, err := Default(toyOnly); err == nil || !strings.Contains(err.Error(), `defaults.yaml:`) ||
		!strings.Contains(err.Error(), `providers.jitsi.kind: "jitsi" is not a supported provider kind (supported: toy)`) {
		t.Errorf("Default = %v", err)
	}
	c, err := Parse("t.yaml", []byte("providers:\n  toy: {url: https://t.example, token: abcdefghijklmnop}\n"), nil, toyOnly)
	if err != nil || c.DefaultProvider != "toy" {
		t.Errorf("got %v, %v", c, err)
	}
	if _, err := Parse("t.yaml", []byte("log: {level: debug}\n"), nil, toyOnly); err == nil || !strings.Contains(err.Error(), "providers.jitsi.kind") {
		t.Errorf("kept defaults: %v", err)
	}
}
