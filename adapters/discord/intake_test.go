package discord

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// TestRFC8032Vectors checks the Ed25519 primitive against RFC 8032 7.1
// TEST 1 and TEST 2: the seed gives the public key and the signature.
func TestRFC8032Vectors(t *testing.T) {
	for _, v := range loadVectors(t).Vectors {
		if v.Kind != "official" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			key := privateKey(t, v.SecretKeyHex)
			if got := hex.EncodeToString(key.Public().(ed25519.PublicKey)); got != v.PublicKeyHex {
				t.Fatalf("public key = %s, want %s", got, v.PublicKeyHex)
			}
			msg, _ := hex.DecodeString(v.MessageHex)
			if got := hex.EncodeToString(ed25519.Sign(key, msg)); got != v.SignatureHex {
				t.Fatalf("signature = %s, want %s", got, v.SignatureHex)
			}
			// Discord's scheme with an empty timestamp is the bare message.
			h := http.Header{HeaderSignature: {v.SignatureHex}, HeaderTimestamp: {string(msg)}}
			if len(msg) == 0 {
				return // no timestamp header possible: covered by the primitive check
			}
			pub, _ := hex.DecodeString(v.PublicKeyHex)
			if _, _, err := VerifySignature(h, nil, pub); err != nil {
				t.Fatalf("VerifySignature: %v", err)
			}
		})
	}
}

// TestParseChatVectors runs every signed request of the vectors, and the
// negatives derived from them, through ParseChat at the vectors' time.
func TestParseChatVectors(t *testing.T) {
	vf := loadVectors(t)
	type tc struct {
		name  string
		req   calls.WebhookRequest
		valid bool
	}
	var cases []tc
	byName := map[string]calls.WebhookRequest{}
	for _, v := range vf.Vectors {
		if v.Headers == nil {
			continue
		}
		if v.PublicKeyHex != test1Public {
			t.Fatalf("%s: signed with another key", v.Name)
		}
		h := http.Header{}
		for k, val := range v.Headers {
			h.Set(k, val)
		}
		req := calls.WebhookRequest{Method: http.MethodPost, Header: h, Body: []byte(v.Body)}
		byName[v.Name] = req
		cases = append(cases, tc{v.Name, req, v.Valid})
		// The signature in the vector is what Sign reproduces.
		if got := Sign(privateKey(t, test1Seed), v.Headers[HeaderTimestamp], []byte(v.Body)); got != v.Headers[HeaderSignature] {
			t.Fatalf("%s: Sign = %s, want the vector's %s", v.Name, got, v.Headers[HeaderSignature])
		}
	}
	for _, n := range vf.Negatives {
		base, ok := byName[n.DeriveFrom]
		if !ok {
			t.Fatalf("negative %s derives from unknown %s", n.Name, n.DeriveFrom)
		}
		req := calls.WebhookRequest{Method: base.Method, Header: base.Header.Clone(), Body: append([]byte(nil), base.Body...)}
		switch {
		case n.Change == "append one space to body":
			req.Body = append(req.Body, ' ')
		case strings.HasPrefix(n.Change, "X-Signature-Timestamp="):
			req.Header.Set(HeaderTimestamp, strings.TrimPrefix(n.Change, "X-Signature-Timestamp="))
		default:
			t.Fatalf("negative %s: unknown change %q", n.Name, n.Change)
		}
		cases = append(cases, tc{"negative: " + n.Name, req, n.Valid})
	}
	if len(cases) < 6 {
		t.Fatalf("only %d cases in the vectors", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, _, _ := newTestApp(t) // fresh replay cache per case
			got, err := a.ParseChat(context.Background(), "interactions", c.req)
			if c.valid {
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if got.Reply == nil && got.DeliveryID == "" {
					t.Fatalf("parsed nothing: %+v", got)
				}
				return
			}
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("err = %v, want unauthenticated", err)
			}
		})
	}
}

const slashBody = `{"type":2,"token":"A_UNIQUE_TOKEN","id":"786008729715212338","application_id":"111111111111111111","guild_id":"290926798626357999","channel_id":"645027906669510667","version":1,"member":{"user":{"id":"53908232506183680","username":"Mason"},"permissions":"2147483647"},"data":{"id":"771825006014889984","name":"call","type":1,"options":[{"type":3,"name":"title","value":"standup"}]}}`

