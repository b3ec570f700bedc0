package sqlcrm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

const link = "https://crm.example.com/contacts/{id}"

func TestUpsertCreatesThenFinds(t *testing.T) {
	eachBackend(t, map[string]any{"link_template": link, "default_country_code": "84"}, func(t *testing.T, c *CRM) {
		a := mustUpsert(t, c, "k1", sdk.Contact{
			Identities:    []sdk.Identity{{Channel: "Zalo", UserID: " z1 ", DisplayName: "An"}},
			Phone:         "0901 234 567",
			Email:         " An@Example.COM ",
			SourceChannel: "zalo",
			Campaign:      "tet-2026",
			Tags:          []string{"vip"},
			Properties:    map[string]string{"city": "Hanoi"},
			Facts:         sdk.LeadFacts{Need: "CRM", Confidence: 0.8, Estimate: 3, Extra: map[string]string{"team_size": "10"}},
		})
		if !a.Created || a.Contact.ID == "" {
			t.Fatalf("first upsert: %+v", a)
		}
		got := a.Contact
		if got.Name != "An" || got.Phone != "+84901234567" || got.Email != "an@example.com" {
			t.Errorf("normalized fields: name %q phone %q email %q", got.Name, got.Phone, got.Email)
		}
		if want := "https://crm.example.com/contacts/" + got.ID; got.URL != want {
			t.Errorf("URL %q, want %q", got.URL, want)
		}
		if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Errorf("timestamps not set: %v %v", got.CreatedAt, got.UpdatedAt)
		}
		wantIDs := []sdk.Identity{
			{Channel: "email", Email: "an@example.com"},
			{Channel: "phone", Phone: "+84901234567"},
			{Channel: "zalo", UserID: "z1", DisplayName: "An"},
		}
		if !slices.Equal(got.Identities, wantIDs) {
			t.Errorf("identities %+v, want %+v", got.Identities, wantIDs)
		}

		b := mustUpsert(t, c, "k2", sdk.Contact{
			Identities:    []sdk.Identity{zalo("z1")},
			SourceChannel: "whatsapp",
			Campaign:      "later",
			Tags:          []string{"vip", "repeat"},
			Properties:    map[string]string{"district": "1"},
			Facts:         sdk.LeadFacts{Budget: "50 triệu", Extra: map[string]string{"industry": "retail"}},
		})
		if b.Created || b.Contact.ID != a.Contact.ID {
			t.Fatalf("same identity: created %v id %q, want %q", b.Created, b.Contact.ID, a.Contact.ID)
		}
		g := b.Contact
		if g.SourceChannel != "zalo" || g.Campaign != "tet-2026" {
			t.Errorf("first-touch attribution overwritten: %q %q", g.SourceChannel, g.Campaign)
		}
		if !slices.Equal(g.Tags, []string{"vip", "repeat"}) {
			t.Errorf("tags %v", g.Tags)
		}
		if g.Properties["city"] != "Hanoi" || g.Properties["district"] != "1" {
			t.Errorf("properties %v", g.Properties)
		}
		if g.Facts.Need != "CRM" || g.Facts.Budget != "50 triệu" || g.Facts.Confidence != 0.8 || g.Facts.Estimate != 3 ||
			g.Facts.Extra["team_size"] != "10" || g.Facts.Extra["industry"] != "retail" {
			t.Errorf("facts %+v", g.Facts)
		}

		byID := mustUpsert(t, c, "k3", sdk.Contact{ID: a.Contact.ID, Name: "An Nguyễn", Identities: []sdk.Identity{wa("84901234567")}})
		if byID.Created || byID.Contact.ID != a.Contact.ID || byID.Contact.Name != "An Nguyễn" || len(byID.Contact.Identities) != 4 {
			t.Errorf("upsert by id: %+v", byID)
		}

		for _, tc := range []struct {
			name string
			id   string
			by   *sdk.Identity
		}{
			{"id", a.Contact.ID, nil},
			{"channel id", "", &sdk.Identity{Channel: "zalo", UserID: "z1"}},
			{"phone in national format", "", &sdk.Identity{Phone: "0901234567"}},
			{"phone channel", "", &sdk.Identity{Channel: "phone", UserID: "+84 901 234 567"}},
			{"email any case", "", &sdk.Identity{Channel: "email", Email: "AN@example.com"}},
			{"identity added by id", "", &sdk.Identity{Channel: "whatsapp", UserID: "84901234567"}},
		} {
			got, err := c.GetContact(ctxT(t), tc.id, tc.by)
			if err != nil || got.ID != a.Contact.ID {
				t.Errorf("GetContact by %s: %+v, %v", tc.name, got, err)
			}
		}
	})
}

