package zalo

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// Ids of the golden payloads in testdata/webhooks.
const (
	goldenAppID  = "360846524940903967"
	goldenOAID   = "388613280878808645"
	goldenUser   = "2468458835296197922"
	goldenSecret = "golden-oa-secret-key"
)

// goldenTime is the timestamp of the golden payloads (1763740800000 ms).
var goldenTime = time.UnixMilli(1763740800000)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newFake starts a fake Zalo with the golden ids.
func newFake(t testing.TB, cfg zalofake.Config) *zalofake.Server {
	if cfg.AppID == "" {
		cfg.AppID, cfg.OAID, cfg.OASecretKey = goldenAppID, goldenOAID, goldenSecret
	}
	f := zalofake.New(cfg)
	t.Cleanup(f.Close)
	return f
}

// configure returns a connector configured against fake on host, with the
// given clock and extra config keys.
func configure(t testing.TB, fake *zalofake.Server, host *sdk.MemoryHost, now func() time.Time, extra map[string]any) *Connector {
	t.Helper()
	opts := []Option{WithLeasePoll(5 * time.Millisecond)}
	if now != nil {
		opts = append(opts, WithClock(now))
	}
	c := New(opts...)
	err := c.Configure(ctxT(t), sdk.ConfigureRequest{Instance: "zalo-test", Config: fake.PluginConfig(extra), Host: sdk.HostFromBackend(host)})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	return c
}

// userWrote makes the connector see a signed text from user now, which
// opens the free-reply window.
func userWrote(t testing.TB, c *Connector, fake *zalofake.Server, user string) sdk.Event {
	t.Helper()
	res, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.Text(user, "xin chào")))
	if err != nil || res.Response.Status != 200 || len(res.Events) != 1 {
		t.Fatalf("user message webhook: %v %+v", err, res)
	}
	return res.Events[0]
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
