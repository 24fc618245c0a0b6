package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one mistake in a configuration file.
type Problem struct {
	// File is the file the mistake is in, as given to Load or Parse.
	File string
	// Line is the 1-based line of the mistake; 0 when unknown (some YAML
	// syntax errors carry no line).
	Line int
	// Field is the dotted path of the setting, such as
	// "providers.jitsi.api_url" or "api.keys[1].key"; empty when the
	// problem concerns the file as a whole.
	Field string
	// Message says what is wrong. It never contains a secret, nor any value
	// that came from the environment.
	Message string
}

// Error formats the problem as "FILE:LINE: field.path: what is wrong".
// The ":LINE" part is left out when Line is 0 and the "field.path: " part
// when Field is empty.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in a configuration, in order of file and
// line. Load and Parse return it as a *Error.
type Error struct {
	Problems []Problem
}

// Error prints one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each Problem to errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// sortProblems orders problems by file and line, keeping the order in which
// they were found within a line.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
}
