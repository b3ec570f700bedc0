package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// errChannel returns, from Send, the error named by the message text, and
// exercises the host services from HandleWebhook.
type errChannel struct {
	host sdk.Host
}

func (c *errChannel) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "err", Version: "0"}, nil
}

func (c *errChannel) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	c.host = req.Host
	return nil
}

var errsByName = map[string]error{
	"retryable":    sdk.Retryable(errors.New("provider 503"), 1500*time.Millisecond).WithProviderCode("503"),
	"ratelimited":  sdk.RateLimited(errors.New("slow down"), 7*time.Second).WithReason("per_number"),
	"permanent":    sdk.Permanent(errors.New("outside window")).WithReason("window_closed").WithProviderCode("131047"),
	"notfound":     sdk.NotFound(errors.New("no such user")),
	"unauthorized": sdk.Unauthorized(errors.New("token rejected")),
	"invalid":      sdk.Invalid(errors.New("bad phone")),
	"conflict":     sdk.Conflict(errors.New("lost the race")),
	"untyped":      errors.New("something odd"),
	"deadline":     context.DeadlineExceeded,
}

func (c *errChannel) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	kv := c.host.KV()
	if _, _, err := kv.Get(ctx, "token"); !errors.Is(err, sdk.ErrNotFound) {
		return nil, errors.New("Get of a missing key did not return ErrNotFound: " + errString(err))
	}
	v1, err := kv.CompareAndSwap(ctx, "token", 0, []byte("r1"), time.Hour)
	if err != nil {
		return nil, err
	}
	if _, err := kv.CompareAndSwap(ctx, "token", 0, []byte("r1-again"), time.Hour); !errors.Is(err, sdk.ErrConflict) {
		return nil, errors.New("a second create-only CAS did not conflict: " + errString(err))
	}
	if _, err := kv.CompareAndSwap(ctx, "token", v1, []byte("r2"), time.Hour); err != nil {
		return nil, err
	}
	val, _, err := kv.Get(ctx, "token")
	if err != nil {
		return nil, err
	}
	c.host.Logger().With("instance_attr", "x").Info("rotated", "token_version", v1)
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: val}}, nil
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func (c *errChannel) Send(_ context.Context, m *sdk.Outbound) (*sdk.SendResult, error) {
	if err, ok := errsByName[m.Text]; ok {
		return nil, err
	}
	return &sdk.SendResult{ProviderMessageID: "ok"}, nil
}

func TestTypedErrorsCrossTheWire(t *testing.T) {
	c := testkit.StartChannel(t, &errChannel{})
	if err := c.Configure(testkit.Context(t, 5*time.Second), "e", nil, sdk.NewMemoryHost(nil), "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		code      sdk.ErrorCode
		after     time.Duration
		retryable bool
		reason    string
		sentinel  error
	}{
		{"retryable", sdk.CodeRetryable, 1500 * time.Millisecond, true, "", nil},
		{"ratelimited", sdk.CodeRateLimited, 7 * time.Second, true, "per_number", nil},
		{"permanent", sdk.CodePermanent, 0, false, "window_closed", sdk.ErrPermanent},
		{"notfound", sdk.CodeNotFound, 0, false, "", sdk.ErrNotFound},
		{"unauthorized", sdk.CodeUnauthorized, 0, false, "", sdk.ErrUnauthorized},
		{"invalid", sdk.CodeInvalid, 0, false, "", nil},
		{"conflict", sdk.CodeConflict, 0, false, "", sdk.ErrConflict},
		{"untyped", sdk.CodeUnknown, 0, true, "", nil},
		{"deadline", sdk.CodeRetryable, 0, true, "timeout", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Send(testkit.Context(t, 5*time.Second), &sdk.Outbound{Text: tc.name})
			if err == nil {
				t.Fatal("no error")
			}
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %s, want %s (%v)", got, tc.code, err)
			}
			if got := sdk.RetryAfterOf(err); got != tc.after {
				t.Errorf("retry after %s, want %s", got, tc.after)
			}
			if got := sdk.IsRetryable(err); got != tc.retryable {
				t.Errorf("retryable %v, want %v", got, tc.retryable)
			}
			if got := sdk.ReasonOf(err); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
		})
	}
	var e *sdk.Error
	_, err := c.Send(testkit.Context(t, 5*time.Second), &sdk.Outbound{Text: "permanent"})
	if !errors.As(err, &e) || e.ProviderCode != "131047" || !strings.Contains(e.Message, "outside window") {
		t.Errorf("provider code and message lost on the wire: %#v", e)
	}
}

