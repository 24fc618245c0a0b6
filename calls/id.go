package calls

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// MaxIDLength bounds call ids so they fit in provider room names, URLs and chat
// message metadata without truncation.
const MaxIDLength = 64

// NormalizeID turns a caller-supplied call id into its canonical form. Ids are
// case-insensitive (as in Stream's calling contract), so "Call-123" and
// "call-123" name one call; surrounding ASCII white space is dropped. Only
// ASCII letters are folded: strings.ToLower would fold the Kelvin sign (U+212A)
// to "k" and U+0130 to "i", so two different raw ids would name one call. An
// id that is empty or holds a character outside [A-Za-z0-9_-] is rejected with
// ErrInvalidID.
func NormalizeID(raw string) (string, error) {
	id := strings.Trim(raw, " \t\r\n\v\f")
	if id == "" {
		return "", fmt.Errorf("%w: id must not be empty", ErrInvalidID)
	}
	if len(id) > MaxIDLength {
		return "", fmt.Errorf("%w: id is %d characters long, at most %d are allowed", ErrInvalidID, len(id), MaxIDLength)
	}
	for i, r := range id {
		if !idRune(asciiLower(r)) {
			return "", fmt.Errorf("%w: id may contain only ASCII letters, digits, '-' and '_'; %q at position %d is not allowed", ErrInvalidID, r, i+1)
		}
	}
	return strings.Map(asciiLower, id), nil
}

func asciiLower(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + ('a' - 'A')
	}
	return r
}

func idRune(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_'
}

// idAlphabet is lowercase base32 without look-alike letters, so generated ids
// survive being read aloud or retyped and are already in normalised form.
const idAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// NewID returns a new call id: IDTimeChars characters of the time it was
// made, then 20 random characters (about 99 bits of entropy), unguessable
// so that a stable join link cannot be found by enumeration.
//
// Why the time: every table about a call is keyed by its id. With ids
// that are random from the first character, each new call lands on a
// random page of each of those b-trees, and a store commit writes every
// page it touched: creating calls cost one page write per table per call.
// Ids that grow with time put a second's new calls side by side at the
// end of each b-tree, so a commit of many new calls writes a few pages
// (BENCHMARKS.md, "Time-ordered call ids"). The time is no secret: the
// API shows a call's created_at to whoever may see the call.
func NewID() string { return newIDAt(time.Now()) }

// IDTimeChars is the length of the time prefix of a NewID: milliseconds
// since 1970 in base 31, enough until the year 2800.
const IDTimeChars = 9

// sortedIDAlphabet is idAlphabet in byte order, so that the time prefix
// sorts as the time does.
const sortedIDAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

func newIDAt(t time.Time) string {
	ms := max(t.UnixMilli(), 0)
	var b [IDTimeChars + 20]byte
	for i := IDTimeChars - 1; i >= 0; i-- {
		b[i] = sortedIDAlphabet[ms%int64(len(sortedIDAlphabet))]
		ms /= int64(len(sortedIDAlphabet))
	}
	copy(b[IDTimeChars:], RandomString(20))
	return string(b[:])
}

// RandomString returns n random characters from the id alphabet.
func RandomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	// Rejection sampling: bytes at or above the largest multiple of the
	// alphabet size are skipped so every character is equally likely.
	limit := byte(256 - 256%len(idAlphabet))
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			// crypto/rand never fails on supported platforms; if it does the
			// process cannot mint safe ids or secrets at all.
			panic(fmt.Sprintf("calls: crypto/rand failed: %v", err))
		}
		for _, b := range buf {
			if b < limit && len(out) < n {
				out = append(out, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(out)
}