func TestScoreOnlyRisesUnlessReset(t *testing.T) {
	steps := []struct {
		score     int
		tier      string
		reset     bool
		wantScore int
		wantTier  string
	}{
		{50, "warm", false, 50, "warm"},
		{30, "cold", false, 50, "warm"}, // lower score: neither score nor tier drop
		{80, "hot", false, 80, "hot"},
		{80, "", false, 80, "hot"}, // no tier given: kept
		{0, "", false, 80, "hot"},
		{10, "cold", true, 10, "cold"}, // explicit reset
		{0, "spam", true, 0, "spam"},
		{20, "cold", false, 20, "cold"},
	}
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		for i, s := range steps {
			r := mustUpsert(t, c, fmt.Sprintf("s%d", i), sdk.Contact{Identities: []sdk.Identity{zalo("score")}, Score: s.score, Tier: s.tier, ResetScore: s.reset})
			if r.Contact.Score != s.wantScore || r.Contact.Tier != s.wantTier {
				t.Errorf("step %d (score %d tier %q reset %v): got %d %q, want %d %q",
					i, s.score, s.tier, s.reset, r.Contact.Score, r.Contact.Tier, s.wantScore, s.wantTier)
			}
		}
	})
}

func TestFactsAndOwner(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		id := zalo("facts")
		mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{id}, OwnerID: "an",
			Facts: sdk.LeadFacts{Intent: "quote", DecisionMaker: true, DecisionMakerKnown: true, Timeline: "tuần này", Action: "handoff_to_sale"}})
		// An upsert that knows nothing about the decision maker or owner
		// keeps what is stored.
		r := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{id}, Facts: sdk.LeadFacts{Intent: "demo"}})
		f := r.Contact.Facts
		if f.Intent != "demo" || !f.DecisionMaker || !f.DecisionMakerKnown || f.Timeline != "tuần này" || f.Action != "handoff_to_sale" {
			t.Errorf("facts %+v", f)
		}
		if r.Contact.OwnerID != "an" {
			t.Errorf("owner %q, want an", r.Contact.OwnerID)
		}
		// Known and false is stored as false.
		r = mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{id}, OwnerID: "binh", Facts: sdk.LeadFacts{DecisionMakerKnown: true}})
		if r.Contact.Facts.DecisionMaker || !r.Contact.Facts.DecisionMakerKnown || r.Contact.OwnerID != "binh" {
			t.Errorf("after explicit false and a new owner: %+v owner %q", r.Contact.Facts, r.Contact.OwnerID)
		}
		got, err := c.GetContact(ctxT(t), "", &id)
		if err != nil || got.OwnerID != "binh" {
			t.Errorf("GetContact owner: %+v, %v", got, err)
		}
	})
}

func TestUpsertIdempotencyKeyReplays(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		a := mustUpsert(t, c, "same", sdk.Contact{Identities: []sdk.Identity{zalo("idem")}, Name: "First"})
		mustUpsert(t, c, "other", sdk.Contact{Identities: []sdk.Identity{zalo("idem")}, Name: "Second"})
		// A retry of the first call must not put the old name back, and
		// reports what the first call reported.
		r := mustUpsert(t, c, "same", sdk.Contact{Identities: []sdk.Identity{zalo("idem")}, Name: "First"})
		if r.Contact.ID != a.Contact.ID || !r.Created || r.Contact.Name != "Second" {
			t.Errorf("replay: id %q created %v name %q", r.Contact.ID, r.Created, r.Contact.Name)
		}
	})
}

