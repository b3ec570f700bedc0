// Command postgrescrm is Switchboard's built-in CRM plugin: contacts, notes,
// deals and tasks on PostgreSQL, or on an embedded SQLite file when no dsn
// is configured. The hub starts it; see package sqlcrm for the logic.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/sqlcrm"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func main() { sdk.ServeCRM(sqlcrm.New()) }
