package whatsapp_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/whatsapp"
)

// fixture points the suite at a fresh fake. The suite sends to Recipient
// right after Configure, before any webhook, and the 24-hour window stays
// enforced: the fixture opens the recipient's window the way an inbound
// message would, in the host KV the suite hands to the plugin
// (whatsapp.OpenWindow) and on the fake's side.
func fixture(t *testing.T) testkit.ChannelFixture {
	f := wafake.Start(t, wafake.Options{})
	const recipient = "16505550123"
	host := sdk.NewMemoryHost(nil)
	if err := whatsapp.OpenWindow(context.Background(), host, f.PhoneNumberID(), recipient, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.OpenWindow(recipient, time.Time{})
	return testkit.ChannelFixture{
		// Default send limits (20/s, burst 1): the suite's parallel sends
		// go through the real limiter.
		Config: f.ChannelConfig(nil),
		ValidWebhook: func(t *testing.T, n int) *sdk.WebhookRequest {
			m := wafake.Text(fmt.Sprintf("8490%07d", n), fmt.Sprintf("message %d", n))
			m.Name = "Conformance Customer"
			return f.WebhookRequest(f.Inbound(m))
		},
		ForgedWebhook: func(t *testing.T) *sdk.WebhookRequest {
			return f.ForgedWebhookRequest(f.Inbound(wafake.Text("84900000001", "forged")))
		},
		Recipient: sdk.Identity{Channel: whatsapp.ChannelName, UserID: recipient, Phone: "+" + recipient},
		Host:      host,
	}
}

func TestConformanceInProcess(t *testing.T) {
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
		return testkit.StartChannel(t, whatsapp.New())
	}, fixture(t))
}

func TestConformanceSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/whatsapp")
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
		return testkit.LaunchChannel(t, bin)
	}, fixture(t))
}

// TestSubprocessEndToEnd drives the real binary over go-plugin: window,
// send through the host KV served over the broker, echo and typed errors
// crossing the wire.
func TestSubprocessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	f := wafake.Start(t, wafake.Options{})
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/whatsapp")
	c := testkit.LaunchChannel(t, bin)
	host := sdk.NewMemoryHost(nil)
	ctx := testkit.Context(t, 30*time.Second)
	if err := c.Configure(ctx, "wa-e2e", f.ChannelConfig(nil), host, "test"); err != nil {
		t.Fatal(err)
	}
	const user = "84901234567"
	to := sdk.Identity{Channel: "whatsapp", UserID: user}

	// Before the customer writes: refused, typed, without reaching Meta.
	_, err := c.Send(ctx, &sdk.Outbound{IdempotencyKey: "k0", To: to, Text: "hello?"})
	if sdk.CodeOf(err) != sdk.CodePermanent || sdk.ReasonOf(err) != whatsapp.ReasonWindowClosed {
		t.Fatalf("send before any message: %v, want permanent window_closed", err)
	}

	res, err := c.HandleWebhook(ctx, f.WebhookRequest(f.Inbound(wafake.Text(user, "giá bao nhiêu?"))))
	if err != nil || res.Response.Status != 200 || len(res.Events) != 1 {
		t.Fatalf("inbound: %v %+v", err, res)
	}
	ev := res.Events[0]
	if ev.ConversationKey != whatsapp.ConversationKey(f.PhoneNumberID(), user) || ev.Contact.Phone != "+"+user ||
		ev.Message.Text != "giá bao nhiêu?" || ev.Author != sdk.AuthorCustomer {
		t.Fatalf("event %+v", ev)
	}
	sent, err := c.Send(ctx, &sdk.Outbound{IdempotencyKey: ev.ID + "/reply", ConversationKey: ev.ConversationKey, Text: "200.000đ"})
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	if got := f.Sent(); len(got) != 1 || got[0].ID != sent.ProviderMessageID || got[0].Text != "200.000đ" {
		t.Fatalf("fake got %+v", got)
	}

	res, err = c.HandleWebhook(ctx, f.WebhookRequest(f.Echoes(wafake.Text(user, "Chi here, I'll take it from now"))))
	if err != nil || len(res.Events) != 1 || res.Events[0].Author != sdk.AuthorAgent || res.Events[0].Direction != sdk.DirectionOutbound {
		t.Fatalf("echo: %v %+v", err, res)
	}

	f.FailNext(wafake.ErrThroughput())
	_, err = c.Send(ctx, &sdk.Outbound{IdempotencyKey: "k2", To: to, Text: "again"})
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != time.Second || sdk.ReasonOf(err) != whatsapp.ReasonThroughputLimit {
		t.Fatalf("throttled send: %v", err)
	}
	var se *sdk.Error
	if !errors.As(err, &se) || se.ProviderCode != "130429" {
		t.Fatalf("provider code lost across the wire: %v", err)
	}
	res, err = c.HandleWebhook(ctx, f.VerificationRequest("subscribe", f.VerifyToken(), "8675309"))
	if err != nil || res.Response.Status != 200 || string(res.Response.Body) != "8675309" {
		t.Fatalf("handshake: %v %+v", err, res)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
}
