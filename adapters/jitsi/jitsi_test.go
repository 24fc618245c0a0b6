package jitsi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/calls"
)

// The adapter must satisfy the domain's interface.
var _ calls.Provider = (*Provider)(nil)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const (
	testAppID     = "callgate"
	testAppSecret = "app-secret-0123456789abcdef0123456789"
	hookSecret    = "whsec-current"
	hookSecretOld = "whsec-previous"
)

func newProvider(t testing.TB, cfg Config) *Provider {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return p
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "self-hosted with token", cfg: Config{BaseURL: "https://meet.example.com/", AppID: "a", AppSecret: "s"}},
		{name: "http allowed", cfg: Config{BaseURL: "http://localhost:8000"}},
		{name: "relative", cfg: Config{BaseURL: "meet.example.com"}, wantErr: "absolute http or https"},
		{name: "other scheme", cfg: Config{BaseURL: "ftp://meet.example.com"}, wantErr: "absolute http or https"},
		{name: "no host", cfg: Config{BaseURL: "https:///room"}, wantErr: "no host"},
		{name: "unparsable", cfg: Config{BaseURL: "https://meet example.com/%zz"}, wantErr: "base_url"},
		{name: "user info", cfg: Config{BaseURL: "https://u:p@meet.example.com"}, wantErr: "user name or password"},
		{name: "query", cfg: Config{BaseURL: "https://meet.example.com/?x=1"}, wantErr: "query or fragment"},
		{name: "app id without secret", cfg: Config{AppID: "a"}, wantErr: "set together"},
		{name: "secret without app id", cfg: Config{AppSecret: "s"}, wantErr: "set together"},
		{name: "empty webhook secret", cfg: Config{WebhookSecrets: []string{"x", ""}}, wantErr: "webhook_secrets[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCreateRoom(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		callID  string
		wantURL string // prefix, before the random suffix
	}{
		{name: "public", base: "", callID: "call-123", wantURL: "https://meet.jit.si/call-123-"},
		{name: "self-hosted trailing slash", base: "https://meet.example.com/", callID: "abc", wantURL: "https://meet.example.com/abc-"},
		{name: "jaas tenant path", base: "https://8x8.vc/vpaas-magic-cookie-1234/", callID: "x_y", wantURL: "https://8x8.vc/vpaas-magic-cookie-1234/x_y-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, Config{BaseURL: tt.base})
			room, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: tt.callID, Type: calls.TypeVideo})
			if err != nil {
				t.Fatalf("CreateRoom: %v", err)
			}
			suffix, ok := strings.CutPrefix(room.Name, tt.callID+"-")
			if !ok || len(suffix) != roomSuffixLen {
				t.Fatalf("room name %q is not %q + \"-\" + %d random characters", room.Name, tt.callID, roomSuffixLen)
			}
			for _, r := range suffix {
				if !strings.ContainsRune("abcdefghjkmnpqrstuvwxyz23456789", r) {
					t.Fatalf("room suffix %q has %q outside the id alphabet", suffix, r)
				}
			}
			if room.URL != tt.wantURL+suffix {
				t.Fatalf("room URL = %q, want %q", room.URL, tt.wantURL+suffix)
			}
			again, err := p.CreateRoom(context.Background(), calls.RoomRequest{CallID: tt.callID})
			if err != nil {
				t.Fatalf("CreateRoom again: %v", err)
			}
			if again.Name == room.Name {
				t.Fatalf("two CreateRoom calls returned the same name %q; names must be fresh and random", room.Name)
			}
		})
	}
}