func TestParseChatSlashVector(t *testing.T) {
	a, _, _ := newTestApp(t)
	var req calls.WebhookRequest
	for _, v := range loadVectors(t).Vectors {
		if v.Name == "/call slash command with STRING option" {
			h := http.Header{}
			for k, val := range v.Headers {
				h.Set(k, val)
			}
			req = calls.WebhookRequest{Method: http.MethodPost, Header: h, Body: []byte(v.Body)}
		}
	}
	if string(req.Body) != slashBody {
		t.Fatalf("vector body changed: %s", req.Body)
	}
	got, err := a.ParseChat(context.Background(), "", req)
	if err != nil {
		t.Fatal(err)
	}
	want := calls.ChatRequest{
		DeliveryID: "786008729715212338",
		User:       calls.ChatUser{ID: "53908232506183680", Name: "Mason"},
		Surface:    calls.Surface{Chat: "disco", Workspace: "290926798626357999", Channel: "645027906669510667"},
		Command:    &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "standup"},
		Private:    &pending{InteractionID: "786008729715212338", Token: "A_UNIQUE_TOKEN"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseChat =\n%+v\nwant\n%+v", got, want)
	}
}

// TestParseChatAuthentication: everything not signed by the application's
// key, now, once, is refused with 401 (ErrWebhookUnauthenticated).
func TestParseChatAuthentication(t *testing.T) {
	k1, k2 := privateKey(t, test1Seed), privateKey(t, test2Seed)
	_, other, _ := ed25519.GenerateKey(nil)
	body := `{"id":"1","token":"t","type":1,"version":1}`
	now := int64(vectorTime + 2)
	tests := []struct {
		name   string
		req    func() calls.WebhookRequest
		rotate bool // previous_public_key = TEST 2
		ok     bool
	}{
		{name: "signed now", req: func() calls.WebhookRequest { return signed(k1, now, body) }, ok: true},
		{name: "four minutes old", req: func() calls.WebhookRequest { return signed(k1, now-240, body) }, ok: true},
		{name: "stale: six minutes old", req: func() calls.WebhookRequest { return signed(k1, now-360, body) }},
		{name: "from the future", req: func() calls.WebhookRequest { return signed(k1, now+360, body) }},
		{name: "unsigned", req: func() calls.WebhookRequest {
			return calls.WebhookRequest{Method: http.MethodPost, Header: http.Header{}, Body: []byte(body)}
		}},
		{name: "no timestamp", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Del(HeaderTimestamp)
			return r
		}},
		{name: "another key", req: func() calls.WebhookRequest { return signed(other, now, body) }},
		{name: "second application's key without rotation", req: func() calls.WebhookRequest { return signed(k2, now, body) }},
		{name: "previous key during rotation", rotate: true, req: func() calls.WebhookRequest { return signed(k2, now, body) }, ok: true},
		{name: "current key during rotation", rotate: true, req: func() calls.WebhookRequest { return signed(k1, now, body) }, ok: true},
		{name: "altered body", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Body = []byte(strings.Replace(body, `"type":1`, `"type":2`, 1))
			return r
		}},
		{name: "timestamp moved", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Set(HeaderTimestamp, "1608597136")
			return r
		}},
		{name: "signature not hex", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Set(HeaderSignature, strings.Repeat("zz", 64))
			return r
		}},
		{name: "signature truncated", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Set(HeaderSignature, r.Header.Get(HeaderSignature)[:100])
			return r
		}},
		{name: "two signatures", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Add(HeaderSignature, r.Header.Get(HeaderSignature))
			return r
		}},
		{name: "timestamp not a number, signed", req: func() calls.WebhookRequest {
			r := calls.WebhookRequest{Method: http.MethodPost, Header: http.Header{}, Body: []byte(body)}
			r.Header.Set(HeaderTimestamp, "now")
			r.Header.Set(HeaderSignature, Sign(k1, "now", r.Body))
			return r
		}},
		{name: "upper-case hex signature", req: func() calls.WebhookRequest {
			r := signed(k1, now, body)
			r.Header.Set(HeaderSignature, strings.ToUpper(r.Header.Get(HeaderSignature)))
			return r
		}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := newTestApp(t, func(s *Settings) {
				if tt.rotate {
					s.PreviousPublicKey = test2Public
				}
			})
			got, err := a.ParseChat(context.Background(), "interactions", tt.req())
			if tt.ok {
				if err != nil || got.Reply == nil || string(got.Reply.Body) != `{"type":1}` {
					t.Fatalf("ParseChat = %+v, %v; want the PONG", got, err)
				}
				return
			}
			if !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("err = %v, want unauthenticated", err)
			}
			if got.Reply != nil || got.Command != nil || got.Action != nil {
				t.Fatalf("a refused request parsed into %+v", got)
			}
		})
	}
}

