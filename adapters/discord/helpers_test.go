package discord

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/calls"
)

// The RFC 8032 TEST 1 key the vectors' requests are signed with.
const (
	test1Seed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	test1Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	// test2Public is RFC 8032 TEST 2's public key: a second application.
	test2Seed   = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
	test2Public = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
	// vectorTime is the vectors' X-Signature-Timestamp.
	vectorTime = 1608597133
	botToken   = "bot-token-SECRET-123"
	testAPI    = "https://discord.test/api/v10"
)

func privateKey(t testing.TB, seedHex string) ed25519.PrivateKey {
	t.Helper()
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// vectorFile is testdata/discord.json.
type vectorFile struct {
	Vectors []struct {
		Name         string            `json:"name"`
		Kind         string            `json:"kind"`
		SecretKeyHex string            `json:"secret_key_hex"`
		PublicKeyHex string            `json:"public_key_hex"`
		MessageHex   string            `json:"message_hex"`
		SignatureHex string            `json:"signature_hex"`
		Headers      map[string]string `json:"headers"`
		Body         string            `json:"body"`
		Valid        bool              `json:"expected_valid"`
	} `json:"vectors"`
	Negatives []struct {
		Name       string `json:"name"`
		DeriveFrom string `json:"derive_from"`
		Change     string `json:"change"`
		Valid      bool   `json:"expected_valid"`
	} `json:"negatives"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/discord.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func testSettings() *Settings {
	s := NewSettings()
	s.ApplicationID = "111111111111111111"
	s.PublicKey = test1Public
	s.BotToken = botToken
	s.APIURL = testAPI
	return s
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newTestApp builds an app at the vectors' time, its REST client mocked.
func newTestApp(t testing.TB, change ...func(*Settings)) (*App, *clock, *httpmock.MockTransport) {
	t.Helper()
	s := testSettings()
	for _, f := range change {
		f(s)
	}
	clk := &clock{t: time.Unix(vectorTime, 0).Add(2 * time.Second)}
	a, err := New(s, adapters.Deps{Name: "disco", Now: clk.now, IsProvider: func(p string) bool { return p == "jitsi" || p == "daily" }})
	if err != nil {
		t.Fatal(err)
	}
	mock := httpmock.NewMockTransport()
	a.client.HTTPClient.Transport = mock
	return a, clk, mock
}

// signed is a POST of body signed with key at ts, as Discord sends it.
func signed(key ed25519.PrivateKey, ts int64, body string) calls.WebhookRequest {
	tss := strconv.FormatInt(ts, 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, tss)
	h.Set(HeaderSignature, Sign(key, tss, []byte(body)))
	h.Set("Content-Type", "application/json")
	return calls.WebhookRequest{Method: http.MethodPost, Header: h, Body: []byte(body)}
}
