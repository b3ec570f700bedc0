package hubspot_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func TestConflictOnCreateResolvesToExistingContact(t *testing.T) {
	// The contact exists but search cannot see it yet (HubSpot's index
	// lags): the create answers 409 "Existing ID: n" and the plugin updates
	// that contact instead.
	fake := startFake(t, hsfake.Options{SearchLag: time.Hour})
	existing := fake.CreateContact(map[string]string{"email": "lee@xyz.co.uk", "firstname": "Lee"})
	p := newPlugin(t, fake, nil)

	res := upsert(t, p, sdk.Contact{Email: "Lee@XYZ.co.uk", Score: 40, Identities: []sdk.Identity{zalo("z1")}})
	if res.Contact.ID != existing || res.Created {
		t.Fatalf("got id %q created %v, want the existing %q", res.Contact.ID, res.Created, existing)
	}
	if n := fake.ContactCount(); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	var creates []hsfake.Request
	for _, r := range fake.RequestsTo(http.MethodPost, "/crm/v3/objects/contacts") {
		if r.Path == "/crm/v3/objects/contacts" {
			creates = append(creates, r)
		}
	}
	if len(creates) != 1 || creates[0].Status != http.StatusConflict {
		t.Errorf("want one create answered 409, got %+v", creates)
	}
	o, _ := fake.Object("contacts", existing)
	if o.Properties["switchboard_zalo_id"] != "z1" || o.Properties["switchboard_score"] != "40" || o.Properties["firstname"] != "Lee" {
		t.Errorf("existing contact not updated as expected: %v", o.Properties)
	}
	if res.Contact.URL != "https://app.hubspot.com/contacts/4242/record/0-1/"+existing {
		t.Errorf("deep link %q", res.Contact.URL)
	}
}

func TestScoreOnlyRisesAndTierFollows(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	id := []sdk.Identity{zalo("score")}
	steps := []struct {
		score     int
		tier      string
		reset     bool
		wantScore string
		wantTier  string
	}{
		{score: 40, tier: "warm", wantScore: "40", wantTier: "warm"},
		{score: 75, tier: "hot", wantScore: "75", wantTier: "hot"},
		{score: 30, tier: "cold", wantScore: "75", wantTier: "hot"}, // lower: neither score nor tier move
		{score: 75, tier: "hot", wantScore: "75", wantTier: "hot"},
		{score: 0, tier: "spam", reset: true, wantScore: "0", wantTier: "spam"},
		{score: 10, tier: "cold", wantScore: "10", wantTier: "cold"},
	}
	var cid string
	for i, st := range steps {
		res := upsert(t, p, sdk.Contact{Identities: id, Score: st.score, Tier: st.tier, ResetScore: st.reset})
		cid = res.Contact.ID
		o, _ := fake.Object("contacts", cid)
		if o.Properties["switchboard_score"] != st.wantScore || o.Properties["switchboard_tier"] != st.wantTier {
			t.Errorf("step %d (%d %s reset=%v): stored score %q tier %q, want %s %s", i, st.score, st.tier, st.reset,
				o.Properties["switchboard_score"], o.Properties["switchboard_tier"], st.wantScore, st.wantTier)
		}
		if fmt.Sprint(res.Contact.Score) != st.wantScore {
			t.Errorf("step %d: returned score %d", i, res.Contact.Score)
		}
	}
	// A repeat of the same facts writes nothing: no PATCH spent.
	before := len(fake.RequestsTo(http.MethodPatch, "/crm/v3/objects/contacts/"+cid))
	upsert(t, p, sdk.Contact{Identities: id, Score: 10, Tier: "cold"})
	if after := len(fake.RequestsTo(http.MethodPatch, "/crm/v3/objects/contacts/"+cid)); after != before {
		t.Errorf("an upsert with nothing new sent %d PATCHes", after-before)
	}
}