func TestParseChatReplay(t *testing.T) {
	a, clk, _ := newTestApp(t)
	k := privateKey(t, test1Seed)
	req := signed(k, vectorTime, slashBody)
	if _, err := a.ParseChat(context.Background(), "", req); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	if _, err := a.ParseChat(context.Background(), "", req); !errors.Is(err, calls.ErrWebhookUnauthenticated) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: err = %v", err)
	}
	// Past the window it is stale, whatever the cache holds.
	clk.t = clk.t.Add(10 * time.Minute)
	if _, err := a.ParseChat(context.Background(), "", req); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("stale replay: err = %v", err)
	}
}

func TestParseChatMalformed(t *testing.T) {
	k := privateKey(t, test1Seed)
	member := `"member":{"user":{"id":"42","username":"ada"}}`
	tests := []struct {
		name, path, method, body string
	}{
		{name: "unknown path", path: "events", body: `{"type":1}`},
		{name: "GET", path: "interactions", method: http.MethodGet, body: `{"type":1}`},
		{name: "not JSON", body: `not json`},
		{name: "unknown type", body: `{"id":"1","type":99}`},
		{name: "no id", body: `{"type":2,"channel_id":"5",` + member + `,"data":{"name":"call"}}`},
		{name: "no user", body: `{"id":"1","type":2,"channel_id":"5","data":{"name":"call"}}`},
		{name: "user id not a snowflake", body: `{"id":"1","type":2,"channel_id":"5","user":{"id":"x1"},"data":{"name":"call"}}`},
		{name: "no channel", body: `{"id":"1","type":2,` + member + `,"data":{"name":"call"}}`},
		{name: "bad guild", body: `{"id":"1","type":2,"guild_id":"g","channel_id":"5",` + member + `,"data":{"name":"call"}}`},
		{name: "invalid UTF-8", body: "{\"id\":\"1\",\"type\":1,\"x\":\"\xff\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := newTestApp(t)
			req := signed(k, vectorTime, tt.body)
			if tt.method != "" {
				req.Method = tt.method
			}
			path := tt.path
			if path == "" {
				path = "interactions"
			}
			_, err := a.ParseChat(context.Background(), path, req)
			if !errors.Is(err, calls.ErrWebhookMalformed) {
				t.Fatalf("err = %v, want malformed", err)
			}
		})
	}
}

