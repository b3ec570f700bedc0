package pluginhost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

const modPath = "github.com/switchboard-hub/switchboard/"

func bins(t testing.TB) (channel, crm, llm string) {
	return testkit.BuildPlugin(t, modPath+"plugins/sdk/testplugins/testchannel"),
		testkit.BuildPlugin(t, modPath+"plugins/sdk/testplugins/testcrm"),
		testkit.BuildPlugin(t, modPath+"plugins/sdk/testplugins/testllm")
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func start(t *testing.T, opts pluginhost.Options, specs ...pluginhost.Spec) *pluginhost.Manager {
	t.Helper()
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	m := pluginhost.New(opts)
	if err := m.Start(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

func ctx(t *testing.T) context.Context { return testkit.Context(t, 20*time.Second) }

func TestEveryMethodAndRestartAfterSIGKILL(t *testing.T) {
	ch, crm, llm := bins(t)
	m := start(t, pluginhost.Options{Registerer: prometheus.NewRegistry()},
		pluginhost.Spec{Name: "chan", Kind: sdk.KindChannel, Path: ch, Config: json.RawMessage(`{"secret":"s"}`)},
		pluginhost.Spec{Name: "crm", Kind: sdk.KindCRM, Path: crm},
		pluginhost.Spec{Name: "llm", Kind: sdk.KindLLM, Path: llm})

	callAll := func(t *testing.T) {
		t.Helper()
		c, _ := m.Channel("chan")
		if _, err := c.HandleWebhook(ctx(t), &sdk.WebhookRequest{Method: "GET"}); err != nil {
			t.Errorf("HandleWebhook: %v", err)
		}
		if _, err := c.Send(ctx(t), &sdk.Outbound{Text: "hi", To: sdk.Identity{UserID: "u"}}); err != nil {
			t.Errorf("Send: %v", err)
		}
		r, _ := m.CRM("crm")
		up, err := r.UpsertContact(ctx(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Identities: []sdk.Identity{{Channel: "zalo", UserID: "1"}}}})
		if err != nil {
			t.Fatalf("UpsertContact: %v", err)
		}
		if _, err := r.GetContact(ctx(t), up.Contact.ID, nil); err != nil {
			t.Errorf("GetContact: %v", err)
		}
		if _, err := r.AddNote(ctx(t), "n", &sdk.Note{ContactID: up.Contact.ID, Body: "x"}); err != nil {
			t.Errorf("AddNote: %v", err)
		}
		if _, err := r.UpsertDeal(ctx(t), "d", &sdk.Deal{ContactID: up.Contact.ID, Stage: "new"}); err != nil {
			t.Errorf("UpsertDeal: %v", err)
		}
		if _, err := r.CreateTask(ctx(t), "t", &sdk.Task{ContactID: up.Contact.ID, Title: "call"}); err != nil {
			t.Errorf("CreateTask: %v", err)
		}
		l, _ := m.LLM("llm")
		if _, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "giá?"}}}); err != nil {
			t.Errorf("Generate: %v", err)
		}
		for _, n := range m.Names() {
			if err := m.Get(n).Health(ctx(t)); err != nil {
				t.Errorf("Health %s: %v", n, err)
			}
		}
	}
	callAll(t)

	for _, name := range m.Names() {
		before := m.Get(name).Status()
		if before.PID == 0 || before.State != pluginhost.StateRunning {
			t.Fatalf("%s: %+v", name, before)
		}
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, name+" restarted", func() bool {
			s := m.Get(name).Status()
			return s.State == pluginhost.StateRunning && s.PID != before.PID && s.Restarts == before.Restarts+1
		})
	}
	callAll(t)
}

// A call made while the plugin restarts waits for it and is served by
// the new process, instead of failing when WaitReady runs out.
func TestCallDuringRestartWaitsForTheNewProcess(t *testing.T) {
	_, _, llm := bins(t)
	m := start(t, pluginhost.Options{MinBackoff: 300 * time.Millisecond, WaitReady: time.Minute},
		pluginhost.Spec{Name: "llm", Kind: sdk.KindLLM, Path: llm})
	before := m.Get("llm").Status()
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the death noticed", func() bool { return m.Get("llm").Status().State != pluginhost.StateRunning })
	l, _ := m.LLM("llm")
	if _, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "hi"}}}); err != nil {
		t.Fatalf("a call during the restart: %v", err)
	}
	if s := m.Get("llm").Status(); s.PID == before.PID || s.Restarts != 1 {
		t.Fatalf("served by %+v", s)
	}
}

