package pluginhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// gate holds every webhook the test channel handles until released.
type gate struct {
	url     string
	arrived atomic.Int64
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.arrived.Add(1)
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.open)
	g.url = srv.URL
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func webhook(id string, header ...string) *sdk.WebhookRequest {
	b, _ := json.Marshal(testplugins.WebhookBody{Messages: []testplugins.WebhookMessage{{ID: id, User: "u", Text: "xin chào"}}})
	h := http.Header{testplugins.SignatureHeader: {testplugins.Sign("s", b)}, "X-Request-Id": {id}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &sdk.WebhookRequest{Method: "POST", Path: "/webhooks/chan", Header: h, Body: b, RequestID: id, ReceivedAt: time.Now()}
}

// checkEvent tells whether res is the answer to the webhook carrying id.
func checkEvent(res *sdk.WebhookResult, err error, id string) error {
	if err != nil {
		return fmt.Errorf("webhook %s: %w", id, err)
	}
	if res.Response.Status != 200 || len(res.Events) != 1 || res.Events[0].ID != id {
		return fmt.Errorf("webhook %s: got status %d, events %+v: another webhook's answer?", id, res.Response.Status, res.Events)
	}
	return nil
}

// batches reads switchboard_plugin_batch_size for a plugin: how many
// batches went out and how many webhooks they held.
func batches(t *testing.T, reg *prometheus.Registry, plugin string) (n uint64, items float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_plugin_batch_size" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "plugin" && l.GetValue() == plugin {
					n += m.GetHistogram().GetSampleCount()
					items += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return n, items
}

func okCalls(t *testing.T, reg *prometheus.Registry, plugin string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_plugin_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["plugin"] == plugin && labels["method"] == "HandleWebhook" && labels["code"] == "ok" {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

func gatedChannel(t *testing.T, bin string, g *gate) (*pluginhost.Manager, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	cfg, _ := json.Marshal(testplugins.ChannelConfig{Secret: "s", WebhookGateURL: g.url})
	m := start(t, pluginhost.Options{Registerer: reg}, pluginhost.Spec{Name: "chan", Kind: sdk.KindChannel, Path: bin, Config: cfg})
	return m, reg
}

// Concurrent webhooks to a busy plugin leave in batches: fewer calls than
// webhooks, every caller gets its own webhook's answer.
func TestWebhooksCoalesceUnderLoad(t *testing.T) {
	ch, _, _ := bins(t)
	g := newGate(t)
	m, reg := gatedChannel(t, ch, g)
	c, _ := m.Channel("chan")
	const n = 200
	var wg sync.WaitGroup
	var started atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("m%03d", i)
			started.Add(1)
			res, err := c.HandleWebhook(ctx(t), webhook(id))
			if err := checkEvent(res, err, id); err != nil {
				errs <- err
			}
		})
	}
	// The first batches are held in the plugin while the others queue.
	eventually(t, 10*time.Second, "webhooks held in the plugin and every caller started", func() bool {
		return g.arrived.Load() > 0 && started.Load() == n
	})
	g.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rpcs, items := batches(t, reg, "chan")
	if items != n {
		t.Errorf("the batches held %v webhooks, want %d", items, n)
	}
	if rpcs >= n {
		t.Errorf("%d calls to the plugin for %d concurrent webhooks: no batching", rpcs, n)
	}
	if got := okCalls(t, reg, "chan"); got != n {
		t.Errorf("switchboard_plugin_calls_total counted %v ok webhooks, want %d (one per webhook, not per batch)", got, n)
	}
	t.Logf("%d webhooks in %d calls to the plugin", n, rpcs)

	// At light load, one webhook is one call, at once.
	before, _ := batches(t, reg, "chan")
	for i := range 5 {
		id := fmt.Sprintf("light%d", i)
		res, err := c.HandleWebhook(ctx(t), webhook(id))
		if err := checkEvent(res, err, id); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := batches(t, reg, "chan"); after-before != 5 {
		t.Errorf("5 sequential webhooks went out in %d calls", after-before)
	}
}

// In one batch, each webhook gets its own outcome: typed errors as a
// single call gives them, and a caller who gives up leaves the rest alone.
func TestWebhookBatchPerItemErrorsAndCancel(t *testing.T) {
	ch, _, _ := bins(t)
	g := newGate(t)
	m, _ := gatedChannel(t, ch, g)
	c, _ := m.Channel("chan")

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 10 {
		wg.Go(func() {
			id := fmt.Sprintf("ok%d", i)
			res, err := c.HandleWebhook(ctx(t), webhook(id))
			if err := checkEvent(res, err, id); err != nil {
				errs <- err
			}
		})
	}
	for name, want := range testplugins.WebhookErrors {
		wg.Go(func() {
			_, err := c.HandleWebhook(ctx(t), webhook("e-"+name, testplugins.FaultErrorHeader, name))
			wantCode, wantReason, wantAfter := sdk.CodeOf(want), sdk.ReasonOf(want), sdk.RetryAfterOf(want)
			if name == "deadline" { // the plugin's own deadline error: a retryable timeout, as for a single call
				wantCode, wantReason = sdk.CodeRetryable, "timeout"
			}
			if err == nil || sdk.CodeOf(err) != wantCode || sdk.ReasonOf(err) != wantReason || sdk.RetryAfterOf(err) != wantAfter {
				errs <- fmt.Errorf("%s: %v (code %s, reason %q, after %s), want code %s, reason %q, after %s", name, err,
					sdk.CodeOf(err), sdk.ReasonOf(err), sdk.RetryAfterOf(err), wantCode, wantReason, wantAfter)
			}
			var e *sdk.Error
			if we := (*sdk.Error)(nil); errors.As(want, &we) && we.ProviderCode != "" && (!errors.As(err, &e) || e.ProviderCode != we.ProviderCode) {
				errs <- fmt.Errorf("%s: provider code lost: %v", name, err)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx(t))
	gaveUp := make(chan error, 1)
	go func() {
		_, err := c.HandleWebhook(cctx, webhook("gives-up"))
		gaveUp <- err
	}()
	eventually(t, 10*time.Second, "webhooks held in the plugin", func() bool { return g.arrived.Load() > 0 })
	cancel()
	// It returns while the others are still held.
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the caller who gave up got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled caller waited for its batch")
	}
	g.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A plugin that dies under a batch fails every webhook of it the way a
// single call fails: retryable, plugin_unavailable; the plugin restarts.
func TestWebhookBatchFailsWholeWhenThePluginDies(t *testing.T) {
	ch, _, _ := bins(t)
	g := newGate(t)
	m, _ := gatedChannel(t, ch, g)
	c, _ := m.Channel("chan")
	pid := m.Get("chan").Status().PID
	const n = 50
	var wg sync.WaitGroup
	var failed atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("m%d", i)
			res, err := c.HandleWebhook(ctx(t), webhook(id))
			if err == nil {
				// Only a caller that reached the plugin after its restart.
				if err := checkEvent(res, err, id); err != nil {
					errs <- err
				}
				return
			}
			failed.Add(1)
			if !sdk.IsRetryable(err) || sdk.ReasonOf(err) != "plugin_unavailable" || !strings.Contains(err.Error(), "plugin chan: HandleWebhook") {
				errs <- fmt.Errorf("webhook %s: %v (retryable %v, reason %q), want a retryable plugin_unavailable", id, err, sdk.IsRetryable(err), sdk.ReasonOf(err))
			}
		})
	}
	eventually(t, 10*time.Second, "webhooks held in the plugin", func() bool { return g.arrived.Load() > 0 })
	held := g.arrived.Load()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	g.open()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if failed.Load() < held {
		t.Errorf("%d webhooks failed, but %d were in the plugin when it died", failed.Load(), held)
	}
	eventually(t, 15*time.Second, "restart", func() bool {
		s := m.Get("chan").Status()
		return s.State == pluginhost.StateRunning && s.PID != pid
	})
	res, err := c.HandleWebhook(ctx(t), webhook("after"))
	if err := checkEvent(res, err, "after"); err != nil {
		t.Fatal(err)
	}
}

// A plugin built before batches answers Unimplemented: the hub falls back
// to one call per webhook for it, for good.
func TestWebhookFallbackForAnOlderPlugin(t *testing.T) {
	old := testkit.BuildPlugin(t, modPath+"plugins/sdk/testplugins/testchannelv0")
	reg := prometheus.NewRegistry()
	m := start(t, pluginhost.Options{Registerer: reg},
		pluginhost.Spec{Name: "old", Kind: sdk.KindChannel, Path: old, Config: json.RawMessage(`{"secret":"s"}`)})
	c, _ := m.Channel("old")
	round := func(prefix string) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			wg.Go(func() {
				id := fmt.Sprintf("%s%d", prefix, i)
				res, err := c.HandleWebhook(ctx(t), webhook(id))
				if err := checkEvent(res, err, id); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	round("a")
	tried, _ := batches(t, reg, "old")
	if tried == 0 || tried > 4 {
		t.Errorf("%d batches tried before falling back, want 1 to 4 (those in flight when the first was refused)", tried)
	}
	round("b")
	if again, _ := batches(t, reg, "old"); again != tried {
		t.Errorf("%d more batches after the plugin refused them", again-tried)
	}
	if got := okCalls(t, reg, "old"); got != 100 {
		t.Errorf("%v ok webhooks counted, want 100", got)
	}
}

// The call timeout and the caller's cancellation behave for a batched
// webhook as for any call.
func TestWebhookCallDeadline(t *testing.T) {
	ch, _, _ := bins(t)
	m := start(t, pluginhost.Options{}, pluginhost.Spec{Name: "chan", Kind: sdk.KindChannel, Path: ch,
		CallTimeout: 300 * time.Millisecond, Config: json.RawMessage(`{"secret":"s"}`)})
	c, _ := m.Channel("chan")
	_, err := c.HandleWebhook(ctx(t), webhook("hang", testplugins.FaultHangHeader, "1"))
	if err == nil || !sdk.IsRetryable(err) || sdk.ReasonOf(err) != "timeout" || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("a hanging webhook: %v (retryable %v, reason %q)", err, sdk.IsRetryable(err), sdk.ReasonOf(err))
	}
	res, err := c.HandleWebhook(ctx(t), webhook("fine"))
	if err := checkEvent(res, err, "fine"); err != nil {
		t.Fatal(err)
	}
	// The caller's own deadline: retryable timeout, not rewritten.
	dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.HandleWebhook(dctx, webhook("hang2", testplugins.FaultHangHeader, "1")); !sdk.IsRetryable(err) || sdk.ReasonOf(err) != "timeout" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's deadline: %v", err)
	}
	cctx, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if _, err := c.HandleWebhook(cctx, webhook("hang3", testplugins.FaultHangHeader, "1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled webhook: %v", err)
	}
}