func TestFactsAndFieldsRoundTrip(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, map[string]any{"read_properties": []string{"lifecyclestage"}})
	res := upsert(t, p, sdk.Contact{
		Name: "Nguyễn Văn An", Phone: "+84 90-123 4567", Identities: []sdk.Identity{zalo("2468458835296197922")},
		SourceChannel: "zalo", Campaign: "tet-2026", Tags: []string{"vip", "hcm"}, Score: 55, Tier: "warm",
		Facts: sdk.LeadFacts{Intent: "quote", Need: "CRM", Budget: "50 triệu", Timeline: "tuần này", DecisionMaker: false,
			DecisionMakerKnown: true, Action: "handoff_to_sale", Confidence: 0.8, Estimate: 50000000, Extra: map[string]string{"city": "HCM"}},
		Properties: map[string]string{"lifecyclestage": "lead"},
	})
	// Later: another channel, other facts, a second campaign and tag.
	upsert(t, p, sdk.Contact{Phone: "+84901234567", Identities: []sdk.Identity{whatsapp("84901234567")}, SourceChannel: "whatsapp",
		Campaign: "other", Tags: []string{"hcm", "repeat"}, Facts: sdk.LeadFacts{Budget: "60 triệu", Extra: map[string]string{"size": "10"}}})
	got, err := p.GetContact(ctxT(t), res.Contact.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.Contact{ID: res.Contact.ID, Name: "Nguyễn Văn An", Phone: "+84901234567", Score: 55, Tier: "warm",
		SourceChannel: "zalo", Campaign: "tet-2026", Tags: []string{"vip", "hcm", "repeat"}}
	if got.Name != want.Name || got.Phone != want.Phone || got.Score != want.Score || got.Tier != want.Tier ||
		got.SourceChannel != want.SourceChannel || got.Campaign != want.Campaign || strings.Join(got.Tags, ";") != "vip;hcm;repeat" {
		t.Errorf("contact %+v", got)
	}
	f := got.Facts
	if f.Intent != "quote" || f.Budget != "60 triệu" || f.DecisionMaker || !f.DecisionMakerKnown || f.Confidence != 0.8 ||
		f.Estimate != 50000000 || f.Extra["city"] != "HCM" || f.Extra["size"] != "10" || f.Action != "handoff_to_sale" {
		t.Errorf("facts %+v", f)
	}
	if len(got.Identities) != 2 || got.Identities[0].Channel != "whatsapp" || got.Identities[1].UserID != "2468458835296197922" {
		t.Errorf("identities %+v", got.Identities)
	}
	if got.Properties["lifecyclestage"] != "lead" {
		t.Errorf("read_properties: %v", got.Properties)
	}
	if fake.ContactCount() != 1 {
		t.Errorf("%d contacts", fake.ContactCount())
	}
}

func TestNameEditedInHubSpotIsKept(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	id := []sdk.Identity{zalo("name")}
	res := upsert(t, p, sdk.Contact{Identities: id}) // no name yet: a placeholder
	if res.Contact.Name != "zalo name" {
		t.Errorf("placeholder name %q", res.Contact.Name)
	}
	if res = upsert(t, p, sdk.Contact{Identities: id, Name: "Chi"}); res.Contact.Name != "Chi" {
		t.Errorf("the chat name did not replace the placeholder: %q", res.Contact.Name)
	}
	// A salesperson corrects the name in HubSpot's UI.
	patchFake(t, fake, res.Contact.ID, `{"properties":{"firstname":"Lê","lastname":"Thị Chi"}}`)
	if res = upsert(t, p, sdk.Contact{Identities: id, Name: "chi 🌸"}); res.Contact.Name != "Lê Thị Chi" {
		t.Errorf("a name edited by a person was overwritten: %q", res.Contact.Name)
	}
}

