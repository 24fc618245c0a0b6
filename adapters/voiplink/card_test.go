package voiplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// received is one request the fake app got.
type received struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// fakeApp is a chat app's callback endpoint on loopback that answers with
// the scripted responses in turn (the last one repeats).
type fakeApp struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	answers []func(w http.ResponseWriter, r *http.Request)
}

func newFakeApp(t *testing.T, answers ...func(w http.ResponseWriter, r *http.Request)) *fakeApp {
	t.Helper()
	f := &fakeApp{answers: answers}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, received{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		f.mu.Unlock()
		answer := f.answers[min(n, len(f.answers)-1)]
		answer(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeApp) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

func status(code int, headers ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
	}
}

func answerJSON(code int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// appFor builds the gateway side pointing at the fake app; the callback URL
// carries a token in its query, which no error may repeat.
func appFor(t *testing.T, f *fakeApp, timeout time.Duration) *App {
	t.Helper()
	s := testSettings()
	s.CallbackURL = f.URL + "/callgate?token=query-token-must-not-leak"
	if timeout > 0 {
		s.Timeout = timeout
	}
	return newApp(t, s)
}

func testCall() calls.Call {
	return calls.Call{
		ID:        "call-1",
		Type:      calls.TypeVideo,
		State:     calls.StateActive,
		Provider:  "jitsi",
		Title:     "Standup",
		CreatedBy: "u-7",
		Members:   []calls.Member{{UserID: "u-7", Role: calls.RoleOwner}, {UserID: "bob", Role: calls.RoleParticipant}},
		Participants: []calls.Participant{
			{Identity: "u-7", Name: "Ada", JoinedAt: testNow.Add(-4 * time.Minute)},
		},
		CreatedAt: testNow.Add(-10 * time.Minute),
		UpdatedAt: testNow.Add(-time.Minute),
		Version:   4,
	}
}

func testDelivery() calls.CardDelivery {
	c := testCall()
	s := calls.Surface{Chat: "acme", Channel: "conv-42"}
	return calls.CardDelivery{
		Call:       c,
		Surface:    s,
		Version:    c.Version,
		DeliveryID: calls.DeliveryID(c.ID, s.Key(), c.Version),
		JoinURL:    "https://gw.example/join/call-1",
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("bad expected JSON: %v\n%s", err, s)
	}
	return b.String()
}

const wantCallJSON = `{
	"id": "call-1", "type": "video", "state": "active", "title": "Standup", "provider": "jitsi", "created_by": "u-7",
	"members": [{"user_id": "u-7", "role": "owner"}, {"user_id": "bob", "role": "participant"}],
	"participants": [{"identity": "u-7", "name": "Ada", "joined_at": "2026-03-14T15:05:26Z"}],
	"created_at": "2026-03-14T14:59:26Z", "updated_at": "2026-03-14T15:08:26Z"
}`

func TestPostCardRequest(t *testing.T) {
	f := newFakeApp(t, answerJSON(200, `{"message_id":"msg-1"}`))
	a := appFor(t, f, 0)
	d := testDelivery()
	ref, err := a.PostCard(context.Background(), d)
	if err != nil {
		t.Fatalf("PostCard: %v", err)
	}
	if ref != "msg-1" {
		t.Fatalf("messageRef = %q, want the app's message_id", ref)
	}
	got := f.requests()
	if len(got) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || r.Path != "/callgate" || r.RawQuery != "token=query-token-must-not-leak" {
		t.Fatalf("request = %s %s?%s", r.Method, r.Path, r.RawQuery)
	}
	want := compact(t, `{
		"delivery_id": "`+d.DeliveryID+`",
		"conversation_id": "conv-42",
		"version": 4,
		"parts": [{"mime_type": "application/voip-link", "body": "https://gw.example/join/call-1"}],
		"call": `+wantCallJSON+`
	}`)
	if string(r.Body) != want {
		t.Fatalf("body =\n%s\nwant\n%s", r.Body, want)
	}
	for h, v := range map[string]string{
		"Content-Type":  "application/json",
		HeaderTimestamp: "1773500966",
		HeaderDelivery:  d.DeliveryID,
		HeaderVersion:   "4",
	} {
		if r.Header.Get(h) != v {
			t.Errorf("%s = %q, want %q", h, r.Header.Get(h), v)
		}
	}
	// The app verifies the signature as the README tells it to, with the
	// current secret only.
	if err := Verify(r.Header, r.Body, testNow.Add(2*time.Second), 5*time.Minute, []byte(testSecret)); err != nil {
		t.Fatalf("the app cannot verify the callback: %v", err)
	}
	if err := Verify(r.Header, r.Body, testNow, 5*time.Minute, []byte(testPrevSecret)); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("callback verified with the previous secret: %v", err)
	}
	if err := Verify(r.Header, append(r.Body, ' '), testNow, 5*time.Minute, []byte(testSecret)); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
		t.Fatalf("altered callback verified: %v", err)
	}
}

