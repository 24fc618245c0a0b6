// Package hs256test holds what the token tests of every adapter share: the
// strings that a hand-written claims encoder must escape exactly as
// encoding/json does.
package hs256test

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
)

// HostileStrings returns, in a new slice, strings that exercise every
// escape encoding/json knows: quotes and backslashes, control characters,
// HTML characters, U+2028/U+2029, non-ASCII, invalid UTF-8 (which
// encoding/json replaces with U+FFFD), and a long value; with a few
// ordinary names and ids among them.
func HostileStrings() []string {
	return []string{
		"",
		"Ada Lovelace",
		"ada",
		"slack:U012AB3CD",
		`quote " backslash \ slash /`,
		"controls \x00\x01\x07\b\t\n\v\f\r\x1b\x1f DEL \x7f",
		"<script>alert('x')</script> & co",
		"line\u2028sep\u2029para",
		"é ü 中文 😀 “Bob”",
		"invalid \xff \xc3\x28 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end\xc3",
		"\xef\xbf\xbd real replacement char",
		strings.Repeat("long <&> \"value\" \u2028 \xff ", 3000),
	}
}

// BenchmarkHMAC runs b as the ceiling the adapters' benchmarks are read
// against: one raw HMAC-SHA256 with key over msg per iteration. A token
// costs at least one over its signed part, a signed webhook one over its
// signed message.
func BenchmarkHMAC(b *testing.B, key, msg []byte) {
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		m.Sum(nil)
	}
}

// SignedPart is the part of a JWT its signature covers: header.payload.
func SignedPart(token string) []byte {
	return []byte(token[:strings.LastIndexByte(token, '.')])
}
