package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/coalesce"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

const batchSecret = "s"

// signedWebhook is a valid test-channel webhook carrying one message id.
func signedWebhook(id string, header ...string) *sdk.WebhookRequest {
	b, _ := json.Marshal(testplugins.WebhookBody{Messages: []testplugins.WebhookMessage{{ID: id, User: "u", Text: "xin chào"}}})
	h := http.Header{testplugins.SignatureHeader: {testplugins.Sign(batchSecret, b)}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &sdk.WebhookRequest{Method: "POST", Path: "/webhooks/t", Header: h, Body: b, ReceivedAt: time.Now()}
}

func testChannel(t testing.TB, mode string) *sdk.RemoteChannel {
	t.Helper()
	var c *sdk.RemoteChannel
	if mode == "in-process" {
		c = testkit.StartChannel(t, testplugins.NewChannel())
	} else {
		c = testkit.LaunchChannel(t, testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testchannel"))
	}
	if err := c.Configure(testkit.Context(t, 10*time.Second), "t", json.RawMessage(`{"secret":"`+batchSecret+`"}`), sdk.NewMemoryHost(nil), "test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every item of a batch gets its own outcome, in order, and a typed error
// crosses in a batch exactly as it does alone.
func TestWebhookBatchOutcomesInOrderWithTypedErrors(t *testing.T) {
	for _, mode := range []string{"in-process", "subprocess"} {
		t.Run(mode, func(t *testing.T) {
			c := testChannel(t, mode)
			names := make([]string, 0, len(testplugins.WebhookErrors))
			for n := range testplugins.WebhookErrors {
				names = append(names, n)
			}
			var calls []sdk.WebhookCall
			for i, n := range names {
				calls = append(calls, sdk.WebhookCall{Request: signedWebhook(fmt.Sprintf("ok%d", i))},
					sdk.WebhookCall{Request: signedWebhook("e"+n, testplugins.FaultErrorHeader, n), Deadline: time.Now().Add(10 * time.Second)})
			}
			out, err := c.HandleWebhooks(testkit.Context(t, 10*time.Second), calls)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(calls) {
				t.Fatalf("%d outcomes for %d items", len(out), len(calls))
			}
			for i, n := range names {
				ok, bad := out[2*i], out[2*i+1]
				if ok.Err != nil || len(ok.Result.Events) != 1 || ok.Result.Events[0].ID != fmt.Sprintf("ok%d", i) {
					t.Errorf("item %d: %+v, %v; want the event ok%d", 2*i, ok.Result, ok.Err, i)
				}
				// The same error through a single call, for reference.
				_, want := c.HandleWebhook(testkit.Context(t, 10*time.Second), signedWebhook("e"+n, testplugins.FaultErrorHeader, n))
				got := bad.Err
				if got == nil || want == nil {
					t.Errorf("%s: batch %v, single %v: both must fail", n, got, want)
					continue
				}
				if sdk.CodeOf(got) != sdk.CodeOf(want) || sdk.ReasonOf(got) != sdk.ReasonOf(want) || sdk.RetryAfterOf(got) != sdk.RetryAfterOf(want) ||
					sdk.IsRetryable(got) != sdk.IsRetryable(want) || got.Error() != want.Error() {
					t.Errorf("%s: in a batch %q (code %s, reason %q, after %s), alone %q (code %s, reason %q, after %s)", n,
						got, sdk.CodeOf(got), sdk.ReasonOf(got), sdk.RetryAfterOf(got), want, sdk.CodeOf(want), sdk.ReasonOf(want), sdk.RetryAfterOf(want))
				}
				var ge, we *sdk.Error
				if errors.As(got, &ge) && errors.As(want, &we) && ge.ProviderCode != we.ProviderCode {
					t.Errorf("%s: provider code %q in a batch, %q alone", n, ge.ProviderCode, we.ProviderCode)
				}
				for _, sentinel := range []error{sdk.ErrNotFound, sdk.ErrConflict, sdk.ErrUnauthorized, sdk.ErrPermanent, context.DeadlineExceeded} {
					if errors.Is(got, sentinel) != errors.Is(want, sentinel) {
						t.Errorf("%s: errors.Is(%v) %v in a batch, %v alone", n, sentinel, errors.Is(got, sentinel), errors.Is(want, sentinel))
					}
				}
			}
		})
	}
}

// Each item runs under its own deadline: one that hangs times out alone.
func TestWebhookBatchItemDeadlines(t *testing.T) {
	for _, mode := range []string{"in-process", "subprocess"} {
		t.Run(mode, func(t *testing.T) {
			c := testChannel(t, mode)
			start := time.Now()
			out, err := c.HandleWebhooks(testkit.Context(t, 10*time.Second), []sdk.WebhookCall{
				{Request: signedWebhook("a")},
				{Request: signedWebhook("hang", testplugins.FaultHangHeader, "1"), Deadline: time.Now().Add(200 * time.Millisecond)},
				{Request: signedWebhook("late"), Deadline: time.Now().Add(-time.Second)},
				{Request: signedWebhook("b"), Deadline: time.Now().Add(10 * time.Second)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("the batch took %s: the hanging item did not end at its deadline", el)
			}
			for _, i := range []int{0, 3} {
				if out[i].Err != nil || len(out[i].Result.Events) != 1 {
					t.Errorf("item %d: %+v, %v", i, out[i].Result, out[i].Err)
				}
			}
			for _, i := range []int{1, 2} {
				if e := out[i].Err; e == nil || !sdk.IsRetryable(e) || sdk.ReasonOf(e) != "timeout" || !errors.Is(e, context.DeadlineExceeded) {
					t.Errorf("item %d past its deadline: %v (reason %q)", i, e, sdk.ReasonOf(e))
				}
			}
		})
	}
}

// A plugin that is gone fails the batch as a whole, as it fails a call.
func TestWebhookBatchPluginGone(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testchannel")
	c := testkit.LaunchChannel(t, bin)
	if err := c.Configure(testkit.Context(t, 10*time.Second), "t", json.RawMessage(`{"secret":"s"}`), sdk.NewMemoryHost(nil), "test"); err != nil {
		t.Fatal(err)
	}
	out, err := c.HandleWebhooks(testkit.Context(t, 10*time.Second), []sdk.WebhookCall{
		{Request: signedWebhook("a")}, {Request: signedWebhook("crash", testplugins.FaultCrashHeader, "1")}})
	if err == nil || out != nil || !sdk.IsRetryable(err) || sdk.ReasonOf(err) != "plugin_unavailable" {
		t.Fatalf("a batch whose plugin died: %v, %v (reason %q)", out, err, sdk.ReasonOf(err))
	}
	if !c.BatchesWebhooks() {
		t.Error("a crash is not a reason to stop batching")
	}
}

// BenchmarkWebhookBatch compares n concurrent webhooks sent as n unary
// calls, as one batch, and through a coalescer (the hub's way: n callers,
// a few batches in flight). One op is n webhooks.
func BenchmarkWebhookBatch(b *testing.B) {
	const n = 64
	for _, mode := range []string{"in-process", "subprocess"} {
		c := testChannel(b, mode)
		reqs := make([]*sdk.WebhookRequest, n)
		for i := range reqs {
			reqs[i] = signedWebhook(fmt.Sprintf("m%d", i))
		}
		report := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/webhook")
		}
		b.Run(mode+"/single-concurrent", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for _, req := range reqs {
					wg.Go(func() {
						if _, err := c.HandleWebhook(ctx, req); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			report(b)
		})
		b.Run(mode+"/one-batch", func(b *testing.B) {
			ctx := context.Background()
			calls := make([]sdk.WebhookCall, n)
			for i, req := range reqs {
				calls[i] = sdk.WebhookCall{Request: req, Deadline: time.Now().Add(time.Hour)}
			}
			b.ReportAllocs()
			for b.Loop() {
				out, err := c.HandleWebhooks(ctx, calls)
				if err != nil || out[n-1].Err != nil {
					b.Fatal(err, out[n-1].Err)
				}
			}
			report(b)
		})
		b.Run(mode+"/coalesced-concurrent", func(b *testing.B) {
			ctx := context.Background()
			var batches atomic.Int64
			bt := coalesce.New(func(items []*sdk.WebhookRequest) []coalesce.Result[*sdk.WebhookResult] {
				batches.Add(1)
				calls := make([]sdk.WebhookCall, len(items))
				for i, r := range items {
					calls[i] = sdk.WebhookCall{Request: r, Deadline: time.Now().Add(time.Hour)}
				}
				res := make([]coalesce.Result[*sdk.WebhookResult], len(items))
				out, err := c.HandleWebhooks(ctx, calls)
				for i := range res {
					if err != nil {
						res[i].Err = err
					} else {
						res[i] = coalesce.Result[*sdk.WebhookResult]{Val: out[i].Result, Err: out[i].Err}
					}
				}
				return res
			}, coalesce.Options[*sdk.WebhookRequest]{MaxItems: 64, MaxInFlight: 4})
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for _, req := range reqs {
					wg.Go(func() {
						if _, err := bt.Do(ctx, req); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			report(b)
			b.ReportMetric(float64(b.N*n)/float64(max(batches.Load(), 1)), "webhooks/batch")
		})
	}
}
