package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

func slowLLMHub(t *testing.T, sink *hubtest.Sink, llmConfig, pipeline string) *hubtest.Hub {
	bins := hubtest.Build(t)
	dir := t.TempDir()
	return hubtest.Start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s, config: %s }
pipeline:
  llm: brain
%s
`, dir, bins.Channel, secret, sink.URL(), bins.LLM, llmConfig, pipeline))
}

// An agent's message that arrives while the bot's reply is still being
// generated voids that reply: it is dropped, not sent.
func TestAgentMessageDropsTheReplyBeingGenerated(t *testing.T) {
	sink := hubtest.NewSink(t)
	h := slowLLMHub(t, sink, `{ latency_ms: 2000 }`, "")
	ctx := testkit.Context(t, time.Minute)
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "q1", User: "dung", Text: "Cho mình hỏi giá"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	// A person answers while the (2 s) reply is being generated, or even
	// before the hub got to it: either way the bot's reply is void.
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "a1", User: "dung", Author: "agent", Agent: "lan",
		Text: "Dạ em là Lan, em báo giá ngay ạ"}); err != nil || code != 200 {
		t.Fatalf("agent webhook: %d %v", code, err)
	}
	waitProcessed(t, h, 2)
	hubtest.Eventually(t, 20*time.Second, "the pending reply to be settled", func() bool {
		return h.Metric("switchboard_tasks_processed_total", "kind", "event") >= 2 && h.Metric("switchboard_queue_depth") == 0
	})
	if n, _ := sink.Count(); n != 0 {
		t.Errorf("%d bot replies sent after a person took over", n)
	}
}

// Pacing delays the reply in proportion to its length without delaying
// the webhook's ack.
func TestPacedReply(t *testing.T) {
	sink := hubtest.NewSink(t)
	h := slowLLMHub(t, sink, `{}`, "  pacing: { enabled: true, per_char: 20ms, min: 1s, max: 3s }")
	ctx := testkit.Context(t, time.Minute)
	start := time.Now()
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "p1", User: "em", Text: "Xin chào"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	hubtest.Eventually(t, 20*time.Second, "the paced reply", func() bool { n, _ := sink.Count(); return n >= 1 })
	// The reply ("Cảm ơn anh/chị! Bạn nói: Xin chào", 33 characters) is
	// paced for at least min(max(33*20ms, 1s), 3s) = 1s after it was composed.
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("reply after %s, before its pacing delay", elapsed)
	}
	if v := h.Metric("switchboard_timers_fired_total", "kind", "enqueue"); v < 1 {
		t.Errorf("the paced send did not go through a timer (%v fired)", v)
	}
}
