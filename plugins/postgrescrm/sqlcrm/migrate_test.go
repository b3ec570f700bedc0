package sqlcrm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// openDB opens only the driver, without migrating, on a parsed config.
func openDB(t testing.TB, raw []byte) database {
	t.Helper()
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	var db database
	if cfg.DSN != "" {
		db, err = openPostgres(ctxT(t), cfg)
	} else {
		db, err = openSQLite(ctxT(t), cfg)
	}
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(db.close)
	return db
}

func probeMigrations(t testing.TB, files map[string]string) []migration {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys["m/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	ms, err := readMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// These statements would fail or duplicate a row if applied twice.
var probeFiles = map[string]string{
	"0001_table.sql":  `CREATE TABLE mig_probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL);`,
	"0002_row.sql":    `INSERT INTO mig_probe (id, note) VALUES (1, 'once'); INSERT INTO mig_probe (id, note) VALUES (2, 'twice?');`,
	"0003_column.sql": `ALTER TABLE mig_probe ADD COLUMN extra TEXT;`,
}

func TestMigrationsConcurrentAndIdempotent(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Config(t, nil)
			ms := probeMigrations(t, probeFiles)
			// Four pools migrate one database at once, as four plugin
			// processes starting together would.
			dbs := make([]database, 4)
			for i := range dbs {
				dbs[i] = openDB(t, cfg)
			}
			var (
				mu    sync.Mutex
				total int
			)
			errs := parallel(len(dbs), func(i int) error {
				n, err := dbs[i].migrate(ctxT(t), ms)
				mu.Lock()
				total += n
				mu.Unlock()
				return err
			})
			for _, err := range errs {
				t.Error(err)
			}
			if total != len(ms) {
				t.Errorf("migrations applied %d times in all, want %d", total, len(ms))
			}
			n, err := dbs[0].migrate(ctxT(t), ms)
			if err != nil || n != 0 {
				t.Errorf("second run applied %d, %v; want 0", n, err)
			}
			var rows, versions int
			err = dbs[0].read(ctxT(t), func(q querier) error {
				if err := q.queryRow(ctxT(t), `SELECT COUNT(*) FROM mig_probe`).Scan(&rows); err != nil {
					return err
				}
				return q.queryRow(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions)
			})
			if err != nil || rows != 2 || versions != 3 {
				t.Errorf("after migrating: %d probe rows, %d versions, %v; want 2 and 3", rows, versions, err)
			}
		})
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := openDB(t, b.Config(t, nil))
			bad := map[string]string{
				"0001_table.sql": probeFiles["0001_table.sql"],
				"0002_half.sql":  `CREATE TABLE half_done (id INTEGER); INSERT INTO no_such_table VALUES (1);`,
			}
			_, err := db.migrate(ctxT(t), probeMigrations(t, bad))
			if err == nil {
				t.Fatal("a broken migration succeeded")
			}
			var versions, half int
			_ = db.read(ctxT(t), func(q querier) error {
				_ = q.queryRow(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions)
				return nil
			})
			err = db.read(ctxT(t), func(q querier) error {
				return q.queryRow(ctxT(t), `SELECT COUNT(*) FROM half_done`).Scan(&half)
			})
			if versions != 1 || err == nil {
				t.Errorf("after a failed 0002: %d versions recorded (want 1), half_done exists: %v", versions, err == nil)
			}
		})
	}
}

func TestMigrationDriftIsPermanent(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Config(t, nil)
			for _, tc := range []struct {
				name, tamper string
			}{
				{"edited migration", `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`},
				{"newer schema", `INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')`},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c, _ := configure(t, cfg) // migrates
					st, _ := c.store()
					if err := st.db.write(ctxT(t), func(q querier) error { _, err := q.exec(ctxT(t), tc.tamper); return err }); err != nil {
						t.Fatal(err)
					}
					_, err := openStore(ctxT(t), mustParse(t, cfg), slog.New(slog.DiscardHandler), time.Now)
					if !errors.Is(err, errSchemaDrift) || sdk.CodeOf(err) != sdk.CodePermanent {
						t.Errorf("open on a drifted schema: %v (code %v), want a permanent schema drift", err, sdk.CodeOf(err))
					}
					// Undo, for the next case.
					undo := `UPDATE schema_migrations SET checksum = '` + mustLoad(t, st.d.name)[0].Checksum + `' WHERE version = 1`
					if err := st.db.write(ctxT(t), func(q querier) error {
						if _, err := q.exec(ctxT(t), undo); err != nil {
							return err
						}
						_, err := q.exec(ctxT(t), `DELETE FROM schema_migrations WHERE version = 999`)
						return err
					}); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

func mustParse(t testing.TB, raw []byte) Config {
	t.Helper()
	c, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustLoad(t testing.TB, dialect string) []migration {
	t.Helper()
	ms, err := loadMigrations(dialect)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// The two migration directories must describe the same schema history.
func TestMigrationDirectoriesMatch(t *testing.T) {
	pg, lite := mustLoad(t, "postgres"), mustLoad(t, "sqlite")
	if len(pg) != len(lite) {
		t.Fatalf("%d PostgreSQL migrations, %d SQLite ones", len(pg), len(lite))
	}
	for i := range pg {
		if pg[i].Version != lite[i].Version || pg[i].Name != lite[i].Name {
			t.Errorf("migration %d: %04d_%s versus %04d_%s", i, pg[i].Version, pg[i].Name, lite[i].Version, lite[i].Name)
		}
	}
}

func TestReadMigrationsRefusesBadSets(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"gap":      {"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 1;"},
		"bad name": {"1_a.sql": "SELECT 1;"},
		"no start": {"0002_b.sql": "SELECT 1;"},
	} {
		fsys := fstest.MapFS{}
		for f, body := range files {
			fsys["m/"+f] = &fstest.MapFile{Data: []byte(body)}
		}
		if _, err := readMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Two independent CRM instances (two pools, as in two plugin processes) on
// one database still make one contact of one person.
func TestTwoInstancesShareOneDatabase(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Config(t, nil)
			var (
				crms [2]*CRM
				wg   sync.WaitGroup
				errs [2]error
			)
			for i := range crms {
				crms[i] = New()
				wg.Add(1)
				go func() { // configure (and so migrate) at the same time
					defer wg.Done()
					errs[i] = crms[i].Configure(ctxT(t), sdk.ConfigureRequest{Config: cfg})
				}()
				t.Cleanup(func() { _ = crms[i].Close() })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("Configure: %v / %v", errs[0], errs[1])
			}
			fails := parallel(20, func(i int) error {
				ct := sdk.Contact{Phone: "+84902222333", Identities: []sdk.Identity{zalo("two-z")}}
				if i%2 == 1 {
					ct.Identities = []sdk.Identity{wa("two-w")}
				}
				_, err := crms[i%2].UpsertContact(context.Background(), &sdk.UpsertContactRequest{Contact: ct})
				if err != nil {
					return fmt.Errorf("instance %d: %w", i%2, err)
				}
				return nil
			})
			for _, err := range fails {
				t.Error(err)
			}
			if n := count(t, crms[0], "contacts", ""); n != 1 {
				t.Errorf("%d contacts, want 1", n)
			}
		})
	}
}
