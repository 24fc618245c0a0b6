package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/callgate/callgate/calls"
)

// signJaaS signs a body the way JaaS does: base64 HMAC-SHA256 over t.body.
func signJaaS(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "."))
	mac.Write(body)
	return "t=" + t + ",v1=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// postgresSchema creates a schema of its own on the PostgreSQL at dsn,
// dropped when the test ends, and returns a DSN whose connections use it.
func postgresSchema(t testing.TB, dsn string) string {
	t.Helper()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "cg_api_" + calls.RandomString(10)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("CALLGATE_TEST_POSTGRES is not a URL DSN")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// stores lists the stores to run a test against: SQLite always, PostgreSQL
// when CALLGATE_TEST_POSTGRES holds a DSN.
func stores() map[string]string {
	out := map[string]string{"sqlite": ""}
	if dsn := os.Getenv("CALLGATE_TEST_POSTGRES"); dsn != "" {
		out["postgres"] = dsn
	}
	return out
}