func TestCreateRoomErrors(t *testing.T) {
	p := newProvider(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: "c"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateRoom with cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := p.CreateRoom(context.Background(), calls.RoomRequest{}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("CreateRoom without call id = %v, want ErrInvalidInput", err)
	}
	if err := p.EndRoom(context.Background(), calls.Room{Name: "r"}); err != nil {
		t.Fatalf("EndRoom = %v, want nil (Jitsi cannot close rooms)", err)
	}
}

func TestCredentialPublic(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		room     string
		req      calls.CredentialRequest
		wantURL  string
		wantHost string
	}{
		{
			name:     "video participant without name",
			room:     "call-1-abcdefghjk",
			req:      calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleParticipant},
			wantURL:  "https://meet.jit.si/call-1-abcdefghjk",
			wantHost: "meet.jit.si",
		},
		{
			name:     "display name",
			room:     "r",
			req:      calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleOwner, Name: "Ada Lovelace"},
			wantURL:  "https://meet.jit.si/r#userInfo.displayName=%22Ada%20Lovelace%22",
			wantHost: "meet.jit.si",
		},
		{
			name:     "audio call",
			room:     "r",
			req:      calls.CredentialRequest{Type: calls.TypeAudio, Role: calls.RoleParticipant, Name: "Ada"},
			wantURL:  "https://meet.jit.si/r#config.startWithVideoMuted=true&userInfo.displayName=%22Ada%22",
			wantHost: "meet.jit.si",
		},
		{
			name:     "listener",
			room:     "r",
			req:      calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleListener},
			wantURL:  "https://meet.jit.si/r#config.startWithAudioMuted=true",
			wantHost: "meet.jit.si",
		},
		{
			name:     "audio listener",
			room:     "r",
			req:      calls.CredentialRequest{Type: calls.TypeAudio, Role: calls.RoleListener},
			wantURL:  "https://meet.jit.si/r#config.startWithVideoMuted=true&config.startWithAudioMuted=true",
			wantHost: "meet.jit.si",
		},
		{
			name:     "odd room name is path-escaped",
			base:     "https://meet.example.com:8443/",
			room:     "a b?c#d/e%f",
			req:      calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleParticipant},
			wantURL:  "https://meet.example.com:8443/a%20b%3Fc%23d%2Fe%25f",
			wantHost: "meet.example.com:8443",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, Config{BaseURL: tt.base})
			tt.req.TTL = 10 * time.Minute
			tt.req.IssuedAt = testNow
			cred, err := p.Credential(context.Background(), calls.Room{Name: tt.room}, tt.req)
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if cred.JoinURL != tt.wantURL {
				t.Fatalf("JoinURL = %q, want %q", cred.JoinURL, tt.wantURL)
			}
			if cred.Token != "" {
				t.Fatalf("public Jitsi got a token %q", cred.Token)
			}
			if !cred.ExpiresAt.Equal(testNow.Add(10 * time.Minute)) {
				t.Fatalf("ExpiresAt = %v, want IssuedAt+TTL", cred.ExpiresAt)
			}
			if cred.Fields["room"] != tt.room || cred.Fields["domain"] != tt.wantHost {
				t.Fatalf("Fields = %v, want room %q domain %q", cred.Fields, tt.room, tt.wantHost)
			}
			if _, ok := cred.Fields["jwt"]; ok {
				t.Fatalf("public Jitsi Fields carry a jwt: %v", cred.Fields)
			}
			// The escaped path must decode back to the room name.
			u, err := url.Parse(cred.JoinURL)
			if err != nil {
				t.Fatalf("JoinURL does not parse: %v", err)
			}
			if got := strings.TrimPrefix(u.Path, "/"); got != tt.room {
				t.Fatalf("URL path names room %q, want %q", got, tt.room)
			}
		})
	}
}

// jitsiFragment decodes a fragment the way jitsi-meet's parseURLParams does:
// split on "&" and "=", decodeURIComponent, typographic quotes to ASCII, then
// JSON.parse.
func jitsiFragment(t *testing.T, fragment string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, part := range strings.Split(fragment, "&") {
		kv := strings.Split(part, "=")
		if len(kv) != 2 {
			t.Fatalf("fragment part %q does not split into key=value: a value leaked a separator", part)
		}
		decoded, err := url.PathUnescape(kv[1])
		if err != nil {
			t.Fatalf("fragment value %q: %v", kv[1], err)
		}
		decoded = strings.NewReplacer("\u2018", "'", "\u2019", "'", "\u201c", `"`, "\u201d", `"`).Replace(decoded)
		var v any
		if err := json.Unmarshal([]byte(decoded), &v); err != nil {
			t.Fatalf("fragment value %q (%q) is not JSON: %v", kv[1], decoded, err)
		}
		out[kv[0]] = v
	}
	return out
}

