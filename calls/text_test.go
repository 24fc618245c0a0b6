package calls

import (
	"errors"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	tests := []struct {
		name    string
		check   func(field, s string) error
		in      string
		wantErr string // empty: valid
	}{
		{"user id", ValidateUserID, "ada", ""},
		{"empty user id passes", ValidateUserID, "", ""},
		{"user id with NUL", ValidateUserID, "a\x00b", "user_id holds the control character U+0000"},
		{"user id with newline", ValidateUserID, "a\nb", "U+000A"},
		{"user id with DEL", ValidateUserID, "a\x7fb", "U+007F"},
		{"user id with C1 control", ValidateUserID, "a\u0085b", "U+0085"},
		{"user id not UTF-8", ValidateUserID, "a\xffb", "not valid UTF-8"},
		{"user id at the limit", ValidateUserID, strings.Repeat("u", MaxUserIDLength), ""},
		{"user id over the limit", ValidateUserID, strings.Repeat("u", MaxUserIDLength+1), "at most 255"},
		{"title", ValidateTitle, "Design review — Q3 🎉", ""},
		{"title with NUL", ValidateTitle, "x\x00", "U+0000"},
		{"title at the limit", ValidateTitle, strings.Repeat("é", MaxTitleLength), ""},
		{"title over the limit", ValidateTitle, strings.Repeat("é", MaxTitleLength+1), "at most 200"},
		{"name", ValidateDisplayName, "Ada Lovelace", ""},
		{"name with tab", ValidateDisplayName, "Ada\tL", "U+0009"},
		{"name at the limit", ValidateDisplayName, strings.Repeat("n", MaxDisplayNameLength), ""},
		{"name over the limit", ValidateDisplayName, strings.Repeat("n", MaxDisplayNameLength+1), "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check("user_id", tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want ErrInvalidInput containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSanitizeDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"  Ada  ":                           "Ada",
		"A\x00d\na\xff":                     "Ada",
		strings.Repeat("é", 100):            strings.Repeat("é", MaxDisplayNameLength),
		strings.Repeat("x", 63) + " \x00yz": strings.Repeat("x", 63),
	} {
		got := SanitizeDisplayName(in)
		if got != want || ValidateDisplayName("name", got) != nil {
			t.Errorf("SanitizeDisplayName(%q) = %q, want %q", in, got, want)
		}
	}
}