// interaction builds a /call interaction body with the given data options.
func interaction(typ int, data string) string {
	return `{"id":"900000000000000001","application_id":"111111111111111111","type":` + itoa(typ) +
		`,"token":"tok","guild_id":"290926798626357999","channel_id":"645027906669510667","locale":"fr",` +
		`"member":{"nick":"Ada L.","user":{"id":"53908232506183680","username":"ada","global_name":"Ada"}},"data":` + data + `}`
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestParseChatCommands(t *testing.T) {
	k := privateKey(t, test1Seed)
	sub := func(name, opts string) string {
		return `{"id":"771825006014889984","name":"call","type":1,"options":[{"type":1,"name":"` + name + `","options":[` + opts + `]}]}`
	}
	tests := []struct {
		name    string
		data    string
		want    *calls.Command
		action  *calls.ChatAction
		errPart string // commandErr
		unknown bool
	}{
		{name: "start, no options", data: sub("start", ""), want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}},
		{name: "start, all options", data: sub("start", `{"type":3,"name":"type","value":"audio"},{"type":6,"name":"with","value":"80351110224678912"},{"type":6,"name":"with2","value":"80351110224678913"},{"type":6,"name":"with3","value":"80351110224678912"},{"type":3,"name":"provider","value":"daily"},{"type":3,"name":"title","value":"  Weekly   sync "},{"type":5,"name":"new","value":true}`),
			want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeAudio, Mentions: []string{"80351110224678912", "80351110224678913"}, Provider: "daily", Title: "Weekly sync", New: true}},
		{name: "flat options (docs example)", data: `{"name":"call","type":1,"options":[{"type":3,"name":"title","value":"standup"},{"type":3,"name":"type","value":"video"}]}`,
			want: &calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo, Title: "standup"}},
		{name: "end", data: sub("end", ""), want: &calls.Command{Kind: calls.CommandEnd}},
		{name: "help", data: sub("help", ""), want: &calls.Command{Kind: calls.CommandHelp}},
		{name: "end with options", data: sub("end", `{"type":3,"name":"title","value":"x"}`), errPart: "takes no options"},
		{name: "unknown subcommand", data: sub("dance", ""), errPart: "unknown subcommand"},
		{name: "bad type", data: sub("start", `{"type":3,"name":"type","value":"hologram"}`), errPart: "audio or video"},
		{name: "with not a user", data: sub("start", `{"type":3,"name":"with","value":"@everyone"}`), errPart: "must be a person"},
		{name: "unknown provider", data: sub("start", `{"type":3,"name":"provider","value":"zoom"}`), errPart: "not a configured provider"},
		{name: "title too long", data: sub("start", `{"type":3,"name":"title","value":"`+strings.Repeat("x", calls.MaxTitleLength+1)+`"}`), errPart: "longer than"},
		{name: "title not text", data: sub("start", `{"type":3,"name":"title","value":12}`), errPart: "title must be text"},
		{name: "unknown option", data: sub("start", `{"type":3,"name":"colour","value":"red"}`), errPart: "unknown option"},
		{name: "option twice", data: sub("start", `{"type":3,"name":"title","value":"a"},{"type":3,"name":"title","value":"b"}`), errPart: "given twice"},
		{name: "another command", data: `{"name":"poll","type":1}`, unknown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := newTestApp(t)
			got, err := a.ParseChat(context.Background(), "interactions", signed(k, vectorTime, interaction(2, tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			p := got.Private.(*pending)
			if got.User != (calls.ChatUser{ID: "53908232506183680", Name: "Ada L.", Locale: "fr"}) || got.DeliveryID != "900000000000000001" || p.Locale != "fr" || p.Token != "tok" {
				t.Fatalf("request = %+v, private %+v", got, p)
			}
			if !reflect.DeepEqual(got.Command, tt.want) {
				t.Fatalf("Command = %+v, want %+v", got.Command, tt.want)
			}
			if tt.errPart == "" && p.commandErr != nil || tt.errPart != "" && (p.commandErr == nil || !strings.Contains(p.commandErr.Error(), tt.errPart)) {
				t.Fatalf("commandErr = %v, want %q", p.commandErr, tt.errPart)
			}
			if p.unknown != tt.unknown {
				t.Fatalf("unknown = %v", p.unknown)
			}
		})
	}
}