func TestCredentialDisplayNameEscaping(t *testing.T) {
	names := []string{
		"Ada Lovelace",
		`Zoë & "Bob" = #1 / 100% + more`,
		"“Curly” ‘quotes’",
		"line\nbreak\ttab \\ backslash",
		"日本語の名前 🎉",
		`\&trick`,
	}
	p := newProvider(t, Config{})
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			cred, err := p.Credential(context.Background(), calls.Room{Name: "r"}, calls.CredentialRequest{
				Type: calls.TypeAudio, Role: calls.RoleListener, Name: name, TTL: time.Minute, IssuedAt: testNow,
			})
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			u, err := url.Parse(cred.JoinURL)
			if err != nil {
				t.Fatalf("JoinURL %q does not parse: %v", cred.JoinURL, err)
			}
			if u.RawQuery != "" || u.Path != "/r" {
				t.Fatalf("display name leaked out of the fragment: %q", cred.JoinURL)
			}
			got := jitsiFragment(t, u.EscapedFragment())
			want := map[string]any{
				"config.startWithVideoMuted": true,
				"config.startWithAudioMuted": true,
				"userInfo.displayName":       name,
			}
			if len(got) != len(want) {
				t.Fatalf("fragment params = %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("fragment %s = %#v, want %#v (URL %q)", k, got[k], v, cred.JoinURL)
				}
			}
		})
	}
}

func parseToken(t *testing.T, token, secret string, at time.Time) (jwt.MapClaims, *jwt.Token, error) {
	t.Helper()
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithTimeFunc(func() time.Time { return at }),
		jwt.WithExpirationRequired(),
	)
	return claims, tok, err
}

