// Command bench is Switchboard's benchmark harness. It builds the hub and
// its plugins, starts them as real processes with the providers' fakes on
// loopback, drives signed Zalo and WhatsApp webhooks at them with a Go load
// generator (closed loop for the maximum, open loop at a fixed rate for
// latency), and measures a bare fasthttp server the same way in the same
// run, so our figures are also given as ratios to it.
//
//	go run ./bench -out bench/results.json          # the full run (about 10 minutes)
//	go run ./bench -quick                           # a smoke run (about 3 minutes)
//
// It prints Markdown tables and writes the figures as JSON. Every load is
// bounded in count and time; everything listens on 127.0.0.1 only.
// docs/performance.md explains each figure and the settings behind them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "bare-server" {
		serveBare(os.Args[2])
		return
	}
	out := flag.String("out", "", "write the results as JSON to this file")
	quick := flag.Bool("quick", false, "small counts, for a smoke run")
	only := flag.String("only", "", "comma-separated scenarios to run (bare,ingest,e2e,e2e-testkit,llm,idle); default all")
	stores := flag.String("stores", "embedded,redis", "stores for the hub scenarios")
	llmRates := flag.String("llm-rates", "250,500", "messages/s of the slow-LLM scenario, comma-separated")
	flag.DurationVar(&batchDelay, "batch-delay", 0, "store.embedded.batch_delay of the hub (default: the hub's, 1ms)")
	flag.StringVar(&profileDir, "profile", "", "directory for a 5 s CPU profile of the hub under each load (listen.pprof)")
	flag.Parse()

	r, err := newRun(*quick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer r.cleanup()
	want := func(s string) bool { return *only == "" || strings.Contains(","+*only+",", ","+s+",") }
	storeList := strings.Split(*stores, ",")

	steps := []struct {
		name string
		f    func() error
	}{}
	if want("bare") {
		steps = append(steps, struct {
			name string
			f    func() error
		}{"bare", r.bare})
	}
	for _, st := range storeList {
		if want("ingest") {
			steps = append(steps, struct {
				name string
				f    func() error
			}{"ingest " + st, func() error { return r.ingest(st) }})
		}
	}
	for _, st := range storeList {
		if want("e2e") {
			steps = append(steps, struct {
				name string
				f    func() error
			}{"e2e " + st, func() error { return r.endToEnd(st, false) }})
		}
	}
	for _, st := range storeList {
		if want("e2e-testkit") {
			steps = append(steps, struct {
				name string
				f    func() error
			}{"e2e with the SDK test plugins " + st, func() error { return r.endToEnd(st, true) }})
		}
	}
	for _, st := range storeList {
		for _, rs := range strings.Split(*llmRates, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
			if err != nil || rate <= 0 {
				fmt.Fprintf(os.Stderr, "bench: -llm-rates: %q is not a rate\n", rs)
				os.Exit(2)
			}
			if want("llm") {
				steps = append(steps, struct {
					name string
					f    func() error
				}{fmt.Sprintf("llm %s %.0f/s", st, rate), func() error { return r.slowLLM(st, rate) }})
			}
		}
	}
	if want("idle") {
		steps = append(steps, struct {
			name string
			f    func() error
		}{"idle", r.idle})
	}
	failed := false
	for _, s := range steps {
		r.logf("== %s", s.name)
		if err := s.f(); err != nil {
			r.logf("%s failed: %v", s.name, err)
			failed = true
		}
	}
	r.report.Finished = time.Now().UTC()
	r.fillRatios()
	fmt.Println(r.markdown())
	if *out != "" {
		b, _ := json.MarshalIndent(r.report, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// Report is the JSON the harness writes.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	Quick    bool      `json:"quick"`
	Results  []*Result `json:"results"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
	LoadAvg   string `json:"load_avg_at_start"`
	Redis     string `json:"redis_version,omitempty"`
}

// Result is one measured load.
type Result struct {
	Scenario string `json:"scenario"`
	Store    string `json:"store,omitempty"`
	Load     string `json:"load"`
	// Requests sent, how many got a 2xx, and how many did not (4xx, 5xx
	// or no answer).
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	// ReqPerSec is 2xx answers per second of the load.
	ReqPerSec   float64 `json:"req_per_sec"`
	RatioToBare float64 `json:"ratio_to_bare,omitempty"`
	// Ack latency: from when the request was due (open loop) or sent
	// (closed loop) to the answer.
	AckP50Ms float64 `json:"ack_p50_ms"`
	AckP99Ms float64 `json:"ack_p99_ms"`
	AckMaxMs float64 `json:"ack_max_ms"`
	// End to end: webhook sent → reply accepted by the provider's fake.
	Replies          int     `json:"replies,omitempty"`
	DuplicateReplies int     `json:"duplicate_replies,omitempty"`
	E2EMsgsPerSec    float64 `json:"e2e_msgs_per_sec,omitempty"`
	E2EP50Ms         float64 `json:"e2e_p50_ms,omitempty"`
	E2EP99Ms         float64 `json:"e2e_p99_ms,omitempty"`
	E2EMaxMs         float64 `json:"e2e_max_ms,omitempty"`
	// AddedP99Ms is the end-to-end p99 minus the fake LLM's latency: what
	// the hub, the plugins and the providers' fakes add to the model.
	AddedP99Ms float64 `json:"added_p99_ms,omitempty"`
	// CPU seconds per 1,000 messages of the hub process, of its plugin
	// processes together, and of the private Redis when there is one.
	CPUHubPer1000     float64 `json:"cpu_hub_s_per_1000"`
	CPUPluginsPer1000 float64 `json:"cpu_plugins_s_per_1000"`
	CPURedisPer1000   float64 `json:"cpu_redis_s_per_1000,omitempty"`
	// RedisCallsPerMsg is the commands the private Redis ran per message
	// (INFO commandstats; a Lua script counts once as EVALSHA and once per
	// command it runs), and RedisCallsByCmd the same by command.
	RedisCallsPerMsg float64            `json:"redis_calls_per_msg,omitempty"`
	RedisCallsByCmd  map[string]float64 `json:"redis_calls_per_msg_by_cmd,omitempty"`
	// CPUByProcess is the same per process name.
	CPUByProcess map[string]float64 `json:"cpu_s_per_1000_by_process,omitempty"`
	// Peak resident memory (VmHWM) in MB by process: "hub", plugin
	// binary names, "bare".
	PeakRSSMB map[string]float64 `json:"peak_rss_mb,omitempty"`
	// RSSMB is the current resident memory (idle scenario).
	RSSMB map[string]float64 `json:"rss_mb,omitempty"`
	Notes string             `json:"notes,omitempty"`
}

type run struct {
	quick  bool
	root   string
	tmp    string
	bins   bins
	report *Report
	start  time.Time
}

func newRun(quick bool) (*run, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "sbbench-")
	if err != nil {
		return nil, err
	}
	r := &run{quick: quick, root: root, tmp: tmp, start: time.Now(),
		report: &Report{Started: time.Now().UTC(), Quick: quick, Machine: machine(root)}}
	r.logf("building the hub and plugins in %s", tmp)
	if r.bins, err = build(root, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return r, nil
}

func (r *run) cleanup() { os.RemoveAll(r.tmp) }

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) add(res *Result) {
	r.report.Results = append(r.report.Results, res)
	r.logf("%s %s %s: cpu s/1000 by process %v", res.Scenario, res.Store, res.Load, res.CPUByProcess)
	r.logf("%s %s %s: %d/%d ok, %.0f req/s, ack p50 %.2f p99 %.2f max %.1f ms, e2e %.0f msg/s (p50 %.0f p99 %.0f ms), cpu/1000 hub %.2f plugins %.2f redis %.2f",
		res.Scenario, res.Store, res.Load, res.OK, res.Requests, res.ReqPerSec, res.AckP50Ms, res.AckP99Ms, res.AckMaxMs,
		res.E2EMsgsPerSec, res.E2EP50Ms, res.E2EP99Ms, res.CPUHubPer1000, res.CPUPluginsPer1000, res.CPURedisPer1000)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the harness from inside the Switchboard module")
	}
	return filepath.Dir(mod), nil
}

func machine(root string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.CPUModel = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m.Redis = strings.TrimSpace(string(out))
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mb(kb int64) float64 { return float64(kb) / 1024 }

// fillRatios sets each result's requests/s as a ratio to the bare server's
// closed-loop maximum.
func (r *run) fillRatios() {
	var bare float64
	for _, res := range r.report.Results {
		if res.Scenario == "bare fasthttp" && strings.HasPrefix(res.Load, "closed") {
			bare = res.ReqPerSec
		}
	}
	if bare == 0 {
		return
	}
	for _, res := range r.report.Results {
		if res.ReqPerSec > 0 {
			res.RatioToBare = res.ReqPerSec / bare
		}
	}
}

func (r *run) markdown() string {
	var b strings.Builder
	m := r.report.Machine
	fmt.Fprintf(&b, "\nSwitchboard benchmark, %s, %d CPUs (%s), %s, commit %s, load average at start %s%s\n\n",
		r.report.Started.Format("2006-01-02 15:04 MST"), m.CPUs, m.CPUModel, m.GoVersion, m.Commit, m.LoadAvg,
		map[bool]string{true: ", QUICK MODE (small counts)"}[r.report.Quick])
	b.WriteString("| scenario | store | load | ok / sent | req/s | × bare | ack p50 | ack p99 | ack max | e2e msg/s | e2e p50 | e2e p99 | added p99 | CPU s/1000 msgs hub + plugins (+ redis) | peak RSS MB |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	dash := func(v float64, f string) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf(f, v)
	}
	for _, res := range r.report.Results {
		cpu := fmt.Sprintf("%.2f + %.2f", res.CPUHubPer1000, res.CPUPluginsPer1000)
		if res.CPURedisPer1000 > 0 {
			cpu += fmt.Sprintf(" (+ %.2f)", res.CPURedisPer1000)
		}
		if res.CPUHubPer1000 == 0 && res.CPUPluginsPer1000 == 0 {
			cpu = "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			res.Scenario, orDash(res.Store), res.Load, res.OK, res.Requests, dash(res.ReqPerSec, "%.0f"), dash(res.RatioToBare, "%.3f"),
			dash(res.AckP50Ms, "%.2f ms"), dash(res.AckP99Ms, "%.2f ms"), dash(res.AckMaxMs, "%.1f ms"),
			dash(res.E2EMsgsPerSec, "%.0f"), dash(res.E2EP50Ms, "%.0f ms"), dash(res.E2EP99Ms, "%.0f ms"), dash(res.AddedP99Ms, "%.0f ms"),
			cpu, rssList(res.PeakRSSMB))
	}
	for _, res := range r.report.Results {
		if res.RSSMB != nil {
			total := 0.0
			for _, v := range res.RSSMB {
				total += v
			}
			fmt.Fprintf(&b, "\nIdle (%s): resident memory %.0f MB in total: %s\n", res.Load, total, rssList(res.RSSMB))
		}
	}
	for _, res := range r.report.Results {
		if res.RedisCallsPerMsg > 0 {
			fmt.Fprintf(&b, "\n- %s %s %s: Redis commands per message %.1f (%s)", res.Scenario, res.Store, res.Load, res.RedisCallsPerMsg, topCmds(res.RedisCallsByCmd, 6))
		}
	}
	for _, res := range r.report.Results {
		if res.Notes != "" {
			fmt.Fprintf(&b, "\n- %s %s %s: %s", res.Scenario, res.Store, res.Load, res.Notes)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func rssList(m map[string]float64) string {
	if len(m) == 0 {
		return "–"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i] == "hub" || keys[j] == "hub" {
			return keys[i] == "hub"
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// ctx is the harness's base context; every load has its own time limit.
var ctx = context.Background()

// topCmds lists the n most frequent commands, most frequent first.
func topCmds(m map[string]float64, n int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return m[names[i]] > m[names[j]] || m[names[i]] == m[names[j]] && names[i] < names[j]
	})
	var parts []string
	for i, k := range names {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
