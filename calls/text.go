package calls

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxUserIDLength bounds every user id the gateway stores or signs: members,
// the acting user an API key names, a user token's user_id, a personal
// link's user. It is counted in bytes, as the stores count it.
const MaxUserIDLength = 255

// MaxDisplayNameLength bounds the display name shown at the provider
// (a token request's name, a guest's ?name=), in characters. Names travel in
// join links, so an unbounded one makes an unbounded URL.
const MaxDisplayNameLength = 64

// ValidateText refuses text that is not valid UTF-8 or holds a control
// character (unicode.IsControl: NUL, newlines, tabs, DEL, C1 controls).
// field names the input in the error, which wraps ErrInvalidInput.
func ValidateText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, field)
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s holds the control character %U at byte %d; control characters are not allowed", ErrInvalidInput, field, r, i+1)
		}
	}
	return nil
}

// ValidateUserID checks a user id: text without control characters, at most
// MaxUserIDLength bytes. An empty id passes: whether one is required is the
// caller's rule.
func ValidateUserID(field, s string) error {
	if err := ValidateText(field, s); err != nil {
		return err
	}
	if len(s) > MaxUserIDLength {
		return fmt.Errorf("%w: %s is %d bytes long, at most %d are allowed", ErrInvalidInput, field, len(s), MaxUserIDLength)
	}
	return nil
}

// ValidateTitle checks a call title: text without control characters, at
// most MaxTitleLength characters once surrounding white space is dropped.
func ValidateTitle(field, s string) error {
	if err := ValidateText(field, s); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(s)); n > MaxTitleLength {
		return fmt.Errorf("%w: %s is %d characters long, at most %d are allowed", ErrInvalidInput, field, n, MaxTitleLength)
	}
	return nil
}

// ValidateDisplayName checks a display name: text without control
// characters, at most MaxDisplayNameLength characters.
func ValidateDisplayName(field, s string) error {
	if err := ValidateText(field, s); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(s); n > MaxDisplayNameLength {
		return fmt.Errorf("%w: %s is %d characters long, at most %d are allowed", ErrInvalidInput, field, n, MaxDisplayNameLength)
	}
	return nil
}

// SanitizeDisplayName makes untrusted text (a guest's ?name=) a display
// name that passes ValidateDisplayName: invalid UTF-8 and control characters
// are dropped, white space is trimmed, and the rest is cut to
// MaxDisplayNameLength characters.
func SanitizeDisplayName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > MaxDisplayNameLength {
		s = strings.TrimSpace(string([]rune(s)[:MaxDisplayNameLength]))
	}
	return s
}

// checkCreateInput is where a create request's text enters the service.
func checkCreateInput(actor Actor, req CreateRequest) error {
	if err := ValidateUserID("user_id", actor.UserID); err != nil {
		return err
	}
	if len(req.Key) > MaxIDLength {
		return fmt.Errorf("%w: a create key is at most %d bytes", ErrInvalidInput, MaxIDLength)
	}
	return ValidateTitle("title", req.Title)
}

// checkJoinInput is where a credential request's text enters the service.
func checkJoinInput(actor Actor, req JoinRequest) error {
	if err := ValidateUserID("user_id", actor.UserID); err != nil {
		return err
	}
	if err := ValidateUserID("user_id", req.UserID); err != nil {
		return err
	}
	return ValidateDisplayName("name", req.Name)
}