func TestChecksumMismatchRefused(t *testing.T) {
	ch, _, _ := bins(t)
	good, err := pluginhost.FileSHA256(ch)
	if err != nil {
		t.Fatal(err)
	}
	// One byte changed is enough: flip the last hex digit of the pin.
	bad := good[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good[63])+1)%16])
	m := pluginhost.New(pluginhost.Options{})
	err = m.Start(context.Background(), []pluginhost.Spec{{Name: "chan", Kind: sdk.KindChannel, Path: ch, SHA256: bad}})
	if !errors.Is(err, pluginhost.ErrVerify) || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), good) {
		t.Fatalf("Start with a wrong pin: %v", err)
	}
	// The right pin starts.
	start(t, pluginhost.Options{}, pluginhost.Spec{Name: "chan", Kind: sdk.KindChannel, Path: ch, SHA256: good, Config: json.RawMessage(`{"secret":"s"}`)})
}

func TestBinaryWithOneByteChangedRefused(t *testing.T) {
	ch, _, _ := bins(t)
	sum, _ := pluginhost.FileSHA256(ch)
	b, err := os.ReadFile(ch)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	tampered := filepath.Join(t.TempDir(), "testchannel")
	if err := os.WriteFile(tampered, b, 0o755); err != nil {
		t.Fatal(err)
	}
	err = pluginhost.New(pluginhost.Options{}).Start(context.Background(),
		[]pluginhost.Spec{{Name: "chan", Kind: sdk.KindChannel, Path: tampered, SHA256: sum}})
	if !errors.Is(err, pluginhost.ErrVerify) {
		t.Fatalf("a tampered binary started: %v", err)
	}
}

func TestWorldWritableRefused(t *testing.T) {
	ch, _, _ := bins(t)
	b, _ := os.ReadFile(ch)
	p := filepath.Join(t.TempDir(), "ww")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	err := pluginhost.Verify(pluginhost.Spec{Name: "ww", Path: p})
	if !errors.Is(err, pluginhost.ErrVerify) || !strings.Contains(err.Error(), "world-writable") {
		t.Fatalf("Verify: %v", err)
	}
}

func TestWrongKindRefused(t *testing.T) {
	_, crm, _ := bins(t)
	err := pluginhost.New(pluginhost.Options{}).Start(context.Background(),
		[]pluginhost.Spec{{Name: "x", Kind: sdk.KindChannel, Path: crm}})
	if err == nil || !strings.Contains(err.Error(), `the binary is a "crm" plugin but the config says "channel"`) {
		t.Fatalf("Start: %v", err)
	}
}

func TestOnlyGrantedEnvironment(t *testing.T) {
	t.Setenv("SWITCHBOARD_TEST_SECRET", "do-not-leak")
	_, crm, _ := bins(t)
	m := start(t, pluginhost.Options{}, pluginhost.Spec{Name: "crm", Kind: sdk.KindCRM, Path: crm, Env: map[string]string{"TZ": "Asia/Ho_Chi_Minh"}})
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", m.Get("crm").Status().PID))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	vars := strings.Split(string(env), "\x00")
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		if name == "" || name == "TZ" || strings.HasPrefix(name, "PLUGIN_") || name == sdk.Handshake.MagicCookieKey {
			continue
		}
		if name == sdk.HubPIDEnv { // the host's own pid, for the plugin's parent watch
			if v != fmt.Sprintf("%s=%d", sdk.HubPIDEnv, os.Getpid()) {
				t.Errorf("plugin got %s, want the host's pid %d", v, os.Getpid())
			}
			continue
		}
		if name == sdk.LogLevelEnv { // the level the hub logs at, so plugins skip the rest
			continue
		}
		t.Errorf("plugin got %s from the hub's environment", name)
	}
	if !strings.Contains(string(env), "TZ=Asia/Ho_Chi_Minh") {
		t.Error("granted TZ missing")
	}
}

