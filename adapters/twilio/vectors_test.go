package twilio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/callgate/callgate/calls"
)

// vector is one of Twilio's request validation cases (testdata/twilio.json,
// taken from twilio-go's and twilio-python's own tests).
type vector struct {
	Source            string            `json:"source"`
	Name              string            `json:"name"`
	AuthToken         string            `json:"auth_token"`
	URL               string            `json:"url"`
	Params            map[string]string `json:"params"`
	ExpectedSignature string            `json:"expected_signature"`
	ExpectValid       bool              `json:"expect_valid"`
	URLActuallySigned string            `json:"url_actually_signed"`
	RawBody           *string           `json:"raw_body"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/twilio.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []vector `json:"request_validation_vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return file.Vectors
}

// body is what the vector's request carried: its raw body, or its params
// form-encoded.
func (v vector) body() []byte {
	if v.RawBody != nil {
		return []byte(*v.RawBody)
	}
	return []byte(toValues(v.Params).Encode())
}

func toValues(m map[string]string) url.Values {
	out := url.Values{}
	for k, val := range m {
		out.Set(k, val)
	}
	return out
}

func TestTwilioVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			params := toValues(v.Params)
			// The signature verifier alone.
			if got := validSignature([][]byte{[]byte(v.AuthToken)}, v.ExpectedSignature, v.URL, params); got != v.ExpectValid {
				t.Errorf("validSignature = %v, want %v", got, v.ExpectValid)
			}
			// Signing the URL Twilio signed reproduces the signature byte
			// for byte.
			if v.ExpectValid && v.URLActuallySigned != "" {
				if got := sign(v.AuthToken, v.URLActuallySigned, params); got != v.ExpectedSignature {
					t.Errorf("signature over %s = %s, want %s", v.URLActuallySigned, got, v.ExpectedSignature)
				}
			}
			if q, _ := url.Parse(v.URL); q != nil && q.Query().Get("bodySHA256") != "" {
				sum := sha256.Sum256(v.body())
				if hex.EncodeToString(sum[:]) != q.Query().Get("bodySHA256") {
					t.Errorf("bodySHA256 does not match the raw body")
				}
			}

			// The whole request through ReceiveWebhook: valid vectors carry
			// no status callback event, so they give no events and no error.
			p, _ := newTestProvider(t, func(c *Config) { c.AuthTokens = []string{v.AuthToken} })
			req := calls.WebhookRequest{URL: v.URL, Header: http.Header{SignatureHeader: {v.ExpectedSignature}}, Body: v.body()}
			hook, err := p.ReceiveWebhook(context.Background(), req)
			if v.ExpectValid {
				if err != nil || len(hook.Events) != 0 {
					t.Fatalf("valid vector: %+v, %v", hook, err)
				}
				// One byte more in the body is refused.
				req.Body = append(append([]byte(nil), req.Body...), ' ')
				if _, err := p.ReceiveWebhook(context.Background(), req); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
					t.Errorf("altered body: %v", err)
				}
			} else if !errors.Is(err, calls.ErrWebhookUnauthenticated) {
				t.Fatalf("invalid vector accepted: %v", err)
			}
			if strings.Contains(v.URL, "bodySHA256") {
				// The body hash alone does not authenticate: a wrong
				// signature over the right body is refused.
				req := calls.WebhookRequest{URL: v.URL, Header: http.Header{SignatureHeader: {sign("x", v.URL, nil)}}, Body: v.body()}
				if _, err := p.ReceiveWebhook(context.Background(), req); !errors.Is(err, calls.ErrWebhookUnauthenticated) {
					t.Errorf("wrong signature with a matching body hash: %v", err)
				}
			}
		})
	}
}
