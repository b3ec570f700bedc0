package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
)

// A plugin process SIGKILLed over and over while messages flow: the
// supervisor restarts it every time, webhooks that met a dead channel
// plugin get a 503 and are retried by the provider, pipeline calls that
// met a dead LLM are retried by the pipeline, and every acknowledged
// message gets its reply.
func TestPluginSIGKILLedUnderLoad(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	kills := m.n(20, 100)
	// The supervisor would call 5 crashes a minute a crash loop and wait
	// 30 s between restarts; this test kills far faster on purpose.
	hub := hubtest.Start(t, bins, dir, setup{bins: bins, sink: sink, dir: dir, crm: true,
		store: "  embedded: { path: " + dir + "/sb.db }",
		extra: "plugin_host: { min_backoff: 50ms, crash_loop: 100000 }"}.config())
	convs, perConv := m.n(50, 100), m.n(20, 50)
	total := convs * perConv
	ctx, cancel := context.WithTimeout(context.Background(), m.d(4*time.Minute, 12*time.Minute))
	defer cancel()
	lim := newLimiter(ctx, float64(total)/(float64(kills)*0.4+2))
	p := &provider{hubs: func() []*hubtest.Hub { return []*hubtest.Hub{hub} }}
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("pk-u%d", c)
			for s := range perConv {
				lim.wait(ctx)
				if err := p.deliver(ctx, 0, canaryMessage(fmt.Sprintf("pk-%d-%d", c, s), user, c*perConv+s)); err != nil {
					t.Errorf("%s message %d: %v", user, s, err)
					return
				}
			}
		}()
	}
	var slowest time.Duration
	restarted := 0
	for i := range kills {
		bin := bins.LLM
		if i%2 == 1 {
			bin = bins.Channel
		}
		var pid int
		hubtest.Eventually(t, 30*time.Second, "the plugin running", func() bool { pid = pluginPID(hub, bin); return pid != 0 })
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		hubtest.Eventually(t, 30*time.Second, fmt.Sprintf("kill %d: %s restarted", i+1, filepath.Base(bin)), func() bool {
			n := pluginPID(hub, bin)
			return n != 0 && n != pid
		})
		restarted++
		slowest = max(slowest, time.Since(start))
	}
	wg.Wait()
	// Generous: the wait ends as soon as every reply is in; on a loaded
	// machine the backlog after the last kill takes a while to drain.
	waitDistinct(t, sink, total, m.d(5*time.Minute, 8*time.Minute))
	rc := checkSink(sink)
	restarts := hub.Metric("switchboard_plugin_restarts_total")
	handoffs := hub.Metric("switchboard_handoffs_total")
	report(t, m, "%d SIGKILLs of the LLM and channel plugins under load: restarted %d times (slowest %s, restarts metric %.0f), %d of %d acknowledged messages lost, %d out of order, %d duplicate replies, %d 503s retried by the provider, %.0f tasks retried alone after a death, %.0f conversations handed to a person",
		kills, restarted, slowest.Round(time.Millisecond), restarts, total-rc.distinct, total, rc.outOfOrder, rc.duplicates, p.got5xx.Load(),
		hub.Metric("switchboard_tasks_isolated_total"), handoffs)
	if rc.distinct != total || rc.outOfOrder != 0 {
		t.Errorf("%d distinct replies of %d, %d out of order", rc.distinct, total, rc.outOfOrder)
	}
	if handoffs != 0 { // a killed plugin is not the model refusing
		t.Errorf("%.0f conversations handed to a person because a plugin was killed", handoffs)
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, hub.Log()))
}

// An LLM that never answers some messages: each call ends at the
// plugin's call_timeout, the messages are retried and then dead-lettered,
// and the conversations behind them, and every other, keep flowing: no
// worker is held for good.
func TestHangingPlugin(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	const timeout = time.Second
	hanging, workers := m.n(8, 16), 4
	// A configuration only the LLM part of which differs from setup's.
	cfg := fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s, call_timeout: %s, config: { hang_on: "HANG" } }
