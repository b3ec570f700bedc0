package pluginhost

import (
	"context"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Channel calls a channel plugin instance. Concurrent webhooks go to the
// plugin in batches (see batch.go).
type Channel struct{ *Instance }

func (c *Channel) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	return call(c.Instance, ctx, "HandleWebhook", func(ctx context.Context, r any) (*sdk.WebhookResult, error) {
		return c.handleWebhook(ctx, r, req)
	})
}

func (c *Channel) Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error) {
	return call(c.Instance, ctx, "Send", func(ctx context.Context, r any) (*sdk.SendResult, error) {
		return r.(*sdk.RemoteChannel).Send(ctx, msg)
	})
}

// CRM calls a CRM plugin instance.
type CRM struct{ *Instance }

func (c *CRM) UpsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error) {
	return call(c.Instance, ctx, "UpsertContact", func(ctx context.Context, r any) (*sdk.UpsertContactResult, error) {
		return r.(*sdk.RemoteCRM).UpsertContact(ctx, req)
	})
}

func (c *CRM) GetContact(ctx context.Context, id string, identity *sdk.Identity) (*sdk.Contact, error) {
	return call(c.Instance, ctx, "GetContact", func(ctx context.Context, r any) (*sdk.Contact, error) {
		return r.(*sdk.RemoteCRM).GetContact(ctx, id, identity)
	})
}

func (c *CRM) AddNote(ctx context.Context, key string, note *sdk.Note) (*sdk.Note, error) {
	return call(c.Instance, ctx, "AddNote", func(ctx context.Context, r any) (*sdk.Note, error) {
		return r.(*sdk.RemoteCRM).AddNote(ctx, key, note)
	})
}

func (c *CRM) UpsertDeal(ctx context.Context, key string, deal *sdk.Deal) (*sdk.Deal, error) {
	return call(c.Instance, ctx, "UpsertDeal", func(ctx context.Context, r any) (*sdk.Deal, error) {
		return r.(*sdk.RemoteCRM).UpsertDeal(ctx, key, deal)
	})
}

func (c *CRM) CreateTask(ctx context.Context, key string, task *sdk.Task) (*sdk.Task, error) {
	return call(c.Instance, ctx, "CreateTask", func(ctx context.Context, r any) (*sdk.Task, error) {
		return r.(*sdk.RemoteCRM).CreateTask(ctx, key, task)
	})
}

// LLM calls an LLM plugin instance.
type LLM struct{ *Instance }

func (l *LLM) Generate(ctx context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	return call(l.Instance, ctx, "Generate", func(ctx context.Context, r any) (*sdk.GenerateResponse, error) {
		return r.(*sdk.RemoteLLM).Generate(ctx, req)
	})
}
