// Package hs256 mints HS256 JWTs without reflection: the providers' claims
// are small fixed structs, and encoding them through encoding/json and
// golang-jwt costs several times the HMAC that signs them. The pieces here
// produce exactly the bytes golang-jwt/jwt/v5 would (json.Marshal of the
// claims, unpadded base64url, HMAC-SHA256), so tokens are unchanged and
// still verify with that library.
package hs256

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"sync"
	"unicode/utf8"
)

// Header is the first segment golang-jwt writes for HS256:
// base64url(`{"alg":"HS256","typ":"JWT"}`), its header map marshalled with
// sorted keys.
const Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// Signer signs tokens with one secret. hmac.New hashes the key pads each
// time; a pooled MAC keeps them, and Reset returns it to the state right
// after the inner pad, so signing costs only the hashing of the token.
type Signer struct {
	macs sync.Pool
}

// NewSigner returns a signer for secret (copied).
func NewSigner(secret []byte) *Signer {
	key := append([]byte(nil), secret...)
	return &Signer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// claimBufs recycles the claims JSON buffers Sign's callers fill.
var claimBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Buffer returns an empty buffer for a token's claims; hand it back with
// Sign (which consumes it) or PutBuffer.
func Buffer() *[]byte {
	b := claimBufs.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// PutBuffer returns a buffer Sign was not given.
func PutBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 { // do not keep a huge one around for ever
		claimBufs.Put(b)
	}
}

// Sign returns header.base64url(claims).base64url(HMAC-SHA256) as
// golang-jwt's SignedString does; header is the already-encoded first
// segment. It recycles claims.
func (s *Signer) Sign(header string, claims *[]byte) string {
	enc := base64.RawURLEncoding
	// The token is assembled after the claims in the same buffer: one
	// scratch area, and the only allocation is the returned string.
	buf := *claims
	n := len(buf)
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, buf[:n])

	mac := s.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf[n:])
	// Sum appends into buf's spare room rather than a fresh slice.
	m := len(buf)
	buf = mac.Sum(buf)
	s.macs.Put(mac)
	var sig [sha256.Size]byte
	copy(sig[:], buf[m:])
	buf = append(buf[:m], '.')
	buf = enc.AppendEncode(buf, sig[:])
	token := string(buf[n:])
	*claims = buf
	PutBuffer(claims)
	return token
}

// AppendString appends s as encoding/json writes a string: quoted, with
// '"', '\\' and control characters escaped (\b \f \n \r \t by name, the
// rest as \u00XX), U+2028 and U+2029 as \u2028 and \u2029, each byte of
// invalid UTF-8 as \ufffd, and with escapeHTML also '<', '>' and '&' as
// \u003c, \u003e and \u0026 (json.Marshal's default; an Encoder with
// SetEscapeHTML(false) leaves them).
func AppendString(dst []byte, s string, escapeHTML bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && (!escapeHTML || (b != '<' && b != '>' && b != '&')) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			// encoding/json escapes these always (JSONP safety).
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
