// Package webhooks is the intake for everything that calls callgate
// unprompted: provider status webhooks at /webhooks/providers/<name>, and
// chat platforms' commands, interactions and events under
// /webhooks/chats/<name>/…. Every request takes one path: read under the
// body cap, verified by its adapter the way its sender signs, parsed, then
// handed to the calls service; the adapter may also dictate the reply (a
// challenge answer, the message a chat shows). A request that fails any
// step changes nothing.
package webhooks

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/httpserver"
)

// received reads the request as its sender signed it: the raw body (under
// the server's body cap: 413 beyond it), the headers, and the URL the
// sender called. Routes sit under the public URL's path, as join links do:
// a proxy in front strips that prefix, so the URL called is the public URL
// plus the path we received.
func received(c echo.Context, origin *url.URL) (calls.WebhookRequest, error) {
	r := c.Request()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return calls.WebhookRequest{}, httpserver.TooLarge(mbe.Limit)
		}
		return calls.WebhookRequest{}, httpserver.NewError(http.StatusBadRequest, "bad_request", "could not read the request body")
	}
	u := *origin
	prefix := strings.TrimSuffix(origin.Path, "/")
	u.Path = prefix + r.URL.Path
	u.RawPath = ""
	if r.URL.RawPath != "" {
		u.RawPath = strings.TrimSuffix(origin.EscapedPath(), "/") + r.URL.RawPath
	}
	u.RawQuery = r.URL.RawQuery
	return calls.WebhookRequest{Method: r.Method, URL: u.String(), Header: r.Header, Body: body}, nil
}

// refusal maps an adapter's verification or parsing error to the answer,
// and names the outcome for metrics. It returns nil for other errors.
func refusal(err error) (outcome string, httpErr error) {
	switch {
	case errors.Is(err, calls.ErrWebhookUnauthenticated):
		return "unauthenticated", httpserver.NewError(http.StatusUnauthorized, "unauthenticated", "the webhook signature could not be verified")
	case errors.Is(err, calls.ErrWebhookMalformed):
		return "malformed", httpserver.NewError(http.StatusBadRequest, "malformed_webhook", "%s", err)
	}
	return "", nil
}

// reply writes what the adapter dictated.
func reply(c echo.Context, r calls.WebhookReply) error {
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			c.Response().Header().Add(k, v)
		}
	}
	if len(r.Body) == 0 && status >= 300 && status < 400 {
		return c.NoContent(status)
	}
	ct := r.ContentType
	if ct == "" {
		ct = echo.MIMEApplicationJSON
	}
	return c.Blob(status, ct, r.Body)
}
