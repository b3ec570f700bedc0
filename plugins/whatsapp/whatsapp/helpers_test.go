package whatsapp

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

// testClock is a manual clock shared by the connector and the fake. Its
// after() never sleeps: it records the wait and fires at once, so rate
// limiter tests assert the waits asked for, not wall-clock time.
type testClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *testClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	now := c.t
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now.Add(d)
	return ch
}

func (c *testClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// goldenNow is after every sample message of testdata/webhooks that should
// open a window (2023-10-11T17:23:20Z).
var goldenNow = time.Unix(1697045000, 0).UTC()

type env struct {
	t     *testing.T
	fake  *wafake.Fake
	clock *testClock
	host  *sdk.MemoryHost
	conn  *Connector
}

// newEnv starts a fake Graph API and a connector configured against it;
// extra overrides config keys (nil removes one).
func newEnv(t *testing.T, fakeOpts wafake.Options, extra map[string]any) *env {
	t.Helper()
	clock := newTestClock(goldenNow)
	if fakeOpts.Now == nil {
		fakeOpts.Now = clock.Now
	}
	f := wafake.Start(t, fakeOpts)
	e := &env{t: t, fake: f, clock: clock, host: sdk.NewMemoryHost(nil)}
	e.conn = New(WithClock(clock.Now, clock.After))
	cfg := map[string]any{"send_rate_per_second": 1000, "send_burst": 1000}
	for k, v := range extra {
		cfg[k] = v
	}
	if err := e.conn.Configure(context.Background(), sdk.ConfigureRequest{
		Instance: "wa-test", Config: f.ChannelConfig(cfg), Host: sdk.HostFromBackend(e.host)}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return e
}

func (e *env) webhook(req *sdk.WebhookRequest) *sdk.WebhookResult {
	e.t.Helper()
	res, err := e.conn.HandleWebhook(context.Background(), req)
	if err != nil {
		e.t.Fatalf("HandleWebhook: %v", err)
	}
	return res
}

// inbound delivers a customer's text through the connector (opening the
// window on both sides) and returns its events.
func (e *env) inbound(from, text string) []sdk.Event {
	e.t.Helper()
	res := e.webhook(e.fake.WebhookRequest(e.fake.Inbound(wafake.Text(from, text))))
	if res.Response.Status != http.StatusOK {
		e.t.Fatalf("inbound webhook: status %d", res.Response.Status)
	}
	return res.Events
}

func (e *env) windowOpen(user string) bool {
	e.t.Helper()
	rt, _ := e.conn.runtime()
	st, err := rt.windows.get(context.Background(), user)
	if err != nil {
		e.t.Fatalf("window: %v", err)
	}
	return st.open
}

// sentPayload is the JSON the fake received for its i-th accepted message.
func (e *env) sentPayload(i int) map[string]any {
	e.t.Helper()
	sent := e.fake.Sent()
	if i >= len(sent) {
		e.t.Fatalf("fake accepted %d messages, want at least %d", len(sent), i+1)
	}
	var m map[string]any
	if err := json.Unmarshal(sent[i].Raw, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}
