package slack

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

func installApp(t *testing.T, f *fakeSlack) (*App, *memInstalls) {
	return newTestApp(t, func(s *Settings) {
		s.BotToken = ""
		s.ClientID, s.ClientSecret, s.TokenEncryptionKey = "111.222", "client-secret-value", testKeyB64
		s.APIURL = f.GetAPIURL()
	})
}

func get(path, rawURL string) calls.WebhookRequest {
	return calls.WebhookRequest{Method: "GET", URL: rawURL}
}

// TestInstallFlow: install sends the browser to Slack's authorize URL with
// the scopes and a signed state; the callback exchanges the code and
// stores the bot token sealed; forged, altered and expired states are
// refused; the stored token works for PostCard in that workspace only.
func TestInstallFlow(t *testing.T) {
	f := newFakeSlack(t)
	a, store := installApp(t, f)
	req, err := a.ParseChat(context.Background(), "install", get("install", "https://gw.example/webhooks/chats/slack/install"))
	if err != nil {
		t.Fatal(err)
	}
	if req.Reply == nil || !strings.HasPrefix(req.Reply.ContentType, "text/html") || req.Reply.Status != http.StatusFound ||
		!strings.HasPrefix(req.Reply.Header.Get("Location"), AuthorizeURL+"?") {
		t.Fatalf("install reply %+v", req.Reply)
	}
	m := regexp.MustCompile(`href="([^"]+)"`).FindSubmatch(req.Reply.Body)
	if m == nil {
		t.Fatalf("no link: %s", req.Reply.Body)
	}
	auth, err := url.Parse(strings.ReplaceAll(string(m[1]), "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	q := auth.Query()
	if auth.Host != "slack.com" || auth.Path != "/oauth/v2/authorize" || q.Get("client_id") != "111.222" ||
		q.Get("scope") != "commands,chat:write,calls:write,calls:read,im:write,users:read" ||
		q.Get("redirect_uri") != "https://gw.example/webhooks/chats/slack/oauth" {
		t.Fatalf("authorize URL %s", auth)
	}
	state := q.Get("state")

	callback := func(state, code string) (calls.ChatRequest, error) {
		v := url.Values{"state": {state}, "code": {code}}
		return a.ParseChat(context.Background(), "oauth", get("oauth", "https://gw.example/webhooks/chats/slack/oauth?"+v.Encode()))
	}
	// Refused states: nothing is exchanged, nothing stored.
	p64, mac, _ := strings.Cut(state, ".")
	flip := "A"
	if p64[5] == 'A' {
		flip = "B"
	}
	forged := []string{"", "x", p64 + ".AAAA", p64[:5] + flip + p64[6:] + "." + mac, strings.Replace(state, ".", "", 1)}
	for _, s := range forged {
		if _, err := callback(s, "code-1"); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
			t.Fatalf("state %q: %v", s, err)
		}
	}
	a.now = func() time.Time { return testNow.Add(StateTTL + time.Second) }
	if _, err := callback(state, "code-1"); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("expired state: %v", err)
	}
	other, _ := newTestApp(t, func(s *Settings) {
		s.BotToken = ""
		s.ClientID, s.ClientSecret, s.TokenEncryptionKey = "1", "2", strings.Repeat("ab", 32)
	})
	if err := other.checkState(state); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("another app's key accepted the state: %v", err)
	}
	if n := len(f.calls()); n != 0 {
		t.Fatalf("%d calls to Slack for refused states", n)
	}
	a.now = func() time.Time { return testNow }

	req, err = callback(state, "code-1")
	if err != nil {
		t.Fatal(err)
	}
	if req.Reply == nil || req.Reply.Status != 200 || !strings.Contains(string(req.Reply.Body), "installed in <b>Nine &lt;b&gt;</b>") {
		t.Fatalf("installed page %+v %s", req.Reply, req.Reply.Body)
	}
	ex := f.calls()[0]
	if ex.Method != "oauth.v2.access" || ex.Form.Get("code") != "code-1" || ex.Form.Get("client_id") != "111.222" ||
		ex.Form.Get("client_secret") != "client-secret-value" || ex.Form.Get("redirect_uri") != "https://gw.example/webhooks/chats/slack/oauth" {
		t.Fatalf("exchange %+v", ex)
	}
	in, err := store.GetInstallation(context.Background(), "slack", "T9")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(in.Secret, []byte("xoxb")) || bytes.Contains(in.Secret, []byte("installed-secret")) {
		t.Fatal("the token is stored in the clear")
	}
	if in.Data["bot_user_id"] != "UBOT" || !in.UpdatedAt.Equal(testNow) {
		t.Fatalf("installation %+v", in)
	}

	// PostCard in T9 uses the unsealed token; in T1 (not installed) it is
	// permanent, naming the install URL.
	d := delivery(testCall(), "")
	d.Surface.Workspace = "T9"
	if _, err := a.PostCard(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if tok := f.calls()[1].Form.Get("token"); tok != "xoxb-installed-secret-token" {
		t.Fatalf("posted with %q", tok)
	}
	d.Surface.Workspace = "T1"
	var pe *calls.PermanentError
	if _, err := a.PostCard(context.Background(), d); !errors.As(err, &pe) || !strings.Contains(pe.Reason, "/webhooks/chats/slack/install") {
		t.Fatalf("uninstalled workspace: %v", err)
	}
	// A sealed token moved to another workspace does not open.
	_ = store.PutInstallation(context.Background(), calls.Installation{Chat: "slack", Workspace: "T1", Secret: in.Secret})
	if _, err := a.PostCard(context.Background(), d); !errors.As(err, &pe) {
		t.Fatalf("moved token opened: %v", err)
	}
}

func TestInstallRefusals(t *testing.T) {
	a, _ := newTestApp(t, nil) // bot_token: one workspace, no installs
	for _, path := range []string{"install", "oauth"} {
		if _, err := a.ParseChat(context.Background(), path, get(path, "https://gw.example/x")); !errors.Is(err, calls.ErrWebhookMalformed) {
			t.Fatalf("%s on a single-workspace app: %v", path, err)
		}
	}
	f := newFakeSlack(t)
	b, _ := installApp(t, f)
	if _, err := b.ParseChat(context.Background(), "install", calls.WebhookRequest{Method: "POST"}); !errors.Is(err, calls.ErrWebhookMalformed) {
		t.Fatalf("POST install: %v", err)
	}
	// The user declined at Slack: a page, nothing exchanged.
	st, _ := b.newState()
	req, err := b.ParseChat(context.Background(), "oauth", get("oauth", "https://gw.example/x?error=access_denied&state="+url.QueryEscape(st)))
	if err != nil || req.Reply == nil || !strings.Contains(string(req.Reply.Body), "access_denied") || len(f.calls()) != 0 {
		t.Fatalf("declined: %+v %v", req.Reply, err)
	}
}

func TestSeal(t *testing.T) {
	f := newFakeSlack(t)
	a, _ := installApp(t, f)
	s1, _ := a.seal("T1", []byte("xoxb-1"))
	s2, _ := a.seal("T1", []byte("xoxb-1"))
	if bytes.Equal(s1, s2) {
		t.Fatal("sealing is deterministic")
	}
	if got, err := a.unseal("T1", s1); err != nil || string(got) != "xoxb-1" {
		t.Fatalf("%q %v", got, err)
	}
	s1[len(s1)-1] ^= 1
	if _, err := a.unseal("T1", s1); err == nil {
		t.Fatal("tampered token opened")
	}
}
