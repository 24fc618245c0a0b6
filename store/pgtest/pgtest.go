// Package pgtest gives tests outside package store a private PostgreSQL
// schema: the DSN in CALLGATE_TEST_POSTGRES with search_path set to a new
// schema that is dropped when the test ends. Without the variable, tests
// that need PostgreSQL are skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Env names the variable holding the PostgreSQL DSN tests use.
const Env = "CALLGATE_TEST_POSTGRES"

// DSN returns a DSN on a fresh schema, or skips the test when Env is unset.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to a DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable", Env)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", Env, err)
	}
	admin := stdlib.OpenDB(*cfg)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "cg_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", Env, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}
