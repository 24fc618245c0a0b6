package agora

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

type vectorFile struct {
	AccessToken2 []struct {
		Name   string `json:"name"`
		Inputs struct {
			AppID          string `json:"appId"`
			AppCertificate string `json:"appCertificate"`
			IssueTs        uint32 `json:"issueTs"`
			Salt           uint32 `json:"salt"`
			Expire         uint32 `json:"expire"`
			Services       []struct {
				Type        uint16            `json:"type"`
				ChannelName string            `json:"channelName"`
				UID         string            `json:"uid"`
				UserID      string            `json:"userId"`
				Privileges  map[string]uint32 `json:"privileges"`
			} `json:"services"`
		} `json:"inputs"`
		ExpectedToken string `json:"expected_token"`
	} `json:"accesstoken2_vectors"`
	NCS []struct {
		Name     string `json:"name"`
		Secret   string `json:"secret"`
		RawBody  string `json:"raw_body"`
		SHA1Hex  string `json:"Agora-Signature (hex HMAC-SHA1)"`
		SHA256Hx string `json:"Agora-Signature-V2 (hex HMAC-SHA256)"`
	} `json:"ncs_signature_vectors"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/agora.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.AccessToken2) == 0 || len(v.NCS) == 0 {
		t.Fatal("vector file has no vectors")
	}
	return v
}

// TestAccessToken2Vectors builds Agora's own Go test tokens from their
// inputs and compares the strings byte for byte (Go's compress/zlib is what
// Agora's Go builder uses), then decodes each expected token independently
// and verifies its HMAC.
func TestAccessToken2Vectors(t *testing.T) {
	for _, v := range loadVectors(t).AccessToken2 {
		t.Run(v.Name, func(t *testing.T) {
			in := v.Inputs
			tok := accessToken{AppID: in.AppID, Certificate: in.AppCertificate, IssueTs: in.IssueTs, Expire: in.Expire, Salt: in.Salt}
			for _, s := range in.Services {
				privs := map[uint16]uint32{}
				for k, val := range s.Privileges {
					n, err := strconv.ParseUint(k, 10, 16)
					if err != nil {
						t.Fatal(err)
					}
					privs[uint16(n)] = val
				}
				ts := tokenService{Type: s.Type, Privileges: privs}
				switch s.Type {
				case serviceRTC:
					ts.Extras = []string{s.ChannelName, s.UID}
				case serviceRTM:
					ts.Extras = []string{s.UserID}
				}
				tok.Services = append(tok.Services, ts)
			}
			// Built three times: the compressor comes from a pool, and a
			// reused one must write the same bytes as a fresh one.
			for range 3 {
				got, err := tok.build()
				if err != nil {
					t.Fatal(err)
				}
				if got != v.ExpectedToken {
					t.Errorf("token\n got %s\nwant %s", got, v.ExpectedToken)
				}
			}

			d, err := decodeToken(v.ExpectedToken)
			if err != nil {
				t.Fatal(err)
			}
			if !d.verify(in.AppCertificate) {
				t.Error("the official token's HMAC does not verify")
			}
			if d.verify("0" + in.AppCertificate[1:]) {
				t.Error("verified with another certificate")
			}
			if d.AppID != in.AppID || d.IssueTs != in.IssueTs || d.Expire != in.Expire || d.Salt != in.Salt || !reflect.DeepEqual(d.Services, tok.Services) {
				t.Errorf("decoded %+v, want %+v", d, tok)
			}
		})
	}
}

// The uid helpers for the RTC builder: 0 is "any uid" (empty string), and
// rtcService packs what Agora's BuildTokenWithUid packs for each role.
func TestRTCServicePrivileges(t *testing.T) {
	pub := rtcService("c", 2882341273, true, 600)
	if !reflect.DeepEqual(pub, tokenService{Type: 1, Privileges: map[uint16]uint32{1: 600, 2: 600, 3: 600, 4: 600}, Extras: []string{"c", "2882341273"}}) {
		t.Errorf("publisher %+v", pub)
	}
	sub := rtcService("c", 0, false, 600)
	if !reflect.DeepEqual(sub, tokenService{Type: 1, Privileges: map[uint16]uint32{1: 600}, Extras: []string{"c", ""}}) {
		t.Errorf("subscriber %+v", sub)
	}
	if rtm := rtmService("u", 60); !reflect.DeepEqual(rtm, tokenService{Type: 2, Privileges: map[uint16]uint32{1: 60}, Extras: []string{"u"}}) {
		t.Errorf("rtm %+v", rtm)
	}
}

func TestDecodeTokenRefusesGarbage(t *testing.T) {
	for _, tok := range []string{"", "006abc", "007!!!", "007" + "eJwDAAAAAAE=", "007eJxjYGBgAAAABQAB"} {
		if _, err := decodeToken(tok); err == nil {
			t.Errorf("decoded %q", tok)
		}
	}
}

func TestSaltRange(t *testing.T) {
	for range 1000 {
		s, err := newSalt()
		if err != nil || s < 1 || s >= saltLimit {
			t.Fatalf("salt %d %v", s, err)
		}
	}
}

// TestOnlyLZ77LevelsMatchVectors records why build keeps a default-level
// compressor, whose Reset clears 640 KB of match tables per token: the
// levels that skip those tables (0, 1 and HuffmanOnly) do not reproduce
// Agora's tokens byte for byte, and every level that does uses them.
func TestOnlyLZ77LevelsMatchVectors(t *testing.T) {
	for _, v := range loadVectors(t).AccessToken2 {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v.ExpectedToken, tokenVersion))
		if err != nil {
			t.Fatal(err)
		}
		r, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
			// The zlib header names the level; compare the deflate stream.
			var z bytes.Buffer
			w, err := flate.NewWriter(&z, level)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(content)
			w.Close()
			same := bytes.Equal(z.Bytes(), raw[2:len(raw)-4])
			if want := level >= 2 || level == flate.DefaultCompression; same != want {
				t.Errorf("%s: level %d matches the vector: %v, want %v", v.Name, level, same, want)
			}
		}
	}
}