func TestParseChatComponents(t *testing.T) {
	k := privateKey(t, test1Seed)
	tests := []struct {
		customID string
		want     *calls.ChatAction
	}{
		{"callgate:join:call-1", &calls.ChatAction{Kind: "join", CallID: "call-1"}},
		{"callgate:end:Call-2", &calls.ChatAction{Kind: "end", CallID: "call-2"}},
		{"callgate:accept:c3", &calls.ChatAction{Kind: "accept", CallID: "c3"}},
		{"callgate:decline:c4", &calls.ChatAction{Kind: "decline", CallID: "c4"}},
		{"callgate:explode:c5", nil},
		{"callgate:join:", nil},
		{"callgate:join:bad id!", nil},
		{"test", nil},
	}
	for _, tt := range tests {
		t.Run(tt.customID, func(t *testing.T) {
			a, _, _ := newTestApp(t)
			got, err := a.ParseChat(context.Background(), "interactions", signed(k, vectorTime, interaction(3, `{"custom_id":"`+tt.customID+`","component_type":2}`)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Action, tt.want) || got.Command != nil {
				t.Fatalf("Action = %+v, want %+v", got.Action, tt.want)
			}
			if got.Surface.Channel != "645027906669510667" || got.User.ID != "53908232506183680" {
				t.Fatalf("request = %+v", got)
			}
			if p := got.Private.(*pending); p.unknown != (tt.want == nil) {
				t.Fatalf("unknown = %v", p.unknown)
			}
		})
	}
}

func TestParseChatDMAndAutocomplete(t *testing.T) {
	k := privateKey(t, test1Seed)
	a, _, _ := newTestApp(t)
	dm := `{"id":"900000000000000002","type":2,"token":"t","channel_id":"645027906669510668","locale":"de","user":{"id":"53908232506183680","username":"ada"},"data":{"name":"call","options":[{"type":1,"name":"help"}]}}`
	got, err := a.ParseChat(context.Background(), "", signed(k, vectorTime, dm))
	if err != nil {
		t.Fatal(err)
	}
	if got.Surface != (calls.Surface{Chat: "disco", Channel: "645027906669510668"}) || got.User != (calls.ChatUser{ID: "53908232506183680", Name: "ada", Locale: "de"}) || got.Command.Kind != calls.CommandHelp {
		t.Fatalf("DM = %+v", got)
	}
	got, err = a.ParseChat(context.Background(), "", signed(k, vectorTime, `{"id":"3","type":4,"data":{"name":"call"}}`))
	if err != nil || got.Reply == nil || string(got.Reply.Body) != `{"type":8,"data":{"choices":[]}}` {
		t.Fatalf("autocomplete = %+v, %v", got, err)
	}
}

func BenchmarkParseChat(b *testing.B) {
	a, _, _ := newTestApp(b)
	k := privateKey(b, test1Seed)
	reqs := make([]calls.WebhookRequest, b.N)
	for i := range reqs {
		// Each request is a new interaction: the replay cache must not
		// refuse them.
		body := strings.Replace(slashBody, `"id":"786008729715212338"`, fmt.Sprintf(`"id":"78600%013d"`, i), 1)
		reqs[i] = signed(k, vectorTime, body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.ParseChat(context.Background(), "interactions", reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseChat(f *testing.F) {
	k := privateKey(f, test1Seed)
	for _, v := range loadVectors(f).Vectors {
		if v.Body != "" {
			f.Add(v.Body, "interactions")
		}
	}
	f.Add(interaction(3, `{"custom_id":"callgate:join:c1","component_type":2}`), "")
	f.Add(interaction(2, `{"name":"call","options":[{"type":1,"name":"start","options":[{"type":6,"name":"with","value":"1"}]}]}`), "interactions")
	a, _, _ := newTestApp(f)
	f.Fuzz(func(t *testing.T, body, path string) {
		a.replays = newReplayCache(a.maxAge) // each input is a first delivery
		req := signed(k, vectorTime, body)
		got, err := a.ParseChat(context.Background(), path, req)
		if err != nil {
			if !errors.Is(err, calls.ErrWebhookMalformed) && !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if got.Reply == nil {
			// Whatever parsed must be answerable.
			if _, err := a.ReplyChat(context.Background(), got, calls.ChatOutcome{}); err != nil {
				t.Fatal(err)
			}
			if got.Command != nil && got.Command.Kind == calls.CommandStart && len(got.Command.Title) > 4*calls.MaxTitleLength {
				t.Fatalf("title not bounded")
			}
		}
		// A changed body under the same signature is always refused.
		req.Body = append(req.Body, ' ')
		a.replays = newReplayCache(a.maxAge)
		if _, err := a.ParseChat(context.Background(), path, req); err == nil {
			t.Fatalf("altered body accepted")
		}
	})
}
