package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

const secret = "e2e-secret"

func baseConfig(bins hubtest.Bins, sink, store string, extra string) string {
	return fmt.Sprintf(`
listen:
  webhooks: "{{WEBHOOK}}"
  admin: "{{ADMIN}}"
store:
%s
plugins:
  - name: test
    kind: channel
    path: %s
    config: { secret: %s, sink_url: "%s" }
  - name: brain
    kind: llm
    path: %s
    config: { latency_ms: 2 }
  - name: crm
    kind: crm
    path: %s
pipeline:
  llm: brain
  crm: crm
  lease_ttl: 2s
  retry_base: 50ms
%s
`, store, bins.Channel, secret, sink, bins.LLM, bins.CRM, extra)
}

// deliverer sends each conversation's messages in order, like a provider:
// the next only after the previous was acknowledged, retrying on errors
// and 5xx (across any of the hubs given) until it gets a 2xx.
type deliverer struct {
	hubs  func() []*hubtest.Hub
	acked atomic.Int64
	tries atomic.Int64
}

func (d *deliverer) send(ctx context.Context, conv, seq int) error {
	msg := testplugins.WebhookMessage{ID: fmt.Sprintf("c%d-m%d", conv, seq), User: fmt.Sprintf("u%d", conv),
		Text: fmt.Sprintf("conv %d msg %03d", conv, seq)}
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hubs := d.hubs()
		h := hubs[(conv+seq+attempt)%len(hubs)]
		d.tries.Add(1)
		code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, msg)
		if err == nil && code == 200 {
			d.acked.Add(1)
			return nil
		}
		time.Sleep(time.Duration(20+rand.IntN(30)) * time.Millisecond) // a provider's retry delay
	}
}

// checkReplies asserts one reply per inbound message and per-conversation
// order, and returns how many raw duplicate sends the sink saw.
func checkReplies(t *testing.T, sink *hubtest.Sink, convs, perConv int) int {
	t.Helper()
	total, distinct := sink.Count()
	byConv := map[string][]int{}
	seenKey := map[string]bool{}
	for _, m := range sink.Messages() {
		if seenKey[m.IdempotencyKey] {
			continue
		}
		seenKey[m.IdempotencyKey] = true
		// The test LLM echoes "conv N msg SSS".
		i := strings.Index(m.Text, "msg ")
		if i < 0 {
			t.Errorf("unexpected reply %q", m.Text)
			continue
		}
		seq, _ := strconv.Atoi(m.Text[i+4 : i+7])
		byConv[m.To] = append(byConv[m.To], seq)
	}
	if distinct != convs*perConv {
		t.Errorf("%d distinct replies for %d inbound messages", distinct, convs*perConv)
	}
	for user, seqs := range byConv {
		if len(seqs) != perConv {
			t.Errorf("%s: %d replies, want %d", user, len(seqs), perConv)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("%s: replies out of order: %v", user, seqs)
				for _, m := range sink.Messages() {
					if m.To == user {
						t.Logf("  %s %q", m.IdempotencyKey, m.Text)
					}
				}
				break
			}
		}
	}
	return total - distinct
}

func run1000(t *testing.T, d *deliverer, kill func()) {
	const convs, perConv = 50, 20
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	for c := 0; c < convs; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 0; s < perConv; s++ {
				if err := d.send(ctx, c, s); err != nil {
					t.Errorf("conv %d msg %d never acknowledged: %v", c, s, err)
					return
				}
				if d.acked.Load() >= convs*perConv/2 {
					once.Do(kill)
				}
			}
		}()
	}
	wg.Wait()
}

func TestThousandWebhooksSurviveSIGKILLEmbedded(t *testing.T) {
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	cfg := baseConfig(bins, sink.URL(), "  embedded: { path: "+dir+"/sb.db }", "")
	var mu sync.Mutex
	hub := hubtest.Start(t, bins, dir, cfg)
	d := &deliverer{hubs: func() []*hubtest.Hub { mu.Lock(); defer mu.Unlock(); return []*hubtest.Hub{hub} }}
	run1000(t, d, func() {
		mu.Lock()
		old := hub
		mu.Unlock()
		old.Kill()
		// Restart on the same data file and addresses.
		h := hubtest.StartFile(t, bins, old.ConfigPath, old.Webhooks, old.Admin)
		mu.Lock()
		hub = h
		mu.Unlock()
	})
	waitReplies(t, sink, 1000)
	dups := checkReplies(t, sink, 50, 20)
	t.Logf("1000 messages, 1 SIGKILL: %d provider retries, %d duplicate sends (a kill between the provider's accept and our record)", d.tries.Load()-1000, dups)
	checkDuplicates(t, dups, 1)
}

