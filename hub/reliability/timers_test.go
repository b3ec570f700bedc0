package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
)

// timerRules: every message hands the conversation to a one-agent team
// whose first response is due within a few seconds (an SLA timer), and
// schedules a follow-up message a few seconds later (a follow-up timer).
const timerRules = `
settings: { timezone: Asia/Ho_Chi_Minh }
agents:
  a1: { name: Agent 1 }
teams:
  t:
    strategy: round_robin
    capacity: 100000
    members: [a1]
    sla: { first_response: %s }
routing:
  - name: everyone
    when: "true"
    team: t
handoff:
  rules:
    - name: hand everyone over
      when: "true"
      pause_bot: true
followups:
  - name: check back
    when: "true"
    after: %s
    action: message
    params: { text: "Dạ, anh/chị còn cần em hỗ trợ gì không ạ? (follow-up)" }
`

// SLA and follow-up timers (1,000 in the long mode) pending while the hub
// is SIGKILLed three times: each fires, none twice. A follow-up is a
// message to the customer (counted at the channel); an SLA deadline that
// passes is recorded as a breach in the audit trail.
func TestTimersAcrossRestarts(t *testing.T) {
	m := suite(t)
	prefix := redisPrefix(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	const due = 8 * time.Second
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "rules.yaml"), []byte(fmt.Sprintf(timerRules, due, due)), 0o644); err != nil {
		t.Fatal(err)
	}
	convs := m.n(150, 500) // two timers each
	cfg := setup{bins: bins, sink: sink, dir: dir, store: redisStore(prefix), extra: "rules: { dir: " + rulesDir + " }"}.config()
	first := hubtest.Start(t, bins, dir, cfg)
	hubs := []*hubtest.Hub{first}
	var mu sync.Mutex
	current := first
	p := &provider{hubs: func() []*hubtest.Hub { mu.Lock(); defer mu.Unlock(); return []*hubtest.Hub{current} }}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.deliver(ctx, 0, canaryMessage(fmt.Sprintf("tmr-%d", c), fmt.Sprintf("tmr-u%d", c), c)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Three SIGKILLs while the timers come due and fire: before, at and
	// after the due time of the first ones.
	for i := range 3 {
		at := start.Add(due/2 + time.Duration(i)*due/2)
		hubtest.Eventually(t, time.Minute, fmt.Sprintf("restart %d due", i+1), func() bool { return time.Now().After(at) })
		mu.Lock()
		old := current
		mu.Unlock()
		old.Kill()
		h := hubtest.StartFile(t, bins, old.ConfigPath, old.Webhooks, old.Admin)
		mu.Lock()
		current = h
		hubs = append(hubs, h)
		mu.Unlock()
	}
	st, err := redisstore.Open(ctx, redisstore.Options{URL: hubtest.RedisURL(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A timer claimed by a killed process fires again once its claim
	// lease (30 s) runs out, so this waits up to well past that.
	var followups map[string]int
	var breaches map[string]int
	var breachConvs map[string]bool
	fired := func() bool {
		followups = map[string]int{}
		for _, msg := range sink.Messages() {
			if strings.HasPrefix(msg.IdempotencyKey, "fu:") {
				followups[msg.IdempotencyKey]++
			}
		}
		breaches, breachConvs = slaBreaches(t, st)
		return len(followups) >= convs && len(breachConvs) >= convs
	}
	for deadline := time.Now().Add(3 * time.Minute); !fired(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			var missing []string
			for c := range convs {
				if conv := "test:test:test:" + fmt.Sprintf("tmr-u%d", c); !breachConvs[conv] {
					missing = append(missing, conv)
				}
			}
			for _, conv := range missing[:min(len(missing), 3)] {
				recs, _, _ := st.Range(ctx, pipeline.ConvAuditLog(conv), store.LogRange{Limit: 100})
				for _, r := range recs {
					t.Logf("%s audit: %s", conv, r.Data)
				}
				for i, h := range hubs {
					for _, line := range strings.Split(h.Log(), "\n") {
						if strings.Contains(line, strings.TrimPrefix(conv, "test:test:test:")+`"`) || strings.Contains(line, strings.TrimPrefix(conv, "test:test:test:")+`:`) {
							t.Logf("%s hub %d: %.400s", conv, i, line)
						}
					}
				}
			}
			t.Fatalf("after 3m: %d of %d follow-ups sent, breaches recorded in %d of %d conversations; without a breach: %d, e.g. %v",
				len(followups), convs, len(breachConvs), convs, len(missing), missing[:min(len(missing), 10)])
		}
	}
	took := time.Since(start)
	twiceF, twiceS := 0, 0
	for _, n := range followups {
		if n > 1 {
			twiceF++
		}
	}
	for _, n := range breaches {
		if n > 1 {
			twiceS++
		}
	}
	report(t, m, "%d follow-up and %d SLA timers (%d conversations, due after %s), hub SIGKILLed 3 times: %d follow-ups sent (%d twice), SLA deadlines breached in %d conversations (%d distinct deadlines, %d recorded twice), all within %s",
		convs, convs, convs, due, len(followups), twiceF, len(breachConvs), len(breaches), twiceS, took.Round(time.Second))
	if len(followups) != convs || twiceF != 0 || len(breachConvs) != convs || twiceS != 0 {
		t.Errorf("%d follow-ups (%d twice), %d conversations with a breach (%d deadlines twice), want %d each once",
			len(followups), twiceF, len(breachConvs), twiceS, convs)
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, hubLogs(hubs...)...))
}

// slaBreaches reads the audit trail: how often each (conversation,
// deadline) breach was recorded, and which conversations have one.
func slaBreaches(t *testing.T, st store.Store) (map[string]int, map[string]bool) {
	t.Helper()
	n, convs := map[string]int{}, map[string]bool{}
	after := ""
	for {
		recs, next, err := st.Range(context.Background(), pipeline.AuditLog, store.LogRange{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var a pipeline.AuditRecord
			if json.Unmarshal(r.Data, &a) == nil && a.Kind == "sla_breach" {
				n[a.Conv+" "+a.Detail]++
				convs[a.Conv] = true
			}
		}
		if next == "" {
			return n, convs
		}
		after = next
	}
}