func TestPostCardEndedCallAndMessageID(t *testing.T) {
	f := newFakeApp(t, status(204))
	a := appFor(t, f, 0)
	d := testDelivery()
	ended := testNow.Add(-30 * time.Second)
	d.Call.State, d.Call.EndedAt, d.Call.EndReason, d.Call.Participants = calls.StateEnded, &ended, "hung_up", nil
	d.Call.Version, d.Version = 7, 7
	d.DeliveryID = calls.DeliveryID(d.Call.ID, d.Surface.Key(), 7)
	d.Surface.Delivery.MessageRef = "msg-1"
	ref, err := a.PostCard(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if ref != "msg-1" {
		t.Fatalf("messageRef = %q, want the one kept from before", ref)
	}
	var cb Callback
	if err := json.Unmarshal(f.requests()[0].Body, &cb); err != nil {
		t.Fatal(err)
	}
	if cb.MessageID != "msg-1" || cb.Version != 7 || cb.Call.State != "ended" || cb.Call.EndReason != "hung_up" ||
		cb.Call.EndedAt == nil || !cb.Call.EndedAt.Equal(ended) || cb.Call.Participants == nil || len(cb.Call.Participants) != 0 {
		t.Fatalf("callback = %+v", cb)
	}
}

func TestPostCardMessageRef(t *testing.T) {
	tests := []struct {
		name, answer, kept, want string
	}{
		{name: "string id", answer: `{"message_id":"m-9"}`, want: "m-9"},
		{name: "number id", answer: `{"message_id":12345678901234567890}`, want: "12345678901234567890"},
		{name: "no id, none kept", answer: `{"ok":true}`, want: ""},
		{name: "no id, one kept", answer: `{}`, kept: "m-1", want: "m-1"},
		{name: "not JSON", answer: `thanks`, kept: "m-1", want: "m-1"},
		{name: "unusable id", answer: `{"message_id":"a\u0000b"}`, kept: "m-1", want: "m-1"},
		{name: "new id replaces", answer: `{"message_id":"m-2"}`, kept: "m-1", want: "m-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeApp(t, answerJSON(200, tt.answer))
			a := appFor(t, f, 0)
			d := testDelivery()
			d.Surface.Delivery.MessageRef = tt.kept
			ref, err := a.PostCard(context.Background(), d)
			if err != nil || ref != tt.want {
				t.Fatalf("PostCard = %q, %v; want %q", ref, err, tt.want)
			}
		})
	}
}

func TestPostCardErrors(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter, r *http.Request)
		temporary  bool
		retryAfter time.Duration
		reason     string // the PermanentError's reason, or a part of the TemporaryError's message
	}{
		{name: "500", answer: answerJSON(500, `{"error":"db down"}`), temporary: true, reason: "failed (HTTP 500)"},
		{name: "503 with Retry-After", answer: status(503, "Retry-After", "7"), temporary: true, retryAfter: 7 * time.Second, reason: "HTTP 503"},
		{name: "429 seconds", answer: status(429, "Retry-After", "2"), temporary: true, retryAfter: 2 * time.Second, reason: "rate limiting cards (HTTP 429)"},
		{name: "429 HTTP date", answer: status(429, "Retry-After", testNow.Add(30*time.Second).Format(http.TimeFormat)), temporary: true, retryAfter: 30 * time.Second},
		{name: "429 date in the past", answer: status(429, "Retry-After", testNow.Add(-time.Hour).Format(http.TimeFormat)), temporary: true},
		{name: "429 huge", answer: status(429, "Retry-After", "99999999999999"), temporary: true, retryAfter: maxRetryAfter},
		{name: "429 garbage", answer: status(429, "Retry-After", "soon"), temporary: true},
		{name: "429 none", answer: status(429), temporary: true},
		{name: "408", answer: status(408), temporary: true},
		{name: "401", answer: answerJSON(401, `{"error":"bad signature"}`), reason: "the app at HOST refused the card (HTTP 401)"},
		{name: "404", answer: status(404), reason: "the app at HOST refused the card (HTTP 404)"},
		{name: "413", answer: status(413), reason: "the app at HOST refused the card (HTTP 413)"},
		{name: "302", answer: status(302, "Location", "/elsewhere"), reason: "the app at HOST answered with a redirect (HTTP 302): set callback_url to the final address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeApp(t, tt.answer)
			a := appFor(t, f, 0)
			_, err := a.PostCard(context.Background(), testDelivery())
			checkPostError(t, err, a.host, tt.temporary, tt.retryAfter, strings.ReplaceAll(tt.reason, "HOST", a.host))
			if n := len(f.requests()); n != 1 {
				t.Fatalf("the app got %d requests, want 1 (retries are the outbox's)", n)
			}
		})
	}
}