// patchFake updates a record as a HubSpot user would.
func patchFake(t *testing.T, fake *hsfake.Server, id, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, fake.URL+"/crm/v3/objects/contacts/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fake.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("patch: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestConcurrentUpsertsMakeOneContact(t *testing.T) {
	tests := []struct {
		name     string
		replicas int
		lag      time.Duration
	}{
		{"one process", 1, 0},
		{"one process, search index lagging", 1, time.Hour},
		{"two replicas on one store, search index lagging", 2, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, hsfake.Options{SearchLag: tc.lag})
			host := sdk.NewMemoryHost(nil)
			var plugins []*hubspot.CRM
			for range tc.replicas {
				p, _ := configure(t, baseConfig(fake, nil), host)
				plugins = append(plugins, p)
			}
			var wg sync.WaitGroup
			ids := make([]string, 20)
			errs := make([]error, 20)
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ct := sdk.Contact{Name: "Lê Chi", Phone: "+84907654321", Identities: []sdk.Identity{zalo("z-chi")}, Score: i}
					if i%2 == 1 {
						ct.Identities = []sdk.Identity{whatsapp("84907654321")}
					}
					res, err := plugins[(i/2)%len(plugins)].UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: ct})
					if err == nil {
						ids[i] = res.Contact.ID
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("upsert %d: %v", i, err)
				}
			}
			if n := fake.ContactCount(); n != 1 {
				t.Fatalf("%d contacts in HubSpot, want 1", n)
			}
			c := fake.Contacts()[0]
			for i, id := range ids {
				if id != c.ID {
					t.Errorf("upsert %d returned %q, want %q", i, id, c.ID)
				}
			}
			if c.Properties["switchboard_zalo_id"] != "z-chi" || c.Properties["switchboard_whatsapp_id"] != "84907654321" ||
				c.Properties["switchboard_score"] != "19" {
				t.Errorf("merged contact %v", c.Properties)
			}
		})
	}
}

func TestStaleIndexEntryFallsBackToSearch(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	first := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("gone")}, Phone: "+84900000001"})
	// Deleted in HubSpot, then the same person comes back.
	req, _ := http.NewRequest(http.MethodDelete, fake.URL+"/crm/v3/objects/contacts/"+first.Contact.ID, nil)
	req.Header.Set("Authorization", "Bearer "+fake.Token())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v %v", resp, err)
	}
	if _, err := p.GetContact(ctxT(t), "", &sdk.Identity{Channel: "zalo", UserID: "gone"}); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("GetContact of a deleted contact: %v, want not found", err)
	}
	again := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("gone")}})
	if !again.Created || again.Contact.ID == first.Contact.ID {
		t.Errorf("upsert after deletion: %+v", again)
	}
	got, err := p.GetContact(ctxT(t), "", &sdk.Identity{Channel: "zalo", UserID: "gone"})
	if err != nil || got.ID != again.Contact.ID {
		t.Errorf("GetContact: %v %v", got, err)
	}
}

func TestGetContactByIdentityUsesSearch(t *testing.T) {
	// A contact another system made: only search can find it.
	fake := startFake(t, hsfake.Options{})
	id := fake.CreateContact(map[string]string{"email": "chi@example.com", "firstname": "Chi", "phone": "+84901112222", "hubspot_owner_id": ownerBinh})
	p := newPlugin(t, fake, map[string]any{"owners": map[string]string{"an": ownerAn, "binh": ownerBinh}})
	tests := []struct {
		name string
		id   sdk.Identity
		want string
	}{
		{"email, other case", sdk.Identity{Channel: "email", Email: "CHI@example.com"}, id},
		{"email in user id", sdk.Identity{Channel: "email", UserID: "chi@example.com"}, id},
		{"phone", sdk.Identity{Channel: "phone", Phone: "+84 901 112 222"}, id},
		{"phone on a chat identity", sdk.Identity{Channel: "zalo", Phone: "+84901112222"}, id},
		{"unknown channel id", sdk.Identity{Channel: "telegram", UserID: "77"}, ""},
		{"unknown email", sdk.Identity{Channel: "email", Email: "nobody@example.com"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.GetContact(ctxT(t), "", &tc.id)
			if tc.want == "" {
				if !errors.Is(err, sdk.ErrNotFound) {
					t.Errorf("got %v, %v; want not found", got, err)
				}
				return
			}
			if err != nil || got.ID != tc.want || got.OwnerID != "binh" || got.Name != "Chi" {
				t.Errorf("got %+v, %v", got, err)
			}
		})
	}
	if _, err := p.GetContact(ctxT(t), "99999", nil); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := p.GetContact(ctxT(t), "", &sdk.Identity{Channel: "zalo"}); sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("empty identity: %v", err)
	}
}

