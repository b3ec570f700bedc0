// Command hostprobe is a channel plugin for the SDK's own tests: it drives
// the host services from HandleWebhook and answers Send instantly.
package main

import (
	"context"
	"errors"
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
func (p *probe) HandleWebhook(ctx context.Context, _ *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	kv := p.host.KV()
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

func (p *probe) Send(context.Context, *sdk.Outbound) (*sdk.SendResult, error) {
	return &sdk.SendResult{ProviderMessageID: "ok"}, nil
}

func main() { sdk.ServeChannel(&probe{}) }