func TestHostServicesOverBroker(t *testing.T) {
	for _, mode := range []string{"in-process", "subprocess"} {
		t.Run(mode, func(t *testing.T) {
			host := sdk.NewMemoryHost(nil)
			var c *sdk.RemoteChannel
			if mode == "in-process" {
				c = testkit.StartChannel(t, &errChannel{})
			} else {
				c = testkit.LaunchChannel(t, testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/internal/hostprobe"))
			}
			if err := c.Configure(testkit.Context(t, 10*time.Second), "probe", json.RawMessage(`{}`), host, "test"); err != nil {
				t.Fatal(err)
			}
			res, err := c.HandleWebhook(testkit.Context(t, 10*time.Second), &sdk.WebhookRequest{Method: "POST"})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Response.Body) != "r2" {
				t.Errorf("the plugin read %q back from the host KV, want r2", res.Response.Body)
			}
			if v, _, err := host.Get(context.Background(), "token"); err != nil || string(v) != "r2" {
				t.Errorf("host KV holds %q, %v; want r2", v, err)
			}
			logs := host.Logs()
			if len(logs) != 1 || logs[0].Message != "rotated" || logs[0].Level != slog.LevelInfo || logs[0].Attrs["instance_attr"] != "x" {
				t.Errorf("host log got %+v", logs)
			}
		})
	}
}

// Many concurrent KV calls from a plugin (batched by the SDK's host
// client) each get their own answer through the real broker.
func TestHostKVConcurrentOverBroker(t *testing.T) {
	for _, mode := range []string{"in-process", "subprocess"} {
		t.Run(mode, func(t *testing.T) {
			host := sdk.NewMemoryHost(nil)
			var c *sdk.RemoteChannel
			if mode == "in-process" {
				c = testkit.StartChannel(t, &kvLoad{})
			} else {
				c = testkit.LaunchChannel(t, testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/internal/hostprobe"))
			}
			if err := c.Configure(testkit.Context(t, 10*time.Second), "probe", json.RawMessage(`{}`), host, "test"); err != nil {
				t.Fatal(err)
			}
			res, err := c.HandleWebhook(testkit.Context(t, 20*time.Second), &sdk.WebhookRequest{Method: "POST", Path: "/concurrent"})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Response.Body) != "ok" {
				t.Fatalf("answer %q", res.Response.Body)
			}
		})
	}
}

// kvLoad is the in-process twin of hostprobe's /concurrent: n concurrent
// create, conflict, put, get, delete sequences on distinct keys.
type kvLoad struct{ host sdk.Host }

func (p *kvLoad) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "kvload", Version: "0"}, nil
}

func (p *kvLoad) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	p.host = req.Host
	return nil
}

func (p *kvLoad) HandleWebhook(ctx context.Context, _ *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	kv := p.host.KV()
	const n = 100
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("c%d", i)
			v1, err := kv.CompareAndSwap(ctx, key, 0, []byte(key), time.Hour)
			if err != nil {
				errs <- err
				return
			}
			if _, err := kv.CompareAndSwap(ctx, key, 0, []byte("again"), time.Hour); !errors.Is(err, sdk.ErrConflict) {
				errs <- fmt.Errorf("%s: second create: %v", key, err)
				return
			}
			if v, ver, err := kv.Get(ctx, key); err != nil || string(v) != key || ver != v1 {
				errs <- fmt.Errorf("%s: get %q@%d, %v", key, v, ver, err)
				return
			}
			if err := kv.Delete(ctx, key); err != nil {
				errs <- err
				return
			}
			if _, _, err := kv.Get(ctx, key); !errors.Is(err, sdk.ErrNotFound) {
				errs <- fmt.Errorf("%s: after delete: %v", key, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, sdk.Permanent(err)
	}
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: []byte("ok")}}, nil
}

