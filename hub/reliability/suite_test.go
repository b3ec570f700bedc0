package reliability

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// ModeEnv selects the suite's size: "short" (CI: every scenario with
// smaller counts, a few minutes) or "long" (nightly: the counts of the
// issue). Unset, the suite is skipped: it starts dozens of processes.
const ModeEnv = "SB_RELIABILITY"

// ReportEnv names a file the summary lines are appended to.
const ReportEnv = "SB_RELIABILITY_REPORT"

type mode string

func suite(t *testing.T) mode {
	t.Helper()
	m := mode(os.Getenv(ModeEnv))
	switch m {
	case "short", "long":
	case "":
		t.Skipf("reliability suite not selected: run with %s=short (CI) or %s=long (nightly)", ModeEnv, ModeEnv)
	default:
		t.Fatalf("%s=%q: want short or long", ModeEnv, m)
	}
	return m
}

// n is the count for the mode.
func (m mode) n(short, long int) int {
	if m == "long" {
		return long
	}
	return short
}

func (m mode) d(short, long time.Duration) time.Duration {
	if m == "long" {
		return long
	}
	return short
}

var reportMu sync.Mutex

// report prints a scenario's figure: in the test log and, when ReportEnv is
// set, in the report file.
func report(t *testing.T, m mode, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("RELIABILITY %s [%s]: %s", t.Name(), m, fmt.Sprintf(format, args...))
	t.Log(line)
	if f := os.Getenv(ReportEnv); f != "" {
		reportMu.Lock()
		defer reportMu.Unlock()
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(fh, line)
			fh.Close()
		}
	}
}

const secret = "reliability-secret"

// ---------------------------------------------------------------- canaries

// Canaries are personal data no log line may show raw: every scenario's
// customers carry them, in their profile (name, phone) and in their text
// (phone in national format, email). Phones and emails are unique per
// customer (the CRM merges customers who share one), so they are found by
// pattern.
const canaryName = "Canary Nguyễn Thị Hồng"

var canaryRes = []*regexp.Regexp{
	regexp.MustCompile(regexp.QuoteMeta(canaryName)),
	regexp.MustCompile(`(\+?84|0)9123 ?\d{2} ?\d{3}`),
	regexp.MustCompile(`canary\.hong\.\d+@example\.vn`),
}

// customerIndex numbers customers across the suite, for unique canaries.
var customerIndex = func() func(string) int {
	var mu sync.Mutex
	m := map[string]int{}
	return func(user string) int {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := m[user]; ok {
			return n
		}
		m[user] = len(m) + 1
		return m[user]
	}
}()

// canaryMessage is a customer message carrying the canaries, with the
// message's sequence number in a fixed format the test LLM echoes back.
func canaryMessage(id, user string, seq int) testplugins.WebhookMessage {
	n := customerIndex(user) % 100000
	return testplugins.WebhookMessage{ID: id, User: user, Name: canaryName, Phone: fmt.Sprintf("+849123%05d", n),
		Text: fmt.Sprintf("msg %06d Chào shop, em là %s, sđt 09123 %02d %03d, email canary.hong.%d@example.vn", seq, canaryName, n/1000, n%1000, n)}
}

// seqOf reads the sequence number back from a reply of the test LLM.
func seqOf(text string) (int, bool) {
	i := strings.LastIndex(text, "msg ")
	if i < 0 || len(text) < i+10 {
		return 0, false
	}
	n, err := strconv.Atoi(text[i+4 : i+10])
	return n, err == nil
}

// checkCanaries fails the test when a canary appears raw in any log line,
// and returns how many lines showed one.
func checkCanaries(t *testing.T, logs ...string) int {
	t.Helper()
	found := 0
	for _, l := range logs {
		for _, line := range strings.Split(l, "\n") {
			for _, re := range canaryRes {
				if m := re.FindString(line); m != "" {
					found++
					if found <= 5 {
						t.Errorf("canary %q in a log line: %.600s", m, line)
					}
					break
				}
			}
		}
	}
	return found
}

func hubLogs(hubs ...*hubtest.Hub) []string {
	out := make([]string, 0, len(hubs))
	for _, h := range hubs {
		out = append(out, h.Log())
	}
	return out
}

// ---------------------------------------------------------------- config

type setup struct {
	bins  hubtest.Bins
	sink  *hubtest.Sink
	dir   string
	store string // the store: block
	extra string // more top-level YAML
	pipe  string // more pipeline keys
	plugs string // more plugins
	crm   bool   // testcrm as pipeline.crm (unless plugs brings another "crm")
	llm   string // the test LLM's config block
}

