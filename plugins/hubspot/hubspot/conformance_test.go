package hubspot_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

// conformanceFake starts a fake account with the owner the suite assigns
// ("an") and returns the suite's fixture for it.
func conformanceFake(t *testing.T) (*hsfake.Server, testkit.CRMFixture) {
	fake := hsfake.Start(t, hsfake.Options{})
	fake.AddOwner(hsfake.Owner{ID: "64492917", Email: "an@example.com", FirstName: "An"})
	cfg, err := json.Marshal(map[string]any{
		"token":             fake.Token(),
		"base_url":          fake.URL,
		"portal_id":         "4242",
		"tier":              "professional", // the fake's default limits
		"create_properties": true,
		"owners":            map[string]string{"an": "64492917"},
		"stages":            map[string]string{"qualified": "qualifiedtobuy", "presentation": "presentationscheduled"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// One host store for every subtest, as one hub's replicas share one:
	// the client-side rate limit then spans the suite's plugin instances,
	// which all talk to the same (fake) HubSpot account.
	return fake, testkit.CRMFixture{Config: cfg, Host: sdk.NewMemoryHost(nil)}
}

func TestConformanceInProcess(t *testing.T) {
	_, fx := conformanceFake(t)
	testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM { return testkit.StartCRM(t, hubspot.New()) }, fx)
}

func TestConformanceSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/hubspot")
	_, fx := conformanceFake(t)
	testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM { return testkit.LaunchCRM(t, bin) }, fx)
}

func TestDescribeSubcommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/hubspot")
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var m sdk.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("describe output is not a manifest: %v\n%s", err, out)
	}
	var schema map[string]any
	if m.Name != "hubspot" || m.Kind != sdk.KindCRM || json.Unmarshal(m.ConfigSchema, &schema) != nil || schema["required"] == nil {
		t.Errorf("manifest %+v", m)
	}
}

func TestCheckHealth(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, nil)
	if err := p.CheckHealth(ctxT(t)); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	fake.RevokeToken()
	if err := p.CheckHealth(ctxT(t)); !errors.Is(err, sdk.ErrUnauthorized) {
		t.Errorf("revoked token: %v", err)
	}
}

// BenchmarkUpsertKnownContact measures the common path: a returning
// contact found through the identity index, read, nothing new to write.
func BenchmarkUpsertKnownContact(b *testing.B) {
	fake := hsfake.New(hsfake.Options{NoRateLimit: true})
	defer fake.Close()
	cfg, _ := json.Marshal(map[string]any{"token": fake.Token(), "base_url": fake.URL, "create_properties": true,
		"rate_limit": map[string]any{"disabled": true}})
	p := hubspot.New()
	ctx := context.Background()
	if err := p.Configure(ctx, sdk.ConfigureRequest{Config: cfg, Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		b.Fatal(err)
	}
	req := &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "An", Phone: "+84901234567", Score: 50,
		Identities: []sdk.Identity{{Channel: "zalo", UserID: "2468458835296197922"}}}}
	if _, err := p.UpsertContact(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.UpsertContact(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTypedErrorsCrossTheWire runs the plugin as a real subprocess and
// checks that the hub sees the typed errors, their retry-after and the
// wording a person needs, and never the token.
func TestTypedErrorsCrossTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/hubspot")
	fake := startFake(t, hsfake.Options{})
	c := testkit.LaunchCRM(t, bin)
	cfg, _ := json.Marshal(baseConfig(fake, nil))
	if err := c.Configure(ctxT(t), "hubspot", cfg, sdk.NewMemoryHost(nil), "test"); err != nil {
		t.Fatal(err)
	}
	zid := zalo("wire")
	if _, err := c.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Identities: []sdk.Identity{zid}}}); err != nil {
		t.Fatal(err)
	}

	fake.Inject(hsfake.Fault{Status: 429, RetryAfter: 7})
	_, err := c.GetContact(ctxT(t), "", &zid)
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != 7*time.Second {
		t.Errorf("429: %v", err)
	}

	if _, err := c.GetContact(ctxT(t), "", &sdk.Identity{Channel: "zalo", UserID: "nobody"}); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}

	fake.RevokeToken()
	_, err = c.GetContact(ctxT(t), "", &zid)
	if !errors.Is(err, sdk.ErrUnauthorized) || !strings.Contains(err.Error(), "check HUBSPOT_TOKEN / its scopes") {
		t.Errorf("401: %v", err)
	}
	if strings.Contains(err.Error(), fake.Token()) {
		t.Error("token in the error")
	}

	if err := c.Configure(ctxT(t), "hubspot", []byte(`{"token":"pat-na1-secret","tier":"gold"}`), sdk.NewMemoryHost(nil), "test"); sdk.CodeOf(err) != sdk.CodeInvalid ||
		strings.Contains(err.Error(), "pat-na1-secret") {
		t.Errorf("bad config: %v", err)
	}
}
