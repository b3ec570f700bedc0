package pluginhost

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/coalesce"
)

// Webhooks reach a channel plugin in batches: concurrent callers of
// Channel.HandleWebhook queue on the instance's batcher, which sends what
// is queued as one HandleWebhooks call, with a few batches in flight. At
// light load a batch holds one webhook and leaves at once; under load the
// per-call gRPC cost (a stream, TLS records, headers) is paid once per
// batch instead of once per webhook.
const (
	webhookBatchItems    = 64
	webhookBatchInFlight = 4
	// A batch is one gRPC message of at most sdk.MaxMessageSize (64 MB)
	// each way; the events a plugin answers are about the size of the
	// bodies, so 8 MB of requests leaves room for the answer.
	webhookBatchBytes = 8 << 20
	batchSlack        = time.Second
)

type webhookCall struct {
	ctx context.Context // the caller's, bounded by the call timeout
	rc  *sdk.RemoteChannel
	req *sdk.WebhookRequest
}

type webhookBatcher = coalesce.Batcher[webhookCall, *sdk.WebhookResult]

func (i *Instance) newWebhookBatcher() *webhookBatcher {
	return coalesce.New(i.sendWebhooks, coalesce.Options[webhookCall]{
		MaxItems: webhookBatchItems, MaxInFlight: webhookBatchInFlight,
		MaxBytes: webhookBatchBytes, Size: func(c webhookCall) int { return webhookSize(c.req) },
	})
}

func webhookSize(r *sdk.WebhookRequest) int {
	n := len(r.Body) + len(r.Path) + len(r.RawQuery) + 64
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// handleWebhook is the batched HandleWebhook under call: ctx is already
// bounded by the call timeout and r is the running plugin.
func (i *Instance) handleWebhook(ctx context.Context, r any, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	rc := r.(*sdk.RemoteChannel)
	if !rc.BatchesWebhooks() || i.webhooks == nil {
		return rc.HandleWebhook(ctx, req)
	}
	res, err := i.webhooks.Do(ctx, webhookCall{ctx: ctx, rc: rc, req: req})
	if err != nil && errors.Is(err, context.DeadlineExceeded) && !isTyped(err) {
		// The deadline passed while the webhook waited for its batch or its
		// answer: the same error as a unary call that timed out.
		err = sdk.DeadlineError("context deadline exceeded")
	}
	return res, err
}

func isTyped(err error) bool {
	var e *sdk.Error
	return errors.As(err, &e)
}

// sendWebhooks sends one batch. The calls normally share one plugin
// process; around a restart they may not, and each process gets its own.
func (i *Instance) sendWebhooks(calls []webhookCall) []coalesce.Result[*sdk.WebhookResult] {
	out := make([]coalesce.Result[*sdk.WebhookResult], len(calls))
	end := 0
	for end < len(calls) && calls[end].rc == calls[0].rc {
		end++
	}
	if end == len(calls) {
		i.sendWebhookGroup(calls, out)
		return out
	}
	var wg sync.WaitGroup
	for start := 0; start < len(calls); {
		end := start + 1
		for end < len(calls) && calls[end].rc == calls[start].rc {
			end++
		}
		wg.Go(func() { i.sendWebhookGroup(calls[start:end], out[start:end]) })
		start = end
	}
	wg.Wait()
	return out
}

func (i *Instance) sendWebhookGroup(calls []webhookCall, out []coalesce.Result[*sdk.WebhookResult]) {
	rc := calls[0].rc
	if !rc.BatchesWebhooks() {
		// Queued before another batch learned that this plugin refuses
		// batches: no point sending it to be refused too.
		sendWebhooksOneByOne(rc, calls, out)
		return
	}
	i.m.metrics.batchSize.WithLabelValues(i.spec.Name, "HandleWebhook").Observe(float64(len(calls)))
	items := make([]sdk.WebhookCall, len(calls))
	var latest time.Time
	for k, c := range calls {
		items[k].Request = c.req
		if d, ok := c.ctx.Deadline(); ok {
			items[k].Deadline = d
			if d.After(latest) {
				latest = d
			}
		}
	}
	if latest.IsZero() { // call always sets a deadline; be safe anyway
		latest = time.Now().Add(i.spec.CallTimeout)
	}
	// The items end at their own deadlines in the plugin; the batch as a
	// whole gets a moment more, so that a caller's deadline, not the
	// batch's, is what a caller sees expire (call tells the two apart).
	ctx, cancel := context.WithDeadline(context.Background(), latest.Add(batchSlack))
	res, err := rc.HandleWebhooks(ctx, items)
	cancel()
	switch {
	case errors.Is(err, sdk.ErrBatchUnsupported):
		// A plugin built with an SDK older than batches: these go one by
		// one, and so does every later call to this process.
		sendWebhooksOneByOne(rc, calls, out)
	case err != nil:
		for k := range out {
			out[k].Err = err
		}
	default:
		for k, o := range res {
			out[k] = coalesce.Result[*sdk.WebhookResult]{Val: o.Result, Err: o.Err}
		}
	}
}

func sendWebhooksOneByOne(rc *sdk.RemoteChannel, calls []webhookCall, out []coalesce.Result[*sdk.WebhookResult]) {
	var wg sync.WaitGroup
	for k, c := range calls {
		wg.Go(func() {
			v, err := rc.HandleWebhook(c.ctx, c.req)
			out[k] = coalesce.Result[*sdk.WebhookResult]{Val: v, Err: err}
		})
	}
	wg.Wait()
}
