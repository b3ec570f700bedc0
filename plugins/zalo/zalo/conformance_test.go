package zalo_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalo"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

const pluginPkg = "github.com/switchboard-hub/switchboard/plugins/zalo"

// fixture drives the channel suite with webhooks signed by the fake and
// sends answered by it.
func fixture(t *testing.T) (*zalofake.Server, testkit.ChannelFixture) {
	fake := zalofake.New(zalofake.Config{})
	t.Cleanup(fake.Close)
	recipient := zalofake.NewID()
	return fake, testkit.ChannelFixture{
		Config: fake.PluginConfig(nil),
		ValidWebhook: func(t *testing.T, n int) *sdk.WebhookRequest {
			// A user per n, with an id above 2^53, and a message id per n.
			user := fmt.Sprintf("1%018d", n)
			return fake.WebhookRequest(fake.UserSend("text", user, zalofake.Message{
				MsgID: fmt.Sprintf("c0nf%015x", n), Text: fmt.Sprintf("Xin chào %d", n)}))
		},
		ForgedWebhook: func(t *testing.T) *sdk.WebhookRequest {
			return fake.WebhookRequest(fake.Text(recipient, "forged"), zalofake.WrongSecret())
		},
		Recipient: sdk.Identity{Channel: "zalo", UserID: recipient},
	}
}

func TestConformanceInProcess(t *testing.T) {
	_, fx := fixture(t)
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
		return testkit.StartChannel(t, zalo.New())
	}, fx)
}

// TestConformanceSubprocess runs the built plugin binary as the hub does.
func TestConformanceSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	bin := testkit.BuildPlugin(t, pluginPkg)
	_, fx := fixture(t)
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
		return testkit.LaunchChannel(t, bin)
	}, fx)
}

// TestTwoProcessesRefreshOnce: two plugin processes (two hub replicas) on
// one store meet an expired token at once; Zalo sees the refresh token
// used exactly once and every send goes through.
func TestTwoProcessesRefreshOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("launches two plugin processes")
	}
	bin := testkit.BuildPlugin(t, pluginPkg)
	fake, fx := fixture(t)
	host := sdk.NewMemoryHost(nil)
	var replicas []*sdk.RemoteChannel
	for range 2 {
		r := testkit.LaunchChannel(t, bin)
		if err := r.Configure(testkit.Context(t, 10*time.Second), "zalo", fx.Config, host, "test"); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
	}
	fake.ExpireAccessTokens()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := replicas[i%2].Send(testkit.Context(t, 20*time.Second), &sdk.Outbound{
				IdempotencyKey: fmt.Sprint("two-proc-", i), To: fx.Recipient, Type: "text", Text: fmt.Sprint("m", i)})
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := len(fake.TokenRequests()); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	for tok, n := range fake.RefreshUses() {
		if n != 1 {
			t.Errorf("refresh token …%s used %d times", tok[len(tok)-4:], n)
		}
	}
	if n := len(fake.Accepted()); n != 12 {
		t.Errorf("%d messages accepted, want 12", n)
	}
}

// TestDescribeSubcommand: `zalo describe` prints the manifest as JSON on
// stdout and nothing else.
func TestDescribeSubcommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := testkit.BuildPlugin(t, pluginPkg)
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var m sdk.Manifest
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.More() {
		t.Fatalf("describe printed more than the manifest: %v\n%s", err, out)
	}
	if m.Name != "zalo" || m.Kind != sdk.KindChannel || !json.Valid(m.ConfigSchema) {
		t.Errorf("manifest %+v", m)
	}
}