func TestMergeTwoExistingContacts(t *testing.T) {
	eachBackend(t, map[string]any{"link_template": link}, func(t *testing.T, c *CRM) {
		ctx := ctxT(t)
		older := mustUpsert(t, c, "a", sdk.Contact{Identities: []sdk.Identity{zalo("za")}, Name: "An", Score: 40, Tier: "warm",
			Tags: []string{"a"}, SourceChannel: "zalo", Facts: sdk.LeadFacts{Need: "CRM"}}).Contact
		newer := mustUpsert(t, c, "b", sdk.Contact{Identities: []sdk.Identity{wa("84900000001")}, Email: "an@example.com", OwnerID: "chi",
			Score: 70, Tier: "hot", Tags: []string{"b"}, SourceChannel: "whatsapp", Facts: sdk.LeadFacts{Budget: "10tr"}}).Contact
		if older.ID == newer.ID {
			t.Fatal("setup: two contacts expected")
		}
		// Each has an open deal in the same pipeline, a note and a task.
		dOld, err := c.UpsertDeal(ctx, "d-old", &sdk.Deal{ContactID: older.ID, Pipeline: "sales", Stage: "new"})
		if err != nil {
			t.Fatal(err)
		}
		dNew, err := c.UpsertDeal(ctx, "d-new", &sdk.Deal{ContactID: newer.ID, Pipeline: "sales", Stage: "qualified"})
		if err != nil {
			t.Fatal(err)
		}
		dOther, err := c.UpsertDeal(ctx, "d-other", &sdk.Deal{ContactID: newer.ID, Pipeline: "renewals", Stage: "new"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddNote(ctx, "n-new", &sdk.Note{ContactID: newer.ID, DealID: dNew.ID, Body: "newer's note"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateTask(ctx, "t-new", &sdk.Task{ContactID: newer.ID, DealID: dNew.ID, Title: "call"}); err != nil {
			t.Fatal(err)
		}

		// One upsert names both: they are the same person.
		m := mustUpsert(t, c, "merge", sdk.Contact{Identities: []sdk.Identity{zalo("za"), wa("84900000001")}, Score: 50}).Contact
		if m.ID != older.ID {
			t.Fatalf("merged into %q, want the older contact %q", m.ID, older.ID)
		}
		if n := count(t, c, "contacts", ""); n != 1 {
			t.Errorf("%d contacts after merge, want 1", n)
		}
		if m.Score != 70 || m.Tier != "hot" || m.Name != "An" || m.OwnerID != "chi" || m.Email != "an@example.com" ||
			m.SourceChannel != "zalo" || m.Facts.Need != "CRM" || m.Facts.Budget != "10tr" || !slices.Equal(m.Tags, []string{"a", "b"}) {
			t.Errorf("merged contact %+v", m)
		}
		if len(m.Identities) != 3 {
			t.Errorf("identities %+v, want zalo, whatsapp and email", m.Identities)
		}
		for table, want := range map[string]int{"notes": 1, "tasks": 1, "deals": 3, "identities": 3} {
			if n := count(t, c, table, "contact_id = $1", older.ID); n != want {
				t.Errorf("%s of the survivor: %d, want %d", table, n, want)
			}
		}
		// The older contact's deal stays open; the newer one's is closed
		// into it and what pointed at it follows.
		if n := count(t, c, "deals", "contact_id = $1 AND pipeline = 'sales' AND is_open", older.ID); n != 1 {
			t.Errorf("%d open sales deals, want 1", n)
		}
		if n := count(t, c, "notes", "deal_id = $1", dOld.ID); n != 1 {
			t.Errorf("note not moved to the surviving deal")
		}
		if n := count(t, c, "deals", "id = $1 AND is_open", dOther.ID); n != 1 {
			t.Errorf("the deal of another pipeline should stay open")
		}
		// Old ids keep working: the contact id, and a retried deal call.
		got, err := c.GetContact(ctx, newer.ID, nil)
		if err != nil || got.ID != older.ID || got.URL != strings.ReplaceAll(link, "{id}", older.ID) {
			t.Errorf("GetContact(merged id): %+v, %v", got, err)
		}
		d, err := c.UpsertDeal(ctx, "d-new", &sdk.Deal{ContactID: newer.ID, Pipeline: "sales", Stage: "qualified"})
		if err != nil || d.ID != dOld.ID {
			t.Errorf("replayed deal after merge: %+v, %v; want %q", d, err, dOld.ID)
		}
		d, err = c.UpsertDeal(ctx, "d-move", &sdk.Deal{ID: dNew.ID, Stage: "proposal"})
		if err != nil || d.ID != dOld.ID || d.Stage != "proposal" || d.ContactID != older.ID {
			t.Errorf("moving the merged deal: %+v, %v", d, err)
		}
		n, err := c.AddNote(ctx, "n-after", &sdk.Note{ContactID: newer.ID, Body: "after the merge"})
		if err != nil || n.ContactID != older.ID {
			t.Errorf("note on the merged id: %+v, %v", n, err)
		}

		// A third contact merged later: the first merge's record follows.
		third := mustUpsert(t, c, "c", sdk.Contact{Identities: []sdk.Identity{zalo("zc")}}).Contact
		mustUpsert(t, c, "merge2", sdk.Contact{Identities: []sdk.Identity{zalo("zc"), zalo("za")}})
		for _, id := range []string{older.ID, newer.ID, third.ID} {
			if got, err := c.GetContact(ctx, id, nil); err != nil || got.ID != older.ID {
				t.Errorf("GetContact(%s) after the second merge: %+v, %v", id, got, err)
			}
		}
	})
}

func TestConcurrentUpsertsMakeOneContact(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		errs := parallel(20, func(i int) error {
			ct := sdk.Contact{Name: "Lê Chi", Phone: "+84901111222", Identities: []sdk.Identity{zalo("z-conc")}, Score: i}
			if i%2 == 1 {
				ct.Identities = []sdk.Identity{wa("84901111222")}
			}
			_, err := c.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{IdempotencyKey: fmt.Sprintf("c%d", i), Contact: ct})
			return err
		})
		for _, err := range errs {
			t.Error(err)
		}
		if n := count(t, c, "contacts", ""); n != 1 {
			t.Fatalf("%d contacts, want 1", n)
		}
		got, err := c.GetContact(ctxT(t), "", &sdk.Identity{Channel: "whatsapp", UserID: "84901111222"})
		if err != nil || got.Score != 19 || len(got.Identities) != 3 {
			t.Errorf("contact %+v, %v; want score 19 and zalo, whatsapp, phone", got, err)
		}
	})
}

// Three existing contacts, and concurrent upserts that each name two of
// them: whatever the interleaving, they end as one contact, and no call
// fails.
func TestConcurrentCrossMerges(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		for round := range 3 {
			ids := []sdk.Identity{zalo(fmt.Sprint("x", round)), wa(fmt.Sprint("y", round)), {Channel: "email", Email: fmt.Sprintf("z%d@example.com", round)}}
			for i, id := range ids {
				mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{id}, Score: i})
			}
			errs := parallel(12, func(i int) error {
				pair := []sdk.Identity{ids[i%3], ids[(i+1)%3]}
				_, err := c.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Identities: pair, Tags: []string{fmt.Sprint(i)}}})
				return err
			})
			for _, err := range errs {
				t.Error(err)
			}
		}
		if n := count(t, c, "contacts", ""); n != 3 {
			t.Errorf("%d contacts, want one per round (3)", n)
		}
		if n := count(t, c, "identities", ""); n != 9 {
			t.Errorf("%d identities, want 9", n)
		}
	})
}