func TestCallDeadline(t *testing.T) {
	ch, _, _ := bins(t)
	m := start(t, pluginhost.Options{}, pluginhost.Spec{Name: "chan", Kind: sdk.KindChannel, Path: ch,
		CallTimeout: 300 * time.Millisecond, Config: json.RawMessage(`{"secret":"s","hang_on":"HANG"}`)})
	c, _ := m.Channel("chan")
	_, err := c.Send(ctx(t), &sdk.Outbound{Text: "HANG", To: sdk.Identity{UserID: "u"}})
	if err == nil || !sdk.IsRetryable(err) || sdk.ReasonOf(err) != "timeout" {
		t.Fatalf("a hanging call: %v (retryable %v, reason %q)", err, sdk.IsRetryable(err), sdk.ReasonOf(err))
	}
	// The plugin still serves other calls.
	if _, err := c.Send(ctx(t), &sdk.Outbound{Text: "fine", To: sdk.Identity{UserID: "u"}}); err != nil {
		t.Fatal(err)
	}
	// And the caller's own cancellation is honoured.
	cctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.Send(cctx, &sdk.Outbound{Text: "HANG", To: sdk.Identity{UserID: "u"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
}

// crashingLLM starts the test LLM set to exit on "BOOM", restarting fast.
func crashingLLM(t *testing.T, crashLoop int) *pluginhost.Manager {
	_, _, llm := bins(t)
	return start(t, pluginhost.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: time.Hour, CrashLoopCount: crashLoop},
		pluginhost.Spec{Name: "llm", Kind: sdk.KindLLM, Path: llm, Config: json.RawMessage(`{"crash_on":"BOOM"}`)})
}

// crash waits for the LLM to run, kills it with a call under ctx, waits
// for the supervisor to notice and returns the call's error.
func crash(t *testing.T, m *pluginhost.Manager, ctx context.Context) error {
	t.Helper()
	eventually(t, 15*time.Second, "llm running", func() bool { return m.Get("llm").Status().State == pluginhost.StateRunning })
	before := m.Get("llm").Status().Restarts
	l, _ := m.LLM("llm")
	_, err := l.Generate(ctx, &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "BOOM"}}})
	eventually(t, 15*time.Second, "crash noticed", func() bool { return m.Get("llm").Status().Restarts == before+1 })
	return err
}

func TestCrashLoopReported(t *testing.T) {
	m := crashingLLM(t, 3)
	for range 3 {
		if err := crash(t, m, ctx(t)); err == nil || !sdk.IsRetryable(err) {
			t.Fatalf("a crashing call: %v", err)
		}
	}
	s := m.Get("llm").Status()
	if s.State != pluginhost.StateCrashLoop || s.LastError == "" {
		t.Fatalf("after 3 crashes: %+v", s)
	}
	// A crash loop backs off instead of spinning: no more restarts now.
	l, _ := m.LLM("llm")
	if _, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "hi"}}}); err == nil || sdk.ReasonOf(err) != "plugin_unavailable" || !errors.Is(err, sdk.ErrNotRunning) {
		t.Fatalf("call during a crash loop: %v", err)
	}
}

// A call that kills the plugin fails with ErrPluginDied. Made alone
// (sdk.Isolate), the death is that call's message's doing: it does not
// count towards a crash loop, so the plugin comes back at once for the
// other messages however often the poison message is retried.
func TestDeathDuringIsolatedCallIsNotACrashLoop(t *testing.T) {
	m := crashingLLM(t, 2)
	for i := range 5 {
		err := crash(t, m, sdk.Isolate(ctx(t)))
		if !errors.Is(err, sdk.ErrPluginDied) || !sdk.IsRetryable(err) || errors.Is(err, sdk.ErrNotRunning) {
			t.Fatalf("an isolated call that kills the plugin: %v", err)
		}
		if s := m.Get("llm").Status(); s.State == pluginhost.StateCrashLoop {
			t.Fatalf("after %d deaths during isolated calls: %+v", i+1, s)
		}
	}
	l, _ := m.LLM("llm")
	if _, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "hi"}}}); err != nil {
		t.Fatalf("a normal call after the isolated deaths: %v", err)
	}
	// Deaths during shared calls still make a crash loop.
	for range 2 {
		if err := crash(t, m, ctx(t)); !errors.Is(err, sdk.ErrPluginDied) {
			t.Fatalf("a shared call that kills the plugin: %v", err)
		}
	}
	if s := m.Get("llm").Status(); s.State != pluginhost.StateCrashLoop {
		t.Fatalf("after 2 deaths during shared calls: %+v", s)
	}
}

