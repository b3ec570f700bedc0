package sqlcrm

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// A production CRM role owns its schema (made by an admin) and may not
// create schemas: the plugin must start and work with no more than that.
func TestPostgresLeastPrivilegeRole(t *testing.T) {
	schema := testdb.Schema(t)
	role := schema + "_role"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, testdb.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	r, s := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	if _, err := admin.Exec(ctx, `CREATE ROLE `+r+` LOGIN NOCREATEDB NOCREATEROLE`); err != nil {
		t.Skipf("cannot create a role here: %v", err)
	}
	// Cleanups run last-in first-out, so this runs before the schema's own:
	// DROP OWNED takes the schema with it.
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testdb.PostgresURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP OWNED BY `+r+` CASCADE; DROP ROLE IF EXISTS `+r); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+s+` AUTHORIZATION `+r); err != nil {
		t.Fatal(err)
	}
	var canCreate bool
	if err := admin.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CREATE')`, role).Scan(&canCreate); err != nil || canCreate {
		t.Skipf("the role can create schemas here (%v), nothing to prove", err)
	}
	u, err := url.Parse(testdb.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	cfg, _ := json.Marshal(map[string]any{"dsn": u.String(), "schema": schema})
	c, _ := configure(t, cfg)
	got := mustUpsert(t, c, "k", sdk.Contact{Identities: []sdk.Identity{zalo("least")}})
	if !got.Created {
		t.Errorf("upsert as the schema owner: %+v", got)
	}
}
