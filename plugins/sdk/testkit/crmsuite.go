package testkit

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// CRMFixture tells the CRM suite how to run a plugin.
type CRMFixture struct {
	Config json.RawMessage
	// Reset, when set, clears the CRM between subtests.
	Reset func(t *testing.T)
	// Host is the backend handed to Configure; nil: a fresh MemoryHost.
	Host sdk.HostBackend
}

var suiteRun atomic.Int64

// RunCRMSuite checks the behaviour every CRM plugin owes the hub. start
// must return a fresh, unconfigured plugin handle. Identities are unique per
// run, so the suite also works against a CRM that keeps old data.
func RunCRMSuite(t *testing.T, start func(t *testing.T) *sdk.RemoteCRM, fx CRMFixture) {
	run := fmt.Sprintf("%d%d", time.Now().UnixNano()%1_000_000_000, suiteRun.Add(1))
	uniq := func(s string) string { return s + run }
	phone := func(n int) string { return fmt.Sprintf("+849%02d%07d", n, suiteRun.Add(1)%10_000_000) }

	configured := func(t *testing.T) *sdk.RemoteCRM {
		t.Helper()
		if fx.Reset != nil {
			fx.Reset(t)
		}
		c := start(t)
		host := fx.Host
		if host == nil {
			host = sdk.NewMemoryHost(nil)
		}
		if err := c.Configure(Context(t, 30*time.Second), "conformance", fx.Config, host, "testkit"); err != nil {
			t.Fatalf("Configure: %v", err)
		}
		return c
	}
	upsert := func(t *testing.T, c *sdk.RemoteCRM, key string, ct sdk.Contact) *sdk.UpsertContactResult {
		t.Helper()
		res, err := c.UpsertContact(Context(t, 10*time.Second), &sdk.UpsertContactRequest{IdempotencyKey: key, Contact: ct})
		if err != nil {
			t.Fatalf("UpsertContact: %v", err)
		}
		if res.Contact.ID == "" {
			t.Fatal("UpsertContact returned no id")
		}
		return res
	}
	zalo := func(id string) sdk.Identity { return sdk.Identity{Channel: "zalo", UserID: id} }
	wa := func(id string) sdk.Identity { return sdk.Identity{Channel: "whatsapp", UserID: id} }

	t.Run("Describe", func(t *testing.T) {
		m, err := start(t).Describe(Context(t, 5*time.Second))
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		checkManifest(t, m, sdk.KindCRM)
	})

	t.Run("CreateThenSameIdentity", func(t *testing.T) {
		c := configured(t)
		id := zalo(uniq("z1-"))
		a := upsert(t, c, uniq("k1-"), sdk.Contact{Name: "Nguyễn Văn An", Identities: []sdk.Identity{id}, SourceChannel: "zalo"})
		if !a.Created {
			t.Error("first upsert did not report Created")
		}
		b := upsert(t, c, uniq("k2-"), sdk.Contact{Name: "Nguyễn Văn An", Identities: []sdk.Identity{id}})
		if b.Created || b.Contact.ID != a.Contact.ID {
			t.Errorf("second upsert of the same identity: id %q created %v, want %q and not created", b.Contact.ID, b.Created, a.Contact.ID)
		}
		got, err := c.GetContact(Context(t, 5*time.Second), "", &id)
		if err != nil || got.ID != a.Contact.ID {
			t.Errorf("GetContact by identity: %v, %v; want id %q", got, err, a.Contact.ID)
		}
		got, err = c.GetContact(Context(t, 5*time.Second), a.Contact.ID, nil)
		if err != nil || got.Name != "Nguyễn Văn An" {
			t.Errorf("GetContact by id: %+v, %v", got, err)
		}
	})

	t.Run("MergeAcrossChannels", func(t *testing.T) {
		c := configured(t)
		p := phone(1)
		a := upsert(t, c, uniq("m1-"), sdk.Contact{Name: "Trần Bình", Phone: p, Identities: []sdk.Identity{zalo(uniq("z2-"))}})
		b := upsert(t, c, uniq("m2-"), sdk.Contact{Name: "Binh Tran", Phone: p, Identities: []sdk.Identity{wa(uniq("w2-"))}})
		if b.Contact.ID != a.Contact.ID {
			t.Fatalf("the same phone on Zalo then WhatsApp made two contacts: %q and %q", a.Contact.ID, b.Contact.ID)
		}
		waID := wa(uniq("w2-"))
		got, err := c.GetContact(Context(t, 5*time.Second), "", &waID)
		if err != nil || got.ID != a.Contact.ID {
			t.Fatalf("GetContact by the WhatsApp identity: %+v, %v", got, err)
		}
		email := uniq("binh") + "@example.com"
		e := upsert(t, c, uniq("m3-"), sdk.Contact{Email: email, Identities: []sdk.Identity{zalo(uniq("z2-"))}})
		if e.Contact.ID != a.Contact.ID {
			t.Errorf("adding an email made a new contact")
		}
		byEmail := sdk.Identity{Channel: "email", Email: email}
		if got, err := c.GetContact(Context(t, 5*time.Second), "", &byEmail); err != nil || got.ID != a.Contact.ID {
			t.Errorf("GetContact by email: %+v, %v", got, err)
		}
	})

	t.Run("ScoreOnlyRises", func(t *testing.T) {
		c := configured(t)
		id := zalo(uniq("z3-"))
		upsert(t, c, uniq("s1-"), sdk.Contact{Identities: []sdk.Identity{id}, Score: 60, Tier: "warm"})
		r := upsert(t, c, uniq("s2-"), sdk.Contact{Identities: []sdk.Identity{id}, Score: 40, Tier: "warm"})
		if r.Contact.Score != 60 {
			t.Errorf("score after 60 then 40 = %d, want 60 (a score only rises)", r.Contact.Score)
		}
		r = upsert(t, c, uniq("s3-"), sdk.Contact{Identities: []sdk.Identity{id}, Score: 75, Tier: "hot",
			Facts: sdk.LeadFacts{Need: "CRM for 10 sales staff", Budget: "50 triệu", Timeline: "tuần này", DecisionMaker: true, DecisionMakerKnown: true, Intent: "quote"}})
		if r.Contact.Score != 75 {
			t.Errorf("score after 75 = %d", r.Contact.Score)
		}
		r = upsert(t, c, uniq("s4-"), sdk.Contact{Identities: []sdk.Identity{id}, Score: 10, ResetScore: true})
		if r.Contact.Score != 10 {
			t.Errorf("score after an explicit reset to 10 = %d", r.Contact.Score)
		}
		got, err := c.GetContact(Context(t, 5*time.Second), r.Contact.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Facts.Budget != "50 triệu" || got.Facts.Timeline != "tuần này" || !got.Facts.DecisionMaker {
			t.Errorf("facts not kept: %+v", got.Facts)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		c := configured(t)
		missing := zalo(uniq("nobody-"))
		if _, err := c.GetContact(Context(t, 5*time.Second), "", &missing); !isNotFound(err) {
			t.Errorf("GetContact of an unknown identity: %v, want sdk.ErrNotFound", err)
		}
	})

	t.Run("OwnerRoundTrip", func(t *testing.T) {
		c := configured(t)
		r := upsert(t, c, uniq("o1-"), sdk.Contact{Identities: []sdk.Identity{zalo(uniq("z4-"))}, OwnerID: "an"})
		got, err := c.GetContact(Context(t, 5*time.Second), r.Contact.ID, nil)
		if err != nil || got.OwnerID != "an" {
			t.Errorf("owner after upsert: %+v, %v; want an", got, err)
		}
	})

	t.Run("IdempotentNotesDealsTasks", func(t *testing.T) {
		c := configured(t)
		ct := upsert(t, c, uniq("i1-"), sdk.Contact{Identities: []sdk.Identity{zalo(uniq("z5-"))}}).Contact
		ctx := Context(t, 20*time.Second)
		n1, err := c.AddNote(ctx, uniq("note-"), &sdk.Note{ContactID: ct.ID, Body: "Score 75 (hot): decision maker +30, urgent +25", Author: "switchboard"})
		if err != nil {
			t.Fatalf("AddNote: %v", err)
		}
		n2, err := c.AddNote(ctx, uniq("note-"), &sdk.Note{ContactID: ct.ID, Body: "Score 75 (hot): decision maker +30, urgent +25", Author: "switchboard"})
		if err != nil || n2.ID != n1.ID {
			t.Errorf("AddNote retried with the same key: %v, %v; want the same note %q", n2, err, n1.ID)
		}
		d1, err := c.UpsertDeal(ctx, uniq("deal-1-"), &sdk.Deal{ContactID: ct.ID, Name: "CRM deal", Pipeline: "default", Stage: "qualified"})
		if err != nil {
			t.Fatalf("UpsertDeal: %v", err)
		}
		d2, err := c.UpsertDeal(ctx, uniq("deal-1-"), &sdk.Deal{ContactID: ct.ID, Name: "CRM deal", Pipeline: "default", Stage: "qualified"})
		if err != nil || d2.ID != d1.ID {
			t.Errorf("UpsertDeal retried: %v, %v; want %q", d2, err, d1.ID)
		}
		d3, err := c.UpsertDeal(ctx, uniq("deal-2-"), &sdk.Deal{ID: d1.ID, ContactID: ct.ID, Name: "CRM deal", Pipeline: "default", Stage: "presentation"})
		if err != nil || d3.ID != d1.ID || d3.Stage != "presentation" {
			t.Errorf("moving the deal: %+v, %v", d3, err)
		}
		due := time.Now().Add(15 * time.Minute).Truncate(time.Second)
		t1, err := c.CreateTask(ctx, uniq("task-"), &sdk.Task{ContactID: ct.ID, DealID: d1.ID, OwnerID: "an", Title: "Call back", Type: "call", DueAt: due})
		if err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		t2, err := c.CreateTask(ctx, uniq("task-"), &sdk.Task{ContactID: ct.ID, DealID: d1.ID, OwnerID: "an", Title: "Call back", Type: "call", DueAt: due})
		if err != nil || t2.ID != t1.ID {
			t.Errorf("CreateTask retried: %v, %v; want %q", t2, err, t1.ID)
		}
	})

	t.Run("ConcurrentUpsertsOneContact", func(t *testing.T) {
		c := configured(t)
		p := phone(2)
		zid, wid := zalo(uniq("z6-")), wa(uniq("w6-"))
		var ids sync.Map
		errs := parallel(20, func(i int) error {
			ct := sdk.Contact{Name: "Lê Chi", Phone: p, Identities: []sdk.Identity{zid}}
			if i%2 == 1 {
				ct.Identities = []sdk.Identity{wid}
			}
			res, err := c.UpsertContact(Context(t, 30*time.Second), &sdk.UpsertContactRequest{IdempotencyKey: fmt.Sprintf("%s-c%d", run, i), Contact: ct})
			if err != nil {
				return fmt.Errorf("upsert %d: %w", i, err)
			}
			ids.Store(res.Contact.ID, true)
			return nil
		})
		for _, err := range errs {
			t.Error(err)
		}
		var distinct []string
		ids.Range(func(k, _ any) bool { distinct = append(distinct, k.(string)); return true })
		if len(distinct) != 1 {
			t.Errorf("20 concurrent upserts of one person made %d contacts: %v", len(distinct), distinct)
		}
		for _, id := range []sdk.Identity{zid, wid} {
			if got, err := c.GetContact(Context(t, 5*time.Second), "", &id); err != nil || (len(distinct) == 1 && got.ID != distinct[0]) {
				t.Errorf("GetContact(%s): %+v, %v", id.Channel, got, err)
			}
		}
	})
}
