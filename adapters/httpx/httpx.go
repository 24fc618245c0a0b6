// Package httpx is the outbound HTTP every adapter uses: a
// go-retryablehttp client with a bounded retry budget, and one mapping of
// answers to the typed errors the gateway's workers act on
// (calls.TemporaryError with the remote's Retry-After, or
// calls.PermanentError with a reason an admin understands).
//
// Retries inside one request are short (a blip, a 503 during a deploy);
// longer outages are the room worker's and the card outbox's business,
// which retry durably with their own backoff. Errors never carry a URL's
// query or a request's headers, where credentials live.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/calls"
)

// Options shape a client.
type Options struct {
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// RetryMax is the retries after the first attempt; default 2. Negative
	// means none.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the wait between attempts
	// (exponential with jitter; a Retry-After within RetryWaitMax is
	// honoured); defaults 200ms and 2s.
	RetryWaitMin, RetryWaitMax time.Duration
	Logger                     *slog.Logger
}

// MaxRetryAfter bounds what a remote can ask the gateway to wait.
const MaxRetryAfter = 24 * time.Hour

// New returns a client that retries network errors, 429 and 5xx (not 501)
// up to RetryMax times with jittered backoff, and never anything else.
func New(o Options) *retryablehttp.Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = 2
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 200 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 2 * time.Second
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = cleanhttp.DefaultPooledClient()
	c.HTTPClient.Timeout = o.Timeout
	// Redirects are not followed: an API that redirects is misconfigured,
	// and following would resend credentials elsewhere.
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.RetryMax = o.RetryMax
	c.RetryWaitMin, c.RetryWaitMax = o.RetryWaitMin, o.RetryWaitMax
	c.Backoff = backoff
	c.CheckRetry = checkRetry
	// The last response is returned as is; Do classifies it.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.Logger = nil
	if o.Logger != nil {
		c.Logger = leveled{o.Logger}
	}
	return c
}

// checkRetry retries what repeating may fix and stops at once when the
// caller gave up.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return true, nil
	}
	return Retryable(resp.StatusCode), nil
}

// Retryable reports whether a status is worth repeating: 408, 429, and 5xx
// except 501 (the method will never be implemented).
func Retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}

// backoff is retryablehttp's linear-jitter backoff, but a Retry-After the
// remote sent wins when it fits in the wait budget.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d := RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 && d <= maxWait {
			return d
		}
	}
	return retryablehttp.LinearJitterBackoff(minWait, maxWait, attempt, resp)
}

// RetryAfter parses a Retry-After value (seconds or an HTTP date) at now;
// zero when absent or unreadable, at most MaxRetryAfter.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(MaxRetryAfter/time.Second)))*time.Second, MaxRetryAfter)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter)
}

// maxBody bounds what is read of an answer.
const maxBody = 1 << 20

// Do sends req and returns the body of a 2xx answer. Any other outcome is
// a typed error naming `what` ("100ms create room") and the host, never
// the URL or headers: network errors, 408, 429 and 5xx are
// calls.TemporaryError (with Retry-After); everything else is a
// calls.PermanentError whose reason says what the status usually means.
func Do(c *retryablehttp.Client, req *retryablehttp.Request, what string) ([]byte, http.Header, error) {
	host := req.URL.Host
	resp, err := c.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, calls.Temporary(fmt.Errorf("%s at %s: %w", what, host, err), 0)
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		if rerr != nil {
			return nil, nil, calls.Temporary(fmt.Errorf("%s at %s: reading the answer: %w", what, host, rerr), 0)
		}
		return body, resp.Header, nil
	}
	remote := &StatusError{Code: code, Body: body}
	if Retryable(code) {
		return nil, resp.Header, calls.Temporary(fmt.Errorf("%s at %s: %w", what, host, remote), RetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return nil, resp.Header, calls.Permanent(fmt.Sprintf("%s at %s: %s (HTTP %d)", what, host, meaning(code), code), remote)
}

// StatusError is a remote's non-2xx answer, wrapped in the typed error Do
// returns, so an adapter can read a provider's own error code from the
// body (errors.As).
type StatusError struct {
	Code int
	Body []byte
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d%s", e.Code, Snippet(e.Body)) }

// Status is the HTTP status of the remote answer err came from (Do's
// temporary and permanent errors carry it), 0 when there was none.
func Status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// meaning words a refusal for an admin.
func meaning(code int) string {
	switch {
	case code == http.StatusUnauthorized:
		return "the credentials were refused; check the keys in the YAML"
	case code == http.StatusForbidden:
		return "the credentials lack the permission for this; check the account or app settings"
	case code == http.StatusNotFound:
		return "not found; check api_url and the ids in the YAML"
	case code >= 300 && code < 400:
		return "redirected; set api_url to the final address"
	case code == http.StatusConflict:
		return "conflicts with what exists at the provider"
	}
	return "refused the request"
}

// Snippet is the start of a remote's answer for logs and errors: one
// printable line, at most 200 characters, led by ": " (empty when none).
func Snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}

// leveled adapts slog to retryablehttp's logger, at debug level: every
// retry is visible when debugging and silent otherwise. Only the message
// and the method/URL path reach it (retryablehttp logs the URL; the query
// is dropped here).
type leveled struct{ l *slog.Logger }

func (l leveled) Error(msg string, kv ...any) { l.l.Debug(msg, scrub(kv)...) }
func (l leveled) Info(msg string, kv ...any)  { l.l.Debug(msg, scrub(kv)...) }
func (l leveled) Debug(msg string, kv ...any) { l.l.Debug(msg, scrub(kv)...) }
func (l leveled) Warn(msg string, kv ...any)  { l.l.Debug(msg, scrub(kv)...) }

// scrub drops the query of any URL value: providers put tokens there.
func scrub(kv []any) []any {
	out := make([]any, len(kv))
	for i, v := range kv {
		switch x := v.(type) {
		case *url.URL:
			u := *x
			u.RawQuery, u.User = "", nil
			out[i] = u.String()
		case string:
			if u, err := url.Parse(x); err == nil && u.RawQuery != "" && u.Host != "" {
				u.RawQuery, u.User = "", nil
				out[i] = u.String()
				continue
			}
			out[i] = x
		default:
			out[i] = v
		}
	}
	return out
}
