package zalo

import (
	"os"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// BenchmarkVerifyAndParse is the webhook hot path without state: signature
// check, decode, normalize.
func BenchmarkVerifyAndParse(b *testing.B) {
	body, err := os.ReadFile("testdata/webhooks/user_send_text.json")
	if err != nil {
		b.Fatal(err)
	}
	sig := zalofake.Signature(goldenAppID, body, "1763740800000", goldenSecret)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w, err := DecodeWebhook(body)
		if err != nil {
			b.Fatal(err)
		}
		if !VerifySignature(sig, string(w.AppID), body, string(w.Timestamp), goldenSecret) {
			b.Fatal("signature")
		}
		if evs := w.Events(goldenOAID, "bench", body); len(evs) != 1 {
			b.Fatal("events")
		}
	}
}

// BenchmarkVerifySignature is the signature check alone.
func BenchmarkVerifySignature(b *testing.B) {
	body, _ := os.ReadFile("testdata/webhooks/user_send_text.json")
	sig := zalofake.Signature(goldenAppID, body, "1763740800000", goldenSecret)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !VerifySignature(sig, goldenAppID, body, "1763740800000", goldenSecret) {
			b.Fatal("signature")
		}
	}
}

// BenchmarkHandleWebhook is the whole in-process call, including the
// reply-allowance update in a MemoryHost.
func BenchmarkHandleWebhook(b *testing.B) {
	fake := zalofake.New(zalofake.Config{AppID: goldenAppID, OAID: goldenOAID, OASecretKey: goldenSecret})
	defer fake.Close()
	c := New(WithClock(func() time.Time { return goldenTime.Add(time.Minute) }))
	if err := c.Configure(b.Context(), sdk.ConfigureRequest{Config: fake.PluginConfig(nil), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		b.Fatal(err)
	}
	body, _ := os.ReadFile("testdata/webhooks/user_send_text.json")
	req := fake.WebhookRequestBody(body)
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.HandleWebhook(b.Context(), req)
		if err != nil || len(res.Events) != 1 {
			b.Fatal(err)
		}
	}
}
