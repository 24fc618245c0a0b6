package jitsi

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/calls"
)

// JaaS (8x8 Jitsi as a Service) tokens, as documented at
// https://developer.8x8.com/jaas/docs/api-keys-jwt: RS256 signed with the
// API key's private key, header kid "<AppID>/<key id>", aud "jitsi", iss
// "chat", sub the AppID (the "tenant"), room the room name (without the
// AppID), and context.user / context.features for rights. JaaS needs a
// token in every room, so with JaaS every link carries one.

// JaaSBaseURL is 8x8's Meet domain; rooms live under /<AppID>/.
const JaaSBaseURL = "https://8x8.vc"

// jaasAppPrefix starts every JaaS AppID.
const jaasAppPrefix = "vpaas-magic-cookie-"

// ParseRSAPrivateKey reads a PEM RSA private key, PKCS#1 ("RSA PRIVATE
// KEY") or PKCS#8 ("PRIVATE KEY", as 8x8's console downloads it). A key
// passed through an environment variable with literal "\n" sequences is
// accepted too. Errors never quote the key.
func ParseRSAPrivateKey(s string) (*rsa.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("is not a PEM block (-----BEGIN PRIVATE KEY-----)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("is not a valid PKCS#1 RSA private key")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("is not a valid PKCS#8 private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("is a %T key, not RSA", k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("is a PEM %q block, not an RSA private key", block.Type)
}

// jaasKid is the token header's kid: "<AppID>/<key id>". The console shows
// the key id either alone or already prefixed; both are accepted.
func jaasKid(appID, keyID string) string {
	if strings.HasPrefix(keyID, appID+"/") {
		return keyID
	}
	return appID + "/" + keyID
}

// flag is JaaS's string boolean ("true"/"false") in context.user and
// context.features.
func flag(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// mintJaaS signs the JaaS RS256 token for one person in one room.
// Moderators (owner, panelist) get moderator rights and the recording,
// livestreaming and transcription features; outbound calls (billed per
// minute) stay off for everyone.
func (p *Provider) mintJaaS(room string, req calls.CredentialRequest, issued, expires time.Time) (string, error) {
	mod := req.Role.IsModerator()
	claims := jwt.MapClaims{
		"aud":  "jitsi",
		"iss":  "chat",
		"sub":  p.jaasApp,
		"room": room,
		"exp":  expires.Unix(),
		"nbf":  issued.Add(-clockSkew).Unix(),
		"context": map[string]any{
			"user": map[string]any{
				"id":                   req.UserID,
				"name":                 req.Name,
				"avatar":               "",
				"email":                "",
				"moderator":            flag(mod),
				"hidden-from-recorder": false,
			},
			"features": map[string]any{
				"livestreaming": flag(mod),
				"recording":     flag(mod),
				"transcription": flag(mod),
				"outbound-call": "false",
			},
			"room": map[string]any{"regex": false},
		},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = p.jaasKid
	signed, err := tok.SignedString(p.jaasKey)
	if err != nil {
		return "", fmt.Errorf("%w: jitsi: sign JaaS token: %w", calls.ErrProvider, err)
	}
	return signed, nil
}
