package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// env is one hub under test with its fakes and store.
type env struct {
	f     *fakes
	redis *redisProc
	hub   *hubProc
	dir   string
}

func (e *env) close() {
	if e.hub != nil {
		e.hub.stop()
	}
	if e.redis != nil {
		e.redis.stop()
	}
	if e.f != nil {
		e.f.close()
	}
}

type hubOpts struct {
	store      string // embedded | redis
	testKit    bool   // the SDK's test channel, LLM and CRM instead of Zalo, WhatsApp and Claude
	llm        bool   // claude plugin + CRM + rules: bot replies
	llmLatency time.Duration
	consume    bool // false: an ingest-only hub (pipeline.consume: false)
	workers    int
}

func (r *run) startEnv(o hubOpts) (*env, error) {
	dir, err := os.MkdirTemp(r.tmp, "hub-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	if e.f, err = startFakes(o.llmLatency); err != nil {
		return nil, err
	}
	store := fmt.Sprintf("  embedded: { path: %q%s }", filepath.Join(dir, "sb.db"), batchDelayYAML())
	if o.store == "redis" {
		if e.redis, err = startRedis(dir); err != nil {
			e.close()
			return nil, err
		}
		store = fmt.Sprintf("  redis: { url: %q, prefix: \"sbbench:\" }", e.redis.url())
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store:
%s
admin: { bootstrap_key_env: SB_BENCH_ADMIN_KEY }
plugins:
`, store)
	if o.testKit {
		fmt.Fprintf(&cfg, "  - { name: test, kind: channel, path: %q, config: { secret: %s, sink_url: %q } }\n", r.bins.TestChannel, testSecret, e.f.sinkURL+"/sink")
	} else {
		fmt.Fprintf(&cfg, "  - { name: zalo, kind: channel, path: %q, config: %s }\n  - { name: wa, kind: channel, path: %q, config: %s }\n",
			r.bins.Zalo, e.f.zaloConfig(), r.bins.WhatsApp, e.f.waConfig())
	}
	pipeline := []string{}
	if o.llm && o.testKit {
		fmt.Fprintf(&cfg, "  - { name: brain, kind: llm, path: %q }\n", r.bins.TestLLM)
		fmt.Fprintf(&cfg, "  - { name: crm, kind: crm, path: %q }\n", r.bins.TestCRM)
		fmt.Fprintf(&cfg, "rules: { dir: %q }\n", filepath.Join(r.root, "examples", "rules"))
		pipeline = append(pipeline, "llm: brain", "crm: crm")
	} else if o.llm {
		fmt.Fprintf(&cfg, "  - { name: claude, kind: llm, path: %q, config: %s }\n", r.bins.Claude, e.f.claudeConfig())
		fmt.Fprintf(&cfg, "  - { name: crm, kind: crm, path: %q }\n", r.bins.TestCRM)
		fmt.Fprintf(&cfg, "rules: { dir: %q }\n", filepath.Join(r.root, "examples", "rules"))
		pipeline = append(pipeline, "llm: claude", "crm: crm", `system_prompt: "Bạn là trợ lý bán hàng của công ty phần mềm ABC."`)
	}
	if o.workers > 0 {
		pipeline = append(pipeline, fmt.Sprintf("workers: %d", o.workers))
	}
	if !o.consume {
		pipeline = append(pipeline, "consume: false")
	}
	if len(pipeline) > 0 {
		fmt.Fprintf(&cfg, "pipeline: { %s }\n", strings.Join(pipeline, ", "))
	}
	if e.hub, err = startHub(r.bins, dir, cfg.String()); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// measure runs load between two process snapshots and fills the CPU and
// memory figures of res, per 1,000 of msgs.
func (e *env) measure(res *Result, msgs int, load func()) {
	var prof chan struct{}
	if profileDir != "" {
		name := strings.NewReplacer(" ", "_", ",", "", "/", "_").Replace(res.Scenario + "-" + res.Store + "-" + strings.Fields(res.Load)[0])
		prof = e.hub.profile(filepath.Join(profileDir, name+".pprof"), 5)
	}
	before := snapshot(e.hub.pid())
	var rb procStat
	var rcalls map[string]int64
	if e.redis != nil {
		rb = readProc(e.redis.pid())
		rcalls = e.redis.commandCalls()
	}
	load()
	after := snapshot(e.hub.pid())
	hub, plugins, byName := cpuSince(before, after)
	if msgs > 0 {
		res.CPUHubPer1000 = hub / float64(msgs) * 1000
		res.CPUPluginsPer1000 = plugins / float64(msgs) * 1000
		res.CPUByProcess = map[string]float64{}
		for k, v := range byName {
			res.CPUByProcess[k] = round2(v / float64(msgs) * 1000)
		}
		if e.redis != nil {
			ra := readProc(e.redis.pid())
			res.CPURedisPer1000 = (ra.CPU - rb.CPU) / float64(msgs) * 1000
			res.CPUByProcess["redis-server"] = round2(res.CPURedisPer1000)
			if after := e.redis.commandCalls(); after != nil && rcalls != nil {
				res.RedisCallsByCmd = map[string]float64{}
				var total int64
				for cmd, n := range after {
					if d := n - rcalls[cmd]; d > 0 && cmd != "info" {
						total += d
						res.RedisCallsByCmd[cmd] = round2(float64(d) / float64(msgs))
					}
				}
				res.RedisCallsPerMsg = round2(float64(total) / float64(msgs))
			}
		}
	}
	res.PeakRSSMB = peaks(after)
	if prof != nil {
		<-prof
	}
}

func peaks(t tree) map[string]float64 {
	m := map[string]float64{"hub": mb(t.Hub.HWMKB)}
	for _, p := range t.Plugins {
		m[p.Name] = max(m[p.Name], mb(p.HWMKB))
	}
	return m
}

func fromLoad(res *Result, l *loadResult) {
	res.Requests, res.OK, res.Failed = l.Sent, l.OK, l.Sent-l.OK
	res.ReqPerSec = l.perSec()
	p := pct(l.Latency)
	res.AckP50Ms, res.AckP99Ms, res.AckMaxMs = ms(p.P50), ms(p.P99), ms(p.Max)
	if l.Sent-l.OK > 0 {
		res.Notes = fmt.Sprintf("answers by status: %v (0 = no answer)", l.Statuses)
	}
}

// counts scales a full-run count down in quick mode.
func (r *run) counts(full, quick int) int {
	if r.quick {
		return quick
	}
	return full
}

func (r *run) limit(full, quick time.Duration) time.Duration {
	if r.quick {
		return quick
	}
	return full
}

// maxAndHalf measures the closed-loop maximum of target, then an open loop
// at half that rate.
func (r *run) maxAndHalf(scenario, store, addr string, reqs func(n int) []request, measure func(*Result, int, func())) (*Result, *Result) {
	const conns = 64
	n := r.counts(60000, 10000)
	ld := newLoader(addr, conns)
	_ = ld.closedLoop(ctx, reqs(300), 16, 20*time.Second) // warm up connections and caches
	closed := &Result{Scenario: scenario, Store: store, Load: fmt.Sprintf("closed, %d conns", conns)}
	batch := reqs(n)
	var l *loadResult
	measure(closed, n, func() { l = ld.closedLoop(ctx, batch, conns, r.limit(20*time.Second, 6*time.Second)) })
	fromLoad(closed, l)
	if l.Sent > 0 && l.Sent < n { // time-limited: CPU per message over what was sent
		closed.CPUHubPer1000 *= float64(n) / float64(l.Sent)
		closed.CPUPluginsPer1000 *= float64(n) / float64(l.Sent)
		closed.CPURedisPer1000 *= float64(n) / float64(l.Sent)
		closed.RedisCallsPerMsg = round2(closed.RedisCallsPerMsg * float64(n) / float64(l.Sent))
		for k, v := range closed.RedisCallsByCmd {
			closed.RedisCallsByCmd[k] = round2(v * float64(n) / float64(l.Sent))
		}
	}
	r.add(closed)
	rate := max(closed.ReqPerSec/2, 10)
	secs := r.limit(10*time.Second, 4*time.Second)
	open := &Result{Scenario: scenario, Store: store, Load: fmt.Sprintf("open, %.0f/s (half the max)", rate)}
	half := reqs(int(rate * secs.Seconds()))
	oldr := newLoader(addr, 512)
	measure(open, len(half), func() { l = oldr.openLoop(ctx, half, rate, secs+30*time.Second) })
	fromLoad(open, l)
	r.add(open)
	return closed, open
}

// bare measures the baseline: a bare fasthttp server in its own process.
func (r *run) bare() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr := freeAddr()
	cmd := exec.Command(self, "bare-server", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ld := newLoader(addr, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, err := ld.do(&request{path: "/"}); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bare server did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := startFakes(0)
	if err != nil {
		return err
	}
	defer f.close()
	pid := cmd.Process.Pid
	measure := func(res *Result, msgs int, load func()) {
		before := readProc(pid)
		load()
		after := readProc(pid)
		res.CPUHubPer1000 = (after.CPU - before.CPU) / float64(msgs) * 1000
		res.PeakRSSMB = map[string]float64{"bare": mb(after.HWMKB)}
	}
	next := 0
	reqs := func(n int) []request {
		out := f.buildRequests(n, 1000, next)
		next += n
		return out
	}
	r.maxAndHalf("bare fasthttp", "", addr, reqs, measure)
	return nil
}

// ingest: verify (the channel plugin), store, ack, with the pipeline not
// consuming, on store.
func (r *run) ingest(store string) error {
	e, err := r.startEnv(hubOpts{store: store})
	if err != nil {
		return err
	}
	defer e.close()
	next := 1_000_000
	reqs := func(n int) []request {
		out := e.f.buildRequests(n, 2000, next)
		next += n
		return out
	}
	r.maxAndHalf("ingest", store, e.hub.webhooks, reqs, e.measure)
	return nil
}

// endToEnd: a backlog of messages sent as fast as the hub acks them, each
// answered through the LLM plugin (Claude, instant fake), the CRM plugin
// and the channel's send; msgs/s from the first webhook to the last reply.
// With testKit, the SDK's test plugins stand in for Zalo, WhatsApp and
// Claude: what the hub costs without the real connectors' work.
func (r *run) endToEnd(store string, testKit bool) error {
	e, err := r.startEnv(hubOpts{store: store, llm: true, consume: true, testKit: testKit})
	if err != nil {
		return err
	}
	defer e.close()
	convs := 1000
	build := e.f.buildRequests
	scenario := "end to end, instant fakes"
	if testKit {
		build = func(n, convs, first int) []request { return buildTestRequests(n, convs, first) }
		scenario = "end to end, SDK test plugins"
	}
	warm := build(200, 200, 2_000_000)
	ld := newLoader(e.hub.webhooks, 32)
	_ = ld.closedLoop(ctx, warm, 16, time.Minute)
	if !e.f.replies.waitFor(len(warm), time.Now().Add(time.Minute)) {
		return fmt.Errorf("warm-up: %d of %d replies after a minute (%s):\n%s", e.f.replies.count(), len(warm), e.diag(), tail(e.hub.out.String(), 3000))
	}
	e.f.replies.reset()
	n := r.counts(10000, 2000)
	reqs := build(n, convs, 3_000_000)
	res := &Result{Scenario: scenario, Store: store, Load: fmt.Sprintf("closed, 32 conns, %d msgs over %d conversations", n, convs)}
	var l *loadResult
	var lastReply time.Time
	start := time.Now()
	e.measure(res, n, func() {
		l = ld.closedLoop(ctx, reqs, 32, 3*time.Minute)
		e.f.replies.waitFor(l.OK, time.Now().Add(r.limit(5*time.Minute, 2*time.Minute)))
		lastReply = time.Now()
	})
	fromLoad(res, l)
	r.e2eFigures(res, e.f.replies, reqs, l, start, lastReply, 0)
	r.add(res)
	return nil
}

// e2eFigures fills the end-to-end figures from the replies matched to the
// requests.
func (r *run) e2eFigures(res *Result, rep *replies, reqs []request, l *loadResult, start, end time.Time, llm time.Duration) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	var lat []time.Duration
	last := start
	for i := range reqs {
		at, ok := rep.at[reqs[i].token]
		if !ok || l.SentAt[i].IsZero() {
			continue
		}
		lat = append(lat, at.Sub(l.SentAt[i]))
		if at.After(last) {
			last = at
		}
	}
	res.Replies, res.DuplicateReplies = len(lat), rep.dups
	if len(lat) > 0 {
		res.E2EMsgsPerSec = float64(len(lat)) / last.Sub(start).Seconds()
	}
	p := pct(lat)
	res.E2EP50Ms, res.E2EP99Ms, res.E2EMaxMs = ms(p.P50), ms(p.P99), ms(p.Max)
	if llm > 0 && len(lat) > 0 {
		res.AddedP99Ms = ms(p.P99 - llm)
	}
	if len(lat) < l.OK {
		res.Notes = strings.TrimSpace(res.Notes + fmt.Sprintf(" %d of %d acknowledged messages answered within the time limit.", len(lat), l.OK))
	}
}

// slowLLM: an open loop at rate messages/s with a fake LLM taking 800 ms,
// over enough conversations that none has two messages within a few
// seconds; the hub keeps up by running conversations concurrently.
func (r *run) slowLLM(store string, rate float64) error {
	const llm = 800 * time.Millisecond
	e, err := r.startEnv(hubOpts{store: store, llm: true, llmLatency: llm, consume: true, workers: 2048})
	if err != nil {
		return err
	}
	defer e.close()
	if r.quick {
		rate = min(rate, 200)
	}
	secs := r.limit(20*time.Second, 6*time.Second)
	n := int(rate * secs.Seconds())
	convs := max(int(rate*4), 1)
	warm := e.f.buildRequests(200, 200, 4_000_000)
	wl := newLoader(e.hub.webhooks, 64)
	_ = wl.closedLoop(ctx, warm, 64, time.Minute)
	if !e.f.replies.waitFor(len(warm), time.Now().Add(time.Minute)) {
		return fmt.Errorf("warm-up: %d of %d replies after a minute (%s)", e.f.replies.count(), len(warm), e.diag())
	}
	e.f.replies.reset()
	reqs := e.f.buildRequests(n, convs, 5_000_000)
	res := &Result{Scenario: "end to end, LLM 800 ms", Store: store, Load: fmt.Sprintf("open, %.0f msgs/s for %s over %d conversations", rate, secs, convs)}
	ld := newLoader(e.hub.webhooks, 512)
	var l *loadResult
	start := time.Now()
	var end time.Time
	e.measure(res, n, func() {
		l = ld.openLoop(ctx, reqs, rate, secs+time.Minute)
		e.f.replies.waitFor(l.OK, time.Now().Add(2*time.Minute))
		end = time.Now()
	})
	fromLoad(res, l)
	r.e2eFigures(res, e.f.replies, reqs, l, start, end, llm)
	r.add(res)
	return nil
}

// idle: the hub with five plugins (Zalo, WhatsApp, Claude, HubSpot, the
// SQL CRM on SQLite) on the embedded store, doing nothing: resident memory.
func (r *run) idle() error {
	f, err := startFakes(0)
	if err != nil {
		return err
	}
	defer f.close()
	dir, err := os.MkdirTemp(r.tmp, "idle-")
	if err != nil {
		return err
	}
	hs := newHubSpotFake()
	defer hs.Close()
	cfg := fmt.Sprintf(`listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %q } }
