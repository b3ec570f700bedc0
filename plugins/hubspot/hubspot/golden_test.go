package hubspot_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden request bodies in testdata/")

// TestGoldenRequestBodies pins what the plugin sends HubSpot for each kind
// of write and for the contact search. Run with -update after a deliberate
// change and review the diff.
func TestGoldenRequestBodies(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil, hubspot.WithClock(newFakeClock(t0)))
	ctx := ctxT(t)
	c := upsert(t, p, sdk.Contact{Name: "Nguyễn Văn An", Phone: "+84901234567", Email: "An@Example.vn", Identities: []sdk.Identity{zalo("2468458835296197922")},
		SourceChannel: "zalo", Campaign: "tet-2026", Score: 55, Tier: "warm", OwnerID: "an", Tags: []string{"vip"},
		Facts: sdk.LeadFacts{Intent: "quote", Need: "CRM cho 10 nhân viên", Budget: "50 triệu", Timeline: "tuần này", DecisionMaker: true,
			DecisionMakerKnown: true, Action: "handoff_to_sale", Confidence: 0.9, Estimate: 50000000, Extra: map[string]string{"city": "HCM"}}}).Contact
	upsert(t, p, sdk.Contact{Phone: "+84901234567", Identities: []sdk.Identity{whatsapp("84901234567")}, Score: 80, Tier: "hot"})
	d, err := p.UpsertDeal(ctx, "deal", &sdk.Deal{ContactID: c.ID, Name: "CRM – Nguyễn Văn An", Stage: "qualified", Amount: 50000000, Currency: "VND", OwnerID: "an"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddNote(ctx, "note", &sdk.Note{ContactID: c.ID, DealID: d.ID, Author: "an",
		Body: "Score 55 → 80 (hot)\n+30 decision maker <CEO>\n+25 urgent timeline", CreatedAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateTask(ctx, "task", &sdk.Task{ContactID: c.ID, DealID: d.ID, OwnerID: "an", Title: "Gọi lại cho An",
		Body: "Hot lead from Zalo", Type: "call", Priority: "high", DueAt: t0.Add(15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}

	first := func(method, path string) []byte {
		for _, r := range fake.Requests() {
			if r.Method == method && r.Path == path && len(r.Body) > 0 {
				return r.Body
			}
		}
		t.Fatalf("no %s %s", method, path)
		return nil
	}
	searches := fake.RequestsTo(http.MethodPost, "/crm/v3/objects/contacts/search")
	if len(searches) != 1 { // the second upsert finds the contact through the identity index
		t.Fatalf("%d searches", len(searches))
	}
	tests := []struct {
		file string
		body []byte
	}{
		{"contact_search.json", searches[0].Body},
		{"contact_create.json", first(http.MethodPost, "/crm/v3/objects/contacts")},
		{"contact_update.json", first(http.MethodPatch, "/crm/v3/objects/contacts/"+c.ID)},
		{"property_create.json", first(http.MethodPost, "/crm/v3/properties/contacts")},
		{"deal_create.json", first(http.MethodPost, "/crm/v3/objects/deals")},
		{"note_create.json", first(http.MethodPost, "/crm/v3/objects/notes")},
		{"task_create.json", first(http.MethodPost, "/crm/v3/objects/tasks")},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := json.Indent(&buf, tc.body, "", "  "); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, tc.body)
			}
			buf.WriteByte('\n')
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", tc.file, buf.Bytes(), want)
			}
		})
	}
}
