package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// signJaaS signs a body the way JaaS does: base64 HMAC-SHA256 over t.body.
func signJaaS(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "."))
	mac.Write(body)
	return "t=" + t + ",v1=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