func TestOwnerMapping(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, map[string]any{
		"owners":       map[string]string{"an": ownerAn},
		"owner_emails": map[string]string{"binh": "binh@example.com"},
	})
	tests := []struct {
		agent     string
		wantOwner string // hubspot_owner_id stored
	}{
		{"an", ownerAn},                 // config map
		{"binh", ownerBinh},             // owners API by configured email
		{"binh@example.com", ownerBinh}, // an agent id that is an email
		{"chi", ""},                     // unmapped: kept as switchboard_owner_agent only
	}
	for _, tc := range tests {
		t.Run(tc.agent, func(t *testing.T) {
			res := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("owner-" + tc.agent)}, OwnerID: tc.agent})
			o, _ := fake.Object("contacts", res.Contact.ID)
			if o.Properties["hubspot_owner_id"] != tc.wantOwner || o.Properties["switchboard_owner_agent"] != tc.agent {
				t.Errorf("stored owner %q agent %q", o.Properties["hubspot_owner_id"], o.Properties["switchboard_owner_agent"])
			}
			got, err := p.GetContact(ctxT(t), res.Contact.ID, nil)
			if err != nil || got.OwnerID != tc.agent {
				t.Errorf("round trip: %q, %v; want %q", got.OwnerID, err, tc.agent)
			}
		})
	}
	if n := len(fake.RequestsTo(http.MethodGet, "/crm/v3/owners")); n != 2 {
		t.Errorf("%d owners API calls, want 2 (one per email, then cached)", n)
	}
	// A salesperson reassigns a contact to Binh in HubSpot: the hub learns it.
	res := upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("owner-an")}})
	patchFake(t, fake, res.Contact.ID, `{"properties":{"hubspot_owner_id":"`+ownerBinh+`"}}`)
	if got, _ := p.GetContact(ctxT(t), res.Contact.ID, nil); got.OwnerID != "binh" {
		t.Errorf("after reassignment in HubSpot: owner %q, want binh", got.OwnerID)
	}

	// The reverse mapping of email-resolved owners survives a restart
	// through the host KV.
	_, host := configure(t, baseConfig(fake, map[string]any{"owner_emails": map[string]string{"binh": "binh@example.com"}}), nil)
	p1, _ := configure(t, baseConfig(fake, map[string]any{"owner_emails": map[string]string{"binh": "binh@example.com"}}), host)
	r := upsert(t, p1, sdk.Contact{Identities: []sdk.Identity{zalo("restart")}, OwnerID: "binh"})
	p2, _ := configure(t, baseConfig(fake, map[string]any{"owner_emails": map[string]string{"binh": "binh@example.com"}}), host)
	patchFake(t, fake, r.Contact.ID, `{"properties":{"switchboard_owner_agent":""}}`)
	if got, _ := p2.GetContact(ctxT(t), r.Contact.ID, nil); got.OwnerID != "binh" {
		t.Errorf("after restart: owner %q, want binh", got.OwnerID)
	}
}

func TestNoPIIAtInfoAndNoToken(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	host := sdk.NewMemoryHost(nil)
	p, _ := configure(t, baseConfig(fake, map[string]any{"owner_emails": map[string]string{"binh": "binh@example.com"}}), host)
	res := upsert(t, p, sdk.Contact{Name: "Lê Chi", Email: "chi@example.com", Phone: "+84907654321", OwnerID: "binh",
		Identities: []sdk.Identity{zalo("z-pii"), whatsapp("84907654321")}})
	if _, err := p.AddNote(ctxT(t), "n", &sdk.Note{ContactID: res.Contact.ID, Body: "call +84907654321"}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range host.Logs() {
		line := rec.Message + fmt.Sprint(rec.Attrs)
		if strings.Contains(line, fake.Token()) {
			t.Errorf("token logged: %s", line)
		}
		if rec.Level >= slog.LevelInfo {
			for _, pii := range []string{"chi@example.com", "84907654321", "binh@example.com", "Lê Chi"} {
				if strings.Contains(line, pii) {
					t.Errorf("PII %q logged at %v: %s", pii, rec.Level, line)
				}
			}
		}
	}
}
