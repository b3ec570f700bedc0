// Package testdb gives the SQL CRM's tests a database of their own: a fresh
// schema on the real PostgreSQL, or a SQLite file in a temporary directory.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the CI database (trust auth).
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL is POSTGRES_URL, else DATABASE_URL, else DefaultPostgresURL.
func PostgresURL() string {
	for _, k := range []string{"POSTGRES_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return DefaultPostgresURL
}

var (
	probeOnce sync.Once
	probeErr  error
)

// RequirePostgres skips the test when PostgreSQL is unreachable, except in
// CI (env CI set), which guarantees one: there it fails.
func RequirePostgres(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresURL())
		if err != nil {
			probeErr = err
			return
		}
		probeErr = conn.Ping(ctx)
		_ = conn.Close(ctx)
	})
	if probeErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is unreachable in CI: %v", redacted(), probeErr)
		}
		t.Skipf("PostgreSQL unreachable (%v); set POSTGRES_URL to run this test", probeErr)
	}
}

func redacted() string {
	cfg, err := pgx.ParseConfig(PostgresURL())
	if err != nil {
		return "(unparseable POSTGRES_URL)"
	}
	return cfg.Host + "/" + cfg.Database
}

// Schema returns the name of a schema no other test uses, and drops it with
// everything in it at cleanup. The schema itself is not created: the
// plugin creates it when it migrates.
func Schema(t testing.TB) string {
	t.Helper()
	RequirePostgres(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "sb_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// Backend is one of the databases the CRM runs on.
type Backend struct {
	Name string
	// Config returns a plugin config on a fresh database, with extra keys
	// merged in.
	Config func(t testing.TB, extra map[string]any) json.RawMessage
}

// Backends lists PostgreSQL and SQLite.
var Backends = []Backend{
	{Name: "postgres", Config: PostgresConfig},
	{Name: "sqlite", Config: SQLiteConfig},
}

// PostgresConfig is a config on a fresh PostgreSQL schema.
func PostgresConfig(t testing.TB, extra map[string]any) json.RawMessage {
	return build(extra, map[string]any{"dsn": PostgresURL(), "schema": Schema(t)})
}

// SQLiteConfig is a config on a fresh SQLite file.
func SQLiteConfig(t testing.TB, extra map[string]any) json.RawMessage {
	return build(extra, map[string]any{"sqlite_path": filepath.Join(t.TempDir(), "crm.db")})
}

func build(extra, base map[string]any) json.RawMessage {
	for k, v := range extra {
		base[k] = v
	}
	b, _ := json.Marshal(base)
	return b
}
