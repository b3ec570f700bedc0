package claude

import (
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

// TestConformance runs the SDK's LLM suite in-process over real gRPC, with
// the fake's default responder answering.
func TestConformance(t *testing.T) {
	f := startFake(t)
	testkit.RunLLMSuite(t, func(t *testing.T) *sdk.RemoteLLM {
		return testkit.StartLLM(t, New())
	}, testkit.LLMFixture{Config: testConfig(t, f, nil), Schema: LeadFactsSchema()})
}
