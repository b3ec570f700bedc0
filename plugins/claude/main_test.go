package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/claude/claude"
	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

func fixture(t *testing.T) (*claudefake.Server, json.RawMessage) {
	t.Helper()
	f := claudefake.New(claudefake.WithCacheMinTokens(0))
	f.Start()
	t.Cleanup(f.Close)
	kb, err := filepath.Abs("testdata/knowledge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"api_key": claudefake.DefaultAPIKey, "base_url": f.URL(), "knowledge_file": kb,
		"budget": map[string]any{"per_day_usd": 5},
	})
	return f, cfg
}

// TestConformanceSubprocess builds the real binary and runs the SDK's LLM
// suite against it through go-plugin, as the hub would: this catches stray
// stdout writes, handshake and wire problems that in-process tests cannot.
func TestConformanceSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/claude")
	_, cfg := fixture(t)
	testkit.RunLLMSuite(t, func(t *testing.T) *sdk.RemoteLLM {
		return testkit.LaunchLLM(t, bin)
	}, testkit.LLMFixture{Config: cfg, Schema: claude.LeadFactsSchema()})
}

// TestSubprocessErrorsAndBudget checks, across the process boundary, that a
// 429's retry-after reaches the hub typed, and that the budget lives in the
// hub's KV (so a restarted plugin, or another replica, still sees it).
func TestSubprocessErrorsAndBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/claude")
	f, _ := fixture(t)
	kb, _ := filepath.Abs("testdata/knowledge.yaml")
	cfg, _ := json.Marshal(map[string]any{"api_key": claudefake.DefaultAPIKey, "base_url": f.URL(), "knowledge_file": kb,
		"system_prompt": "Bạn là trợ lý bán hàng.", "budget": map[string]any{"per_conversation_tokens": 1}})
	host := sdk.NewMemoryHost(nil) // the hub's store, shared by both processes
	ctx := testkit.Context(t, time.Minute)
	launch := func() *sdk.RemoteLLM {
		c := testkit.LaunchLLM(t, bin)
		if err := c.Configure(ctx, "claude", cfg, host, "test"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	req := func() *sdk.GenerateRequest {
		return &sdk.GenerateRequest{ConversationKey: "zalo:oa1:u1", History: []sdk.Turn{{Role: "customer", Text: "Giá gói Pro?"}}}
	}

	first := launch()
	f.Script("zalo:oa1:u1", claudefake.RateLimited(4*time.Second))
	_, err := first.Generate(ctx, req())
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != 4*time.Second || !strings.Contains(err.Error(), "rate_limit_error") {
		t.Fatalf("429 across the wire: %v", err)
	}
	if res, err := first.Generate(ctx, req()); err != nil || res.Fallback {
		t.Fatalf("retry after the 429: %+v, %v", res, err)
	}

	second := launch() // another replica, or the plugin after a restart
	before := f.RequestCount()
	res, err := second.Generate(ctx, req())
	if err != nil || !res.Fallback || res.FallbackReason != "budget_exhausted" {
		t.Fatalf("budget across processes: %+v, %v", res, err)
	}
	if f.RequestCount() != before {
		t.Error("an exhausted budget must not call the model")
	}
}
