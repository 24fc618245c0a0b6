package calls_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/callgate/callgate/calls"
)

// untouchable fails the test if the service reaches it: refused input must
// be refused before any store or provider sees it.
type untouchableStore struct{ calls.Store }
type untouchableProvider struct{ calls.Provider }

// TestServiceRefusesControlCharacters: input that reaches the service
// without the API (chat adapters, tests) is checked there too, so nothing
// with a NUL reaches a store (PostgreSQL refuses NUL in text: a 500).
func TestServiceRefusesControlCharacters(t *testing.T) {
	svc, err := calls.NewService(calls.ServiceConfig{
		Store: untouchableStore{}, Providers: map[string]calls.Provider{"p": untouchableProvider{}}, DefaultProvider: "p",
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := calls.APIKeyActor("")
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"title", func() error {
			_, _, err := svc.Create(context.Background(), admin, calls.CreateRequest{Title: "a\x00"})
			return err
		}, "title"},
		{"member", func() error {
			_, _, err := svc.Create(context.Background(), admin, calls.CreateRequest{Members: []calls.Member{{UserID: "b", Role: "participant"}, {UserID: "a\x00"}}})
			return err
		}, "members[1].user_id"},
		{"acting user", func() error {
			_, _, err := svc.Create(context.Background(), calls.APIKeyActor("a\x00"), calls.CreateRequest{})
			return err
		}, "user_id"},
		{"acting user too long", func() error {
			_, _, err := svc.Create(context.Background(), calls.UserActor(strings.Repeat("a", 1000)), calls.CreateRequest{})
			return err
		}, "at most 255"},
		{"credential user", func() error {
			_, _, err := svc.Credential(context.Background(), admin, "c", calls.JoinRequest{UserID: "a\x00"})
			return err
		}, "user_id"},
		{"credential name", func() error {
			_, _, err := svc.Credential(context.Background(), admin, "c", calls.JoinRequest{UserID: "a", Name: "A\x00"})
			return err
		}, "name"},
		{"credential name too long", func() error {
			_, _, err := svc.Credential(context.Background(), admin, "c", calls.JoinRequest{UserID: "a", Name: strings.Repeat("n", 500)})
			return err
		}, "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("the input reached the store or provider: %v", r)
					}
				}()
				return tt.call()
			}()
			if !errors.Is(err, calls.ErrInvalidInput) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want ErrInvalidInput naming %s", err, tt.field)
			}
		})
	}
}