func TestCredentialToken(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		room          string
		req           calls.CredentialRequest
		wantModerator bool
		wantAud       string
		wantSub       string
		wantURLPrefix string
		wantFragment  string
	}{
		{
			name:          "owner is moderator",
			cfg:           Config{BaseURL: "https://meet.example.com", AppID: testAppID, AppSecret: testAppSecret},
			room:          "call-1-abcdefghjk",
			req:           calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleOwner, UserID: "u-ada", Name: "Ada Lovelace"},
			wantModerator: true,
			wantAud:       "jitsi",
			wantSub:       "meet.example.com",
			wantURLPrefix: "https://meet.example.com/call-1-abcdefghjk?jwt=",
		},
		{
			name:          "panelist is moderator",
			cfg:           Config{BaseURL: "https://meet.example.com", AppID: testAppID, AppSecret: testAppSecret},
			room:          "r",
			req:           calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RolePanelist, UserID: "u-2", Name: "Bo"},
			wantModerator: true,
			wantAud:       "jitsi",
			wantSub:       "meet.example.com",
			wantURLPrefix: "https://meet.example.com/r?jwt=",
		},
		{
			name:          "participant is not moderator",
			cfg:           Config{BaseURL: "https://meet.example.com", AppID: testAppID, AppSecret: testAppSecret},
			room:          "r",
			req:           calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleParticipant, UserID: "u-3", Name: "Cy"},
			wantModerator: false,
			wantAud:       "jitsi",
			wantSub:       "meet.example.com",
			wantURLPrefix: "https://meet.example.com/r?jwt=",
		},
		{
			name:          "audio call, custom audience and subject, port",
			cfg:           Config{BaseURL: "https://meet.example.com:8443", AppID: testAppID, AppSecret: testAppSecret, Audience: "aud-x", Subject: "*"},
			room:          "r",
			req:           calls.CredentialRequest{Type: calls.TypeAudio, Role: calls.RoleParticipant, UserID: "u-4", Name: "Di"},
			wantModerator: false,
			wantAud:       "aud-x",
			wantSub:       "*",
			wantURLPrefix: "https://meet.example.com:8443/r?jwt=",
			wantFragment:  "config.startWithVideoMuted=true",
		},
		{
			name:          "listener, odd room name, default subject drops the port",
			cfg:           Config{BaseURL: "https://meet.example.com:8443/", AppID: testAppID, AppSecret: testAppSecret},
			room:          "a b?c",
			req:           calls.CredentialRequest{Type: calls.TypeVideo, Role: calls.RoleListener, UserID: "u-5", Name: "Ed & Co"},
			wantModerator: false,
			wantAud:       "jitsi",
			wantSub:       "meet.example.com",
			wantURLPrefix: "https://meet.example.com:8443/a%20b%3Fc?jwt=",
			wantFragment:  "config.startWithAudioMuted=true",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, tt.cfg)
			tt.req.TTL = 30 * time.Minute
			tt.req.IssuedAt = testNow
			cred, err := p.Credential(context.Background(), calls.Room{Name: tt.room}, tt.req)
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if cred.Token == "" {
				t.Fatal("token auth minted no token")
			}
			wantURL := tt.wantURLPrefix + cred.Token
			if tt.wantFragment != "" {
				wantURL += "#" + tt.wantFragment
			}
			if cred.JoinURL != wantURL {
				t.Fatalf("JoinURL = %q, want %q", cred.JoinURL, wantURL)
			}
			if cred.Fields["jwt"] != cred.Token || cred.Fields["room"] != tt.room || cred.Fields["domain"] == "" {
				t.Fatalf("Fields = %v", cred.Fields)
			}
			if !cred.ExpiresAt.Equal(testNow.Add(30 * time.Minute)) {
				t.Fatalf("ExpiresAt = %v, want IssuedAt+TTL", cred.ExpiresAt)
			}

			claims, tok, err := parseToken(t, cred.Token, testAppSecret, testNow.Add(time.Minute))
			if err != nil {
				t.Fatalf("token does not verify with the app secret: %v", err)
			}
			if tok.Header["typ"] != "JWT" || tok.Header["alg"] != "HS256" {
				t.Fatalf("header = %v, want typ JWT alg HS256", tok.Header)
			}
			want := map[string]any{
				"iss":  testAppID,
				"aud":  tt.wantAud, // a plain string, not an array
				"sub":  tt.wantSub,
				"room": tt.room,
				"iat":  float64(testNow.Unix()),
				"nbf":  float64(testNow.Add(-clockSkew).Unix()),
				"exp":  float64(testNow.Add(30 * time.Minute).Unix()),
			}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("claim %s = %#v, want %#v", k, claims[k], v)
				}
			}
			ctxClaim, _ := claims["context"].(map[string]any)
			user, _ := ctxClaim["user"].(map[string]any)
			if user == nil {
				t.Fatalf("claims have no context.user: %v", claims)
			}
			if user["id"] != tt.req.UserID || user["name"] != tt.req.Name || user["moderator"] != tt.wantModerator {
				t.Fatalf("context.user = %v, want id %q name %q moderator %v", user, tt.req.UserID, tt.req.Name, tt.wantModerator)
			}
			if len(claims) != 8 {
				t.Fatalf("claims = %v, want exactly iss aud sub room iat nbf exp context", claims)
			}

			if _, _, err := parseToken(t, cred.Token, "not-the-secret", testNow.Add(time.Minute)); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Fatalf("token verified with a wrong secret: err = %v", err)
			}
			if _, _, err := parseToken(t, cred.Token, testAppSecret, testNow.Add(31*time.Minute)); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Fatalf("token still valid after its TTL: err = %v", err)
			}
			// nbf is back-dated for clock skew: a server a few seconds behind
			// accepts it.
			if _, _, err := parseToken(t, cred.Token, testAppSecret, testNow.Add(-5*time.Second)); err != nil {
				t.Fatalf("token rejected by a server 5 s behind: %v", err)
			}
			// With a token the name travels in the JWT, not in the fragment.
			if strings.Contains(cred.JoinURL, "displayName") {
				t.Fatalf("token link also carries a display name: %q", cred.JoinURL)
			}
		})
	}
}

