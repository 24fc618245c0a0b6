package templates

import (
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

func TestCardWords(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ended := start.Add(14 * time.Minute)
	people := func(n int) []calls.Participant {
		var out []calls.Participant
		for i := range n {
			out = append(out, calls.Participant{Identity: "u" + string(rune('a'+i)), Name: strings.ToUpper(string(rune('a' + i)))})
		}
		return out
	}
	marks := map[string]calls.RosterMark{"ua": {}, "ub": {}, "uc": {}, "ud": {}, "ue": {}}
	for _, tc := range []struct {
		name string
		call calls.Call
		lang string
		want func(Card) string // returns "" when fine
	}{
		{"live, two people", calls.Call{Type: calls.TypeVideo, State: calls.StateActive, CreatedBy: "ada", CreatedAt: start, Participants: people(2)}, "en", func(c Card) string {
			if c.Title != "Video call" || c.PeopleText != "A and B are in the call" || c.Subtitle != "Started by Ada Lovelace" || len(c.Actions) != 2 || c.Actions[0].URL != "https://gw/join/x" {
				return "wrong"
			}
			return ""
		}},
		{"many people are counted", calls.Call{State: calls.StateActive, CreatedAt: start, Participants: people(8)}, "en", func(c Card) string {
			if c.PeopleText != "A, B, C, D, E and 3 more are in the call" {
				return c.PeopleText
			}
			return ""
		}},
		{"ringing in French", calls.Call{Type: calls.TypeAudio, State: calls.StateRinging, CreatedBy: "ada", CreatedAt: start}, "fr", func(c Card) string {
			if c.Subtitle != "Appel entrant de Ada Lovelace" || c.Title != "Appel audio" || c.Actions[0].Label != "Accepter" || c.Actions[1].Label != "Refuser" {
				return c.Subtitle + "|" + c.Actions[0].Label
			}
			return ""
		}},
		{"final card", calls.Call{State: calls.StateEnded, CreatedAt: start, EndedAt: &ended, Seqs: marks}, "en", func(c Card) string {
			if c.Summary != "Call ended · 14 min · 5 people" || c.Live || len(c.Actions) != 0 {
				return c.Summary
			}
			return ""
		}},
		{"final card in German", calls.Call{State: calls.StateEnded, CreatedAt: start, EndedAt: &ended, Seqs: marks}, "de", func(c Card) string {
			if c.Summary != "Anruf beendet · 14 Min. · 5 Personen" {
				return c.Summary
			}
			return ""
		}},
		{"unknown language falls back to English", calls.Call{State: calls.StateMissed, CreatedAt: start, EndedAt: &start}, "xx", func(c Card) string {
			if c.Lang != "en" || c.Summary != "Missed" {
				return c.Lang + " " + c.Summary
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Card(CardInput{Call: tc.call, Lang: tc.lang, JoinURL: "https://gw/join/x", Now: start.Add(3 * time.Minute),
				Names: map[string]string{"ada": "Ada Lovelace"}})
			if msg := tc.want(c); msg != "" {
				t.Fatalf("%s: %+v", msg, c)
			}
		})
	}
}

// Every language has every key English has.
func TestEveryLanguageIsComplete(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"fr", "de", "es"} {
		for key := range s.strings[DefaultLang] {
			if _, ok := s.strings[lang][key]; !ok {
				t.Errorf("%s lacks %s", lang, key)
			}
		}
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"@everyone [x](https://evil) **b**": "@\u2060everyone \\[x\\]\\(https://evil\\) \\*\\*b\\*\\*",
		"line\nbreak\u202eevil":             "line breakevil",
		"<script>":                          "\\<script\\>",
	} {
		if got := EscapeMarkdown(in); got != want {
			t.Errorf("EscapeMarkdown(%q) = %q, want %q", in, got, want)
		}
	}
	if got := EscapeMarkdown(":smile:", ':'); got != "\\:smile\\:" {
		t.Errorf("extra runes: %q", got)
	}
	for raw, ok := range map[string]bool{"https://cdn.example/r.mp4": true, "javascript:alert(1)": false, "/relative": false, "https://x/\"onclick": false} {
		if SafeURL(raw) != ok {
			t.Errorf("SafeURL(%q) != %v", raw, ok)
		}
	}
}
