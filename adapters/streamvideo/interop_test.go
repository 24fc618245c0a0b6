package streamvideo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/calls"
)

// requireInterop makes a missing SDK a failure instead of a skip; CI sets it
// after installing the SDKs.
const requireInterop = "CALLGATE_REQUIRE_INTEROP"

func nodeSDK(t *testing.T, dir, script string) string {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", "..", "interop", dir))
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(root, "node_modules"))
	if errNode != nil || errMods != nil {
		msg := "interop SDK not installed (run `make interop-deps`)"
		if os.Getenv(requireInterop) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return filepath.Join(root, script)
}

// TestStreamVideoSDKInterop checks the adapter against @stream-io/node-sdk:
// the SDK accepts the gateway's webhook signatures (plain and gzip) and
// user tokens; the gateway accepts the SDK-side signature; the SDK's own
// call token carries exactly the claims the gateway mints.
func TestStreamVideoSDKInterop(t *testing.T) {
	script := nodeSDK(t, "stream-node-sdk", "stream_video.mjs")
	const secret = "interop+secret/with=odd-chars"
	p := newTestProvider(t, func(c *Config) { c.Secrets = []string{secret} })
	issued := time.Now().Truncate(time.Second)
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1", ProviderID: "default:call-1"},
		calls.CredentialRequest{UserID: "ada", Role: calls.RoleOwner, TTL: time.Hour, IssuedAt: issued})
	if err != nil {
		t.Fatal(err)
	}
	goClaims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(cred.Token, goClaims, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
		t.Fatal(err)
	}
	body := `{"type":"call.session_participant_joined","created_at":"2026-03-14T15:09:26Z","call_cid":"default:call-1","participant":{"user_session_id":"us1","user":{"id":"ada","name":"Ada"}}}`
	goSig := hex.EncodeToString(mac([]byte(secret), []byte(body)))
	in, _ := json.Marshal(map[string]any{"secret": secret, "apiKey": testKey, "goToken": cred.Token, "body": body, "goSignature": goSig, "claims": goClaims})
	raw, err := exec.Command("node", script, string(in)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, raw)
	}
	var out struct {
		VerifyWebhook, VerifyWebhookTampered, SDKSignatureVerifies, WrongSecretAccepted bool
		Parsed, ParsedGzip                                                              map[string]any
		ParsedError, ParsedGzipError, GoTokenError                                      string
		SDKSignature                                                                    string
		SDKCallToken, SDKUserToken                                                      string
		GoTokenPayload                                                                  map[string]any
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("output %s: %v", raw, err)
	}
	if !out.VerifyWebhook || out.VerifyWebhookTampered {
		t.Errorf("SDK verifyWebhook of the gateway's signature: %v, tampered %v", out.VerifyWebhook, out.VerifyWebhookTampered)
	}
	if out.Parsed["type"] != "call.session_participant_joined" || out.ParsedGzip["call_cid"] != "default:call-1" {
		t.Errorf("SDK verifyAndParseWebhook: %v %q / gzip %v %q", out.Parsed, out.ParsedError, out.ParsedGzip, out.ParsedGzipError)
	}
	// The other direction: the SDK-side signature, plain and gzip.
	for _, gzipped := range []bool{false, true} {
		b := []byte(body)
		if gzipped {
			b = gz(t, b)
		}
		req := calls.WebhookRequest{Header: map[string][]string{"X-Signature": {out.SDKSignature}}, Body: b}
		hook, err := p.ReceiveWebhook(context.Background(), req)
		if err != nil || len(hook.Events) != 1 || hook.Events[0].Identity != "ada" {
			t.Errorf("gateway refused the SDK-side signature (gzip %v): %+v %v", gzipped, hook, err)
		}
	}
	if !out.SDKSignatureVerifies || out.SDKSignature != goSig {
		t.Errorf("signatures differ: SDK %s, gateway %s", out.SDKSignature, goSig)
	}
	// Tokens: the SDK's jsonwebtoken accepts the gateway's token, and not
	// with another secret.
	if out.GoTokenError != "" || out.WrongSecretAccepted {
		t.Errorf("SDK side verification of the gateway token: %q, wrong secret accepted %v", out.GoTokenError, out.WrongSecretAccepted)
	}
	var goPayload map[string]any
	b, _ := json.Marshal(goClaims)
	json.Unmarshal(b, &goPayload)
	if !reflect.DeepEqual(out.GoTokenPayload, goPayload) {
		t.Errorf("SDK reads %v, gateway minted %v", out.GoTokenPayload, goPayload)
	}
	// The SDK's call token has the same claims and verifies with the
	// gateway's secret; its user token is the same minus call_cids/role.
	sdkClaims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(out.SDKCallToken, sdkClaims, func(*jwt.Token) (any, error) { return []byte(secret), nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("SDK call token does not verify with the gateway's secret: %v", err)
	}
	if !reflect.DeepEqual(sdkClaims, goClaims) {
		t.Errorf("SDK call token claims %v, gateway %v", sdkClaims, goClaims)
	}
	userClaims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(out.SDKUserToken, userClaims, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(userClaims, jwt.MapClaims{"user_id": "ada", "iat": goClaims["iat"], "exp": goClaims["exp"]}) {
		t.Errorf("SDK user token claims %v", userClaims)
	}
	// Header shape: both are HS256 JWTs.
	for _, tok := range []string{cred.Token, out.SDKCallToken} {
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil || parsed.Header["alg"] != "HS256" || parsed.Header["typ"] != "JWT" {
			t.Errorf("header %v %v", parsed.Header, err)
		}
	}
}