func TestThousandWebhooksTwoHubsOnRedisOneKilled(t *testing.T) {
	hubtest.RequireRedis(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("sbe2e%d:", time.Now().UnixNano())
	cfg := baseConfig(bins, sink.URL(), fmt.Sprintf("  redis: { url: %q, prefix: %q }", hubtest.RedisURL(), prefix), "")
	a := hubtest.Start(t, bins, dir, cfg)
	b := hubtest.Start(t, bins, dir, cfg)
	t.Cleanup(func() { cleanRedis(prefix) })
	var mu sync.Mutex
	live := []*hubtest.Hub{a, b}
	d := &deliverer{hubs: func() []*hubtest.Hub { mu.Lock(); defer mu.Unlock(); return live }}
	run1000(t, d, func() {
		b.Kill()
		mu.Lock()
		live = []*hubtest.Hub{a}
		mu.Unlock()
	})
	waitReplies(t, sink, 1000)
	dups := checkReplies(t, sink, 50, 20)
	t.Logf("1000 messages over two hubs, one SIGKILLed: %d provider retries, %d duplicate sends", d.tries.Load()-1000, dups)
	checkDuplicates(t, dups, 1)
}

func cleanRedis(prefix string) {
	out, err := exec.Command("redis-cli", "--scan", "--pattern", prefix+"*").Output()
	if err != nil {
		return
	}
	keys := strings.Fields(string(out))
	for len(keys) > 0 {
		n := min(len(keys), 500)
		_ = exec.Command("redis-cli", append([]string{"del"}, keys[:n]...)...).Run()
		keys = keys[n:]
	}
}

func TestBurstGetsOneReply(t *testing.T) {
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	hub := hubtest.Start(t, bins, dir, baseConfig(bins, sink.URL(), "  embedded: { path: "+dir+"/sb.db }", "  quiet_window: 700ms"))
	ctx := context.Background()
	for i, text := range []string{"Chào shop", "cho mình hỏi", "giá gói Pro bao nhiêu?"} {
		if code, err := hubtest.PostTest(ctx, hub.Webhooks, "test", secret, testplugins.WebhookMessage{ID: fmt.Sprintf("b%d", i), User: "burst", Text: text}); err != nil || code != 200 {
			t.Fatalf("webhook %d: %d %v", i, code, err)
		}
	}
	hubtest.Eventually(t, 20*time.Second, "the burst's reply", func() bool { n, _ := sink.Count(); return n >= 1 })
	// A later message, after the quiet window, gets its own reply; replies
	// of one conversation keep their order, so by the time it arrives any
	// second reply to the burst would have arrived too.
	if code, err := hubtest.PostTest(ctx, hub.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "b-later", User: "burst", Text: "còn gói Basic?"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	hubtest.Eventually(t, 20*time.Second, "the later reply", func() bool { n, _ := sink.Count(); return n >= 2 })
	msgs := sink.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d replies, want 2 (one for the burst, one for the later message): %+v", len(msgs), msgs)
	}
	if !strings.Contains(msgs[0].Text, "Chào shop | cho mình hỏi | giá gói Pro bao nhiêu?") {
		t.Errorf("the burst's reply does not answer all three messages: %q", msgs[0].Text)
	}
	if !strings.Contains(msgs[1].Text, "còn gói Basic?") {
		t.Errorf("later reply: %q", msgs[1].Text)
	}
}

func TestStoreDown503ThenRecovery(t *testing.T) {
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("no redis-server binary")
	}
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	addr := hubtest.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	startRedis := func() *exec.Cmd {
		cmd := exec.Command(redisServer, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hubtest.Eventually(t, 10*time.Second, "redis up", func() bool {
			return exec.Command("redis-cli", "-p", port, "ping").Run() == nil
		})
		return cmd
	}
	rs := startRedis()
	t.Cleanup(func() { _ = rs.Process.Kill(); _ = rs.Wait() })
	hub := hubtest.Start(t, bins, dir, baseConfig(bins, sink.URL(), fmt.Sprintf("  redis: { url: \"redis://%s/0\" }", addr), ""))
	ctx := context.Background()
	post := func(id string) int {
		code, err := hubtest.PostTest(ctx, hub.Webhooks, "test", secret, testplugins.WebhookMessage{ID: id, User: "u-" + id, Text: "xin chào " + id})
		if err != nil {
			t.Fatalf("webhook %s: %v", id, err)
		}
		return code
	}
	if code := post("before"); code != 200 {
		t.Fatalf("with Redis up: %d", code)
	}
	_ = rs.Process.Kill()
	_ = rs.Wait()
	if code := post("during"); code != 503 {
		t.Fatalf("with Redis down: %d, want 503", code)
	}
	rs = startRedis()
	hubtest.Eventually(t, 30*time.Second, "the hub to take webhooks again", func() bool { return post("after") == 200 })
	hubtest.Eventually(t, 30*time.Second, "the reply to the message acked after recovery", func() bool {
		for _, m := range sink.Messages() {
			if strings.Contains(m.Text, "xin chào after") {
				return true
			}
		}
		return false
	})
	if strings.Contains(hub.Log(), "xin chào") {
		t.Error("message text appears in the hub's log")
	}
}

func waitReplies(t *testing.T, sink *hubtest.Sink, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		total, distinct := sink.Count()
		if distinct >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2m: %d distinct replies (%d sends) of %d", distinct, total, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDuplicates bounds raw duplicate sends. The sink, like a provider that
// honours idempotency keys, shows the customer one reply per message
// (checkReplies); a raw duplicate is a kill that fell between the
// provider's accept and our record of it. A conversation has at most one
// task in flight, so a kill can cause at most one per conversation.
func checkDuplicates(t *testing.T, dups, kills int) {
	t.Helper()
	if dups > 50*kills {
		t.Errorf("%d duplicate sends after %d kill(s): more than one per conversation per kill", dups, kills)
	}
}
