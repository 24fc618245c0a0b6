package config

import (
	"fmt"
	"slices"
	"strings"
)

// expand interpolates environment variables into one scalar value:
// ${NAME} is the variable NAME (a problem when unset), ${NAME:-fallback} is
// NAME or fallback when NAME is unset or empty, and $$ is a literal $. Any
// other $ is kept as it is. Substituted text is not expanded again.
//
// It returns the expanded value, the names of the variables it referred to
// (in order, without repeats), and messages for what is wrong. The messages
// never contain the value; they quote a malformed name in ${...} only when
// quote is true (not for a secret, where the text may be the secret).
func expand(s string, getenv func(string) (string, bool), quote bool) (string, []string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var (
		b     strings.Builder
		names []string
		probs []string
	)
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
		default:
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			probs = append(probs, "unterminated ${ (write $$ for a literal $)")
			return b.String(), names, probs
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		name, fallback, hasFallback := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			if quote {
				probs = append(probs, fmt.Sprintf("%q is not a valid environment variable name in ${...} (write $$ for a literal $)", name))
			} else {
				probs = append(probs, "not a valid environment variable name in ${...} (write $$ for a literal $)")
			}
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		val, ok := getenv(name)
		switch {
		case hasFallback && (!ok || val == ""):
			b.WriteString(fallback)
		case ok:
			b.WriteString(val)
		default:
			probs = append(probs, fmt.Sprintf("environment variable %s is not set", name))
		}
	}
	return b.String(), names, probs
}

// validEnvName reports whether name is [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// envSource describes a value that came from the environment without
// showing it: "the value of ${NAME}" or "the value built from ${A}, ${B}".
func envSource(raw string, names []string) string {
	refs := make([]string, len(names))
	for i, n := range names {
		refs[i] = "${" + n + "}"
	}
	if len(names) == 1 && strings.HasPrefix(raw, "${") && strings.HasSuffix(raw, "}") && strings.Count(raw, "${") == 1 {
		return "the value of " + refs[0]
	}
	return "the value built from " + strings.Join(refs, ", ")
}
