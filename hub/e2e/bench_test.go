package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// Benchmarks of the whole hub process with real plugin subprocesses on
// loopback: go test -run '^$' -bench . -benchtime 2000x ./hub/e2e/
//
// BenchmarkIngest measures verify (HMAC in the channel plugin) + enqueue +
// ack; BenchmarkEndToEnd measures webhook to reply with instant plugins.

func benchHub(b *testing.B, store string, withLLM bool) (*hubtest.Hub, *hubtest.Sink) {
	bins := hubtest.Build(b)
	sink := hubtest.NewSink(b)
	dir := b.TempDir()
	if store == "redis" {
		hubtest.RequireRedis(b)
		prefix := fmt.Sprintf("sbbench%d:", time.Now().UnixNano())
		b.Cleanup(func() { cleanRedis(prefix) })
		store = fmt.Sprintf("  redis: { url: %q, prefix: %q }", hubtest.RedisURL(), prefix)
	} else {
		store = "  embedded: { path: " + dir + "/sb.db }"
	}
	llm := ""
	if withLLM {
		llm = "  llm: brain"
	}
	return hubtest.Start(b, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store:
%s
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s }
pipeline:
%s
  history_turns: 20
`, store, bins.Channel, secret, sink.URL(), bins.LLM, llm)), sink
}

func BenchmarkIngest(b *testing.B) {
	for _, store := range []string{"embedded", "redis"} {
		b.Run(store, func(b *testing.B) {
			h, _ := benchHub(b, store, false)
			var seq atomic.Int64
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{
						ID: fmt.Sprintf("i%d", n), User: fmt.Sprintf("u%d", n%200), Text: "xin chào"})
					if err != nil || code != 200 {
						b.Errorf("webhook: %d %v", code, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func BenchmarkEndToEnd(b *testing.B) {
	for _, store := range []string{"embedded", "redis"} {
		b.Run(store, func(b *testing.B) {
			h, sink := benchHub(b, store, true)
			var seq atomic.Int64
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{
						ID: fmt.Sprintf("e%d", n), User: fmt.Sprintf("u%d", n%500), Text: fmt.Sprintf("tin nhắn %d", n)})
					if err != nil || code != 200 {
						b.Errorf("webhook: %d %v", code, err)
						return
					}
				}
			})
			deadline := time.Now().Add(5 * time.Minute)
			for {
				if _, d := sink.Count(); d >= b.N {
					break
				}
				if time.Now().After(deadline) {
					_, d := sink.Count()
					b.Fatalf("%d of %d replies after 5m", d, b.N)
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
