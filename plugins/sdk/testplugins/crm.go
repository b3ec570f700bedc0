package testplugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// CRM is an in-memory CRM plugin with the full contract: identity dedupe
// and merge, rising scores, idempotent writes.
type CRM struct {
	mu       sync.Mutex
	seq      int
	contacts map[string]*sdk.Contact
	byIdent  map[string]string // identity key → contact id
	idem     map[string]string // idempotency key → record id
	notes    map[string]*sdk.Note
	deals    map[string]*sdk.Deal
	tasks    map[string]*sdk.Task
	link     string
}

// NewCRM returns an empty in-memory CRM.
func NewCRM() *CRM {
	return &CRM{contacts: map[string]*sdk.Contact{}, byIdent: map[string]string{}, idem: map[string]string{},
		notes: map[string]*sdk.Note{}, deals: map[string]*sdk.Deal{}, tasks: map[string]*sdk.Task{}}
}

func (c *CRM) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "testcrm", Kind: sdk.KindCRM, Version: "1.0.0", Description: "Switchboard's in-memory test CRM"}, nil
}

func (c *CRM) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var cfg struct {
		LinkTemplate string `json:"link_template"`
	}
	if len(req.Config) > 0 {
		if err := json.Unmarshal(req.Config, &cfg); err != nil {
			return sdk.Invalid(fmt.Errorf("testcrm config: %w", err))
		}
	}
	c.mu.Lock()
	c.link = cfg.LinkTemplate
	c.mu.Unlock()
	return nil
}

func identKeys(ct *sdk.Contact) []string {
	var keys []string
	for _, i := range ct.Identities {
		if i.UserID != "" {
			keys = append(keys, "ch:"+i.Channel+":"+i.UserID)
		}
		if i.Phone != "" {
			keys = append(keys, "phone:"+i.Phone)
		}
		if i.Email != "" {
			keys = append(keys, "email:"+strings.ToLower(i.Email))
		}
	}
	if ct.Phone != "" {
		keys = append(keys, "phone:"+ct.Phone)
	}
	if ct.Email != "" {
		keys = append(keys, "email:"+strings.ToLower(ct.Email))
	}
	return keys
}

func (c *CRM) nextID(prefix string) string { c.seq++; return fmt.Sprintf("%s%d", prefix, c.seq) }

func (c *CRM) UpsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := req.Contact
	keys := identKeys(&in)
	if len(keys) == 0 && in.ID == "" {
		return nil, sdk.Invalid(errors.New("a contact needs an id or an identity"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var cur *sdk.Contact
	if in.ID != "" {
		cur = c.contacts[in.ID]
	}
	for _, k := range keys {
		if cur == nil {
			if id, ok := c.byIdent[k]; ok {
				cur = c.contacts[id]
			}
		}
	}
	created := cur == nil
	if created {
		cur = &sdk.Contact{ID: c.nextID("c"), CreatedAt: time.Now()}
		c.contacts[cur.ID] = cur
	}
	merge(cur, &in)
	for _, k := range keys {
		c.byIdent[k] = cur.ID
	}
	cur.UpdatedAt = time.Now()
	if c.link != "" {
		cur.URL = strings.ReplaceAll(c.link, "{id}", cur.ID)
	}
	return &sdk.UpsertContactResult{Contact: clone(cur), Created: created}, nil
}

func merge(cur, in *sdk.Contact) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cur.Name, in.Name)
	set(&cur.Phone, in.Phone)
	set(&cur.Email, in.Email)
	set(&cur.OwnerID, in.OwnerID)
	set(&cur.Tier, in.Tier)
	set(&cur.SourceChannel, in.SourceChannel)
	set(&cur.Campaign, in.Campaign)
	if in.ResetScore || in.Score > cur.Score {
		cur.Score = in.Score
	}
	f := &cur.Facts
	set(&f.Intent, in.Facts.Intent)
	set(&f.Need, in.Facts.Need)
	set(&f.Budget, in.Facts.Budget)
	set(&f.Timeline, in.Facts.Timeline)
	set(&f.Action, in.Facts.Action)
	if in.Facts.DecisionMakerKnown {
		f.DecisionMaker, f.DecisionMakerKnown = in.Facts.DecisionMaker, true
	}
	if in.Facts.Confidence != 0 {
		f.Confidence = in.Facts.Confidence
	}
	if in.Facts.Estimate != 0 {
		f.Estimate = in.Facts.Estimate
	}
	for _, id := range in.Identities {
		found := false
		for _, have := range cur.Identities {
			found = found || (have.Channel == id.Channel && have.UserID == id.UserID && have.Email == id.Email && have.Phone == id.Phone)
		}
		if !found {
			cur.Identities = append(cur.Identities, id)
		}
	}
	cur.Tags = append(cur.Tags, in.Tags...)
	for k, v := range in.Properties {
		if cur.Properties == nil {
			cur.Properties = map[string]string{}
		}
		cur.Properties[k] = v
	}
}

func clone(c *sdk.Contact) sdk.Contact {
	out := *c
	out.Identities = append([]sdk.Identity(nil), c.Identities...)
	return out
}

func (c *CRM) GetContact(ctx context.Context, id string, identity *sdk.Identity) (*sdk.Contact, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" && identity != nil {
		for _, k := range identKeys(&sdk.Contact{Identities: []sdk.Identity{*identity}}) {
			if v, ok := c.byIdent[k]; ok {
				id = v
				break
			}
		}
	}
	ct, ok := c.contacts[id]
	if !ok {
		return nil, sdk.NotFound(errors.New("no such contact"))
	}
	out := clone(ct)
	return &out, nil
}

// once returns the record already made for key, or makes one.
func (c *CRM) once(key string, make func() string) string {
	if key != "" {
		if id, ok := c.idem[key]; ok {
			return id
		}
	}
	id := make()
	if key != "" {
		c.idem[key] = id
	}
	return id
}

func (c *CRM) AddNote(ctx context.Context, key string, n *sdk.Note) (*sdk.Note, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.contacts[n.ContactID]; !ok {
		return nil, sdk.NotFound(fmt.Errorf("no contact %q", n.ContactID))
	}
	id := c.once(key, func() string {
		v := *n
		v.ID, v.CreatedAt = c.nextID("n"), time.Now()
		c.notes[v.ID] = &v
		return v.ID
	})
	out := *c.notes[id]
	return &out, nil
}

func (c *CRM) UpsertDeal(ctx context.Context, key string, d *sdk.Deal) (*sdk.Deal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.once(key, func() string {
		if d.ID == "" {
			for _, have := range c.deals {
				if have.ContactID == d.ContactID && have.Pipeline == d.Pipeline {
					d.ID = have.ID
				}
			}
		}
		if d.ID == "" {
			d.ID = c.nextID("d")
		}
		v := *d
		c.deals[v.ID] = &v
		return v.ID
	})
	out := *c.deals[id]
	return &out, nil
}

func (c *CRM) CreateTask(ctx context.Context, key string, t *sdk.Task) (*sdk.Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.once(key, func() string {
		v := *t
		v.ID = c.nextID("t")
		if v.Status == "" {
			v.Status = "open"
		}
		c.tasks[v.ID] = &v
		return v.ID
	})
	out := *c.tasks[id]
	return &out, nil
}

// Counts reports how many records of each kind exist, for assertions.
func (c *CRM) Counts() (contacts, notes, deals, tasks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.contacts), len(c.notes), len(c.deals), len(c.tasks)
}