admin: { bootstrap_key_env: SB_BENCH_ADMIN_KEY }
plugins:
  - { name: zalo, kind: channel, path: %q, config: %s }
  - { name: wa, kind: channel, path: %q, config: %s }
  - { name: claude, kind: llm, path: %q, config: %s }
  - { name: hubspot, kind: crm, path: %q, config: { token: %q, base_url: %q } }
  - { name: sqlcrm, kind: crm, path: %q, config: { sqlite_path: %q } }
rules: { dir: %q }
pipeline: { llm: claude, crm: hubspot, system_prompt: "Bạn là trợ lý bán hàng của công ty phần mềm ABC." }
`, filepath.Join(dir, "sb.db"), r.bins.Zalo, f.zaloConfig(), r.bins.WhatsApp, f.waConfig(), r.bins.Claude, f.claudeConfig(),
		r.bins.HubSpot, hs.Token(), hs.URL, r.bins.PostgresCRM, filepath.Join(dir, "crm.db"), filepath.Join(r.root, "examples", "rules"))
	h, err := startHub(r.bins, dir, cfg)
	if err != nil {
		return err
	}
	defer h.stop()
	time.Sleep(5 * time.Second) // idle: let start-up garbage be collected
	t := snapshot(h.pid())
	res := &Result{Scenario: "idle, five plugins", Store: "embedded", Load: "no traffic, 5 s after ready",
		RSSMB: map[string]float64{"hub": mb(t.Hub.RSSKB)}, PeakRSSMB: peaks(t)}
	for _, p := range t.Plugins {
		res.RSSMB[p.Name] = mb(p.RSSKB)
	}
	r.add(res)
	return nil
}

// diag says where messages went, when replies do not arrive.
func (e *env) diag() string {
	zs := e.f.zalo.Sends()
	first := ""
	if len(zs) > 0 {
		first = fmt.Sprintf(" first zalo send: error %d body %.200s", zs[0].ErrorCode, zs[0].Body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.hub.admin+"/admin/v1/conversations?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	conv := ""
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conv = string(b)
		var l struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		_ = json.Unmarshal(b, &l)
		if len(l.Items) > 0 {
			req, _ := http.NewRequest(http.MethodGet, "http://"+e.hub.admin+"/admin/v1/conversations/"+url.PathEscape(l.Items[0].ID)+"/trail", nil)
			req.Header.Set("Authorization", "Bearer "+adminKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				conv += "\ntrail: " + string(b)
			}
		}
	}
	first += "\n" + conv
	return fmt.Sprintf("zalo sends %d, whatsapp sent %d, claude requests %d; hub: events processed %v, replies sent %v, dropped %v, failed %v, dead letters %v;%s",
		len(zs), len(e.f.wa.Sent()), e.f.claude.RequestCount(),
		e.hub.metric(ctx, "switchboard_tasks_processed_total"), e.hub.metric(ctx, "switchboard_replies_total", "outcome", "sent"),
		e.hub.metric(ctx, "switchboard_replies_total", "outcome", "dropped"), e.hub.metric(ctx, "switchboard_replies_total", "outcome", "failed"),
		e.hub.metric(ctx, "switchboard_dead_letters_total"), first)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// batchDelay, when set (-batch-delay), overrides the embedded store's
// store.embedded.batch_delay.
var batchDelay time.Duration

func batchDelayYAML() string {
	if batchDelay == 0 {
		return ""
	}
	return fmt.Sprintf(", batch_delay: %s", batchDelay)
}
