package mattermost

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/callgate/callgate/calls"
)

// TestDirectCardAndMembership: a "dm:" surface opens the bot's direct
// channel with the person and posts the card there, its buttons signed for
// that channel, and edits it after; IsMember reads the channel's member
// (404: not a member; 500: an error, which the intake treats as a refusal).
func TestDirectCardAndMembership(t *testing.T) {
	f := newFakeMM(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch {
		case r.URL.Path == "/api/v4/users/me":
			io.WriteString(w, `{"id":"botid"}`)
		case r.URL.Path == "/api/v4/channels/direct":
			io.WriteString(w, `{"id":"dmchan"}`)
		case r.URL.Path == "/api/v4/channels/chan-1/members/uid-ben":
			io.WriteString(w, `{"user_id":"uid-ben"}`)
		case r.URL.Path == "/api/v4/channels/chan-1/members/uid-out":
			w.WriteHeader(404)
			io.WriteString(w, `{"status_code":404}`)
		case r.URL.Path == "/api/v4/channels/chan-2/members/uid-ben":
			w.WriteHeader(500)
		default:
			mmServer(w, r, 0)
		}
	})
	a := appAt(t, f)
	c := testCall()
	c.State = calls.StateRinging
	d := delivery(c, "")
	d.Surface.Channel = "dm:uid-ben"
	ref, err := a.PostCard(context.Background(), d)
	if err != nil || ref != "dmchan/post-1" {
		t.Fatalf("first post: %q %v", ref, err)
	}
	d.Surface.Delivery.MessageRef = ref
	if ref, err := a.PostCard(context.Background(), d); err != nil || ref != "dmchan/post-1" {
		t.Fatalf("edit: %q %v", ref, err)
	}
	reqs := f.requests()
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.Method+" "+r.Path)
	}
	want := "GET /api/v4/users/me|POST /api/v4/channels/direct|GET /api/v4/users/uid-ada|POST /api/v4/posts|PUT /api/v4/posts/post-1/patch"
	if got := strings.Join(paths, "|"); got != want {
		t.Fatalf("requests\n%s\nwant\n%s", got, want)
	}
	if reqs[3].Body["channel_id"] != "dmchan" {
		t.Fatalf("posted in %v", reqs[3].Body["channel_id"])
	}
	if !strings.Contains(mustJSON(reqs[3].Body), ActionSignature(a.actionSecret, "accept", c.ID, "dmchan")) {
		t.Fatalf("the Accept button is not signed for the direct channel: %s", mustJSON(reqs[3].Body))
	}

	s := calls.Surface{Chat: "mm", Channel: "chan-1"}
	if ok, err := a.IsMember(context.Background(), s, "uid-ben"); !ok || err != nil {
		t.Fatalf("member: %v %v", ok, err)
	}
	if ok, err := a.IsMember(context.Background(), s, "uid-out"); ok || err != nil {
		t.Fatalf("not a member: %v %v", ok, err)
	}
	s.Channel = "chan-2"
	if _, err := a.IsMember(context.Background(), s, "uid-ben"); err == nil {
		t.Fatal("a failing server gave no error")
	}
}
