package hubspot_test

import (
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

type link struct {
	to     string
	typeID int
}

func links(fake *hsfake.Server, fromType, id string) []link {
	var out []link
	for _, a := range fake.Associations(fromType, id) {
		if a.Category != "HUBSPOT_DEFINED" {
			out = append(out, link{"bad category " + a.Category, 0})
		}
		out = append(out, link{a.ToType + "/" + a.ToID, a.TypeID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].typeID < out[j].typeID })
	return out
}

func equalLinks(a, b []link) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAssociationTypeIDs(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	ctx := ctxT(t)
	c := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("assoc")}}).Contact
	d, err := p.UpsertDeal(ctx, "d", &sdk.Deal{ContactID: c.ID, Name: "Order", Stage: "qualified", Amount: 1500000, Currency: "vnd", OwnerID: "an"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.AddNote(ctx, "n", &sdk.Note{ContactID: c.ID, DealID: d.ID, Body: "hot lead"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := p.AddNote(ctx, "n-contact-only", &sdk.Note{ContactID: c.ID, Body: "no deal"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := p.CreateTask(ctx, "t", &sdk.Task{ContactID: c.ID, DealID: d.ID, Title: "Call", OwnerID: "an", DueAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, fromType, id string
		want               []link
	}{
		{"deal → contact", "deals", d.ID, []link{{"contacts/" + c.ID, 3}}},
		{"note → contact, deal", "notes", n.ID, []link{{"contacts/" + c.ID, 202}, {"deals/" + d.ID, 214}}},
		{"note → contact only", "notes", nc.ID, []link{{"contacts/" + c.ID, 202}}},
		{"task → contact, deal", "tasks", tk.ID, []link{{"contacts/" + c.ID, 204}, {"deals/" + d.ID, 216}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := links(fake, tc.fromType, tc.id); !equalLinks(got, tc.want) {
				t.Errorf("associations %v, want %v", got, tc.want)
			}
		})
	}
	if got := len(fake.NotesFor(c.ID)); got != 2 {
		t.Errorf("%d notes on the contact", got)
	}
	if got := fake.DealsFor(c.ID); len(got) != 1 || got[0].Properties["dealstage"] != "qualifiedtobuy" ||
		got[0].Properties["pipeline"] != "default" || got[0].Properties["amount"] != "1500000" ||
		got[0].Properties["deal_currency_code"] != "VND" || got[0].Properties["hubspot_owner_id"] != ownerAn {
		t.Errorf("deal %+v", got)
	}
	if d.URL != "https://app.hubspot.com/contacts/4242/record/0-3/"+d.ID || d.Stage != "qualified" {
		t.Errorf("returned deal %+v", d)
	}
}

// TestWritesAreIdempotent retries each write with its key: after a
// success, and after a failure that HubSpot answered with 5xx (nothing
// created), and concurrently. Each key yields exactly one record.
func TestWritesAreIdempotent(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	c := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("idem")}}).Contact
	writes := []struct {
		kind, path string
		do         func(key string) (string, error)
	}{
		{"notes", "/crm/v3/objects/notes", func(key string) (string, error) {
			n, err := p.AddNote(ctxT(t), key, &sdk.Note{ContactID: c.ID, Body: "hi"})
			if err != nil {
				return "", err
			}
			return n.ID, nil
		}},
		{"tasks", "/crm/v3/objects/tasks", func(key string) (string, error) {
			tk, err := p.CreateTask(ctxT(t), key, &sdk.Task{ContactID: c.ID, Title: "Call back", Type: "call", Priority: "high", DueAt: t0})
			if err != nil {
				return "", err
			}
			return tk.ID, nil
		}},
		{"deals", "/crm/v3/objects/deals", func(key string) (string, error) {
			d, err := p.UpsertDeal(ctxT(t), key, &sdk.Deal{ContactID: c.ID, Name: "CRM", Stage: "qualified"})
			if err != nil {
				return "", err
			}
			return d.ID, nil
		}},
	}
	for _, w := range writes {
		t.Run(w.kind, func(t *testing.T) {
			fake.Inject(hsfake.Fault{Method: http.MethodPost, PathPrefix: w.path, Status: 503})
			if _, err := w.do("key-1"); !sdk.IsRetryable(err) {
				t.Fatalf("first attempt: %v, want a retryable error", err)
			}
			id1, err := w.do("key-1")
			if err != nil {
				t.Fatal(err)
			}
			id2, err := w.do("key-1")
			if err != nil || id2 != id1 {
				t.Errorf("retry after success: %q %v; want %q", id2, err, id1)
			}
			var wg sync.WaitGroup
			ids := make([]string, 8)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ids[i], _ = w.do("key-2")
				}()
			}
			wg.Wait()
			for _, id := range ids {
				if id != ids[0] || id == "" {
					t.Fatalf("concurrent calls with one key: %v", ids)
				}
			}
			creates := 0
			for _, r := range fake.RequestsTo(http.MethodPost, w.path) {
				if r.Path == w.path && r.Status == http.StatusCreated {
					creates++
				}
			}
			want := 2
			if w.kind == "deals" {
				want = 1 // the second key moves the contact's deal rather than opening another
			}
			if creates != want {
				t.Errorf("%d %s created for 2 keys, want %d", creates, w.kind, want)
			}
		})
	}
}

func TestDealMovesThroughStages(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	fake.AddPipeline("sales-vn", "new", "qualified-vn", "won-vn")
	p := newPlugin(t, fake, map[string]any{"pipelines": map[string]string{"vn": "sales-vn"},
		"stages": map[string]string{"hot": "qualified-vn", "won": "won-vn", "qualified": "qualifiedtobuy"}})
	c := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("deal")}}).Contact
	steps := []struct {
		key, pipeline, stage string
		wantStage            string
		wantDeals            int
	}{
		{"d1", "", "qualified", "qualifiedtobuy", 1},
		{"d2", "", "closedwon", "closedwon", 1}, // unmapped stage: sent as given
		{"d3", "vn", "hot", "qualified-vn", 2},  // another pipeline: another deal
		{"d4", "vn", "won", "won-vn", 2},
	}
	byPipeline := map[string]string{}
	for _, st := range steps {
		d, err := p.UpsertDeal(ctxT(t), st.key, &sdk.Deal{ContactID: c.ID, Pipeline: st.pipeline, Stage: st.stage})
		if err != nil {
			t.Fatalf("%s: %v", st.key, err)
		}
		if prev, ok := byPipeline[st.pipeline]; ok && prev != d.ID {
			t.Errorf("%s: a new deal %s in a pipeline that has %s", st.key, d.ID, prev)
		}
		byPipeline[st.pipeline] = d.ID
		o, _ := fake.Object("deals", d.ID)
		if o.Properties["dealstage"] != st.wantStage {
			t.Errorf("%s: stage %q, want %q", st.key, o.Properties["dealstage"], st.wantStage)
		}
		if n := len(fake.DealsFor(c.ID)); n != st.wantDeals {
			t.Errorf("%s: %d deals", st.key, n)
		}
		if o.Properties["dealname"] != "Switchboard lead "+c.ID {
			t.Errorf("default deal name %q", o.Properties["dealname"])
		}
	}
	_, err := p.UpsertDeal(ctxT(t), "bad", &sdk.Deal{ContactID: c.ID, Stage: "no-such-stage"})
	if sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("a stage outside the pipeline: %v, want invalid", err)
	}
}

