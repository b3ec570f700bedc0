package whatsapp

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

// sampleWebhooks are the seed corpus: every sample notification.
func sampleWebhooks(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob("testdata/webhooks/*.json")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

// FuzzParseWebhook: any body either is refused or yields well-formed
// events; it never panics.
func FuzzParseWebhook(f *testing.F) {
	for _, b := range sampleWebhooks(f) {
		f.Add(b)
	}
	prefix := ConversationKey(wafake.DefaultPhoneNumberID, "")
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseNotification(body, parseOptions{instance: "fuzz", phoneNumberID: wafake.DefaultPhoneNumberID})
		if err != nil {
			if p != nil {
				t.Fatal("an error with a result")
			}
			return
		}
		for i, e := range p.events {
			if e.ID == "" || !strings.HasPrefix(e.ConversationKey, prefix) || len(e.ConversationKey) == len(prefix) {
				t.Fatalf("event %d: id %q, key %q", i, e.ID, e.ConversationKey)
			}
			if e.Contact.UserID == "" || e.Contact.Channel != ChannelName {
				t.Fatalf("event %d: contact %+v", i, e.Contact)
			}
			switch e.Kind {
			case sdk.EventMessage, sdk.EventHistory:
				if e.Message == nil {
					t.Fatalf("event %d: %s without Message", i, e.Kind)
				}
			case sdk.EventDelivery:
				if e.Delivery == nil || e.Delivery.MessageID == "" {
					t.Fatalf("event %d: delivery without Delivery", i)
				}
			}
			if !json.Valid(e.Raw) {
				t.Fatalf("event %d: raw is not JSON: %q", i, e.Raw)
			}
		}
		for user := range p.opens {
			if user == "" {
				t.Fatal("a window for an empty user")
			}
		}
	})
}

// FuzzHandleWebhook signs arbitrary bodies and runs the whole webhook
// path: the answer is 200 or 400, never an error or a panic.
func FuzzHandleWebhook(f *testing.F) {
	for _, b := range sampleWebhooks(f) {
		f.Add(b)
	}
	fk := wafake.New(wafake.Options{})
	defer fk.Close()
	c := New()
	if err := c.Configure(context.Background(), sdk.ConfigureRequest{Instance: "fuzz", Config: fk.ChannelConfig(nil),
		Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := c.HandleWebhook(context.Background(), fk.WebhookRequest(body))
		if err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
		if s := res.Response.Status; s != 200 && s != 400 {
			t.Fatalf("status %d", s)
		}
		if res.Response.Status != 200 && len(res.Events) > 0 {
			t.Fatal("events with a refusal")
		}
	})
}