func TestIdempotentNotesDealsTasks(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		ctx := ctxT(t)
		ct := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("records")}, OwnerID: "an"}).Contact
		due := time.Date(2026, 6, 2, 9, 30, 0, 123456789, time.FixedZone("ICT", 7*3600))
		calls := []struct {
			table string
			call  func(key string) (string, error)
		}{
			{"notes", func(key string) (string, error) {
				n, err := c.AddNote(ctx, key, &sdk.Note{ContactID: ct.ID, Body: "score 75: decision maker +30", Author: "switchboard"})
				if err != nil {
					return "", err
				}
				return n.ID, nil
			}},
			{"deals", func(key string) (string, error) {
				d, err := c.UpsertDeal(ctx, key, &sdk.Deal{ContactID: ct.ID, Pipeline: "sales", Stage: "qualified", Amount: 1000})
				if err != nil {
					return "", err
				}
				return d.ID, nil
			}},
			{"tasks", func(key string) (string, error) {
				tk, err := c.CreateTask(ctx, key, &sdk.Task{ContactID: ct.ID, Title: "Call back", Type: "call", DueAt: due})
				if err != nil {
					return "", err
				}
				return tk.ID, nil
			}},
		}
		for _, cl := range calls {
			t.Run(cl.table, func(t *testing.T) {
				first, err := cl.call("key-1")
				if err != nil {
					t.Fatal(err)
				}
				// Sequential retries, then concurrent ones with a new key.
				again, err := cl.call("key-1")
				if err != nil || again != first {
					t.Errorf("retry: %q, %v; want %q", again, err, first)
				}
				var mu sync.Mutex
				seen := map[string]bool{}
				errs := parallel(10, func(int) error {
					id, err := cl.call("key-2")
					mu.Lock()
					seen[id] = true
					mu.Unlock()
					return err
				})
				for _, err := range errs {
					t.Error(err)
				}
				if len(seen) != 1 {
					t.Errorf("10 concurrent calls with one key made %d records", len(seen))
				}
			})
		}
		if n := count(t, c, "notes", ""); n != 2 {
			t.Errorf("%d notes, want 2 (one per key)", n)
		}
		if n := count(t, c, "deals", ""); n != 1 {
			t.Errorf("%d deals, want 1 (one open deal per pipeline)", n)
		}
		if n := count(t, c, "tasks", ""); n != 2 {
			t.Errorf("%d tasks, want 2", n)
		}
		tk, err := c.CreateTask(ctx, "key-1", &sdk.Task{ContactID: ct.ID, Title: "Call back"})
		if err != nil {
			t.Fatal(err)
		}
		if !tk.DueAt.Equal(due.Truncate(time.Microsecond)) || tk.OwnerID != "an" || tk.Status != "open" || tk.Title != "Call back" {
			t.Errorf("task read back: %+v (due %v)", tk, due)
		}
	})
}

