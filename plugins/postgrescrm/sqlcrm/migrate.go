package sqlcrm

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Migrations are embedded SQL files, one directory per database, named
// NNNN_description.sql and numbered from 1 without gaps. An applied
// migration must never be edited: its checksum is recorded and checked on
// every start.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

func loadMigrations(dialectName string) ([]migration, error) {
	return readMigrations(migrationFS, path.Join("migrations", dialectName))
}

func readMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s is not named NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(b)
		ms = append(ms, migration{Version: v, Name: m[2], SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1, 2, 3...: found %04d at position %d", m.Version, i+1)
		}
	}
	return ms, nil
}

// errSchemaDrift: the database does not match this plugin's migrations.
// Starting anyway could corrupt data, so it is permanent until a person acts.
var errSchemaDrift = errors.New("schema drift")

// runMigrations applies the pending migrations, each in its own
// transaction. inTx must hold the database's migration lock for as long as
// the transaction runs; each migration re-reads schema_migrations under it,
// so concurrent starters apply each migration exactly once.
func runMigrations(ctx context.Context, d *dialect, inTx func(context.Context, func(querier) error) error, ms []migration) (int, error) {
	if err := inTx(ctx, func(q querier) error {
		_, err := q.exec(ctx, d.migrationsTable)
		return err
	}); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := 0
	for _, m := range ms {
		err := inTx(ctx, func(q querier) error {
			var sum string
			err := q.queryRow(ctx, `SELECT checksum FROM schema_migrations WHERE version = $1`, m.Version).Scan(&sum)
			switch {
			case err == nil && sum != m.Checksum:
				return sdk.Permanent(fmt.Errorf("%w: migration %04d_%s was changed after it was applied", errSchemaDrift, m.Version, m.Name))
			case err == nil:
				return nil
			case !errors.Is(err, errNoRows):
				return err
			}
			if _, err := q.exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				m.Version, m.Name, m.Checksum); err != nil {
				return fmt.Errorf("record %04d_%s: %w", m.Version, m.Name, err)
			}
			applied++
			return nil
		})
		if err != nil {
			return applied, err
		}
	}
	// A newer plugin migrated this database: this one does not know the
	// schema it would be writing to.
	var newest int
	if err := inTx(ctx, func(q querier) error {
		return q.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest)
	}); err != nil {
		return applied, fmt.Errorf("read schema version: %w", err)
	}
	if newest > len(ms) {
		return applied, sdk.Permanent(fmt.Errorf("%w: the database is at schema version %d, this plugin knows up to %d; upgrade the plugin",
			errSchemaDrift, newest, len(ms)))
	}
	return applied, nil
}