func (p *kvLoad) Send(context.Context, *sdk.Outbound) (*sdk.SendResult, error) {
	return &sdk.SendResult{ProviderMessageID: "ok"}, nil
}

// TestSDKImportBoundary keeps the SDK free of the hub and its heavy
// dependencies, so it can become its own module without import changes.
func TestSDKImportBoundary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/switchboard-hub/switchboard/plugins/sdk/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/switchboard-hub/switchboard/hub",
		"github.com/switchboard-hub/switchboard/rules",
		"github.com/gofiber/",
		"github.com/redis/",
		"github.com/valyala/fasthttp",
	}
	for _, dep := range strings.Split(string(out), "\n") {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("the SDK depends on %s", dep)
			}
		}
	}
}

func TestDescribeSubcommand(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testcrm")
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var m sdk.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("describe printed %q: %v", out, err)
	}
	if m.Name != "testcrm" || m.Kind != sdk.KindCRM || len(m.ProtocolVersions) == 0 || m.ProtocolVersions[0] != sdk.ProtocolVersion {
		t.Errorf("describe: %+v", m)
	}
	// Run by hand without the hub, the binary explains itself and fails.
	cmd := exec.Command(bin)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "the hub starts it") {
		t.Errorf("plain run: %v, %s", err, b)
	}
}

func BenchmarkPluginRoundTrip(b *testing.B) {
	for _, mode := range []string{"in-process", "subprocess"} {
		b.Run(mode, func(b *testing.B) {
			var c *sdk.RemoteChannel
			if mode == "in-process" {
				c = testkit.StartChannel(b, &errChannel{})
			} else {
				c = testkit.LaunchChannel(b, testkit.BuildPlugin(b, "github.com/switchboard-hub/switchboard/plugins/sdk/internal/hostprobe"))
			}
			ctx := context.Background()
			if err := c.Configure(ctx, "bench", nil, sdk.NewMemoryHost(nil), "bench"); err != nil {
				b.Fatal(err)
			}
			msg := &sdk.Outbound{IdempotencyKey: "k", To: sdk.Identity{Channel: "zalo", UserID: "8123456789012345678"}, Type: "text",
				Text: "Cảm ơn anh, em gửi báo giá gói Pro ngay ạ."}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A webhook whose header or path is not valid UTF-8 (anyone can send one)
// still reaches the plugin, which refuses it; it must not fail to cross
// the wire (the hub would answer 503 and the sender retry for ever).
func TestWebhookWithInvalidUTF8CrossesTheWire(t *testing.T) {
	ch := testkit.StartChannel(t, testplugins.NewChannel())
	ctx := testkit.Context(t, 10*time.Second)
	res, err := ch.HandleWebhook(ctx, &sdk.WebhookRequest{Method: "POST", Path: "/webhooks/test\xff", RawQuery: "a=\xfe",
		Header: http.Header{testplugins.SignatureHeader: {"mac=\xff\xfe"}, "X-Other\xff": {"ok", "\xc0\x80"}},
		Body:   []byte("{\"messages\":[]}\xff"), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatalf("HandleWebhook: %v", err)
	}
	if res.Response.Status != 401 {
		t.Errorf("status %d, want 401 (bad signature)", res.Response.Status)
	}
}

// A plugin whose hub died before the plugin started watching it (killed
// while it launched its plugins) exits at once instead of serving for ever
// with nobody to stop it.
func TestPluginExitsWhenItsHubIsAlreadyGone(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testchannel")
	cmd := exec.Command(bin)
	// Launched as by a hub whose pid is not our parent's any more.
	cmd.Env = []string{sdk.Handshake.MagicCookieKey + "=" + sdk.Handshake.MagicCookieValue, sdk.HubPIDEnv + "=1",
		"PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_MIN_PORT=10000", "PLUGIN_MAX_PORT=25000"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("plugin exited with %v, want exit status 3", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the plugin kept running with its hub gone")
	}
}
