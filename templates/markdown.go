package templates

import (
	"net/url"
	"strings"
)

// PlainLine makes a user-provided value safe for a card's plain text: one
// line, no control or bidirectional-override characters, and every '@'
// followed by a word joiner (U+2060), so no @mention, @here, @channel or
// @all comes of it on any platform.
func PlainLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < ' ' || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
		case r == '@':
			b.WriteString("@\u2060")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// EscapeMarkdown is PlainLine with every CommonMark-active character
// backslash-escaped, plus extra (a platform's own: ':' for Mattermost's
// emoji), so user text renders as written and never as a link, image or
// formatting.
func EscapeMarkdown(s string, extra ...rune) string {
	var b strings.Builder
	for _, r := range PlainLine(s) {
		if strings.ContainsRune("\\`*_~[]()<>#|!", r) || strings.ContainsRune(string(extra), r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SafeURL accepts absolute http(s) links only (a recording link from a
// provider, say): never javascript:, data: or a relative link.
func SafeURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(raw, " \n\r\t<>\"")
}

// MarkdownURL keeps a link's destination inside markdown's (…).
func MarkdownURL(raw string) string {
	return strings.NewReplacer("(", "%28", ")", "%29").Replace(raw)
}
