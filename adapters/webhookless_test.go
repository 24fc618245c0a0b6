package adapters

import (
	"context"
	"testing"

	"github.com/callgate/callgate/calls"
)

type fullProvider struct{ calls.Provider }

func (fullProvider) ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error) {
	return calls.ProviderWebhook{}, nil
}
func (fullProvider) RoomStatus(context.Context, calls.Room) (calls.RoomStatus, error) {
	return calls.RoomStatus{}, nil
}
func (fullProvider) StreamCall(calls.Room) map[string]any { return nil }

type plainProvider struct {
	calls.Provider
}

func (plainProvider) ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error) {
	return calls.ProviderWebhook{}, nil
}

// The receiver is hidden; every other capability the provider has is kept,
// and none it lacks is invented.
func TestWithoutWebhooks(t *testing.T) {
	type receiver interface {
		ReceiveWebhook(context.Context, calls.WebhookRequest) (calls.ProviderWebhook, error)
	}
	for name, tc := range map[string]struct {
		p              calls.Provider
		status, stream bool
	}{
		"all capabilities": {fullProvider{}, true, true},
		"none":             {plainProvider{}, false, false},
	} {
		w := WithoutWebhooks(tc.p)
		if _, ok := w.(receiver); ok {
			t.Errorf("%s: the receiver is still there", name)
		}
		if _, ok := w.(calls.RoomStatusReporter); ok != tc.status {
			t.Errorf("%s: room status %v, want %v", name, ok, tc.status)
		}
		if _, ok := w.(streamCaller); ok != tc.stream {
			t.Errorf("%s: Stream call shape %v, want %v", name, ok, tc.stream)
		}
		if Unwrapped(w) != tc.p {
			t.Errorf("%s: Unwrapped gives %T", name, Unwrapped(w))
		}
	}
}
