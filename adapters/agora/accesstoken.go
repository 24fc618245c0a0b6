package agora

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"sync"
)

// AccessToken2 ("007…") as Agora's own builders write it (AgoraIO/Tools
// DynamicKey/AgoraDynamicKey/go/src/accesstoken2 and the agora-token npm
// package): integers little-endian, strings and byte strings as a u16 length
// and the bytes, privilege maps as a u16 count and (u16 key, u32 value)
// pairs in key order.
//
//	signing_info = str(appId) u32(issueTs) u32(expire) u32(salt) u16(n)
//	               then per service, in type order: u16(type) map(privileges) extras
//	k1    = HMAC-SHA256(key = u32le(issueTs), msg = appCertificate)
//	k2    = HMAC-SHA256(key = u32le(salt),    msg = k1)
//	sig   = HMAC-SHA256(k2, signing_info)
//	token = "007" + base64std(zlib(str(sig) + signing_info))
//
// expire and the privilege values are seconds relative to issueTs, not
// timestamps.
const tokenVersion = "007"

// Service types and privileges of AccessToken2 that callgate grants.
const (
	serviceRTC uint16 = 1
	serviceRTM uint16 = 2

	privJoinChannel  uint16 = 1 // RTC: join the channel
	privPublishAudio uint16 = 2 // RTC: publish audio
	privPublishVideo uint16 = 3 // RTC: publish video
	privPublishData  uint16 = 4 // RTC: publish data streams
	privRTMLogin     uint16 = 1 // RTM: log in
)

// saltLimit bounds the salt: Agora draws it from [1, 99999999).
const saltLimit = 99999999

// tokenService is one service of a token: its type, privileges (relative
// seconds) and the type's extra fields, already ordered as packed (RTC:
// channel name then uid string; RTM: user id).
type tokenService struct {
	Type       uint16
	Privileges map[uint16]uint32
	Extras     []string
}

// rtcService grants the RTC privileges for a channel and uid (0 packs as the
// empty string, "any uid", as GetUidStr does). A publisher gets join and
// publish audio, video and data; a subscriber only join.
func rtcService(channel string, uid uint32, publisher bool, expire uint32) tokenService {
	privs := map[uint16]uint32{privJoinChannel: expire}
	if publisher {
		privs[privPublishAudio] = expire
		privs[privPublishVideo] = expire
		privs[privPublishData] = expire
	}
	return tokenService{Type: serviceRTC, Privileges: privs, Extras: []string{channel, uidString(uid)}}
}

// rtmService grants RTM login for a user id.
func rtmService(userID string, expire uint32) tokenService {
	return tokenService{Type: serviceRTM, Privileges: map[uint16]uint32{privRTMLogin: expire}, Extras: []string{userID}}
}

// uidString is how AccessToken2 carries a numeric uid: its decimal string,
// or the empty string for 0.
func uidString(uid uint32) string {
	if uid == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// accessToken holds everything that goes into one token.
type accessToken struct {
	AppID       string
	Certificate string
	IssueTs     uint32
	Expire      uint32
	Salt        uint32
	Services    []tokenService
}

// zlibWriters recycles compressors: a fresh one allocates most of a
// megabyte, and Reset gives the same output as a new writer.
var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(io.Discard) }}

// tokenBufs recycles the scratch buffers of build (content, then the
// compressed bytes).
var tokenBufs = sync.Pool{New: func() any { return new(tokenBuf) }}

type tokenBuf struct {
	content []byte
	z       bytes.Buffer
}

var errTokenField = errors.New("agora: a token field is longer than 65535 bytes")

