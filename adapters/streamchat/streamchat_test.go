package streamchat

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// testNow is when the vector's command message was sent, plus a few seconds.
var testNow = time.Date(2021, 11, 16, 12, 57, 2, 0, time.UTC)

const (
	testKey    = "stream-key"
	testSecret = "tsec2"
	testPrev   = "previous-secret-during-rotation"
)

func testSettings() *Settings {
	s := NewSettings()
	s.APIKey, s.APISecret = testKey, testSecret
	return s
}

func newApp(t testing.TB, s *Settings) *App {
	t.Helper()
	if s == nil {
		s = testSettings()
	}
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(s, adapters.Deps{Name: "stream", Now: func() time.Time { return testNow }, Templates: tpl,
		IsProvider: func(w string) bool { return w == "daily" }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// vectors is testdata/stream-chat.json, copied from the shared vectors.
type vectors struct {
	Vectors []struct {
		N            string `json:"name"`
		Secret       string `json:"api_secret"`
		Body         string `json:"body"`
		Uncompressed string `json:"uncompressed_body"`
		Gzip         string `json:"gzip_body_base64_mtime0"`
		Expected     string `json:"expected_x_signature"`
		Negative     *struct {
			Body  string `json:"body"`
			Valid bool   `json:"expected_valid"`
		} `json:"negative"`
	} `json:"vectors"`
	JWT []struct {
		Name     string `json:"name"`
		Secret   string `json:"api_secret"`
		UserID   string `json:"user_id"`
		Exp      int64  `json:"exp"`
		Expected string `json:"expected"`
	} `json:"jwt_vectors"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/stream-chat.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSettingsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Settings)
		want []string
	}{
		{"valid", func(*Settings) {}, nil},
		{"empty", func(s *Settings) { s.APIKey, s.APISecret = "", "" }, []string{"api_key: required", "api_secret: required"}},
		{"previous alone", func(s *Settings) { s.APISecret, s.PreviousAPISecret = "", "x" },
			[]string{"api_secret: required", "previous_api_secret: set only together with api_secret, during a rotation"}},
		{"locale", func(s *Settings) { s.DefaultLocale = "it" }, []string{"default_locale: must be one of en, fr, de, es"}},
		{"api url", func(s *Settings) { s.APIURL = "ftp://x" }, []string{"api_url: must be an absolute http or https URL"}},
		{"api url query", func(s *Settings) { s.APIURL = "https://x/?k=secret" }, []string{"api_url: must be a base URL without credentials, query or fragment"}},
		{"command", func(s *Settings) { s.CommandName = "/call" }, []string{"command_name: must be a command name of lowercase letters, digits, '-' or '_', without '/'"}},
		{"bot", func(s *Settings) { s.BotUserID = "a b" }, []string{"bot_user_id: must be a Stream user id (no spaces, at most 255 bytes)"}},
		{"timeout", func(s *Settings) { s.Timeout = 0 }, []string{"timeout: must be positive"}},
		{"key", func(s *Settings) { s.APIKey = "a\nb" }, []string{"api_key: must not contain spaces or control characters"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSettings()
			s.APISecret = "a-secret-never-printed"
			c.edit(s)
			var got []string
			s.Validate(func(f, m string, _ ...string) { got = append(got, f+": "+m) })
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			if strings.Contains(strings.Join(got, ""), "a-secret-never-printed") {
				t.Fatal("a message holds the secret")
			}
		})
	}
}

func TestKind(t *testing.T) {
	if Kind.Name != "stream" {
		t.Fatal(Kind.Name)
	}
	s := Kind.NewSettings().(*Settings)
	if s.APIURL != DefaultAPIURL || s.CommandName != "call" || s.DefaultLocale != "en" || s.ChannelCallField || s.CustomEvents || s.BotUserID != "callgate" {
		t.Fatalf("defaults: %+v", s)
	}
	if _, err := Kind.New(context.Background(), s, adapters.Deps{Name: "stream"}); err == nil || strings.Contains(err.Error(), "secret-") {
		t.Fatalf("built without credentials: %v", err)
	}
	s.APIKey, s.APISecret = "k", "secret-value"
	intake, err := Kind.New(context.Background(), s, adapters.Deps{Name: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intake.(calls.CardPoster); !ok {
		t.Fatal("not a card poster")
	}
	if d := intake.(calls.DestinationLimiter).Destination(calls.Surface{Channel: "messaging:general"}); d != "messaging:general" {
		t.Fatal(d)
	}
}

func TestSignatureVectors(t *testing.T) {
	for _, v := range loadVectors(t).Vectors {
		t.Run(v.N, func(t *testing.T) {
			body := []byte(v.Body)
			plainBody := body
			if v.Gzip != "" {
				body = mustBase64(t, v.Gzip)
				plainBody = []byte(v.Uncompressed)
			}
			if got := Sign([]byte(v.Secret), plainBody); got != v.Expected {
				t.Fatalf("Sign = %s, want %s", got, v.Expected)
			}
			h := http.Header{HeaderSignature: {v.Expected}}
			got, err := VerifyWebhook(h, body, []byte("other-secret"), []byte(v.Secret))
			if err != nil || string(got) != string(plainBody) {
				t.Fatalf("VerifyWebhook = %q, %v", got, err)
			}
			if v.Negative != nil {
				_, err := VerifyWebhook(h, []byte(v.Negative.Body), []byte(v.Secret))
				if (err == nil) != v.Negative.Valid {
					t.Fatalf("negative vector: %v", err)
				}
			}
		})
	}
}

func TestJWTVectors(t *testing.T) {
	for _, v := range loadVectors(t).JWT {
		t.Run(v.Name, func(t *testing.T) {
			switch {
			case v.UserID == "":
				if got := ServerToken([]byte(v.Secret)); got != v.Expected {
					t.Fatalf("ServerToken = %s, want %s", got, v.Expected)
				}
			case v.Exp == 0:
				if got := UserToken([]byte(v.Secret), v.UserID, time.Time{}); got != v.Expected {
					t.Fatalf("UserToken = %s, want %s", got, v.Expected)
				}
			}
			at := time.Unix(1566941000, 0)
			if _, err := VerifyToken(v.Expected, at, []byte("wrong"), []byte(v.Secret)); err != nil {
				t.Fatalf("VerifyToken: %v", err)
			}
			if _, err := VerifyToken(v.Expected, at, []byte("wrong")); err == nil {
				t.Fatal("verified with the wrong secret")
			}
		})
	}
	// alg none is never accepted.
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzZXJ2ZXIiOnRydWV9."
	if _, err := VerifyToken(none, testNow, []byte("secret")); err == nil {
		t.Fatal("accepted alg none")
	}
}