func TestTaskProperties(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	clock := newFakeClock(t0)
	p := newPlugin(t, fake, nil, hubspot.WithClock(clock))
	c := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("task")}}).Contact
	tests := []struct {
		name string
		task sdk.Task
		want map[string]string
		code sdk.ErrorCode
	}{
		{"defaults", sdk.Task{Title: "Follow up"}, map[string]string{"hs_task_subject": "Follow up", "hs_task_status": "NOT_STARTED",
			"hs_task_type": "TODO", "hs_timestamp": "2026-01-05T10:00:00.000Z", "hs_task_priority": ""}, 0},
		{"call, high, owner, due", sdk.Task{Title: "Call", Body: "about the quote", Type: "CALL", Priority: "high", OwnerID: "an",
			Status: "open", DueAt: t0.Add(90 * time.Minute).In(time.FixedZone("ICT", 7*3600))},
			map[string]string{"hs_task_type": "CALL", "hs_task_priority": "HIGH", "hubspot_owner_id": ownerAn, "hs_task_body": "about the quote",
				"hs_timestamp": "2026-01-05T11:30:00.000Z"}, 0},
		{"done", sdk.Task{Title: "Sent", Type: "email", Status: "done"}, map[string]string{"hs_task_status": "COMPLETED", "hs_task_type": "EMAIL"}, 0},
		{"unknown type", sdk.Task{Title: "x", Type: "fax"}, nil, sdk.CodeInvalid},
		{"unknown priority", sdk.Task{Title: "x", Priority: "asap"}, nil, sdk.CodeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.task.ContactID = c.ID
			got, err := p.CreateTask(ctxT(t), tc.name, &tc.task)
			if tc.code != 0 {
				if sdk.CodeOf(err) != tc.code {
					t.Errorf("err %v, want %v", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, _ := fake.Object("tasks", got.ID)
			for k, v := range tc.want {
				if o.Properties[k] != v {
					t.Errorf("%s = %q, want %q", k, o.Properties[k], v)
				}
			}
		})
	}
	if _, err := p.CreateTask(ctxT(t), "no contact", &sdk.Task{Title: "x"}); sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("task without contact: %v", err)
	}
	if _, err := p.AddNote(ctxT(t), "no contact", &sdk.Note{Body: "x"}); sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("note without contact: %v", err)
	}
}
