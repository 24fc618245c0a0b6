package agora

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// decodedToken is an AccessToken2 taken apart by decodeToken.
type decodedToken struct {
	AppID    string
	IssueTs  uint32
	Expire   uint32
	Salt     uint32
	Services []tokenService
	// SigningInfo and Signature are the signed bytes and the HMAC over them.
	SigningInfo []byte
	Signature   []byte
}

// decodeToken undoes build without trusting the compressor's bytes:
// base64-decode, zlib-decompress, unpack every field; and verify checks the
// HMAC with a certificate. It is independent of build (its own reader), so a
// test that builds then decodes checks both.
func decodeToken(token string) (decodedToken, error) {
	var d decodedToken
	rest, ok := strings.CutPrefix(token, tokenVersion)
	if !ok {
		return d, errors.New("not a 007 token")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return d, fmt.Errorf("base64: %w", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return d, fmt.Errorf("zlib: %w", err)
	}
	content, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return d, fmt.Errorf("zlib: %w", err)
	}
	r := &reader{b: content}
	d.Signature = r.bytes()
	d.SigningInfo = content[r.off:]
	d.AppID = string(r.bytes())
	d.IssueTs = r.u32()
	d.Expire = r.u32()
	d.Salt = r.u32()
	n := r.u16()
	for range n {
		s := tokenService{Type: r.u16(), Privileges: map[uint16]uint32{}}
		for range r.u16() {
			k := r.u16()
			s.Privileges[k] = r.u32()
		}
		switch s.Type {
		case serviceRTC:
			s.Extras = []string{string(r.bytes()), string(r.bytes())}
		case serviceRTM:
			s.Extras = []string{string(r.bytes())}
		default:
			return d, fmt.Errorf("service type %d is not one callgate knows", s.Type)
		}
		d.Services = append(d.Services, s)
	}
	if r.err != nil {
		return d, r.err
	}
	if r.off != len(content) {
		return d, fmt.Errorf("%d trailing bytes", len(content)-r.off)
	}
	return d, nil
}

// verify reports whether the token's HMAC is the one the certificate makes.
func (d decodedToken) verify(certificate string) bool {
	return hmac.Equal(d.Signature, signature(certificate, d.IssueTs, d.Salt, d.SigningInfo))
}

func (d decodedToken) service(t uint16) (tokenService, bool) {
	for _, s := range d.Services {
		if s.Type == t {
			return s, true
		}
	}
	return tokenService{}, false
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if r.off+n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) bytes() []byte { return r.take(int(r.u16())) }