func TestDealsOneOpenPerPipeline(t *testing.T) {
	eachBackend(t, map[string]any{"link_template": link}, func(t *testing.T, c *CRM) {
		ctx := ctxT(t)
		ct := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("deals")}, OwnerID: "an"}).Contact
		up := func(key string, d sdk.Deal) *sdk.Deal {
			t.Helper()
			got, err := c.UpsertDeal(ctx, key, &d)
			if err != nil {
				t.Fatalf("UpsertDeal(%s): %v", key, err)
			}
			return got
		}
		d1 := up("1", sdk.Deal{ContactID: ct.ID, Name: "CRM", Stage: "new", Amount: 100, Currency: "VND", Properties: map[string]string{"src": "zalo"}})
		if d1.Pipeline != "default" || d1.OwnerID != "an" || d1.URL != strings.ReplaceAll(link, "{id}", ct.ID) {
			t.Errorf("new deal %+v", d1)
		}
		d2 := up("2", sdk.Deal{ContactID: ct.ID, Stage: "qualified", Properties: map[string]string{"tier": "hot"}})
		if d2.ID != d1.ID || d2.Stage != "qualified" || d2.Amount != 100 || d2.Name != "CRM" || d2.Properties["src"] != "zalo" || d2.Properties["tier"] != "hot" {
			t.Errorf("moved deal %+v", d2)
		}
		other := up("3", sdk.Deal{ContactID: ct.ID, Pipeline: "renewals", Stage: "new"})
		if other.ID == d1.ID {
			t.Error("another pipeline shared the deal")
		}
		won := up("4", sdk.Deal{ContactID: ct.ID, Stage: "won"})
		if won.ID != d1.ID || won.Stage != "won" {
			t.Errorf("won %+v", won)
		}
		next := up("5", sdk.Deal{ContactID: ct.ID, Stage: "new"})
		if next.ID == d1.ID {
			t.Error("a closed deal was reopened instead of a new deal created")
		}
		if n := count(t, c, "deals", "contact_id = $1 AND is_open", ct.ID); n != 2 {
			t.Errorf("%d open deals, want 2 (default and renewals)", n)
		}
		// Concurrent upserts with different keys still find one open deal.
		c2 := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("deals-2")}}).Contact
		errs := parallel(10, func(i int) error {
			_, err := c.UpsertDeal(ctx, fmt.Sprint("p", i), &sdk.Deal{ContactID: c2.ID, Stage: fmt.Sprint("s", i)})
			return err
		})
		for _, err := range errs {
			t.Error(err)
		}
		if n := count(t, c, "deals", "contact_id = $1", c2.ID); n != 1 {
			t.Errorf("10 concurrent upserts made %d deals", n)
		}
	})
}

