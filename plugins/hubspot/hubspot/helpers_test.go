package hubspot_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// fakeClock is a manual clock; Sleep advances it instead of waiting, so a
// rate-limited call completes at once and the test can see how long it
// would have waited.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  time.Duration
	sleeps int
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept += d
	c.sleeps++
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Slept() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept, c.sleeps
}

// t0 is a fixed instant for golden timestamps.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const (
	ownerAn   = "64492917"
	ownerBinh = "64492918"
)

// startFake starts a fake account with two owners and no rate limiting of
// its own (tests of limits turn it on).
func startFake(t *testing.T, opts hsfake.Options) *hsfake.Server {
	if opts.Limits == (hsfake.Limits{}) && !opts.NoRateLimit {
		opts.NoRateLimit = true
	}
	f := hsfake.Start(t, opts)
	f.AddOwner(hsfake.Owner{ID: ownerAn, Email: "an@example.com", FirstName: "An", UserID: 1})
	f.AddOwner(hsfake.Owner{ID: ownerBinh, Email: "binh@example.com", FirstName: "Binh", UserID: 2})
	return f
}

// baseConfig is a working config for fake; over overrides keys.
func baseConfig(fake *hsfake.Server, over map[string]any) map[string]any {
	cfg := map[string]any{
		"token":             fake.Token(),
		"base_url":          fake.URL,
		"portal_id":         "4242",
		"create_properties": true,
		"owners":            map[string]string{"an": ownerAn},
		"stages":            map[string]string{"qualified": "qualifiedtobuy", "presentation": "presentationscheduled", "won": "closedwon"},
		"rate_limit":        map[string]any{"disabled": true},
	}
	for k, v := range over {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	return cfg
}

// configure builds a plugin on host (a fresh MemoryHost if nil).
func configure(t *testing.T, cfg map[string]any, host *sdk.MemoryHost, opts ...hubspot.Option) (*hubspot.CRM, *sdk.MemoryHost) {
	t.Helper()
	if host == nil {
		host = sdk.NewMemoryHost(nil)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := hubspot.New(opts...)
	if err := p.Configure(ctxT(t), sdk.ConfigureRequest{Instance: "test", Config: raw, Host: sdk.HostFromBackend(host)}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p, host
}

func newPlugin(t *testing.T, fake *hsfake.Server, over map[string]any, opts ...hubspot.Option) *hubspot.CRM {
	t.Helper()
	p, _ := configure(t, baseConfig(fake, over), nil, opts...)
	return p
}

func upsert(t *testing.T, p *hubspot.CRM, c sdk.Contact) *sdk.UpsertContactResult {
	t.Helper()
	res, err := p.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{IdempotencyKey: "k", Contact: c})
	if err != nil {
		t.Fatalf("UpsertContact: %v", err)
	}
	return res
}

func zalo(id string) sdk.Identity     { return sdk.Identity{Channel: "zalo", UserID: id} }
func whatsapp(id string) sdk.Identity { return sdk.Identity{Channel: "whatsapp", UserID: id} }
