package voiplink

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const (
	testSecret     = "current-secret-0123456789"
	testPrevSecret = "previous-secret-0123456789"
	otherSecret    = "someone-elses-secret-0123"
	testCallback   = "https://chat.acme.example/callgate"
)

func testSettings() *Settings {
	s := NewSettings()
	s.Secret = testSecret
	s.PreviousSecret = testPrevSecret
	s.CallbackURL = testCallback
	return s
}

func newApp(t testing.TB, s *Settings) *App {
	t.Helper()
	if s == nil {
		s = testSettings()
	}
	a, err := New(s, adapters.Deps{Name: "acme", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// signed is a command request as a well-behaved app sends it.
func signed(body string, secret string, at time.Time) calls.WebhookRequest {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, Sign([]byte(secret), at, []byte(body)))
	return calls.WebhookRequest{URL: "https://gw.example/webhooks/chats/acme", Header: h, Body: []byte(body)}
}

const standup = `{"conversation_id":"conv-42","sender":{"id":"u-7","name":"Ada Lovelace","locale":"en-GB"},"text":"/call video Standup"}`

func TestParseChatValid(t *testing.T) {
	a := newApp(t, nil)
	req := signed(standup, testSecret, testNow)
	got, err := a.ParseChat(context.Background(), "", req)
	if err != nil {
		t.Fatalf("ParseChat: %v", err)
	}
	want := calls.ChatRequest{
		// The signature identifies the request, for the intake's replay guard.
		ReplayKey: req.Header.Get(HeaderSignature),
		User:      calls.ChatUser{ID: "u-7", Name: "Ada Lovelace", Locale: "en-GB"},
		Surface:   calls.Surface{Chat: "acme", Channel: "conv-42"},
		Command:   &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "Standup"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseChat =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseChatAuthentication(t *testing.T) {
	a := newApp(t, nil)
	tests := []struct {
		name string
		req  func() calls.WebhookRequest
		ok   bool
	}{
		{name: "current secret", ok: true, req: func() calls.WebhookRequest { return signed(standup, testSecret, testNow) }},
		{name: "previous secret", ok: true, req: func() calls.WebhookRequest { return signed(standup, testPrevSecret, testNow) }},
		{name: "unknown third secret", req: func() calls.WebhookRequest { return signed(standup, otherSecret, testNow) }},
		{name: "edge of the window, past", ok: true, req: func() calls.WebhookRequest { return signed(standup, testSecret, testNow.Add(-5*time.Minute)) }},
		{name: "edge of the window, future", ok: true, req: func() calls.WebhookRequest { return signed(standup, testSecret, testNow.Add(5*time.Minute)) }},
		{name: "stale", req: func() calls.WebhookRequest {
			return signed(standup, testSecret, testNow.Add(-5*time.Minute-time.Second))
		}},
		{name: "future", req: func() calls.WebhookRequest {
			return signed(standup, testSecret, testNow.Add(5*time.Minute+time.Second))
		}},
		{name: "unsigned", req: func() calls.WebhookRequest {
			return calls.WebhookRequest{Header: http.Header{}, Body: []byte(standup)}
		}},
		{name: "no signature header", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Del(HeaderSignature)
			return r
		}},
		{name: "no timestamp header", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Del(HeaderTimestamp)
			return r
		}},
		{name: "timestamp not signed", req: func() calls.WebhookRequest {
			// A signature made at one time, replayed with a fresh timestamp.
			r := signed(standup, testSecret, testNow.Add(-time.Hour))
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(testNow.Unix(), 10))
			return r
		}},
		{name: "timestamp in milliseconds", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(testNow.UnixMilli(), 10))
			return r
		}},
		{name: "negative timestamp", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderTimestamp, "-1")
			return r
		}},
		{name: "two timestamps", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Add(HeaderTimestamp, "1")
			return r
		}},
		{name: "wrong signature", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderSignature, "v1="+strings.Repeat("ab", 32))
			return r
		}},
		{name: "signature not hex", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderSignature, "v1=zz")
			return r
		}},
		{name: "signature truncated", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderSignature, r.Header.Get(HeaderSignature)[:40])
			return r
		}},
		{name: "only another scheme", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderSignature, "v0="+strings.TrimPrefix(r.Header.Get(HeaderSignature), "v1="))
			return r
		}},
		{name: "several values, one right", ok: true, req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			good := r.Header.Get(HeaderSignature)
			r.Header.Set(HeaderSignature, "v0=xyz, "+Sign([]byte(otherSecret), testNow, []byte(standup))+" ,"+good)
			return r
		}},
		{name: "several header lines, one right", ok: true, req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			good := r.Header.Get(HeaderSignature)
			r.Header.Set(HeaderSignature, Sign([]byte(otherSecret), testNow, []byte(standup)))
			r.Header.Add(HeaderSignature, good)
			return r
		}},
		{name: "uppercase hex", ok: true, req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Header.Set(HeaderSignature, "v1="+strings.ToUpper(strings.TrimPrefix(r.Header.Get(HeaderSignature), "v1=")))
			return r
		}},
		{name: "one byte of the body altered", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Body = []byte(strings.Replace(standup, "Standup", "Standuq", 1))
			return r
		}},
		{name: "body extended", req: func() calls.WebhookRequest {
			r := signed(standup, testSecret, testNow)
			r.Body = append(r.Body, ' ')
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.ParseChat(context.Background(), "", tt.req())
			switch {
			case tt.ok && err != nil:
				t.Fatalf("ParseChat: %v", err)
			case !tt.ok && !errors.Is(err, calls.ErrWebhookUnauthenticated):
				t.Fatalf("ParseChat error = %v, want ErrWebhookUnauthenticated", err)
			}
			if err != nil {
				for _, s := range []string{testSecret, testPrevSecret, otherSecret} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("error %q leaks a secret", err)
					}
				}
			}
		})
	}
}