func (s setup) config() string {
	llm := s.llm
	if llm == "" {
		llm = "{ latency_ms: 1 }"
	}
	crm := ""
	if s.crm {
		crm = fmt.Sprintf("  - { name: crm, kind: crm, path: %s }\n", s.bins.CRM)
	}
	pipe := "  llm: brain\n  lease_ttl: 2s\n  retry_base: 50ms\n"
	if s.crm || strings.Contains(s.plugs, "name: crm") {
		pipe += "  crm: crm\n"
	}
	return fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store:
%s
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s, config: %s }
%s%spipeline:
%s%s
%s
`, s.store, s.bins.Channel, secret, s.sink.URL(), s.bins.LLM, llm, crm, s.plugs, pipe, s.pipe, s.extra)
}

// redisPrefix returns a fresh key prefix on the shared test Redis and
// removes its keys when the test ends.
func redisPrefix(t *testing.T) string {
	t.Helper()
	hubtest.RequireRedis(t)
	p := fmt.Sprintf("sbrel%d:", time.Now().UnixNano())
	t.Cleanup(func() { cleanRedis(p) })
	return p
}

func redisStore(prefix string) string {
	return fmt.Sprintf("  redis: { url: %q, prefix: %q }", hubtest.RedisURL(), prefix)
}

func cleanRedis(prefix string) {
	out, err := exec.Command("redis-cli", "-u", hubtest.RedisURL(), "--scan", "--pattern", prefix+"*").Output()
	if err != nil {
		return
	}
	keys := strings.Fields(string(out))
	for len(keys) > 0 {
		n := min(len(keys), 500)
		_ = exec.Command("redis-cli", append([]string{"-u", hubtest.RedisURL(), "del"}, keys[:n]...)...).Run()
		keys = keys[n:]
	}
}

// ---------------------------------------------------------------- provider

// provider delivers webhooks like Zalo or Meta do: it retries a delivery
// that got no 2xx (an error, a 5xx) after a short pause, to any of the
// hubs behind the load balancer, until it is acknowledged.
type provider struct {
	hubs   func() []*hubtest.Hub
	acked  atomic.Int64
	tries  atomic.Int64
	got5xx atomic.Int64
	gotErr atomic.Int64
	// retryPause is the pause between attempts (default 20-50 ms).
	retryPause func() time.Duration
}

// maxDeliveryWait bounds how long one delivery is retried: a hub that
// never takes it again is a failure to report, not a test that hangs.
const maxDeliveryWait = 2 * time.Minute

func (p *provider) deliver(ctx context.Context, pick int, msgs ...testplugins.WebhookMessage) error {
	start := time.Now()
	last := ""
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Since(start) > maxDeliveryWait {
			return fmt.Errorf("not acknowledged after %s and %d attempts (last: %s)", maxDeliveryWait, attempt, last)
		}
		hubs := p.hubs()
		if len(hubs) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		h := hubs[(pick+attempt)%len(hubs)]
		p.tries.Add(1)
		code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, msgs...)
		switch {
		case err == nil && code >= 200 && code < 300:
			p.acked.Add(1)
			return nil
		case err == nil && code >= 400 && code < 500:
			return fmt.Errorf("delivery refused with %d", code)
		case err == nil:
			p.got5xx.Add(1)
			last = fmt.Sprintf("status %d from %s", code, h.Webhooks)
		default:
			p.gotErr.Add(1)
			last = err.Error()
		}
		pause := time.Duration(20+rand.IntN(30)) * time.Millisecond
		if p.retryPause != nil {
			pause = p.retryPause()
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leaseMoves counts the partitions replicas lost while running (a lease not
// renewed in time: a stalled or starved process); each is a moment where
// two replicas may work on one conversation.
func leaseMoves(logs ...string) int {
	n := 0
	for _, l := range logs {
		n += strings.Count(l, "lost partition lease")
	}
	return n
}

// ---------------------------------------------------------------- replies

// replyCheck reads the sink: distinct replies (by idempotency key), raw
// duplicate sends, and replies out of order within a conversation.
type replyCheck struct {
	distinct, total, duplicates, outOfOrder int
	byUser                                  map[string][]int
}

func checkSink(sink *hubtest.Sink) replyCheck {
	msgs := sink.Messages()
	rc := replyCheck{total: len(msgs), byUser: map[string][]int{}}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.IdempotencyKey] {
			rc.duplicates++
			continue
		}
		seen[m.IdempotencyKey] = true
		rc.distinct++
		if n, ok := seqOf(m.Text); ok {
			rc.byUser[m.To] = append(rc.byUser[m.To], n)
		}
	}
	for _, seqs := range rc.byUser {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				rc.outOfOrder++
			}
		}
	}
	return rc
}

// waitDistinct waits until the sink has n distinct replies.
func waitDistinct(t *testing.T, sink *hubtest.Sink, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		total, distinct := sink.Count()
		if distinct >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d distinct replies (%d sends) of %d", d, distinct, total, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- processes

// procChildren lists the live processes whose parent is pid, by pid with
// their executable path.
func procChildren(pid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid(n) == pid {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", n))
			out[n] = exe
		}
	}
	return out
}

// ppid is a process's parent pid, or -1 when it is gone.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || f[0] == "Z" {
		return -1 // a zombie has exited
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool { return ppid(pid) >= 0 }

// pluginPID finds the hub's child process running binary.
func pluginPID(hub *hubtest.Hub, binary string) int {
	for pid, exe := range procChildren(hub.Cmd.Process.Pid) {
		if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == filepath.Base(binary) {
			return pid
		}
	}
	return 0
}