func TestCredentialDefaultsAndErrors(t *testing.T) {
	p := newProvider(t, Config{AppID: testAppID, AppSecret: testAppSecret})

	cred, err := p.Credential(context.Background(), calls.Room{Name: "r"}, calls.CredentialRequest{UserID: "u", Role: calls.RoleParticipant})
	if err != nil {
		t.Fatalf("Credential: %v", err)
	}
	if !cred.ExpiresAt.Equal(testNow.Add(defaultTTL)) {
		t.Fatalf("zero TTL and IssuedAt: ExpiresAt = %v, want now+%s", cred.ExpiresAt, defaultTTL)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Credential(ctx, calls.Room{Name: "r"}, calls.CredentialRequest{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v, want context.Canceled", err)
	}
	if _, err := p.Credential(context.Background(), calls.Room{}, calls.CredentialRequest{}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("room without name: err = %v, want ErrInvalidInput", err)
	}
	if _, err := p.Credential(context.Background(), calls.Room{Name: "r"}, calls.CredentialRequest{TTL: -time.Second}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Fatalf("negative TTL: err = %v, want ErrInvalidInput", err)
	}
}

// --- webhooks ---

// jaasSign computes the X-Jaas-Signature header exactly as JaaS documents it:
// base64(HMAC-SHA256(secret, t + "." + body)).
func jaasSign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	return "t=" + ts + ",v1=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func hookRequest(header string, body []byte) calls.WebhookRequest {
	h := http.Header{}
	if header != "" {
		h.Set(SignatureHeader, header)
	}
	return calls.WebhookRequest{URL: "https://callgate.example.com/hooks/jitsi", Header: h, Body: body}
}

// sampleBody is the ROOM_CREATED example from the JaaS payload docs, kept in
// the vectors file (copied from the project's shared vectors).
func sampleBody(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/jitsi.json")
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var v struct {
		Sample struct {
			Body json.RawMessage `json:"body"`
		} `json:"jaas_webhook_sample"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("vectors: %v", err)
	}
	if len(v.Sample.Body) == 0 {
		t.Fatal("vectors have no jaas_webhook_sample.body")
	}
	return v.Sample.Body
}

const (
	joinedBody = `{"idempotencyKey":"5f1c8d7e-join","customerId":"c2824d584eac4489a1e32e4e164d5a3c","appId":"vpaas-magic-cookie-c2824d584eac4489a1e32e4e164d5a3c","eventType":"PARTICIPANT_JOINED","sessionId":"c3348153-1027-4382-afad-5ae91b433c26","timestamp":1600951801000,"fqn":"vpaas-magic-cookie-c2824d584eac4489a1e32e4e164d5a3c/call-123-abcdefghjk","data":{"moderator":"true","name":"Ada Lovelace","group":"","email":"ada@example.com","id":"u-ada","participantJid":"ada@stage.8x8.vc/abc","participantId":"b3c1a2d4","avatar":"https://example.com/a.png"}}`
	leftBody   = `{"idempotencyKey":"5f1c8d7e-left","customerId":"c","appId":"vpaas-magic-cookie-x","eventType":"PARTICIPANT_LEFT","sessionId":"s","timestamp":1600951802000,"fqn":"vpaas-magic-cookie-x/call-123-abcdefghjk","data":{"moderator":false,"name":"Guest","participantJid":"guest@x/1","participantId":"p-guest","disconnectReason":"left"}}`
)

func TestParseWebhookEvents(t *testing.T) {
	type want struct {
		kind     calls.ProviderEventKind
		delivery string
		room     string
		identity string
		name     string
		seq      int64
	}
	tests := []struct {
		name string
		body func(testing.TB) []byte
		want []want // nil: no events
	}{
		{
			name: "JaaS docs sample ROOM_CREATED",
			body: sampleBody,
			want: []want{{kind: calls.ProviderRoomStarted, delivery: "d11f155d-ced5-4a7e-b6d9-aaa135c64f65", room: "testroom2", seq: 1600951800112}},
		},
		{
			name: "PARTICIPANT_JOINED with a JWT user id",
			body: func(testing.TB) []byte { return []byte(joinedBody) },
			want: []want{{kind: calls.ProviderParticipantJoined, delivery: "5f1c8d7e-join", room: "call-123-abcdefghjk", identity: "u-ada", name: "Ada Lovelace", seq: 1600951801000}},
		},
		{
			name: "PARTICIPANT_LEFT by a guest falls back to participantId",
			body: func(testing.TB) []byte { return []byte(leftBody) },
			want: []want{{kind: calls.ProviderParticipantLeft, delivery: "5f1c8d7e-left", room: "call-123-abcdefghjk", identity: "p-guest", name: "Guest", seq: 1600951802000}},
		},
		{
			name: "ROOM_DESTROYED",
			body: func(testing.TB) []byte {
				return []byte(`{"idempotencyKey":"k-end","eventType":"ROOM_DESTROYED","timestamp":1600951900000,"fqn":"app/room-1","data":{"conference":"room-1@conference.app.8x8.vc"}}`)
			},
			want: []want{{kind: calls.ProviderRoomEnded, delivery: "k-end", room: "room-1", seq: 1600951900000}},
		},
		{
			name: "breakout room created is ignored",
			body: func(testing.TB) []byte {
				return []byte(`{"idempotencyKey":"k","eventType":"ROOM_CREATED","timestamp":1,"fqn":"app/room-1","data":{"isBreakout":true,"breakoutRoomId":"b1"}}`)
			},
		},
		{
			name: "switching to a breakout room is not a leave",
			body: func(testing.TB) []byte {
				return []byte(`{"idempotencyKey":"k","eventType":"PARTICIPANT_LEFT","timestamp":1,"fqn":"app/room-1","data":{"id":"u","participantId":"p","disconnectReason":"switch_room"}}`)
			},
		},
		{
			name: "other event types give no events",
			body: func(testing.TB) []byte {
				return []byte(`{"idempotencyKey":"k","eventType":"RECORDING_UPLOADED","timestamp":1,"fqn":"app/room-1","data":{"preAuthenticatedLink":"https://x"}}`)
			},
		},
	}
	p := newProvider(t, Config{WebhookSecrets: []string{hookSecret}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body(t)
			got, err := p.parseWebhook(context.Background(), hookRequest(jaasSign(hookSecret, testNow, body), body))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if got == nil {
				t.Fatal("ParseWebhook returned a nil slice; want an empty one when there is nothing to report")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				e := got[i]
				if e.Kind != w.kind || e.DeliveryID != w.delivery || e.Room != w.room || e.Identity != w.identity || e.Name != w.name || e.Seq != w.seq {
					t.Fatalf("event = %+v, want %+v", e, w)
				}
				if !e.At.Equal(time.UnixMilli(w.seq)) {
					t.Fatalf("At = %v, want the body timestamp %v", e.At, time.UnixMilli(w.seq))
				}
			}
		})
	}
}

func TestParseWebhookRejects(t *testing.T) {
	body := []byte(joinedBody)
	signed := func(secret string, at time.Time) string { return jaasSign(secret, at, body) }
	good := signed(hookSecret, testNow)
	_, goodSig, _ := strings.Cut(good, ",")

	tests := []struct {
		name    string
		secrets []string
		header  string
		body    []byte
		rawHdr  http.Header // when set, used instead of header
		wantErr error       // nil: accepted
	}{
		{name: "valid", header: good},
		{name: "previous secret during rotation", header: signed(hookSecretOld, testNow)},
		{name: "4 minutes old is inside the window", header: signed(hookSecret, testNow.Add(-4*time.Minute))},
		{name: "several v1, one valid", header: good + ",v1=" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ",v1=%%%"},
		{name: "spaces and unknown schemes", header: " " + strings.ReplaceAll(good, ",", " , v2=abc, ")},
		{name: "lower-case header key", rawHdr: http.Header{"x-jaas-signature": {good}}},
		{name: "tampered body", header: good, body: []byte(strings.Replace(joinedBody, "u-ada", "u-eve", 1)), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "unknown secret", header: signed("whsec-attacker", testNow), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "stale timestamp", header: signed(hookSecret, testNow.Add(-6*time.Minute)), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "future timestamp", header: signed(hookSecret, testNow.Add(6*time.Minute)), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "signature replayed with a fresh t", header: "t=" + strconv.FormatInt(testNow.Unix()+1, 10) + "," + goodSig, wantErr: calls.ErrWebhookUnauthenticated},
		{name: "missing header", header: "", wantErr: calls.ErrWebhookUnauthenticated},
		{name: "v0 only", header: strings.Replace(good, "v1=", "v0=", 1), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "no timestamp", header: goodSig, wantErr: calls.ErrWebhookUnauthenticated},
		{name: "two timestamps", header: good + ",t=1", wantErr: calls.ErrWebhookUnauthenticated},
		{name: "garbled header", header: "garbage", wantErr: calls.ErrWebhookUnauthenticated},
		{name: "non-numeric timestamp", header: "t=soon," + goodSig, wantErr: calls.ErrWebhookUnauthenticated},
		{name: "hex instead of base64", header: "t=" + strconv.FormatInt(testNow.Unix(), 10) + ",v1=" + strings.Repeat("ab", 32), wantErr: calls.ErrWebhookUnauthenticated},
		{name: "no secret configured", secrets: []string{}, header: good, wantErr: calls.ErrWebhookUnauthenticated},
		{name: "malformed JSON", body: []byte(`{"eventType":`), wantErr: calls.ErrWebhookMalformed},
		{name: "not an object", body: []byte(`[1,2]`), wantErr: calls.ErrWebhookMalformed},
		{name: "missing eventType", body: []byte(`{"idempotencyKey":"k","fqn":"app/room"}`), wantErr: calls.ErrWebhookMalformed},
		{name: "missing fqn", body: []byte(`{"idempotencyKey":"k","eventType":"ROOM_CREATED"}`), wantErr: calls.ErrWebhookMalformed},
		{name: "fqn without room", body: []byte(`{"idempotencyKey":"k","eventType":"ROOM_CREATED","fqn":"app/"}`), wantErr: calls.ErrWebhookMalformed},
		{name: "fqn without slash", body: []byte(`{"idempotencyKey":"k","eventType":"ROOM_CREATED","fqn":"room"}`), wantErr: calls.ErrWebhookMalformed},
		{name: "participant without identity", body: []byte(`{"idempotencyKey":"k","eventType":"PARTICIPANT_JOINED","fqn":"app/room","data":{"name":"x"}}`), wantErr: calls.ErrWebhookMalformed},
		{name: "timestamp of the wrong type", body: []byte(`{"idempotencyKey":"k","eventType":"ROOM_CREATED","fqn":"app/r","timestamp":"soon"}`), wantErr: calls.ErrWebhookMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{hookSecret, hookSecretOld}
			}
			p := newProvider(t, Config{WebhookSecrets: secrets})
			b, header := body, tt.header
			if tt.body != nil {
				b = tt.body
				if tt.wantErr == calls.ErrWebhookMalformed {
					// Malformed bodies are signed correctly: only the body is wrong.
					header = jaasSign(hookSecret, testNow, b)
				}
			}
			req := hookRequest(header, b)
			if tt.rawHdr != nil {
				req.Header = tt.rawHdr
			}
			events, err := p.parseWebhook(context.Background(), req)
			if tt.wantErr == nil {
				if err != nil || len(events) != 1 {
					t.Fatalf("ParseWebhook = %v, %v; want one event", events, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseWebhook error = %v, want %v", err, tt.wantErr)
			}
			if events != nil {
				t.Fatalf("rejected webhook still produced events %v", events)
			}
			for _, s := range []string{hookSecret, hookSecretOld} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error message leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestParseWebhookCancelled(t *testing.T) {
	p := newProvider(t, Config{WebhookSecrets: []string{hookSecret}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := []byte(joinedBody)
	if _, err := p.parseWebhook(ctx, hookRequest(jaasSign(hookSecret, testNow, body), body)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func BenchmarkCredentialToken(b *testing.B) {
	p := newProvider(b, Config{BaseURL: "https://meet.example.com", AppID: testAppID, AppSecret: testAppSecret})
	room := calls.Room{Name: "call-123-abcdefghjk"}
	req := calls.CredentialRequest{Type: calls.TypeAudio, Role: calls.RoleOwner, UserID: "u-ada", Name: "Ada Lovelace", TTL: time.Hour, IssuedAt: testNow}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Credential(ctx, room, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseWebhook(b *testing.B) {
	p := newProvider(b, Config{WebhookSecrets: []string{hookSecret, hookSecretOld}})
	body := []byte(joinedBody)
	// Signed with the older secret, so every delivery tries both.
	req := hookRequest(jaasSign(hookSecretOld, testNow, body), body)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.parseWebhook(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
