package webhooks

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRefusalLogSamplesEachKind checks one line per kind of refusal per
// interval, each kind on its own clock, and the count of left-out refusals
// carried by the next line of that kind.
func TestRefusalLogSamplesEachKind(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := newRefusalLog(slog.New(slog.NewTextHandler(&out, nil)), func() time.Time { return now })
	forged := refusalKey{"provider", "jaas", "unauthenticated"}
	malformed := refusalKey{"provider", "jaas", "malformed"}
	lines := func() []string { return strings.Split(strings.TrimSpace(out.String()), "\n") }

	steps := []struct {
		name    string
		advance time.Duration
		key     refusalKey
		times   int
		want    int    // lines in all after the step
		last    string // what the last line holds, when a line was written
	}{
		{"the first refusal is logged", 0, forged, 1, 1, "outcome=unauthenticated"},
		{"a flood within the interval is not", 10 * time.Millisecond, forged, 500, 1, ""},
		{"another kind has its own clock", 0, malformed, 3, 2, "outcome=malformed"},
		{"just before the interval, still quiet", refusalLogEvery - 20*time.Millisecond, forged, 1, 2, ""},
		{"after it, one line with the count left out", 10 * time.Millisecond, forged, 1, 3, "suppressed=501"},
		{"the count starts again", refusalLogEvery, forged, 1, 4, "outcome=unauthenticated"},
		{"and the other kind reports its own", 0, malformed, 1, 5, "suppressed=2"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		for range s.times {
			r.warn(context.Background(), s.key, "provider webhook refused", "provider", s.key.name, "outcome", s.key.outcome)
		}
		got := lines()
		if len(got) != s.want {
			t.Fatalf("%s: %d lines, want %d:\n%s", s.name, len(got), s.want, out.String())
		}
		if s.last != "" && !strings.Contains(got[len(got)-1], s.last) {
			t.Fatalf("%s: last line %q, want it to hold %q", s.name, got[len(got)-1], s.last)
		}
	}
	if strings.Contains(lines()[3], "suppressed") {
		t.Errorf("a line after a quiet interval reports left-out refusals: %s", lines()[3])
	}
}
