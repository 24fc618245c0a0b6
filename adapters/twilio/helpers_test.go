package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testKeySID     = "SKfedcba9876543210fedcba9876543210"
	// Secrets holding '+', '/' and '=' (they are used as raw bytes, never
	// decoded).
	testKeySecret  = "k+y/secret=0123456789abcdefABCD"
	testAuthToken  = "auth+token/with=0123456789abcdef"
	testOldToken   = "old+auth/token=0123456789abcdef0"
	testOtherToken = "unknown+token/=0123456789abcdef0"

	testBase    = "https://video.test"
	testHookURL = "https://gw.example/webhooks/providers/tw"
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// newTestProvider builds a provider whose REST calls go to a mock
// transport, with millisecond retry waits.
func newTestProvider(t testing.TB, mutate ...func(*Config)) (*Provider, *httpmock.MockTransport) {
	t.Helper()
	cfg := Config{
		AccountSID: testAccountSID, APIKeySID: testKeySID, APIKeySecret: testKeySecret,
		AuthTokens: []string{testAuthToken, testOldToken}, BaseURL: testBase,
		StatusCallback: testHookURL, Now: func() time.Time { return testNow },
	}
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mock := httpmock.NewMockTransport()
	p.client.HTTPClient.Transport = mock
	p.client.RetryWaitMin, p.client.RetryWaitMax = time.Millisecond, 2*time.Millisecond
	return p, mock
}

// seen is one request a mock responder received.
type seen struct {
	Method, Path, Query, Auth, ContentType, Body string
}

// recorder collects requests; answer replies in turn (the last repeats).
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) responder(answers ...*httpmock.Responder) httpmock.Responder {
	return func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
		}
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, seen{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization"), req.Header.Get("Content-Type"), string(body)})
		r.mu.Unlock()
		return (*answers[min(n, len(answers)-1)])(req)
	}
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func answer(status int, body string) *httpmock.Responder {
	rs := httpmock.NewStringResponder(status, body).HeaderSet(http.Header{"Content-Type": {"application/json"}})
	return &rs
}

var wantAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(testKeySID+":"+testKeySecret))

// sign computes X-Twilio-Signature the plain way, independently of the
// verifier: HMAC-SHA1 over the URL and each sorted name followed by its
// value.
func sign(token, rawURL string, params url.Values) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	data := rawURL
	for _, k := range names {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		prev := ""
		for i, v := range vs {
			if i > 0 && v == prev {
				continue
			}
			data += k + v
			prev = v
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