// Deaths pinned on messages are forgiven only up to 4 × crash_loop a
// window: a plugin that dies on most messages is broken, and a crash loop
// holds the messages instead of dead-lettering each.
func TestManyIsolatedDeathsMakeACrashLoop(t *testing.T) {
	m := crashingLLM(t, 2)
	for i := range 8 {
		if s := m.Get("llm").Status(); s.State == pluginhost.StateCrashLoop {
			t.Fatalf("a crash loop after %d deaths during isolated calls, want 8: %+v", i, s)
		}
		if err := crash(t, m, sdk.Isolate(ctx(t))); !errors.Is(err, sdk.ErrPluginDied) {
			t.Fatalf("an isolated call that kills the plugin: %v", err)
		}
	}
	if s := m.Get("llm").Status(); s.State != pluginhost.StateCrashLoop {
		t.Fatalf("after 8 deaths during isolated calls: %+v", s)
	}
}

// Calls in flight when the plugin dies fail as retryable, whether their
// connection broke or the supervisor closed it first (a cancelled call
// whose caller did not cancel): a message must not be handed to a person
// as if the model had refused it because another message crashed the
// plugin.
func TestCallsInFlightWhenThePluginDiesAreRetryable(t *testing.T) {
	_, _, llm := bins(t)
	m := start(t, pluginhost.Options{},
		pluginhost.Spec{Name: "llm", Kind: sdk.KindLLM, Path: llm, CallTimeout: 20 * time.Second,
			Config: json.RawMessage(`{"crash_on":"BOOM","latency_ms":1500}`)})
	l, _ := m.LLM("llm")
	const n = 8 + 64
	errs := make(chan error, n)
	call := func() {
		_, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "hi"}}})
		errs <- err
	}
	for range 8 {
		go call()
	}
	_, err := l.Generate(ctx(t), &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "BOOM"}}})
	if !errors.Is(err, sdk.ErrPluginDied) {
		t.Fatalf("the call that killed the plugin: %v", err)
	}
	// Calls made while the supervisor closes the dead process's connection.
	for range n - 8 {
		go call()
	}
	for range n {
		err := <-errs
		if err != nil && (errors.Is(err, context.Canceled) || !sdk.IsRetryable(err) ||
			!(errors.Is(err, sdk.ErrPluginDied) || errors.Is(err, sdk.ErrNotRunning))) {
			t.Errorf("a call in flight when the plugin died: %v", err)
		}
	}
}

// alive reports whether pid is a live process; a zombie is dead.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func runHostProc(t *testing.T) (*exec.Cmd, []int) {
	t.Helper()
	ch, crm, llm := bins(t)
	hp := testkit.BuildPlugin(t, modPath+"hub/pluginhost/internal/hostproc")
	cmd := exec.Command(hp, "channel="+ch, "crm="+crm, "llm="+llm)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("hostproc: %q %v", line, err)
	}
	var pids []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "ready ")) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("plugin %d not running", p)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, pids
}

func TestNoOrphansAfterSIGTERM(t *testing.T) {
	cmd, pids := runHostProc(t)
	time.Sleep(200 * time.Millisecond) // let calls pile up in flight; correctness does not depend on it
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hostproc exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hostproc did not stop after SIGTERM")
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("plugin process %d left running after the host stopped", p)
		}
	}
}

func TestNoOrphansAfterSIGKILL(t *testing.T) {
	cmd, pids := runHostProc(t)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	eventually(t, 10*time.Second, "plugins to notice the host is gone", func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}
