package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/sqlcrm"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

const pkg = "github.com/switchboard-hub/switchboard/plugins/postgrescrm"

var extra = map[string]any{"link_template": "https://crm.example.com/contacts/{id}"}

// The SDK's CRM suite, with the plugin served in this process over real
// gRPC, on each database.
func TestConformanceInProcess(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM {
				impl := sqlcrm.New()
				t.Cleanup(func() { _ = impl.Close() })
				return testkit.StartCRM(t, impl)
			}, testkit.CRMFixture{Config: b.Config(t, extra)})
		})
	}
}

// The same suite against the built binary, launched by go-plugin as the hub
// launches it (no inherited environment, AutoMTLS), on each database.
func TestConformanceSubprocess(t *testing.T) {
	bin := testkit.BuildPlugin(t, pkg)
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM { return testkit.LaunchCRM(t, bin) },
				testkit.CRMFixture{Config: b.Config(t, extra)})
		})
	}
}

// Two plugin processes start together on one fresh database (so they
// migrate at the same time), then upsert one person through two identities
// from 20 goroutines: one contact, seen the same from both processes.
func TestTwoProcessesOneDatabase(t *testing.T) {
	bin := testkit.BuildPlugin(t, pkg)
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			cfg := b.Config(t, extra)
			procs := []*sdk.RemoteCRM{testkit.LaunchCRM(t, bin), testkit.LaunchCRM(t, bin)}
			var wg sync.WaitGroup
			cerrs := make([]error, len(procs))
			for i, p := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cerrs[i] = p.Configure(testkit.Context(t, 60*time.Second), fmt.Sprint("crm-", i), cfg, sdk.NewMemoryHost(nil), "test")
				}()
			}
			wg.Wait()
			for i, err := range cerrs {
				if err != nil {
					t.Fatalf("Configure process %d: %v", i, err)
				}
			}
			zid := sdk.Identity{Channel: "zalo", UserID: "proc-z"}
			wid := sdk.Identity{Channel: "whatsapp", UserID: "proc-w"}
			var (
				mu   sync.Mutex
				ids  = map[string]bool{}
				fail []error
			)
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ct := sdk.Contact{Name: "Phạm Dũng", Phone: "+84903334444", Identities: []sdk.Identity{zid}}
					if i%2 == 1 {
						ct.Identities = []sdk.Identity{wid}
					}
					res, err := procs[i%2].UpsertContact(testkit.Context(t, 60*time.Second),
						&sdk.UpsertContactRequest{IdempotencyKey: fmt.Sprint("p", i), Contact: ct})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						fail = append(fail, err)
						return
					}
					ids[res.Contact.ID] = true
				}()
			}
			wg.Wait()
			for _, err := range fail {
				t.Error(err)
			}
			if len(ids) != 1 {
				t.Fatalf("two processes made %d contacts of one person: %v", len(ids), ids)
			}
			for i, p := range procs {
				for _, id := range []sdk.Identity{zid, wid} {
					got, err := p.GetContact(testkit.Context(t, 10*time.Second), "", &id)
					if err != nil || !ids[got.ID] || len(got.Identities) != 3 {
						t.Errorf("process %d, GetContact(%s): %+v, %v", i, id.Channel, got, err)
					}
				}
				if err := p.Health(testkit.Context(t, 10*time.Second)); err != nil {
					t.Errorf("process %d health: %v", i, err)
				}
			}
		})
	}
}

// `postgrescrm describe` prints the manifest, for install-time checks.
func TestDescribeSubcommand(t *testing.T) {
	bin := testkit.BuildPlugin(t, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var m sdk.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("describe printed %q: %v", out, err)
	}
	if m.Name != sqlcrm.Name || m.Kind != sdk.KindCRM || len(m.ConfigSchema) == 0 {
		t.Errorf("manifest %+v", m)
	}
}
