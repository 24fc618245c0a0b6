// Package joinlink signs and checks personal join links: short-lived tokens
// that say "this person may join this call" and ride in the link's query,
// so a card can carry one link per person without the gateway storing it.
package joinlink

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// audience keeps join-link tokens from being accepted as any other kind of
// token signed with the same secret, and the other way round.
const audience = "callgate-join"

// Errors Verify returns, so a join page can say which went wrong.
var (
	ErrExpired = errors.New("join link has expired")
	ErrInvalid = errors.New("join link is not valid")
)

// Claims are what a personal join link asserts.
type Claims struct {
	CallID string
	UserID string
	Name   string
	Expiry time.Time
}

type wireClaims struct {
	CallID string `json:"cid"`
	Name   string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Signer mints and checks links. It signs with the first secret and accepts
// any of them, which is how the secret is rotated without breaking links
// already handed out.
type Signer struct {
	secrets [][]byte
	now     func() time.Time
}

// NewSigner returns a Signer; secrets must be at least 32 bytes, the first
// one signs. now may be nil (time.Now).
func NewSigner(now func() time.Time, secrets ...[]byte) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("joinlink: at least one secret is required")
	}
	for i, s := range secrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("joinlink: secret %d is %d bytes, at least 32 are required", i, len(s))
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{secrets: secrets, now: now}, nil
}

// Sign returns the token for claims; Expiry must be set.
func (s *Signer) Sign(c Claims) (string, error) {
	if c.Expiry.IsZero() || c.CallID == "" || c.UserID == "" {
		return "", errors.New("joinlink: call id, user id and expiry are required")
	}
	now := s.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, wireClaims{
		CallID: c.CallID,
		Name:   c.Name,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(c.Expiry),
		},
	})
	return tok.SignedString(s.secrets[0])
}

// Verify checks the token's signature (against every secret), audience and
// expiry, and returns its claims; errors wrap ErrExpired or ErrInvalid.
func (s *Signer) Verify(token string) (Claims, error) {
	var lastErr error
	for _, secret := range s.secrets {
		var wc wireClaims
		_, err := jwt.ParseWithClaims(token, &wc, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(s.now),
		)
		switch {
		case err == nil:
			if wc.CallID == "" || wc.Subject == "" {
				return Claims{}, fmt.Errorf("%w: it names no call or person", ErrInvalid)
			}
			return Claims{CallID: wc.CallID, UserID: wc.Subject, Name: wc.Name, Expiry: wc.ExpiresAt.Time}, nil
		case errors.Is(err, jwt.ErrTokenExpired):
			// The signature checked out; only time is wrong.
			return Claims{}, fmt.Errorf("%w", ErrExpired)
		}
		lastErr = err
	}
	return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, lastErr)
}

// Links builds the gateway's join links: the stable link a card shows and
// personal links signed for one person.
type Links struct {
	// PublicURL is the gateway's external base URL, without trailing slash.
	PublicURL string
	Signer    *Signer
}

// Stable returns the call's stable link, /join/{id}.
func (l Links) Stable(callID string) string {
	return l.PublicURL + "/join/" + url.PathEscape(callID)
}

// Personal returns a link that admits only the claims' user until the
// claims' expiry.
func (l Links) Personal(c Claims) (string, error) {
	tok, err := l.Signer.Sign(c)
	if err != nil {
		return "", err
	}
	return l.Stable(c.CallID) + "?t=" + url.QueryEscape(tok), nil
}