pipeline: { llm: brain, workers: %d, retry_base: 50ms, retry_max: 200ms }
`, dir, bins.Channel, secret, sink.URL(), bins.LLM, timeout, workers)
	hub := hubtest.Start(t, bins, dir, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := &provider{hubs: func() []*hubtest.Hub { return []*hubtest.Hub{hub} }}
	start := time.Now()
	for i := range hanging {
		msg := canaryMessage(fmt.Sprintf("hang-%d", i), fmt.Sprintf("hang-u%d", i), 900000+i)
		msg.Text += " HANG"
		if err := p.deliver(ctx, 0, msg); err != nil {
			t.Fatal(err)
		}
	}
	normal := m.n(100, 500)
	for i := range normal {
		if err := p.deliver(ctx, 0, canaryMessage(fmt.Sprintf("ok-%d", i), fmt.Sprintf("ok-u%d", i%50), i)); err != nil {
			t.Fatal(err)
		}
	}
	waitDistinct(t, sink, normal, 2*time.Minute)
	allReplied := time.Since(start)
	hubtest.Eventually(t, 2*time.Minute, "the hanging messages dead-lettered", func() bool {
		return hub.Metric("switchboard_dead_letters_total") >= float64(hanging)
	})
	deadLettered := time.Since(start)
	// No Generate call outlived its deadline by more than a second: the
	// histogram's buckets above timeout+1s stay empty.
	calls := hub.Metric("switchboard_plugin_call_seconds_count", "plugin", "brain", "method", "Generate")
	within := hub.Metric("switchboard_plugin_call_seconds_bucket", "plugin", "brain", "method", "Generate", "le", "2.5")
	timeouts := hub.Metric("switchboard_plugin_calls_total", "plugin", "brain", "method", "Generate", "code", "retryable")
	rc := checkSink(sink)
	report(t, m, "%d messages hang the LLM (call_timeout %s, %d workers): %.0f calls timed out, %.0f of %.0f Generate calls ended within 2.5 s, all %d dead-lettered after %s; %d other messages all answered (%d replies) after %s",
		hanging, timeout, workers, timeouts, within, calls, hanging, deadLettered.Round(100*time.Millisecond), normal, rc.distinct, allReplied.Round(100*time.Millisecond))
	if within != calls {
		t.Errorf("%.0f of %.0f Generate calls took longer than 2.5 s with a %s deadline", calls-within, calls, timeout)
	}
	if rc.distinct != normal {
		t.Errorf("%d replies, want %d (none to the hanging messages)", rc.distinct, normal)
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, hub.Log()))
}

// A message that crashes the LLM plugin every time it is processed: it is
// dead-lettered after max_deliveries attempts while the other
// conversations keep getting replies.
func TestPoisonMessage(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	hub := hubtest.Start(t, bins, dir, setup{bins: bins, sink: sink, dir: dir,
		store: "  embedded: { path: " + dir + "/sb.db }", llm: `{ crash_on: "POISON" }`}.config())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := &provider{hubs: func() []*hubtest.Hub { return []*hubtest.Hub{hub} }}
	poison := canaryMessage("poison-1", "poison-u", 999999)
	poison.Text += " POISON"
	if err := p.deliver(ctx, 0, poison); err != nil {
		t.Fatal(err)
	}
	others := m.n(200, 1000)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < others; i += 20 {
				if err := p.deliver(ctx, 0, canaryMessage(fmt.Sprintf("other-%d", i), fmt.Sprintf("other-u%d", c), i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// The rest flows around a crash-looping plugin: slower on a loaded machine.
	waitDistinct(t, sink, others, m.d(4*time.Minute, 6*time.Minute))
	flowed := time.Since(start)
	hubtest.Eventually(t, 2*time.Minute, "the poison message dead-lettered", func() bool {
		return hub.Metric("switchboard_dead_letters_total") >= 1
	})
	dead := hub.Metric("switchboard_dead_letters_total")
	crashes := hub.Metric("switchboard_plugin_restarts_total", "plugin", "brain")
	var list struct {
		Items []struct {
			Conv     string `json:"conv"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
		} `json:"items"`
	}
	if code, err := hubtest.GetJSON(hub.Admin+"/admin/v1/dead-letters", &list, "Authorization", "Bearer "+hub.AdminKey); err != nil || code != 200 {
		t.Fatalf("dead letters: %d %v", code, err)
	}
	rc := checkSink(sink)
	if len(list.Items) != 1 || !strings.Contains(list.Items[0].Conv, "poison-u") {
		t.Fatalf("dead letters %+v, want the poison message only", list.Items)
	}
	handoffs := hub.Metric("switchboard_handoffs_total")
	report(t, m, "a message that crashes the LLM plugin: dead-lettered after %d attempts (%.0f plugin crashes, %.0f tasks retried alone after one; %q); the %d other messages got %d replies in %s; %.0f conversations handed to a person",
		list.Items[0].Attempts, crashes, hub.Metric("switchboard_tasks_isolated_total"), list.Items[0].Error, others, rc.distinct, flowed.Round(100*time.Millisecond), handoffs)
	if dead != 1 || rc.distinct != others || handoffs != 0 {
		t.Errorf("%.0f dead letters (want 1), %d replies of %d, %.0f handoffs", dead, rc.distinct, others, handoffs)
	}
	if strings.Contains(strings.Join(sinkTexts(sink), "\n"), "POISON") {
		t.Error("the poison message got a reply")
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, hub.Log()))
}

func sinkTexts(s *hubtest.Sink) []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, m.Text)
	}
	return out
}

