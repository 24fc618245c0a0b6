package httpx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

func TestDoClassifiesAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		statuses   []int
		retryAfter string
		wantTries  int32
		wantPerm   bool
		wantTemp   bool
		wantAfter  time.Duration
		wantReason string
	}{
		{"ok", []int{200}, "", 1, false, false, 0, ""},
		{"503 then ok", []int{503, 200}, "", 2, false, false, 0, ""},
		{"429 exhausts retries", []int{429, 429, 429}, "7", 3, false, true, 7 * time.Second, ""},
		{"500s exhaust retries", []int{500, 502, 504}, "", 3, false, true, 0, ""},
		{"401 is permanent, not retried", []int{401}, "", 1, true, false, 0, "credentials were refused"},
		{"404 is permanent", []int{404}, "", 1, true, false, 0, "check api_url"},
		{"302 is not followed", []int{302}, "", 1, true, false, 0, "redirected"},
		{"501 is permanent", []int{501}, "", 1, true, false, 0, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tries atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := tries.Add(1) - 1
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.statuses[i] == 302 {
					w.Header().Set("Location", "https://elsewhere.test/")
				}
				w.WriteHeader(tc.statuses[i])
				w.Write([]byte(`{"error":"nope","secret_echo":"x"}`))
			}))
			defer srv.Close()
			c := httpx.New(httpx.Options{RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
			req, _ := retryablehttp.NewRequestWithContext(context.Background(), "POST", srv.URL+"/v2/rooms?token=sekrit", []byte(`{}`))
			_, _, err := httpx.Do(c, req, "test create room")
			if got := tries.Load(); got != tc.wantTries {
				t.Fatalf("%d tries, want %d", got, tc.wantTries)
			}
			var perm *calls.PermanentError
			var temp *calls.TemporaryError
			if errors.As(err, &perm) != tc.wantPerm || errors.As(err, &temp) != tc.wantTemp {
				t.Fatalf("err = %v (permanent %v, temporary %v)", err, tc.wantPerm, tc.wantTemp)
			}
			if tc.wantTemp && temp.RetryAfter != tc.wantAfter {
				t.Fatalf("retry after %v, want %v", temp.RetryAfter, tc.wantAfter)
			}
			if tc.wantPerm && !strings.Contains(perm.Reason, tc.wantReason) {
				t.Fatalf("reason %q lacks %q", perm.Reason, tc.wantReason)
			}
			if err != nil && (strings.Contains(err.Error(), "sekrit") || strings.Contains(err.Error(), "/v2/rooms")) {
				t.Fatalf("error leaks the URL: %v", err)
			}
		})
	}
}

func TestNetworkErrorsAreTemporary(t *testing.T) {
	c := httpx.New(httpx.Options{RetryMax: -1, Timeout: time.Second})
	req, _ := retryablehttp.NewRequest("GET", "http://127.0.0.1:1/x?key=sekrit", nil)
	_, _, err := httpx.Do(c, req, "probe")
	var temp *calls.TemporaryError
	if !errors.As(err, &temp) || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("err = %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "2": 2 * time.Second, "-3": 0, "soon": 0, "99999999999": httpx.MaxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := httpx.RetryAfter(in, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
