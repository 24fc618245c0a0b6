package ws_test

import (
	"os"
	"strings"
	"testing"

	"github.com/callgate/callgate/ws"
)

// TestDocsNameEveryMessage keeps asyncapi.yaml and WEBSOCKET.md in step
// with the protocol's names and codes.
func TestDocsNameEveryMessage(t *testing.T) {
	spec, err := os.ReadFile("../api/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../api/WEBSOCKET.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ws.ReqRequestDirect, ws.ReqInvite, ws.ReqAccept, ws.ReqDecline, ws.ReqMerge, ws.ReqPing, ws.ReqBlock, ws.ReqUnblock, ws.ReqBlocks,
		ws.EvRequested, ws.EvDirectAccepted, ws.EvAccepted, ws.EvDeclined, ws.EvCall, ws.EvSession, ws.EvPong, ws.EvError} {
		if !strings.Contains(string(spec), "name: "+name+"\n") {
			t.Errorf("asyncapi.yaml has no message %s", name)
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("WEBSOCKET.md does not name %s", name)
		}
	}
	for _, code := range []string{"1021", "10011", "409", "410"} {
		if !strings.Contains(string(doc), "| "+code+" |") {
			t.Errorf("WEBSOCKET.md does not list error %s", code)
		}
	}
}
