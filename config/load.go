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
// file. Each call returns a fresh value.
func Default() *Config {
	c, err := Parse(defaultsFile, defaultsYAML, noEnv)
	if err != nil {
		panic("config: embedded defaults.yaml is invalid:\n" + err.Error())
	}
	c.File = ""
	return c
}

// Load reads the YAML file at path and returns it applied on top of the
// defaults (see Parse). getenv looks up ${NAME} references; nil means
// os.LookupEnv. A file that cannot be read gives that *fs.PathError; a
// file with mistakes gives a *Error listing them all.
func Load(path string, getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, getenv)
}

// Parse decodes data, named file in messages, on top of the defaults.
//
// Every setting the file writes replaces the default; every one it leaves
// out (or writes as null) keeps it. Maps and lists are replaced whole: a
// `providers` map replaces the default providers, and then, when the file
// sets no default_provider, a single provider is the default and several
// require one. Scalar values may use ${NAME}, ${NAME:-fallback} and $$.
//
// Derived defaults are filled in: server.public_url from the port of
// server.addr, and each provider kind's own (jitsi: api_url, audience,
// subject). Trailing slashes are trimmed from public_url and api_url.
//
// On any mistake Parse returns nil and a *Error holding every problem, in
// order of line. getenv nil means os.LookupEnv.
func Parse(file string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if file == "" {
		file = "<config>"
	}
	c := base()
	d := newDecoder(file, getenv)
	root, probs := parseYAML(file, data)
	if len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	d.document(root, c)
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

func noEnv(string) (string, bool) { return "", false }

// base decodes the embedded defaults onto a zero Config, without deriving or
// validating anything: the layer a file is applied on top of.
func base() *Config {
	root, probs := parseYAML(defaultsFile, defaultsYAML)
	d := newDecoder(defaultsFile, noEnv)
	c := &Config{}
	d.document(root, c)
	if probs = append(probs, d.probs...); len(probs) > 0 {
		panic("config: embedded defaults.yaml is invalid:\n" + (&Error{Problems: probs}).Error())
	}
	return c
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
	for name, p := range c.Providers {
		if d.skip[join("providers", name)] {
			continue
		}
		if k, ok := providerKinds[p.Kind]; ok && k.defaults != nil {
			k.defaults(&p)
		}
		p.APIURL = strings.TrimRight(p.APIURL, "/")
		c.Providers[name] = p
	}
}