func TestTypedErrors(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, c *CRM) {
		ctx := ctxT(t)
		ct := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("errs")}}).Contact
		for _, tc := range []struct {
			name string
			call func() error
			code sdk.ErrorCode
		}{
			{"get unknown id", func() error { _, err := c.GetContact(ctx, "nope", nil); return err }, sdk.CodeNotFound},
			{"get unknown identity", func() error { _, err := c.GetContact(ctx, "", &sdk.Identity{Email: "x@y.z"}); return err }, sdk.CodeNotFound},
			{"get with nothing", func() error { _, err := c.GetContact(ctx, "", &sdk.Identity{Channel: "zalo"}); return err }, sdk.CodeInvalid},
			{"upsert without identity", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "x"}})
				return err
			}, sdk.CodeInvalid},
			{"upsert unknown id", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{ID: "nope"}})
				return err
			}, sdk.CodeNotFound},
			{"user id without channel", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Identities: []sdk.Identity{{UserID: "1"}}}})
				return err
			}, sdk.CodeInvalid},
			{"bad phone", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Phone: "call me"}})
				return err
			}, sdk.CodeInvalid},
			{"national phone without country", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Phone: "0901234567"}})
				return err
			}, sdk.CodeInvalid},
			{"bad email", func() error {
				_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Email: "not-an-email"}})
				return err
			}, sdk.CodeInvalid},
			{"note on unknown contact", func() error {
				_, err := c.AddNote(ctx, "", &sdk.Note{ContactID: "nope", Body: "x"})
				return err
			}, sdk.CodeNotFound},
			{"empty note", func() error { _, err := c.AddNote(ctx, "", &sdk.Note{ContactID: ct.ID}); return err }, sdk.CodeInvalid},
			{"note on unknown deal", func() error {
				_, err := c.AddNote(ctx, "", &sdk.Note{ContactID: ct.ID, DealID: "nope", Body: "x"})
				return err
			}, sdk.CodeNotFound},
			{"deal without stage", func() error { _, err := c.UpsertDeal(ctx, "", &sdk.Deal{ContactID: ct.ID}); return err }, sdk.CodeInvalid},
			{"deal unknown id", func() error { _, err := c.UpsertDeal(ctx, "", &sdk.Deal{ID: "nope", Stage: "x"}); return err }, sdk.CodeNotFound},
			{"deal for nobody", func() error { _, err := c.UpsertDeal(ctx, "", &sdk.Deal{Stage: "x"}); return err }, sdk.CodeInvalid},
			{"task on unknown contact", func() error {
				_, err := c.CreateTask(ctx, "", &sdk.Task{ContactID: "nope"})
				return err
			}, sdk.CodeNotFound},
		} {
			err := tc.call()
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("%s: %v (code %v), want code %v", tc.name, err, got, tc.code)
			}
		}
		if _, err := c.GetContact(ctx, "nope", nil); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("errors.Is(err, sdk.ErrNotFound) = false for %v", err)
		}
	})
}

func TestNotConfigured(t *testing.T) {
	c := New()
	_, err := c.GetContact(ctxT(t), "x", nil)
	if !sdk.IsRetryable(err) {
		t.Errorf("call before Configure: %v, want retryable", err)
	}
	if err := c.CheckHealth(ctxT(t)); err == nil {
		t.Error("CheckHealth before Configure succeeded")
	}
}

func TestPIIStaysOutOfLogs(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			c, host := configure(t, b.Config(t, nil))
			mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("pii-1")}, Phone: "+84907770001"})
			mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("pii-2")}, Email: "secret.person@example.com"})
			mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("pii-1"), zalo("pii-2")}}) // a merge logs
			logs := host.Logs()
			if len(logs) == 0 {
				t.Fatal("nothing logged: the check below would prove nothing")
			}
			for _, l := range logs {
				s := fmt.Sprint(l)
				if strings.Contains(s, "84907770001") || strings.Contains(s, "secret.person") {
					t.Errorf("PII in a log record: %s", s)
				}
			}
		})
	}
}
