package hubspot_test

import (
	"encoding/json"
	"testing"

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