func checkPostError(t *testing.T, err error, host string, temporary bool, retryAfter time.Duration, reason string) {
	t.Helper()
	if err == nil {
		t.Fatal("PostCard succeeded, want an error")
	}
	var te *calls.TemporaryError
	var pe *calls.PermanentError
	switch {
	case temporary && !errors.As(err, &te):
		t.Fatalf("error = %v (%T), want TemporaryError", err, err)
	case temporary && te.RetryAfter != retryAfter:
		t.Fatalf("RetryAfter = %v, want %v", te.RetryAfter, retryAfter)
	case temporary && !strings.Contains(err.Error(), reason):
		t.Fatalf("error = %q, want it to say %q", err, reason)
	case !temporary && !errors.As(err, &pe):
		t.Fatalf("error = %v (%T), want PermanentError", err, err)
	case !temporary && pe.Reason != reason:
		t.Fatalf("Reason = %q, want %q", pe.Reason, reason)
	}
	if !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name the host %s", err, host)
	}
	for _, leak := range []string{"query-token-must-not-leak", "/callgate", testSecret, testPrevSecret} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q leaks %q", err, leak)
		}
	}
}

func TestPostCardNetworkErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		f := newFakeApp(t, status(200))
		a := appFor(t, f, 0)
		f.Close()
		_, err := a.PostCard(context.Background(), testDelivery())
		checkPostError(t, err, a.host, true, 0, "posting the card to the app at "+a.host)
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeApp(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		a := appFor(t, f, 100*time.Millisecond)
		start := time.Now()
		_, err := a.PostCard(context.Background(), testDelivery())
		checkPostError(t, err, a.host, true, 0, "posting the card to the app at "+a.host)
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the timeout setting was not applied")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		f := newFakeApp(t, status(200))
		a := appFor(t, f, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := a.PostCard(ctx, testDelivery())
		checkPostError(t, err, a.host, true, 0, "context canceled")
	})
}

func TestPostCardSameDeliveryAcrossRetries(t *testing.T) {
	f := newFakeApp(t, status(500), status(503), status(200))
	a := appFor(t, f, 0)
	d := testDelivery()
	for i := range 3 {
		_, err := a.PostCard(context.Background(), d)
		if (err == nil) != (i == 2) {
			t.Fatalf("attempt %d: err = %v", i, err)
		}
	}
	next := testDelivery()
	next.Call.Version, next.Version = 5, 5
	next.DeliveryID = calls.DeliveryID(next.Call.ID, next.Surface.Key(), 5)
	if _, err := a.PostCard(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	got := f.requests()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4", len(got))
	}
	for i := 1; i < 3; i++ {
		if got[i].Header.Get(HeaderDelivery) != got[0].Header.Get(HeaderDelivery) || !bytes.Equal(got[i].Body, got[0].Body) {
			t.Fatalf("retry %d differs from the first attempt:\n%s %s\n%s %s", i, got[i].Header.Get(HeaderDelivery), got[i].Body, got[0].Header.Get(HeaderDelivery), got[0].Body)
		}
	}
	if got[3].Header.Get(HeaderDelivery) == got[0].Header.Get(HeaderDelivery) || got[3].Header.Get(HeaderVersion) != "5" {
		t.Fatalf("a newer version kept the delivery id %q / version %q", got[3].Header.Get(HeaderDelivery), got[3].Header.Get(HeaderVersion))
	}
	var cb Callback
	if err := json.Unmarshal(got[3].Body, &cb); err != nil || cb.DeliveryID != next.DeliveryID || cb.Version != 5 {
		t.Fatalf("callback = %+v, %v", cb, err)
	}
}

func TestDestination(t *testing.T) {
	a := newApp(t, nil)
	if got := a.Destination(calls.Surface{Chat: "acme", Channel: "c"}); got != "chat.acme.example" {
		t.Fatalf("Destination = %q", got)
	}
	s := testSettings()
	s.CallbackURL = "http://127.0.0.1:8080/hook?x=1"
	if got := newApp(t, s).Destination(calls.Surface{}); got != "127.0.0.1:8080" {
		t.Fatalf("Destination = %q", got)
	}
}

// TestLayerWireExample checks the message part against Layer's documented
// part shape ({mime_type, body}), the only public trace of
// application/voip-link (testdata/layer.json, copied from the shared vectors).
func TestLayerWireExample(t *testing.T) {
	raw, err := os.ReadFile("testdata/layer.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		WireExamples []struct {
			Name string `json:"name"`
			Body struct {
				Parts json.RawMessage `json:"parts"`
			} `json:"body"`
		} `json:"wire_examples"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.WireExamples) == 0 {
		t.Fatal("no wire examples")
	}
	for _, ex := range file.WireExamples {
		var parts []Part
		dec := json.NewDecoder(bytes.NewReader(ex.Body.Parts))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&parts); err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if len(parts) != 1 || parts[0].MIMEType != MIMEVoIPLink {
			t.Fatalf("%s: parts = %+v", ex.Name, parts)
		}
		d := testDelivery()
		d.JoinURL = parts[0].Body
		ours, err := json.Marshal(NewCallback(d).Parts)
		if err != nil {
			t.Fatal(err)
		}
		if want := compact(t, string(ex.Body.Parts)); string(ours) != want {
			t.Fatalf("%s: parts = %s, want %s", ex.Name, ours, want)
		}
	}
}