func TestParseChatMalformed(t *testing.T) {
	a := newApp(t, nil)
	long := strings.Repeat("x", MaxIDLength+1)
	tests := []struct {
		name, body, path, want string
	}{
		{name: "not JSON", body: `/call video`, want: "not JSON"},
		{name: "empty", body: ``, want: "not JSON"},
		{name: "array", body: `[]`, want: "must be a JSON object"},
		{name: "string", body: `"hi"`, want: "must be a JSON object"},
		{name: "truncated", body: `{"conversation_id":"c","sender":"u","text":"x"`, want: "not valid JSON"},
		{name: "trailing data", body: `{"conversation_id":"c","sender":"u","text":"x"} {}`, want: "after the JSON object"},
		{name: "unknown field", body: `{"conversation_id":"c","sender":"u","text":"x","admin":true}`, want: `unknown field "admin"`},
		{name: "unknown sender field", body: `{"conversation_id":"c","sender":{"id":"u","role":"owner"},"text":"x"}`, want: `unknown field "sender.role"`},
		{name: "key in another case", body: `{"conversation_id":"c","sender":"u","Text":"x"}`, want: `unknown field "Text"`},
		{name: "duplicate key", body: `{"conversation_id":"c","sender":"u","text":"x","text":"/call end"}`, want: `duplicate field "text"`},
		{name: "duplicate sender key", body: `{"conversation_id":"c","sender":{"id":"u","id":"v"},"text":"x"}`, want: `duplicate field "sender.id"`},
		{name: "missing conversation", body: `{"sender":"u","text":"x"}`, want: "conversation_id is required"},
		{name: "blank conversation", body: `{"conversation_id":"  ","sender":"u","text":"x"}`, want: "conversation_id is required"},
		{name: "missing sender", body: `{"conversation_id":"c","text":"x"}`, want: "sender.id is required"},
		{name: "sender without id", body: `{"conversation_id":"c","sender":{"name":"Ada"},"text":"x"}`, want: "sender.id is required"},
		{name: "sender a number", body: `{"conversation_id":"c","sender":7,"text":"x"}`, want: "sender must be an object or a string id"},
		{name: "missing text", body: `{"conversation_id":"c","sender":"u"}`, want: "text is required"},
		{name: "text a number", body: `{"conversation_id":"c","sender":"u","text":5}`, want: "text has the wrong type"},
		{name: "conversation a number", body: `{"conversation_id":5,"sender":"u","text":""}`, want: "conversation_id has the wrong type"},
		{name: "control character in conversation", body: `{"conversation_id":"c\u0000d","sender":"u","text":""}`, want: "conversation_id contains control characters"},
		{name: "newline in sender id", body: `{"conversation_id":"c","sender":"u\nv","text":""}`, want: "sender.id contains control characters"},
		{name: "control character in name", body: `{"conversation_id":"c","sender":{"id":"u","name":"A\u001bda"},"text":""}`, want: "sender.name contains control characters"},
		{name: "oversize conversation", body: `{"conversation_id":"` + long + `","sender":"u","text":""}`, want: "conversation_id is longer than 255 bytes"},
		{name: "oversize sender", body: `{"conversation_id":"c","sender":"` + long + `","text":""}`, want: "sender.id is longer than 255 bytes"},
		{name: "bad locale", body: `{"conversation_id":"c","sender":{"id":"u","locale":"en GB"},"text":""}`, want: "sender.locale"},
		{name: "invalid UTF-8", body: "{\"conversation_id\":\"c\xff\",\"sender\":\"u\",\"text\":\"\"}", want: "not valid UTF-8"},
		{name: "deep nesting", body: `{"conversation_id":"c","sender":"u","text":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, want: "nested more than"},
		{name: "path", path: "interactions", body: standup, want: "unknown path"},
		{name: "oversize body", body: `{"conversation_id":"c","sender":"u","text":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`, want: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.ParseChat(context.Background(), tt.path, signed(tt.body, testSecret, testNow))
			if !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("ParseChat error = %v, want ErrWebhookMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseChat error = %q, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestParseChatSenderShapes(t *testing.T) {
	a := newApp(t, nil)
	for body, want := range map[string]calls.ChatUser{
		`{"conversation_id":"c","sender":"u-7","text":""}`:                      {ID: "u-7"},
		`{"conversation_id":"c","sender":{"id":"u-7"},"text":""}`:               {ID: "u-7"},
		`{"conversation_id":"c","sender":{"id":"u-7","name":"Ada"},"text":""}`:  {ID: "u-7", Name: "Ada"},
		`{"text":"","sender":{"locale":"fr","id":"u-7"},"conversation_id":"c"}`: {ID: "u-7", Locale: "fr"},
	} {
		got, err := a.ParseChat(context.Background(), "", signed(body, testSecret, testNow))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got.User != want {
			t.Errorf("%s: user = %+v, want %+v", body, got.User, want)
		}
	}
}

func TestParseChatCommands(t *testing.T) {
	a := newApp(t, nil)
	a.SetProviderPredicate(func(w string) bool { return w == "daily" })
	tests := []struct {
		text    string
		want    *calls.Command
		wantErr string // for a text the grammar rejects: what the reply explains
	}{
		{text: "", want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}},
		{text: "/call", want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}},
		{text: "/call audio", want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio}},
		{text: "video Standup", want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "Standup"}},
		{text: "/call new audio @ada @bob daily Weekly sync", want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio, New: true, Mentions: []string{"ada", "bob"}, Provider: "daily", Title: "Weekly sync"}},
		{text: "/call end", want: &calls.Command{Kind: calls.CommandEnd}},
		{text: "/CALL HANGUP", want: &calls.Command{Kind: calls.CommandEnd}},
		{text: "/call help", want: &calls.Command{Kind: calls.CommandHelp}},
		{text: "?", want: &calls.Command{Kind: calls.CommandHelp}},
		{text: "/call end now", wantErr: "`/call end` takes nothing after it"},
		{text: "/call " + strings.Repeat("t", calls.MaxTitleLength+1), wantErr: "title is longer"},
		{text: "/call \u0007", wantErr: "control characters"},
		{text: strings.Repeat("x", calls.MaxCommandLength+1), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(truncate(tt.text, 30), func(t *testing.T) {
			body := `{"conversation_id":"c","sender":"u","text":` + jsonString(tt.text) + `}`
			got, err := a.ParseChat(context.Background(), "", signed(body, testSecret, testNow))
			if err != nil {
				t.Fatalf("ParseChat: %v (a bad command is not a bad webhook)", err)
			}
			if tt.wantErr == "" {
				if !reflect.DeepEqual(got.Command, tt.want) {
					t.Fatalf("Command = %+v, want %+v", got.Command, tt.want)
				}
				if got.Private != nil {
					t.Fatalf("Private = %v, want nil", got.Private)
				}
				return
			}
			if got.Command != nil {
				t.Fatalf("Command = %+v, want none", got.Command)
			}
			p, ok := got.Private.(*pending)
			if !ok || p.commandErr == nil || !strings.Contains(p.commandErr.Error(), tt.wantErr) {
				t.Fatalf("Private = %#v, want the parse error %q", got.Private, tt.wantErr)
			}
		})
	}
}

func TestParseChatDeliveryID(t *testing.T) {
	a := newApp(t, nil)
	withBodyID := `{"conversation_id":"c","sender":"u","text":"","delivery_id":"d-1"}`
	tests := []struct {
		name, body, header string
		want               string
		malformed          bool
	}{
		{name: "none", body: standup},
		{name: "header", body: standup, header: "hdr-9", want: "hdr-9"},
		{name: "body", body: withBodyID, want: "d-1"},
		{name: "both equal", body: withBodyID, header: "d-1", want: "d-1"},
		{name: "both differ", body: withBodyID, header: "d-2", malformed: true},
		{name: "header with control character", body: standup, header: "a\x01b", malformed: true},
		{name: "header too long", body: standup, header: strings.Repeat("d", MaxIDLength+1), malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(tt.body, testSecret, testNow)
			if tt.header != "" {
				r.Header.Set(HeaderDelivery, tt.header)
			}
			got, err := a.ParseChat(context.Background(), "", r)
			if tt.malformed {
				if !errors.Is(err, calls.ErrWebhookMalformed) {
					t.Fatalf("error = %v, want ErrWebhookMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DeliveryID != tt.want {
				t.Fatalf("DeliveryID = %q, want %q", got.DeliveryID, tt.want)
			}
		})
	}
}

func TestParseChatMaxSkewSetting(t *testing.T) {
	s := testSettings()
	s.MaxSkew = 30 * time.Second
	a := newApp(t, s)
	if _, err := a.ParseChat(context.Background(), "", signed(standup, testSecret, testNow.Add(-31*time.Second))); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("31s old with max_skew 30s: error = %v, want ErrWebhookUnauthenticated", err)
	}
	if _, err := a.ParseChat(context.Background(), "", signed(standup, testSecret, testNow.Add(-29*time.Second))); err != nil {
		t.Fatalf("29s old with max_skew 30s: %v", err)
	}
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func BenchmarkVerify(b *testing.B) {
	r := signed(standup, testPrevSecret, testNow)
	secrets := [][]byte{[]byte(testSecret), []byte(testPrevSecret)}
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(r.Header, r.Body, testNow, DefaultMaxSkew, secrets...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseChat(b *testing.B) {
	a := newApp(b, nil)
	r := signed(standup, testSecret, testNow)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ParseChat(context.Background(), "", r); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseChat(f *testing.F) {
	for _, seed := range []string{
		standup,
		`{"conversation_id":"c","sender":"u","text":""}`,
		`{"conversation_id":"c","sender":{"id":"u","name":"n","locale":"en"},"text":"/call new audio @a Title","delivery_id":"d"}`,
		`{"conversation_id":"c","sender":"u","text":"/call end now"}`,
		`{"conversation_id":"c","sender":"u","text":"x","text":"y"}`,
		`{"conversation_id":"c\u0000","sender":[],"text":{}}`,
		`[{"a":{"a":1,"a":2}}]`,
		`{}`,
		``,
	} {
		f.Add([]byte(seed), "")
	}
	f.Add([]byte(standup), "x")
	a := newApp(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		r := signed(string(body), testSecret, testNow)
		got, err := a.ParseChat(context.Background(), path, r)
		if err != nil {
			if errors.Is(err, calls.ErrWebhookUnauthenticated) || !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("a signed request failed with %v, want ErrWebhookMalformed or success", err)
			}
			return
		}
		if checkID("channel", got.Surface.Channel, false) != nil || checkID("user", got.User.ID, false) != nil {
			t.Fatalf("accepted bad ids: %+v", got)
		}
		if (got.Command == nil) == (got.Private == nil) {
			t.Fatalf("want either a command or a parse error, got %+v", got)
		}
		// Whatever was accepted can be answered.
		if _, err := a.ReplyChat(context.Background(), got, calls.ChatOutcome{}); err != nil {
			t.Fatalf("ReplyChat: %v", err)
		}
		// An altered body is never accepted.
		r.Body = append(r.Body, ' ')
		if _, err := a.ParseChat(context.Background(), path, r); !errors.Is(err, calls.ErrWebhookUnauthenticated) && !errors.Is(err, calls.ErrWebhookMalformed) {
			t.Fatalf("altered body: error = %v", err)
		}
	})
}
