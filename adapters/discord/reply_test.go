package discord

import (
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/callgate/callgate/calls"
)

// Ring preferences and the people who asked not to be rung are said in
// the reply.
func TestReplyNotices(t *testing.T) {
	a, _, _ := newTestApp(t)
	ring := calls.ChatRequest{Command: &calls.Command{Kind: calls.CommandRing}}
	r := a.Response(ring, calls.ChatOutcome{Notices: []string{calls.NoticeRingOff}})
	if r.Data == nil || !strings.Contains(r.Data.Content, Escape(a.tpl.Text("en", calls.NoticeRingOff))) || r.Data.Flags != discordgo.MessageFlagsEphemeral {
		t.Fatalf("ring off reply %+v", r.Data)
	}
}
