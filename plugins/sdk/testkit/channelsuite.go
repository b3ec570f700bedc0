package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// ChannelFixture tells the channel suite how to talk to a plugin.
type ChannelFixture struct {
	// Config is the instance's config block, as the hub would pass it.
	Config json.RawMessage
	// ValidWebhook returns a correctly signed inbound customer text message,
	// unique per n.
	ValidWebhook func(t *testing.T, n int) *sdk.WebhookRequest
	// ForgedWebhook returns a request with a wrong signature.
	ForgedWebhook func(t *testing.T) *sdk.WebhookRequest
	// Recipient is someone Send may message right after Configure.
	Recipient sdk.Identity
	// Host is the backend handed to Configure; nil: a fresh MemoryHost.
	Host sdk.HostBackend
}

// RunChannelSuite checks the behaviour every channel plugin owes the hub.
// start must return a fresh, unconfigured plugin handle.
func RunChannelSuite(t *testing.T, start func(t *testing.T) *sdk.RemoteChannel, fx ChannelFixture) {
	configured := func(t *testing.T) *sdk.RemoteChannel {
		t.Helper()
		c := start(t)
		host := fx.Host
		if host == nil {
			host = sdk.NewMemoryHost(nil)
		}
		if err := c.Configure(Context(t, 10*time.Second), "conformance", fx.Config, host, "testkit"); err != nil {
			t.Fatalf("Configure: %v", err)
		}
		return c
	}

	t.Run("Describe", func(t *testing.T) {
		m, err := start(t).Describe(Context(t, 5*time.Second))
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		checkManifest(t, m, sdk.KindChannel)
	})

	t.Run("ConfigureRefusesBrokenConfig", func(t *testing.T) {
		err := start(t).Configure(Context(t, 5*time.Second), "conformance", json.RawMessage(`{"broken":`), sdk.NewMemoryHost(nil), "testkit")
		if err == nil {
			t.Fatal("Configure accepted a config that is not JSON")
		}
		if sdk.IsRetryable(err) {
			t.Errorf("a broken config is not worth retrying, got retryable error %v", err)
		}
	})

	t.Run("ValidWebhook", func(t *testing.T) {
		c := configured(t)
		res, err := c.HandleWebhook(Context(t, 5*time.Second), fx.ValidWebhook(t, 1))
		if err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
		if res.Response.Status < 200 || res.Response.Status > 299 {
			t.Fatalf("status %d for a valid webhook, want 2xx", res.Response.Status)
		}
		if len(res.Events) == 0 {
			t.Fatal("no events for a valid message webhook")
		}
		var messages int
		for i, e := range res.Events {
			if e.ID == "" || e.ConversationKey == "" {
				t.Errorf("event %d: ID %q, ConversationKey %q: both are required", i, e.ID, e.ConversationKey)
			}
			if e.Kind == sdk.EventMessage {
				messages++
				if e.Message == nil {
					t.Errorf("event %d: a message event without Message", i)
				}
				if e.Contact.UserID == "" {
					t.Errorf("event %d: no Contact.UserID", i)
				}
				if e.Author != sdk.AuthorCustomer {
					t.Errorf("event %d: author %s, want customer", i, e.Author)
				}
			}
		}
		if messages == 0 {
			t.Error("no message event in a valid inbound text webhook")
		}
	})

	t.Run("SameWebhookSameIDs", func(t *testing.T) {
		c := configured(t)
		req := fx.ValidWebhook(t, 2)
		a, err := c.HandleWebhook(Context(t, 5*time.Second), req)
		if err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
		b, err := c.HandleWebhook(Context(t, 5*time.Second), req)
		if err != nil {
			t.Fatalf("HandleWebhook (again): %v", err)
		}
		if len(a.Events) != len(b.Events) {
			t.Fatalf("a redelivery gave %d events, the first delivery %d", len(b.Events), len(a.Events))
		}
		for i := range a.Events {
			if a.Events[i].ID != b.Events[i].ID {
				t.Errorf("event %d: ID %q then %q: the dedupe key must be stable", i, a.Events[i].ID, b.Events[i].ID)
			}
		}
		other, err := c.HandleWebhook(Context(t, 5*time.Second), fx.ValidWebhook(t, 3))
		if err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
		if len(other.Events) > 0 && len(a.Events) > 0 && other.Events[0].ID == a.Events[0].ID {
			t.Errorf("two different messages share the ID %q", a.Events[0].ID)
		}
	})

	t.Run("ForgedWebhook", func(t *testing.T) {
		c := configured(t)
		res, err := c.HandleWebhook(Context(t, 5*time.Second), fx.ForgedWebhook(t))
		if err != nil {
			t.Fatalf("HandleWebhook must answer a forged request with a 4xx, not an error: %v", err)
		}
		if res.Response.Status < 400 || res.Response.Status > 499 {
			t.Errorf("status %d for a forged webhook, want 4xx", res.Response.Status)
		}
		if len(res.Events) != 0 {
			t.Errorf("%d events from a forged webhook, want none", len(res.Events))
		}
	})

	t.Run("GarbageWebhook", func(t *testing.T) {
		c := configured(t)
		for _, body := range [][]byte{nil, []byte("{"), []byte(`{"a":[[[[[[`), {0xff, 0xfe, 0x00}} {
			req := fx.ForgedWebhook(t)
			req.Body = body
			res, err := c.HandleWebhook(Context(t, 5*time.Second), req)
			if err != nil {
				t.Fatalf("HandleWebhook(%q): %v", body, err)
			}
			if res.Response.Status < 400 || res.Response.Status > 499 || len(res.Events) != 0 {
				t.Errorf("HandleWebhook(%q): status %d with %d events, want 4xx and none", body, res.Response.Status, len(res.Events))
			}
		}
	})

	t.Run("Send", func(t *testing.T) {
		c := configured(t)
		res, err := c.Send(Context(t, 10*time.Second), &sdk.Outbound{
			IdempotencyKey: "conformance-send-1", To: fx.Recipient, Type: "text", Text: "Xin chào! Hello from the conformance suite.",
		})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if res.ProviderMessageID == "" {
			t.Error("Send returned no provider message id")
		}
	})

	t.Run("Parallel", func(t *testing.T) {
		c := configured(t)
		errs := parallel(16, func(i int) error {
			if _, err := c.HandleWebhook(Context(t, 10*time.Second), fx.ValidWebhook(t, 100+i)); err != nil {
				return fmt.Errorf("webhook %d: %w", i, err)
			}
			if _, err := c.Send(Context(t, 10*time.Second), &sdk.Outbound{IdempotencyKey: fmt.Sprintf("conformance-par-%d", i),
				To: fx.Recipient, Type: "text", Text: "parallel"}); err != nil {
				return fmt.Errorf("send %d: %w", i, err)
			}
			return nil
		})
		for _, err := range errs {
			t.Error(err)
		}
	})

	// The hub sends concurrent webhooks in batches; the SDK runs each item
	// through HandleWebhook, so a batch must answer what single calls do.
	t.Run("Batch", func(t *testing.T) {
		c := configured(t)
		reqs := []*sdk.WebhookRequest{fx.ValidWebhook(t, 200), fx.ForgedWebhook(t), fx.ValidWebhook(t, 201)}
		var single []*sdk.WebhookResult
		for i, req := range reqs {
			res, err := c.HandleWebhook(Context(t, 10*time.Second), req)
			if err != nil {
				t.Fatalf("HandleWebhook %d: %v", i, err)
			}
			single = append(single, res)
		}
		calls := make([]sdk.WebhookCall, len(reqs))
		for i, req := range reqs {
			calls[i] = sdk.WebhookCall{Request: req, Deadline: time.Now().Add(10 * time.Second)}
		}
		out, err := c.HandleWebhooks(Context(t, 10*time.Second), calls)
		if err != nil {
			t.Fatalf("HandleWebhooks: %v", err)
		}
		if len(out) != len(reqs) {
			t.Fatalf("%d outcomes for %d webhooks", len(out), len(reqs))
		}
		for i, o := range out {
			if o.Err != nil {
				t.Errorf("webhook %d of the batch: %v", i, o.Err)
				continue
			}
			if o.Result.Response.Status != single[i].Response.Status || len(o.Result.Events) != len(single[i].Events) {
				t.Errorf("webhook %d: the batch answered status %d with %d events, a single call %d with %d", i,
					o.Result.Response.Status, len(o.Result.Events), single[i].Response.Status, len(single[i].Events))
				continue
			}
			for k := range o.Result.Events {
				if o.Result.Events[k].ID != single[i].Events[k].ID {
					t.Errorf("webhook %d event %d: ID %q in a batch, %q alone", i, k, o.Result.Events[k].ID, single[i].Events[k].ID)
				}
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		c := configured(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Send(ctx, &sdk.Outbound{IdempotencyKey: "conformance-cancel", To: fx.Recipient, Type: "text", Text: "x"}); err == nil {
			t.Error("Send with a cancelled context succeeded")
		}
	})
}

func checkManifest(t *testing.T, m sdk.Manifest, kind sdk.Kind) {
	t.Helper()
	if m.Kind != kind {
		t.Errorf("kind %q, want %q", m.Kind, kind)
	}
	if m.Name == "" || m.Version == "" {
		t.Errorf("manifest needs a name and a version: %+v", m)
	}
	found := false
	for _, v := range m.ProtocolVersions {
		found = found || v == sdk.ProtocolVersion
	}
	if !found {
		t.Errorf("protocol versions %v do not include %d", m.ProtocolVersions, sdk.ProtocolVersion)
	}
}

// parallel runs f for 0..n-1 concurrently and collects the errors.
func parallel(n int, f func(i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// isNotFound reports a typed not-found, the only acceptable answer for a
// missing record.
func isNotFound(err error) bool { return errors.Is(err, sdk.ErrNotFound) }
