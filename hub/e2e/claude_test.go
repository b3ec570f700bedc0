package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

func claudeHub(t *testing.T, fake *claudefake.Server, sink *hubtest.Sink, extra string) *hubtest.Hub {
	return claudeHubWith(t, hubtest.Start, fake, sink, extra)
}

func claudeHubWith(t *testing.T, start func(testing.TB, hubtest.Bins, string, string, ...string) *hubtest.Hub,
	fake *claudefake.Server, sink *hubtest.Sink, extra string) *hubtest.Hub {
	bins := hubtest.Build(t)
	cbin := testkit.BuildPlugin(t, mod+"plugins/claude")
	dir := t.TempDir()
	return start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - name: test
    kind: channel
    path: %s
    config: { secret: %s, sink_url: %q }
  - name: claude
    kind: llm
    path: %s
    config:
      api_key: ${CLAUDE_KEY}
      base_url: %q
      retry_after_default: 1s
      %s
rules: { dir: %s }
pipeline:
  llm: claude
  retry_base: 100ms
  system_prompt: "Bạn là trợ lý bán hàng của công ty phần mềm ABC."
`, dir, bins.Channel, secret, sink.URL(), cbin, fake.URL(), extra, examplesRules(t)), "CLAUDE_KEY="+claudefake.DefaultAPIKey)
}

func examplesRules(t *testing.T) string {
	abs, err := filepath.Abs("../../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestClaudeRetriedByTheHubAndCostCounted(t *testing.T) {
	fake := claudefake.New()
	fake.Start()
	t.Cleanup(fake.Close)
	sink := hubtest.NewSink(t)
	h := claudeHub(t, fake, sink, "")
	fake.ScriptNext(claudefake.RateLimited(time.Second), claudefake.Overloaded(0))
	ctx := testkit.Context(t, time.Minute)
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "c1", User: "an",
		Text: "Chào shop, cho mình hỏi giá phần mềm CRM cho 10 người?"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	hubtest.Eventually(t, 60*time.Second, "the reply after 429 and 529", func() bool { n, _ := sink.Count(); return n >= 1 })
	if n := fake.RequestCount(); n != 3 {
		t.Errorf("the model saw %d requests, want 3: one per hub attempt (the SDK must not retry on its own)", n)
	}
	if r := h.Metric("switchboard_task_retries_total"); r < 2 {
		t.Errorf("%v retries counted, want 2", r)
	}
	if v := h.Metric("switchboard_llm_tokens_total", "kind", "input"); v <= 0 {
		t.Errorf("input tokens metric %v", v)
	}
	if v := h.Metric("switchboard_llm_cost_usd_total"); v <= 0 {
		t.Errorf("cost metric %v", v)
	}
	reqs := fake.Requests()
	last := reqs[len(reqs)-1]
	if !strings.Contains(fmt.Sprint(last.System), "trợ lý bán hàng") {
		t.Errorf("the hub's system prompt did not reach the model: %v", last.System)
	}
}

func TestClaudeUnauthorizedHandsOffWithoutRetrying(t *testing.T) {
	fake := claudefake.New(claudefake.WithAPIKeys("the-real-key"))
	fake.Start()
	t.Cleanup(fake.Close)
	sink := hubtest.NewSink(t)
	// The provider rejects the key: the hub runs but is not ready.
	h := claudeHubWith(t, hubtest.StartLive, fake, sink, "")
	ctx := testkit.Context(t, time.Minute)
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "u1", User: "binh", Text: "Xin chào"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	hubtest.Eventually(t, 30*time.Second, "a handoff", func() bool { return h.Metric("switchboard_handoffs_total", "reason", "llm_fallback") >= 1 })
	if n := fake.RequestCount(); n != 1 {
		t.Errorf("a rejected key was tried %d times", n)
	}
	if r := h.Metric("switchboard_task_retries_total"); r != 0 {
		t.Errorf("%v retries of a permanent error", r)
	}
	if strings.Contains(h.Log(), claudefake.DefaultAPIKey) {
		t.Error("the API key appears in the hub's log")
	}
}

func TestClaudeBudgetExhaustedHandsOffWithoutACall(t *testing.T) {
	fake := claudefake.New()
	fake.Start()
	t.Cleanup(fake.Close)
	sink := hubtest.NewSink(t)
	h := claudeHub(t, fake, sink, "budget: { per_conversation_tokens: 1 }")
	ctx := testkit.Context(t, time.Minute)
	for i, text := range []string{"Chào shop", "Cho mình hỏi thêm"} {
		if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: fmt.Sprintf("b%d", i), User: "chi", Text: text}); err != nil || code != 200 {
			t.Fatalf("webhook: %d %v", code, err)
		}
		waitProcessed(t, h, float64(i+1))
	}
	hubtest.Eventually(t, 30*time.Second, "a handoff", func() bool { return h.Metric("switchboard_handoffs_total", "reason", "llm_fallback") >= 1 })
	if n := fake.RequestCount(); n != 1 {
		t.Errorf("the model was called %d times; after the budget ran out it must not be", n)
	}
}
