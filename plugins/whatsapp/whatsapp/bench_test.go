package whatsapp

import (
	"context"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

// BenchmarkVerifySignature: HMAC-SHA256 over a typical notification.
func BenchmarkVerifySignature(b *testing.B) {
	body := sampleWebhooks(b)["text"]
	sig := Sign(wafake.DefaultAppSecret, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := verifySignature(wafake.DefaultAppSecret, sig, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAndParse: the CPU part of a webhook, signature check plus
// parse into events, for one message and for a batch.
func BenchmarkVerifyAndParse(b *testing.B) {
	for _, name := range []string{"text", "batch", "history", "statuses"} {
		body := sampleWebhooks(b)[name]
		sig := Sign(wafake.DefaultAppSecret, body)
		opts := parseOptions{instance: "bench", phoneNumberID: wafake.DefaultPhoneNumberID}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := verifySignature(wafake.DefaultAppSecret, sig, body); err != nil {
					b.Fatal(err)
				}
				if _, err := parseNotification(body, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandleWebhook: the whole call, including the window update in
// an in-memory KV (the hub's KV adds its own round trip).
func BenchmarkHandleWebhook(b *testing.B) {
	fk := wafake.New(wafake.Options{})
	defer fk.Close()
	c := New()
	if err := c.Configure(context.Background(), sdk.ConfigureRequest{Instance: "bench", Config: fk.ChannelConfig(nil),
		Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		b.Fatal(err)
	}
	req := fk.WebhookRequest(fk.Inbound(wafake.Text("16505551234", "how much is the pro plan?")))
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.HandleWebhook(context.Background(), req)
		if err != nil || len(res.Events) != 1 {
			b.Fatal(err)
		}
	}
}