// The hub SIGKILLed again and again: every time, its plugin processes
// notice their parent is gone and exit; none is left behind.
func TestHubSIGKILLLeavesNoOrphans(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	runs := m.n(10, 100)
	cfg := setup{bins: bins, sink: sink, dir: dir, crm: true, store: "  embedded: { path: " + dir + "/sb.db }"}.config()
	orphans, plugins := 0, 0
	var slowest time.Duration
	var first *hubtest.Hub
	for i := range runs {
		var h *hubtest.Hub
		if first == nil {
			h = hubtest.Start(t, bins, dir, cfg)
			first = h
		} else {
			h = hubtest.StartFile(t, bins, first.ConfigPath, first.Webhooks, first.Admin)
		}
		kids := procChildren(h.Cmd.Process.Pid)
		if len(kids) != 3 {
			t.Fatalf("run %d: %d plugin processes, want 3: %v", i, len(kids), kids)
		}
		plugins += len(kids)
		h.Kill()
		start := time.Now()
		deadline := start.Add(10 * time.Second)
		for pid := range kids {
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if alive(pid) {
				orphans++
				t.Errorf("run %d: plugin %d (%s) still running 10 s after the hub was killed", i, pid, kids[pid])
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		slowest = max(slowest, time.Since(start))
	}
	report(t, m, "hub SIGKILLed %d times with 3 plugins each: %d orphaned plugin processes of %d (the slowest exit took %s)",
		runs, orphans, plugins, slowest.Round(time.Millisecond))

	// Killed while it starts its plugins: at a random moment in its first
	// half second, before or while the plugins come up.
	binaries := map[string]bool{bins.Channel: true, bins.LLM: true, bins.CRM: true}
	early := m.n(20, 100)
	earlyOrphans := 0
	for i := range early {
		cmd := exec.Command(bins.Hub, "serve", "--config", first.ConfigPath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond) // the moment of the kill is the variable under test
		} else {
			// The narrowest moment: as soon as the first plugin process
			// exists, before it has started watching its parent.
			for deadline := time.Now().Add(10 * time.Second); len(procChildren(cmd.Process.Pid)) == 0 && time.Now().Before(deadline); {
				runtime.Gosched()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// The watchdog polls its parent every 250 ms; 10 s is plenty.
		left := pluginProcs(binaries)
		for deadline := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = pluginProcs(binaries) {
			time.Sleep(20 * time.Millisecond)
		}
		if len(left) > 0 {
			earlyOrphans += len(left)
			t.Errorf("early kill %d: plugin processes %v still running", i, left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	report(t, m, "hub SIGKILLed %d times while starting (half at a random moment of its first 500 ms, half as soon as its first plugin process existed): %d orphaned plugin processes", early, earlyOrphans)
}

// pluginProcs lists live processes running one of binaries.
func pluginProcs(binaries map[string]bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		if binaries[strings.TrimSuffix(exe, " (deleted)")] {
			out = append(out, pid)
		}
	}
	return out
}

// A plugin binary with one byte changed is refused: at start (every
// time, a different byte each time), and when a running plugin's binary
// is replaced and the plugin restarts.
func TestTamperedPluginBinaryRefused(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	orig, err := os.ReadFile(bins.LLM)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(orig)
	pinned := filepath.Join(dir, "testllm")
	cfgFor := func() string {
		return setup{bins: bins, sink: sink, dir: dir, store: "  embedded: { path: " + dir + "/sb.db }"}.config()
	}
	pin := func(cfg string) string {
		return strings.Replace(cfg, "{ name: brain, kind: llm, path: "+bins.LLM,
			"{ name: brain, kind: llm, sha256: "+hex.EncodeToString(sum[:])+", path: "+pinned, 1)
	}
	tries := m.n(5, 20)
	refused := 0
	for i := range tries {
		b := bytes.Clone(orig)
		at := rand.IntN(len(b))
		b[at] ^= byte(1 + rand.IntN(255))
		if err := os.WriteFile(pinned, b, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("tampered-%d.yaml", i))
		cfg := strings.NewReplacer("{{WEBHOOK}}", hubtest.FreeAddr(t), "{{ADMIN}}", hubtest.FreeAddr(t)).Replace(pin(cfgFor()))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(cctx, bins.Hub, "serve", "--config", path).CombinedOutput()
		cancel()
		if err != nil && strings.Contains(string(out), "checksum mismatch") {
			refused++
		} else {
			t.Errorf("byte %d changed: the hub did not refuse the plugin (err %v):\n%s", at, err, tail(string(out), 2000))
		}
	}
	// At run time: the pinned binary is replaced (renamed over, as a
	// deployment or an attacker would) and the plugin is killed.
	if err := os.WriteFile(pinned, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	hub := hubtest.Start(t, bins, dir, pin(cfgFor()))
	pid := pluginPID(hub, pinned)
	if pid == 0 {
		t.Fatal("the pinned plugin is not running")
	}
	b := bytes.Clone(orig)
	b[len(b)/2] ^= 0xff
	tmp := pinned + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, pinned); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 30*time.Second, "the swapped binary refused twice", func() bool {
		return strings.Count(hub.Log(), "checksum mismatch") >= 2
	})
	if n := pluginPID(hub, pinned); n != 0 {
		t.Errorf("a process of the swapped binary runs (pid %d)", n)
	}
	runtimeRefusals := strings.Count(hub.Log(), "checksum mismatch")
	report(t, m, "plugin binary with one byte changed: refused at start %d of %d times (a different byte each time), and at restart after a swap (%d refusals logged, no process started)",
		refused, tries, runtimeRefusals)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
