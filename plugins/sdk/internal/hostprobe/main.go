// Command hostprobe is a channel plugin for the SDK's own tests: it drives
// the host services from HandleWebhook and answers Send instantly.
package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

type probe struct{ host sdk.Host }

func (p *probe) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "hostprobe", Version: "0"}, nil
}

func (p *probe) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	p.host = req.Host
	return nil
}

// HandleWebhook rotates a token with compare-and-set, as a channel plugin
// with a single-use refresh token does, and logs through the host.
func (p *probe) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	kv := p.host.KV()
	if req.Path == "/concurrent" {
		return concurrent(ctx, kv)
	}
	v1, err := kv.CompareAndSwap(ctx, "token", 0, []byte("r1"), time.Hour)
	if err != nil {
		return nil, err
	}
	if _, err := kv.CompareAndSwap(ctx, "token", 0, []byte("again"), time.Hour); !errors.Is(err, sdk.ErrConflict) {
		return nil, errors.New("create-only CAS did not conflict")
	}
	if _, err := kv.CompareAndSwap(ctx, "token", v1, []byte("r2"), time.Hour); err != nil {
		return nil, err
	}
	val, _, err := kv.Get(ctx, "token")
	if err != nil {
		return nil, err
	}
	p.host.Logger().With("instance_attr", "x").Info("rotated")
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: val}}, nil
}

// concurrent drives many KV calls at once, as a plugin handling a batch
// of webhooks does, and checks each answer: the host client sends them in
// batches.
func concurrent(ctx context.Context, kv sdk.KV) (*sdk.WebhookResult, error) {
	const n = 100
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("c%d", i)
			v1, err := kv.CompareAndSwap(ctx, key, 0, []byte(key), time.Hour)
			if err != nil {
				errs <- fmt.Errorf("%s: create: %w", key, err)
				return
			}
			if _, err := kv.CompareAndSwap(ctx, key, 0, []byte("again"), time.Hour); !errors.Is(err, sdk.ErrConflict) {
				errs <- fmt.Errorf("%s: second create: %v, want a conflict", key, err)
				return
			}
			v2, err := kv.Put(ctx, key, []byte(key+"!"), 0)
			if err != nil || v2 <= v1 {
				errs <- fmt.Errorf("%s: put: version %d after %d, %v", key, v2, v1, err)
				return
			}
			if v, ver, err := kv.Get(ctx, key); err != nil || string(v) != key+"!" || ver != v2 {
				errs <- fmt.Errorf("%s: get %q@%d, %v; want %q@%d", key, v, ver, err, key+"!", v2)
				return
			}
			if err := kv.Delete(ctx, key); err != nil {
				errs <- fmt.Errorf("%s: delete: %w", key, err)
				return
			}
			if _, _, err := kv.Get(ctx, key); !errors.Is(err, sdk.ErrNotFound) {
				errs <- fmt.Errorf("%s: get after delete: %v, want not found", key, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return nil, sdk.Permanent(errors.Join(all...))
	}
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: []byte("ok")}}, nil
}

func (p *probe) Send(context.Context, *sdk.Outbound) (*sdk.SendResult, error) {
	return &sdk.SendResult{ProviderMessageID: "ok"}, nil
}

func main() { sdk.ServeChannel(&probe{}) }