// build packs, signs, compresses and encodes the token. It is deterministic:
// the same fields give the same string (issueTs and salt are inputs).
func (t accessToken) build() (string, error) {
	buf := tokenBufs.Get().(*tokenBuf)
	defer tokenBufs.Put(buf)

	// content = str(sig) + signing_info, packed in place: the signing info
	// goes after room for the signature, which is filled in once computed.
	const sigAt = 2
	content := binary.LittleEndian.AppendUint16(buf.content[:0], sha256.Size)
	content = append(content, make([]byte, sha256.Size)...)
	content, err := t.appendSigningInfo(content)
	if err != nil {
		return "", err
	}
	buf.content = content
	copy(content[sigAt:], signature(t.Certificate, t.IssueTs, t.Salt, content[sigAt+sha256.Size:]))

	// Default level, written and closed as Agora's Go builder does
	// (compressZlib), so Go's compress/zlib reproduces its tokens byte for
	// byte. Levels 0, 1 and HuffmanOnly write other bytes
	// (TestOnlyLZ77LevelsMatchVectors); levels 2-9 write the same but cost
	// the same, since it is their shared Reset (clearing 640 KB of match
	// tables) that dominates.
	buf.z.Reset()
	w := zlibWriters.Get().(*zlib.Writer)
	defer zlibWriters.Put(w)
	w.Reset(&buf.z)
	if _, err := w.Write(content); err != nil {
		return "", fmt.Errorf("agora: compress token: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("agora: compress token: %w", err)
	}
	z := buf.z.Bytes()
	out := make([]byte, len(tokenVersion)+base64.StdEncoding.EncodedLen(len(z)))
	copy(out, tokenVersion)
	base64.StdEncoding.Encode(out[len(tokenVersion):], z)
	return string(out), nil
}

// signingInfo is the signed part of the token.
func (t accessToken) signingInfo() ([]byte, error) {
	return t.appendSigningInfo(nil)
}

func (t accessToken) appendSigningInfo(b []byte) ([]byte, error) {
	if len(t.AppID) > 0xffff {
		return nil, errTokenField
	}
	b = appendString(b, t.AppID)
	b = binary.LittleEndian.AppendUint32(b, t.IssueTs)
	b = binary.LittleEndian.AppendUint32(b, t.Expire)
	b = binary.LittleEndian.AppendUint32(b, t.Salt)
	services := t.Services
	// Agora packs services in type order (one per type); callgate's come
	// ordered, so only others are copied and sorted.
	if !slices.IsSortedFunc(services, byType) {
		services = slices.Clone(services)
		slices.SortStableFunc(services, byType)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(services)))
	for _, s := range services {
		b = binary.LittleEndian.AppendUint16(b, s.Type)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s.Privileges)))
		// Privileges in key order. A service has a handful, so the keys
		// are sorted in a stack array, not a fresh slice.
		var keyBuf [8]uint16
		keys := keyBuf[:0]
		for k := range s.Privileges {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = binary.LittleEndian.AppendUint16(b, k)
			b = binary.LittleEndian.AppendUint32(b, s.Privileges[k])
		}
		for _, e := range s.Extras {
			if len(e) > 0xffff {
				return nil, errTokenField
			}
			b = appendString(b, e)
		}
	}
	return b, nil
}

func byType(a, b tokenService) int { return int(a.Type) - int(b.Type) }

// signature is HMAC-SHA256 over the signing info with the key derived from
// the certificate, issue time and salt.
func signature(certificate string, issueTs, salt uint32, info []byte) []byte {
	return signWith(signingKey(certificate, issueTs, salt), info)
}

func signingKey(certificate string, issueTs, salt uint32) []byte {
	var ts, sl [4]byte
	binary.LittleEndian.PutUint32(ts[:], issueTs)
	binary.LittleEndian.PutUint32(sl[:], salt)
	k1 := hmac.New(sha256.New, ts[:])
	k1.Write([]byte(certificate))
	k2 := hmac.New(sha256.New, sl[:])
	k2.Write(k1.Sum(nil))
	return k2.Sum(nil)
}

func signWith(key, info []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(info)
	return m.Sum(nil)
}

// newSalt draws the salt as Agora's builders do: uniformly in [1, 99999999).
func newSalt() (uint32, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(saltLimit-1))
	if err != nil {
		return 0, fmt.Errorf("agora: token salt: %w", err)
	}
	return uint32(n.Int64()) + 1, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
