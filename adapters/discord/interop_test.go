package discord

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// requireInterop makes a missing SDK a failure instead of a skip; CI sets
// it after `make interop-deps`, so the interop test cannot silently vanish.
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

// interopCase is one request both sides judge.
type interopCase struct {
	Name      string `json:"name"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
	Timestamp string `json:"timestamp"`
	PublicKey string `json:"public_key"`
	// Stricter marks the one deliberate difference: a request without
	// X-Signature-Timestamp (signed over the body alone) passes verifyKey,
	// which concatenates "" and the body, but the gateway refuses it,
	// since without a timestamp its age cannot be bounded. Discord always
	// sends the header.
	Stricter bool `json:"-"`
}

// TestDiscordInteractionsInterop: Discord's own discord-interactions
// (npm, pinned in interop/discord-interactions) verifyKey and the gateway
// agree on every request: the vectors' requests and negatives, and
// requests signed here with the TEST 1 key, valid and broken in each way
// a signature can be.
func TestDiscordInteractionsInterop(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", "..", "interop", "discord-interactions"))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules", "discord-interactions"))
	if errNode != nil || errMods != nil {
		msg := "discord-interactions not installed (run `make interop-deps`)"
		if os.Getenv(requireInterop) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	k1, k2 := privateKey(t, test1Seed), privateKey(t, test2Seed)
	var cases []interopCase
	for _, v := range loadVectors(t).Vectors {
		if v.Headers == nil {
			continue
		}
		c := interopCase{Name: v.Name, Body: v.Body, Signature: v.Headers[HeaderSignature], Timestamp: v.Headers[HeaderTimestamp], PublicKey: v.PublicKeyHex}
		cases = append(cases, c)
		if v.Name == "PING (type 1)" {
			tampered := c
			tampered.Name, tampered.Body = "vector negative: tampered body", c.Body+" "
			moved := c
			moved.Name, moved.Timestamp = "vector negative: tampered timestamp", "1608597134"
			cases = append(cases, tampered, moved)
		}
	}
	ts := strconv.FormatInt(vectorTime+60, 10)
	sign := func(name string, key ed25519.PrivateKey, body string) interopCase {
		return interopCase{Name: name, Body: body, Signature: Sign(key, ts, []byte(body)), Timestamp: ts, PublicKey: test1Public}
	}
	cmd := interaction(2, `{"name":"call","options":[{"type":1,"name":"start","options":[{"type":3,"name":"title","value":"Café 🎥 \"sync\""}]}]}`)
	good := sign("Go-signed /call", k1, cmd)
	cases = append(cases,
		good,
		sign("Go-signed PING", k1, `{"id":"1","token":"t","type":1,"version":1}`),
		sign("Go-signed component", k1, interaction(3, `{"custom_id":"callgate:join:call-1","component_type":2}`)),
		sign("Go-signed empty body", k1, ``),
		sign("signed by another application (TEST 2)", k2, cmd),
	)
	other := sign("TEST 2 signature, TEST 2 key", k2, cmd)
	other.PublicKey = test2Public
	cases = append(cases, other)
	mutate := func(name string, f func(*interopCase)) {
		c := good
		c.Name = name
		f(&c)
		cases = append(cases, c)
	}
	mutate("one bit of the signature flipped", func(c *interopCase) {
		b, _ := hex.DecodeString(c.Signature)
		b[10] ^= 1
		c.Signature = hex.EncodeToString(b)
	})
	mutate("signature upper-case hex", func(c *interopCase) { c.Signature = strings.ToUpper(c.Signature) })
	mutate("signature truncated", func(c *interopCase) { c.Signature = c.Signature[:126] })
	mutate("signature with garbage after it", func(c *interopCase) { c.Signature += "zz" })
	mutate("signature not hex", func(c *interopCase) { c.Signature = strings.Repeat("x", 128) })
	mutate("signature empty", func(c *interopCase) { c.Signature = "" })
	mutate("body re-encoded", func(c *interopCase) { c.Body = strings.Replace(c.Body, `"type":2`, `"type": 2`, 1) })
	mutate("body truncated", func(c *interopCase) { c.Body = c.Body[:len(c.Body)-1] })
	mutate("timestamp one second later", func(c *interopCase) { c.Timestamp = strconv.FormatInt(vectorTime+61, 10) })
	mutate("timestamp moved into the body", func(c *interopCase) { c.Body, c.Timestamp, c.Stricter = c.Timestamp+c.Body, "", true })
	mutate("wrong public key", func(c *interopCase) { c.PublicKey = test2Public })

	input, _ := json.Marshal(cases)
	run := exec.Command("node", filepath.Join(root, "verify.mjs"))
	run.Dir = root
	run.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var theirs []bool
	if err := json.Unmarshal(out, &theirs); err != nil || len(theirs) != len(cases) {
		t.Fatalf("verify.mjs answered %s (%v)", out, err)
	}
	valid := 0
	for i, c := range cases {
		pub, _ := hex.DecodeString(c.PublicKey)
		h := http.Header{}
		if c.Signature != "" {
			h.Set(HeaderSignature, c.Signature)
		}
		if c.Timestamp != "" {
			h.Set(HeaderTimestamp, c.Timestamp)
		}
		_, _, err := VerifySignature(h, []byte(c.Body), pub)
		ours := err == nil
		if c.Stricter {
			if ours || !theirs[i] {
				t.Errorf("%s: gateway says %v, verifyKey %v; want false, true (the documented difference)", c.Name, ours, theirs[i])
			}
			continue
		}
		if ours != theirs[i] {
			t.Errorf("%s: gateway says %v, discord-interactions verifyKey says %v (%v)", c.Name, ours, theirs[i], err)
		}
		// The whole intake agrees too when the request is fresh: accepted
		// exactly when verifyKey accepts it (at the request's own time).
		if unix, perr := strconv.ParseInt(c.Timestamp, 10, 64); perr == nil {
			a, clk, _ := newTestApp(t, func(s *Settings) { s.PublicKey = c.PublicKey })
			clk.t = time.Unix(unix, 0)
			_, err := a.ParseChat(context.Background(), "interactions", calls.WebhookRequest{Method: http.MethodPost, Header: h, Body: []byte(c.Body)})
			refused := isUnauthenticated(err)
			if refused == theirs[i] {
				t.Errorf("%s: ParseChat refused=%v (%v), verifyKey=%v", c.Name, refused, err, theirs[i])
			}
		}
		if theirs[i] {
			valid++
		}
	}
	if valid < 8 || valid == len(cases) {
		t.Fatalf("%d of %d cases valid: the cases do not test both sides", valid, len(cases))
	}
	t.Logf("%d requests, %d valid for verifyKey, the gateway agrees on all but the documented timestamp-less one", len(cases), valid)
}

func isUnauthenticated(err error) bool {
	return errors.Is(err, calls.ErrWebhookUnauthenticated)
}
