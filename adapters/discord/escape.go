package discord

import (
	"strings"
	"unicode"
)

// markdownChars are the characters Discord's markdown gives a meaning to:
// emphasis, code, spoilers, quotes, headings, lists, masked links, mentions
// and channel/emoji/timestamp tags (<…>), and the scheme colon that makes a
// URL a link.
const markdownChars = "\\*_~`|>#-[]()<:"

// Escape makes user-provided text show as typed in Discord: every markdown
// character gets a backslash, '@' gets a zero-width space after it (so
// "@everyone", "@here" and "<@id>" are never mentions, even where
// allowed_mentions would not apply), and control and bidirectional
// override characters become spaces or disappear.
func Escape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r), isBidiControl(r):
		case r == '@':
			b.WriteString("@\u200b")
		case strings.ContainsRune(markdownChars, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

// truncateEscaped bounds escaped text to n runes without leaving a lone
// backslash at the end (which would escape what follows).
func truncateEscaped(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	r = r[:n-1]
	for len(r) > 0 && r[len(r)-1] == '\\' {
		// An odd run of backslashes ends in an escape cut in half.
		k := 0
		for i := len(r) - 1; i >= 0 && r[i] == '\\'; i-- {
			k++
		}
		if k%2 == 0 {
			break
		}
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
