package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// defaultsYAML is the embedded defaults, itself a valid, documented example.
//
//go:embed defaults.yaml
var defaultsYAML []byte

// DefaultsYAML returns the embedded defaults file, e.g. for
// `callgate config defaults`.
func DefaultsYAML() []byte { return bytes.Clone(defaultsYAML) }

// defaultsFile names the embedded defaults in messages.
const defaultsFile = "defaults.yaml"

// Default returns the configuration the gateway runs on with no YAML at all:
// the embedded defaults.yaml, decoded and completed by the same code as any
// file. Each call returns a fresh value. It fails only when kinds lacks a
// kind the defaults use (jitsi).
func Default(kinds Kinds) (*Config, error) {
	c, err := Parse(defaultsFile, defaultsYAML, noEnv, kinds)
	if err != nil {
		return nil, err
	}
	c.File = ""
	return c, nil
}

// Load reads the YAML file at path and returns it applied on top of the
// defaults (see Parse). getenv looks up ${NAME} references; nil means
// os.LookupEnv. A file that cannot be read gives that *fs.PathError; a
// file with mistakes gives a *Error listing them all.
func Load(path string, getenv func(string) (string, bool), kinds Kinds) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, getenv, kinds)
}

// Parse decodes data, named file in messages, on top of the defaults.
//
// Every setting the file writes replaces the default; every one it leaves
// out (or writes as null) keeps it. Maps and lists are replaced whole: a
// `providers` map replaces the default providers, and then, when the file
// sets no default_provider, a single provider is the default and several
// require one. Scalar values may use ${NAME}, ${NAME:-fallback} and $$.
//
// Each `providers.<name>` and `chats.<name>` block selects a kind from
// kinds with `kind:` (or by its name, when that is a kind) and the rest of
// it is decoded into that kind's settings struct (Kind.NewSettings), which
// then validates itself (Validator). The result is a Block.
//
// A trailing slash is trimmed from server.public_url; kinds derive their
// own defaults when they are built.
//
// On any mistake Parse returns nil and a *Error holding every problem, in
// order of line. getenv nil means os.LookupEnv.
func Parse(file string, data []byte, getenv func(string) (string, bool), kinds Kinds) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if file == "" {
		file = "<config>"
	}
	root, probs := parseYAML(file, data)
	if len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	c, baseProbs := base(kinds)
	d := newDecoder(file, getenv, kinds)
	d.document(root, c)
	// The defaults' providers and chats need their kinds only when the
	// file keeps them.
	for _, p := range baseProbs {
		if _, replaced := d.pos[topField(p.Field)]; !replaced || (p.Field != "providers" && p.Field != "chats" &&
			!strings.HasPrefix(p.Field, "providers.") && !strings.HasPrefix(p.Field, "chats.")) {
			d.probs = append(d.probs, p)
		}
	}
	finish(c, d)
	(&validator{d: d}).validate(c)
	if len(d.probs) > 0 {
		sortProblems(d.probs)
		if d.dropped > 0 {
			d.probs = append(d.probs, Problem{File: file, Message: fmt.Sprintf("and %d more problems", d.dropped)})
		}
		return nil, &Error{Problems: d.probs}
	}
	c.File = file
	return c, nil
}

// topField is the first part of a field path.
func topField(field string) string {
	if i := strings.IndexAny(field, ".["); i >= 0 {
		return field[:i]
	}
	return field
}

func noEnv(string) (string, bool) { return "", false }

// base decodes the embedded defaults onto a zero Config, without deriving or
// validating anything: the layer a file is applied on top of. Its problems
// (a kind the defaults use missing from kinds) are returned, for Parse to
// report unless the file replaces what they concern.
func base(kinds Kinds) (*Config, []Problem) {
	root, probs := parseYAML(defaultsFile, defaultsYAML)
	d := newDecoder(defaultsFile, noEnv, kinds)
	c := &Config{}
	d.document(root, c)
	return c, append(probs, d.probs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses one YAML document, turning syntax errors into problems.
func parseYAML(file string, data []byte) (root *yaml.Node, probs []Problem) {
	defer func() {
		// yaml.v3 has panicked on malformed input before; a config file
		// must never take the gateway down that way.
		if r := recover(); r != nil {
			root, probs = nil, []Problem{{File: file, Message: fmt.Sprintf("invalid YAML: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []Problem{syntaxProblem(file, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, []Problem{{File: file, Line: next.Line, Message: "only one YAML document is allowed (remove the ---)"}}
	case !errors.Is(err, io.EOF):
		return nil, []Problem{syntaxProblem(file, err)}
	}
	return &doc, nil
}

func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Message: "invalid YAML: " + m[2]}
	}
	return Problem{File: file, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// finish fills in what depends on other settings, before validation.
func finish(c *Config, d *decoder) {
	// An empty public_url stays empty: the binary derives it from the
	// address it actually listens on, which --addr may change.
	c.Server.PublicURL = strings.TrimRight(c.Server.PublicURL, "/")

	_, fileProviders := d.pos["providers"]
	_, fileDefault := d.pos["default_provider"]
	if fileProviders && !fileDefault {
		c.DefaultProvider = ""
		if len(c.Providers) == 1 {
			for name := range c.Providers {
				c.DefaultProvider = name
			}
		}
	}
}
