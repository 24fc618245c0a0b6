package adapters

import (
	"errors"
	"net/url"

	"github.com/callgate/callgate/calls"
)

// streamCaller is api.StreamCallShaper, declared again here because
// adapters may not import api.
type streamCaller interface {
	StreamCall(room calls.Room) map[string]any
}

// WithoutWebhooks returns p without its webhook receiver, keeping the
// other capabilities it has (room status, Stream's call shape). A kind
// built with no webhook secret returns this, so the intake answers 404 at
// its webhook URL instead of refusing every delivery.
func WithoutWebhooks(p calls.Provider) calls.Provider {
	rs, status := p.(calls.RoomStatusReporter)
	sc, stream := p.(streamCaller)
	base := webhookless{p}
	switch {
	case status && stream:
		return webhooklessStatusStream{base, rs, sc}
	case status:
		return webhooklessStatus{base, rs}
	case stream:
		return webhooklessStream{base, sc}
	}
	return base
}

// Unwrapped is the provider inside a WithoutWebhooks value (p itself
// otherwise).
func Unwrapped(p calls.Provider) calls.Provider {
	if u, ok := p.(interface{ unwrap() calls.Provider }); ok {
		return u.unwrap()
	}
	return p
}

// Only the calls.Provider methods are promoted from the embedded
// interface value, so the webhook receiver stays hidden.
type webhookless struct{ calls.Provider }

func (w webhookless) unwrap() calls.Provider { return w.Provider }

type webhooklessStatus struct {
	webhookless
	calls.RoomStatusReporter
}

type webhooklessStream struct {
	webhookless
	streamCaller
}

type webhooklessStatusStream struct {
	webhookless
	calls.RoomStatusReporter
	streamCaller
}

// ParseBaseURL reads an absolute http(s) base URL without credentials,
// query or fragment (a platform's API or server address).
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must be a base URL without credentials, query or fragment")
	}
	return u, nil
}
