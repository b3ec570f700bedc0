package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

const mod = "github.com/switchboard-hub/switchboard/"

func channelHubConfig(bins hubtest.Bins, store, name, pluginPath, pluginConfig string) string {
	return fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store:
%s
plugins:
  - name: %s
    kind: channel
    path: %s
    config: %s
  - name: brain
    kind: llm
    path: %s
pipeline:
  llm: brain
  lease_ttl: 2s
`, store, name, pluginPath, pluginConfig, bins.LLM)
}

// processed waits until the hub has completed n event tasks.
func waitProcessed(t *testing.T, h *hubtest.Hub, n float64) {
	t.Helper()
	hubtest.Eventually(t, 30*time.Second, fmt.Sprintf("%v events processed", n), func() bool {
		return h.Metric("switchboard_tasks_processed_total", "kind", "event") >= n
	})
}

func TestZaloEndToEndWithEcho(t *testing.T) {
	bins := hubtest.Build(t)
	zbin := testkit.BuildPlugin(t, mod+"plugins/zalo")
	zf := zalofake.New(zalofake.Config{})
	t.Cleanup(zf.Close)
	dir := t.TempDir()
	h := hubtest.Start(t, bins, dir, channelHubConfig(bins, "  embedded: { path: "+dir+"/sb.db }", "zalo", zbin, string(zf.PluginConfig(nil))))
	ctx := testkit.Context(t, time.Minute)
	url := h.Webhooks + "/webhooks/zalo"
	user := zalofake.NewID()
	post := func(ev zalofake.Event, opts ...zalofake.SignOption) int {
		resp, err := zf.PostWebhook(ctx, url, ev, opts...)
		if err != nil {
			t.Fatalf("post webhook: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// A forged webhook is refused and queues nothing.
	if code := post(zf.Text(user, "giả mạo"), zalofake.WrongSecret()); code < 400 || code >= 500 {
		t.Fatalf("forged webhook: %d, want 4xx", code)
	}
	// A signed customer message gets a bot reply at Zalo's send endpoint.
	if code := post(zf.Text(user, "Chào shop, giá gói Pro bao nhiêu?")); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	sent, err := zf.WaitAccepted(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sent[0].UserID != user || !strings.Contains(sent[0].Text, "giá gói Pro") {
		t.Fatalf("reply %+v", sent[0])
	}
	// A person answers from Zalo's OA manager: the echo makes the bot step aside.
	if code := post(zf.OAText(user, "Dạ em là Lan, em gửi anh báo giá nhé", "admin-lan")); code != 200 {
		t.Fatalf("echo: %d", code)
	}
	if code := post(zf.Text(user, "Cảm ơn em, anh đợi nhé")); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	waitProcessed(t, h, 3)
	if n := len(zf.Accepted()); n != 1 {
		t.Fatalf("%d messages sent after an agent took over, want the first bot reply only", n)
	}
	if strings.Contains(h.Log(), "Cảm ơn em") || strings.Contains(h.Log(), user) && strings.Contains(h.Log(), `"text"`) {
		t.Error("customer text in the hub's log")
	}
}

func TestWhatsAppEndToEndWithEcho(t *testing.T) {
	bins := hubtest.Build(t)
	wbin := testkit.BuildPlugin(t, mod+"plugins/whatsapp")
	wf := wafake.New(wafake.Options{})
	t.Cleanup(wf.Close)
	dir := t.TempDir()
	h := hubtest.Start(t, bins, dir, channelHubConfig(bins, "  embedded: { path: "+dir+"/sb.db }", "wa", wbin, string(wf.ChannelConfig(nil))))
	ctx := testkit.Context(t, time.Minute)
	url := h.Webhooks + "/webhooks/wa"
	post := func(body []byte) int {
		resp, err := wf.PostWebhook(ctx, url, body)
		if err != nil {
			t.Fatalf("post webhook: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Meta's verification handshake goes through the hub to the plugin.
	resp, err := wf.VerifyWebhook(ctx, url, "challenge-123")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "challenge-123" {
		t.Fatalf("verification: %d %q", resp.StatusCode, b)
	}
	const user = "84901234567"
	if code := post(wf.Inbound(wafake.Text(user, "Hi, how much is the Pro plan?"))); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	sent, err := wf.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sent[0].To != user || !strings.Contains(sent[0].Text, "Pro plan") {
		t.Fatalf("reply %+v", sent[0])
	}
	// Coexistence: a person replies from the WhatsApp Business App.
	echo := wafake.Text(user, "Hi, this is Minh from sales, let me help you")
	echo.To = user
	if code := post(wf.Echoes(echo)); code != 200 {
		t.Fatalf("echo: %d", code)
	}
	if code := post(wf.Inbound(wafake.Text(user, "Great, thanks!"))); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	waitProcessed(t, h, 3)
	if n := len(wf.Sent()); n != 1 {
		t.Fatalf("%d messages sent after an agent took over, want the first bot reply only", n)
	}
	// A forged delivery is refused.
	req, _ := wf.NewWebhookHTTPRequest(ctx, url, wf.Inbound(wafake.Text(user, "x")))
	req.Header.Set("X-Hub-Signature-256", "sha256=00")
	fr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	fr.Body.Close()
	if fr.StatusCode < 400 || fr.StatusCode >= 500 {
		t.Fatalf("forged: %d", fr.StatusCode)
	}
}

// Two hub processes share Redis; their Zalo plugins find the access token
// expired at the same time and must spend the single-use refresh token once.
func TestZaloTokenRefreshOnceAcrossTwoHubs(t *testing.T) {
	hubtest.RequireRedis(t)
	bins := hubtest.Build(t)
	zbin := testkit.BuildPlugin(t, mod+"plugins/zalo")
	zf := zalofake.New(zalofake.Config{})
	t.Cleanup(zf.Close)
	dir := t.TempDir()
	prefix := fmt.Sprintf("sbzalo%d:", time.Now().UnixNano())
	t.Cleanup(func() { cleanRedis(prefix) })
	cfg := channelHubConfig(bins, fmt.Sprintf("  redis: { url: %q, prefix: %q }", hubtest.RedisURL(), prefix), "zalo", zbin, string(zf.PluginConfig(nil)))
	a := hubtest.Start(t, bins, dir, cfg)
	b := hubtest.Start(t, bins, dir, cfg)
	ctx := testkit.Context(t, time.Minute)
	zf.ExpireAccessTokens()
	const n = 10
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := []*hubtest.Hub{a, b}[i%2]
			resp, err := zf.PostWebhook(ctx, h.Webhooks+"/webhooks/zalo", zf.Text(zalofake.NewID(), fmt.Sprintf("xin chào %d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if _, err := zf.WaitAccepted(ctx, n); err != nil {
		t.Fatalf("replies after the refresh: %v (accepted %d)", err, len(zf.Accepted()))
	}
	uses := zf.RefreshUses()
	for tok, count := range uses {
		if count != 1 {
			t.Errorf("refresh token %.8s… used %d times", tok, count)
		}
	}
	if len(uses) == 0 {
		t.Error("no refresh happened: the test did not exercise the expired token")
	}
}
