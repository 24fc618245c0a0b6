package streamvideo

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/webhooks"
)

func TestKindDefaultsAndBuild(t *testing.T) {
	if Kind.Name != "streamvideo" {
		t.Fatalf("name %q", Kind.Name)
	}
	s, ok := Kind.NewSettings().(*Settings)
	want := &Settings{CallType: "default", CreatedByID: "callgate", APIURL: "https://video.stream-io-api.com", TokenTTL: time.Hour}
	if !ok || !reflect.DeepEqual(s, want) {
		t.Fatalf("defaults %#v", Kind.NewSettings())
	}
	s.APIKey, s.APISecret, s.PreviousAPISecret = "k", "s", "old"
	s.APIURL = "http://localhost:3030/"
	p, err := Kind.New(context.Background(), s, adapters.Deps{Name: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	in := p.(*Provider)
	if in.apiURL != "http://localhost:3030" || len(in.webhook) != 2 || in.audioType != "default" {
		t.Errorf("built %+v", in)
	}
	if _, ok := p.(webhooks.ProviderReceiver); !ok {
		t.Error("no webhook receiver")
	}
	if _, ok := p.(calls.RoomStatusReporter); !ok {
		t.Error("no room status")
	}
	if sh, ok := p.(api.StreamCallShaper); !ok || !reflect.DeepEqual(sh.StreamCall(calls.Room{Name: "c", Data: map[string]string{"call_type": "livestream"}}),
		map[string]any{"call_type": "livestream", "call_id": "c", "cid": "livestream:c"}) {
		t.Error("stream call shape")
	}
	if _, err := Kind.New(context.Background(), &Settings{}, adapters.Deps{}); err == nil {
		t.Error("built without keys")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := func() Settings { s := *defaultSettings(); s.APIKey, s.APISecret = "k", "secret-value-123"; return s }
	with := func(f func(*Settings)) Settings { s := ok(); f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"complete", ok(), nil},
		{"defaults lack keys", *defaultSettings(), []string{"api_key: is required (Stream Dashboard → App Access Keys)", "api_secret: is required (Stream Dashboard → App Access Keys)"}},
		{"bad call type", with(func(s *Settings) { s.CallType = "Default Type" }), []string{"call_type: {value} is not a Stream call type (lower-case letters, digits, _ and -)"}},
		{"bad audio call type", with(func(s *Settings) { s.AudioCallType = "a b" }), []string{"audio_call_type: {value} is not a Stream call type (lower-case letters, digits, _ and -)"}},
		{"no creator", with(func(s *Settings) { s.CreatedByID = "" }), []string{"created_by_id: is required"}},
		{"relative url", with(func(s *Settings) { s.APIURL = "video.stream-io-api.com" }), []string{"api_url: must be an absolute http:// or https:// URL"}},
		{"url with credentials", with(func(s *Settings) { s.APIURL = "https://u:p@x" }), []string{"api_url: must not contain a user name or password"}},
		{"negative ttl", with(func(s *Settings) { s.TokenTTL = -1 }), []string{"token_ttl: must not be negative"}},
		{"bad template", with(func(s *Settings) { s.JoinURLTemplate = "{{" }), []string{"join_url_template: is not a valid Go template: template: join:1: unclosed action"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.s.Validate(func(field, msg string, near ...string) {
				if tc.s.APISecret != "" && strings.Contains(msg, tc.s.APISecret) {
					t.Errorf("secret shown: %s", msg)
				}
				got = append(got, field+": "+msg)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
