package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// requireInterop makes a missing SDK a failure instead of a skip; CI sets it
// after installing the SDKs, so the interop test cannot silently vanish.
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

// nodeSDK returns the script path if node and the SDK are installed.
func nodeSDK(t *testing.T, dir, script string) string {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", "..", "interop", dir))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules", "twilio"))
	if errNode != nil || errMods != nil {
		msg := "interop SDK not installed (run `make interop-deps`)"
		if os.Getenv(requireInterop) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return filepath.Join(root, script)
}

// sdkParams writes url.Values as the SDK takes them: a string, or an array
// for a repeated name.
func sdkParams(v url.Values) map[string]any {
	out := map[string]any{}
	for k, vs := range v {
		if len(vs) == 1 {
			out[k] = vs[0]
		} else {
			out[k] = vs
		}
	}
	return out
}

// TestTwilioSDKInterop checks the adapter against the twilio Node SDK
// (interop/twilio, pinned): the access token is the SDK's jwt.AccessToken
// for the same inputs and time (decoded JSON equal, and byte for byte) and
// the SDK's JWT library verifies it; the SDK's validateRequest agrees with
// the gateway's verifier on every signature, and the gateway accepts the
// signatures the SDK's getExpectedTwilioSignature computes, for URLs with
// and without ports.
func TestTwilioSDKInterop(t *testing.T) {
	script := nodeSDK(t, "twilio", "twilio_interop.mjs")
	p, _ := newTestProvider(t)

	nowMS := int64(1700000000123)
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1", ProviderID: roomSID},
		calls.CredentialRequest{UserID: "slack:U012<&>", Role: calls.RoleParticipant, TTL: time.Hour, IssuedAt: time.UnixMilli(nowMS)})
	if err != nil {
		t.Fatal(err)
	}

	base := event("participant-connected", "ParticipantIdentity", "ada")
	repeated := event("participant-connected", "ParticipantIdentity", "ada")
	repeated["Tag"] = []string{"b", "a", "b"}
	type signCase struct {
		name             string
		signed, received string
		params           url.Values
	}
	cases := []signCase{
		{"as configured", testHookURL, testHookURL, base},
		{"signed with :443, received without", "https://gw.example:443/webhooks/providers/tw", testHookURL, base},
		{"signed without, received with :443", testHookURL, "https://gw.example:443/webhooks/providers/tw", base},
		{"signed without, received with :8443", testHookURL, "https://gw.example:8443/webhooks/providers/tw", base},
		{"http :80 added", "http://gw.example:80/webhooks/providers/tw", "http://gw.example/webhooks/providers/tw", base},
		{"http :80 removed", "http://gw.example/webhooks/providers/tw", "http://gw.example:80/webhooks/providers/tw", base},
		{"query string", "https://gw.example/webhooks/providers/tw?a=1&b=x%20y", "https://gw.example/webhooks/providers/tw?a=1&b=x%20y", base},
		{"repeated names", testHookURL, testHookURL, repeated},
	}
	// Refused by both: another URL, another body.
	altered := event("participant-connected", "ParticipantIdentity", "eve")
	refused := []signCase{
		{"other path", "https://gw.example/webhooks/providers/other", testHookURL, base},
		{"other scheme", "http://gw.example/webhooks/providers/tw", testHookURL, base},
	}

	type vcase struct {
		URL       string         `json:"url"`
		Signature string         `json:"signature"`
		Params    map[string]any `json:"params"`
	}
	var validate []vcase
	var goAccepts []bool
	verifyGo := func(receivedURL, sig string, params url.Values) bool {
		h := http.Header{SignatureHeader: {sig}}
		_, err := p.verify(calls.WebhookRequest{URL: receivedURL, Header: h, Body: []byte(params.Encode())})
		return err == nil
	}
	for _, c := range append(append([]signCase(nil), cases...), refused...) {
		sig := sign(testAuthToken, c.signed, c.params)
		validate = append(validate, vcase{c.received, sig, sdkParams(c.params)})
		goAccepts = append(goAccepts, verifyGo(c.received, sig, c.params))
	}
	// A signature over one body presented with another.
	sig := sign(testAuthToken, testHookURL, base)
	validate = append(validate, vcase{testHookURL, sig, sdkParams(altered)})
	goAccepts = append(goAccepts, verifyGo(testHookURL, sig, altered))

	var toSign []vcase
	for _, c := range cases {
		toSign = append(toSign, vcase{URL: c.signed, Params: sdkParams(c.params)})
	}

	job := map[string]any{
		"token": map[string]any{
			"account_sid": testAccountSID, "key_sid": testKeySID, "key_secret": testKeySecret,
			"identity": "slack:U012<&>", "room": "call-1", "ttl": 3600, "now_ms": nowMS, "go_token": cred.Token,
		},
		"auth_token": testAuthToken,
		"validate":   validate,
		"sign":       toSign,
	}
	in, _ := json.Marshal(job)
	cmd := exec.Command("node", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("twilio SDK failed: %v\n%s", err, stderr.String())
	}
	var res struct {
		Token struct {
			SDKToken           string         `json:"sdk_token"`
			SDK                map[string]any `json:"sdk"`
			Go                 map[string]any `json:"go"`
			GoVerified         bool           `json:"go_verified"`
			GoVerifyError      string         `json:"go_verify_error"`
			WrongSecretRefused bool           `json:"wrong_secret_refused"`
		} `json:"token"`
		Validate []bool   `json:"validate"`
		Sign     []string `json:"sign"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("SDK output is not JSON: %v\n%s", err, out)
	}

	// The token: same header and claims as the SDK's, decoded, and the
	// same bytes; verified by the SDK's JWT library.
	if !reflect.DeepEqual(res.Token.Go, res.Token.SDK) {
		t.Errorf("decoded tokens differ\n gateway %v\n     sdk %v", res.Token.Go, res.Token.SDK)
	}
	if res.Token.SDKToken != cred.Token {
		t.Errorf("tokens differ byte for byte\n gateway %s\n     sdk %s", cred.Token, res.Token.SDKToken)
	}
	if !res.Token.GoVerified || !res.Token.WrongSecretRefused {
		t.Errorf("jsonwebtoken on the gateway's token: verified %v (%s), wrong secret refused %v", res.Token.GoVerified, res.Token.GoVerifyError, res.Token.WrongSecretRefused)
	}

	// validateRequest agrees with the gateway's verifier on every case.
	if len(res.Validate) != len(validate) {
		t.Fatalf("%d answers for %d cases", len(res.Validate), len(validate))
	}
	for i, sdkOK := range res.Validate {
		wantOK := i < len(cases)
		if sdkOK != goAccepts[i] || goAccepts[i] != wantOK {
			t.Errorf("case %d (%s): SDK validateRequest %v, gateway %v, want %v", i, validate[i].URL, sdkOK, goAccepts[i], wantOK)
		}
	}

	// The gateway accepts what the SDK signs, at the URL as received.
	if len(res.Sign) != len(cases) {
		t.Fatalf("%d signatures for %d cases", len(res.Sign), len(cases))
	}
	for i, c := range cases {
		if res.Sign[i] != sign(testAuthToken, c.signed, c.params) {
			t.Errorf("%s: SDK signature %s differs from the plain computation", c.name, res.Sign[i])
		}
		if !verifyGo(c.received, res.Sign[i], c.params) {
			t.Errorf("%s: gateway refused the SDK's signature over %s at %s", c.name, c.signed, c.received)
		}
	}
}
