package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/callgate/callgate/calls"
)

// TestServesFromPostgres runs the binary with store.kind postgres (the DSN
// from the environment, as admins are told to keep it), in a schema of its
// own, across a restart.
func TestServesFromPostgres(t *testing.T) {
	dsn := os.Getenv("CALLGATE_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CALLGATE_TEST_POSTGRES is not set")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := "cg_cmd_" + calls.RandomString(8)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("CALLGATE_TEST_POSTGRES is not a URL DSN")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "pg.yaml")
	os.WriteFile(cfg, []byte("store:\n  kind: postgres\n  dsn: ${TEST_DSN}\napi:\n  keys: [{name: t, key: pg-key-0123456789abcdef}]\n"), 0o600)
	env := func(k string) (string, bool) {
		if k == "TEST_DSN" {
			return u.String(), true
		}
		return "", false
	}
	opts := serveOptions{addr: "127.0.0.1:0", dataDir: filepath.Join(dir, "data"), configFile: cfg, getenv: env}
	start := func() (string, func() error) { return startGatewayWith(t, opts, &syncBuffer{}) }
	base, stop := start()
	c := client{t: t, base: base, key: "pg-key-0123456789abcdef"}
	if status, body, _ := c.do("POST", "/v1/calls", map[string]any{"id": "PG-1", "title": "on postgres"}); status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	base, stop = start()
	defer stop()
	c.base = base
	status, body, _ := c.do("GET", "/v1/calls/pg-1", nil)
	if status != 200 || body["call"].(map[string]any)["title"] != "on postgres" {
		t.Fatalf("after restart: %d %v", status, body)
	}
	var n int
	if err := admin.QueryRowContext(t.Context(), "SELECT count(*) FROM "+schema+".calls").Scan(&n); err != nil || n != 1 {
		t.Fatalf("calls in the postgres schema: %d, %v", n, err)
	}
	if status, _, _ := c.do("GET", "/readyz", nil); status != 200 {
		t.Fatalf("readyz: %d", status)
	}
}
