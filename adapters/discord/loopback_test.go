package discord

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/webhooks"
)

type stubRunner struct{ got []calls.ChatRequest }

func (r *stubRunner) RunChat(_ context.Context, chat string, req calls.ChatRequest) calls.ChatOutcome {
	r.got = append(r.got, req)
	if req.Command != nil && req.Command.Kind == calls.CommandStart {
		return calls.ChatOutcome{Call: calls.Call{ID: "call-1", Type: req.Command.Type, State: calls.StateCreated, Title: req.Command.Title}, Created: true}
	}
	return calls.ChatOutcome{}
}

// TestLoopbackIntake drives the adapter through the gateway's real chat
// intake over HTTP: Discord's PING, a refused probe (401), and /call with
// the personal link minted by the intake in the ephemeral answer, in the
// person's Discord locale (fr).
func TestLoopbackIntake(t *testing.T) {
	a, _, _ := newTestApp(t)
	signer, err := joinlink.NewSigner(nil, []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 1 << 20})
	runner := &stubRunner{}
	if err := webhooks.RegisterChats(srv.Echo, webhooks.ChatOptions{
		Chats: map[string]calls.ChatIntake{"disco": a}, Runner: runner,
		Links: joinlink.Links{PublicURL: "https://gw.test", Signer: signer}, PublicURL: "https://gw.test",
	}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Echo)
	defer ts.Close()
	k := privateKey(t, test1Seed)
	send := func(r calls.WebhookRequest) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/webhooks/chats/disco/interactions", strings.NewReader(string(r.Body)))
		req.Header = r.Header
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := send(signed(k, vectorTime, `{"id":"1","token":"t","type":1,"version":1}`)); code != 200 || body != `{"type":1}` {
		t.Fatalf("PING: %d %s", code, body)
	}
	probe := signed(privateKey(t, test2Seed), vectorTime, `{"id":"2","token":"t","type":1,"version":1}`)
	if code, _ := send(probe); code != 401 {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	code, body := send(signed(k, vectorTime, interaction(2, `{"name":"call","options":[{"type":1,"name":"start","options":[{"type":3,"name":"title","value":"Standup"}]}]}`)))
	if code != 200 || !strings.HasPrefix(body, `{"type":4,"data":{"content":"**Standup** · Démarrage…\nVotre lien personnel`) ||
		!strings.Contains(body, `https://gw.test/join/call-1?t=`) || !strings.HasSuffix(body, `"flags":64}}`) {
		t.Fatalf("/call: %d %s", code, body)
	}
	if len(runner.got) != 1 || runner.got[0].User.ID != "53908232506183680" || runner.got[0].Surface.Channel != "645027906669510667" {
		t.Fatalf("runner got %+v", runner.got)
	}
}
