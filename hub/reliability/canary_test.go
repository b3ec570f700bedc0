package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

// WhatsApp customers (whose user id is their phone number) whose messages
// fail, are retried and are dead-lettered: the warnings and errors the
// hub logs about them show no phone number, name or email raw.
func TestCanariesInFailureLogs(t *testing.T) {
	m := suite(t)
	bins := hubtest.Build(t)
	wbin := testkit.BuildPlugin(t, mod+"plugins/whatsapp")
	wf := wafake.New(wafake.Options{IgnoreWindow: true})
	t.Cleanup(wf.Close)
	dir := t.TempDir()
	hub := hubtest.Start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - { name: wa, kind: channel, path: %s, config: %s }
  - { name: brain, kind: llm, path: %s, config: { error_on: "FAIL" } }
pipeline: { llm: brain, retry_base: 20ms, retry_max: 100ms }
`, dir, wbin, wf.ChannelConfig(nil), bins.LLM))
	n := m.n(20, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range n {
		phone := fmt.Sprintf("849123%05d", i)
		msg := wafake.Text(phone, fmt.Sprintf("FAIL: em là %s, sđt 09123 %02d %03d, canary.hong.%d@example.vn", canaryName, i/1000, i%1000, i))
		msg.Name = canaryName
		resp, err := wf.PostWebhook(ctx, hub.Webhooks+"/webhooks/wa", wf.Inbound(msg))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("webhook: %d", resp.StatusCode)
		}
	}
	hubtest.Eventually(t, time.Minute, "every message dead-lettered", func() bool {
		return hub.Metric("switchboard_dead_letters_total") >= float64(n)
	})
	found := checkCanaries(t, hub.Log())
	report(t, m, "%d WhatsApp customers' messages failed 5 times each and were dead-lettered: canaries found raw in %d log lines", n, found)
}
