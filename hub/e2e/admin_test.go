package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// adminConfig is a hub with the example rules, its admin API on its own
// listener, and the test harness's bootstrap admin key.
func adminConfig(bins hubtest.Bins, sink, store, rulesDir, web, adm string, rateLimit int) string {
	return fmt.Sprintf(`
listen:
  webhooks: %q
  admin: %q
store:
%s
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s }
  - { name: crm, kind: crm, path: %s }
rules:
  dir: %s
pipeline:
  llm: brain
  crm: crm
  lease_ttl: 2s
admin:
  bootstrap_key_env: %s
  rate_limit: %d
`, web, adm, store, bins.Channel, secret, sink, bins.LLM, bins.CRM, rulesDir, hubtest.AdminKeyEnv, rateLimit)
}

func copyRules(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rules")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("../../examples/rules")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("../../examples/rules", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// api calls the admin API of a hub.
func api(t *testing.T, h *hubtest.Hub, method, path, key string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.Admin+"/admin/v1"+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

func mustAPI(t *testing.T, h *hubtest.Hub, want int, method, path, key string, body, into any) {
	t.Helper()
	code, b, _ := api(t, h, method, path, key, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// keysCLI runs `switchboard keys ...` and returns its exit code and output.
func keysCLI(bins hubtest.Bins, cfgPath string, args ...string) (int, string, string) {
	cmd := exec.Command(bins.Hub, append(append([]string{"keys"}, args...), "--config", cfgPath)...)
	cmd.Env = append(os.Environ(), hubtest.AdminKeyEnv+"="+hubtest.TestAdminKey)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return code, out.String(), errb.String()
}

// events follows a hub's event stream.
type sse struct {
	id, event string
	data      map[string]any
}

func follow(t *testing.T, h *hubtest.Hub, key string) (<-chan sse, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.Admin+"/admin/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		cancel()
		t.Fatalf("events: %v %v", res, err)
	}
	ch := make(chan sse, 256)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					ch <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &ev.data)
			}
		}
	}()
	return ch, cancel
}

func await(t *testing.T, ch <-chan sse, what string, cond func(sse) bool) sse {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			if cond(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within 30s", what)
		}
	}
}

// TestAdminAPIEmbedded drives a real hub process through its admin API:
// keys from the CLI, auth on /metrics, a dry run that explains a hot lead,
// a reload refused for a bad file, a message sent as an agent, and an event
// stream that outlives the listener's write timeout.
func TestAdminAPIEmbedded(t *testing.T) {
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	rulesDir := copyRules(t)
	web, adm := hubtest.FreeAddr(t), hubtest.FreeAddr(t)
	cfgPath := filepath.Join(dir, "hub.yaml")
	cfg := adminConfig(bins, sink.URL(), "  embedded: { path: "+dir+"/sb.db }", rulesDir, web, adm, 600)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Keys made with the CLI before the hub starts; the key is printed once.
	code, supKey, stderr := keysCLI(bins, cfgPath, "create", "--role", "supervisor", "--name", "floor lead", "--expires", "720h")
	supKey = strings.TrimSpace(supKey)
	if code != 0 || !strings.HasPrefix(supKey, "sb_") || !strings.Contains(stderr, "this once") {
		t.Fatalf("keys create: %d %q %s", code, supKey, stderr)
	}
	if code, _, stderr := keysCLI(bins, cfgPath, "create", "--role", "agent", "--name", "x"); code != 2 || !strings.Contains(stderr, "--agent") {
		t.Errorf("agent key without --agent: %d %s", code, stderr)
	}
	code, list, _ := keysCLI(bins, cfgPath, "list")
	if code != 0 || !strings.Contains(list, "floor lead") || !strings.Contains(list, "supervisor") || strings.Contains(list, supKey) {
		t.Errorf("keys list: %d\n%s", code, list)
	}

	h := hubtest.StartFile(t, bins, cfgPath, "http://"+web, "http://"+adm)
	// While the hub holds the embedded store, the CLI says what to do instead.
	if code, _, stderr := keysCLI(bins, cfgPath, "create", "--role", "viewer", "--name", "late"); code != 1 || !strings.Contains(stderr, "POST /admin/v1/keys") {
		t.Errorf("keys create on a running embedded hub: %d %s", code, stderr)
	}
	var me map[string]any
	mustAPI(t, h, 200, "GET", "/me", supKey, nil, &me)
	if me["role"] != "supervisor" || me["name"] != "floor lead" {
		t.Errorf("me: %v", me)
	}
	for _, c := range []struct {
		path, key string
		want      int
	}{{"/metrics", "", 401}, {"/metrics", supKey, 200}, {"/healthz", "", 200}, {"/readyz", "", 200}} {
		req, _ := http.NewRequest("GET", h.Admin+c.path, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != c.want {
			t.Errorf("GET %s: %v %v, want %d", c.path, res.StatusCode, err, c.want)
		}
		if err == nil {
			res.Body.Close()
		}
	}
	stream, stop := follow(t, h, supKey)
	defer stop()
	opened := time.Now()

	// A dry run explains a hot lead.
	var dry struct {
		Decision struct {
			Score   int
			Tier    string
			Handoff *struct{ Rule string }
		}
		Explain string
		Trace   []map[string]any
	}
	mustAPI(t, h, 200, "POST", "/rules/dry-run", supKey, map[string]any{"input": map[string]any{
		"message": map[string]any{"text": "Tôi là giám đốc, cần CRM gấp, báo giá giúp"},
		"lead":    map[string]any{"decision_maker": true, "need": "CRM cho 20 người", "timeline": "tuần này", "budget": "50 triệu"},
	}}, &dry)
	if dry.Decision.Tier != "hot" || dry.Decision.Handoff == nil || dry.Decision.Handoff.Rule != "hot lead" ||
		!strings.Contains(dry.Explain, "decision maker: +30") || len(dry.Trace) == 0 {
		t.Errorf("dry run: %+v\n%s", dry.Decision, dry.Explain)
	}

	// A bad file in the rules directory: the reload is refused, the running set stays.
	var before struct{ Version string }
	mustAPI(t, h, 200, "GET", "/rules", supKey, nil, &before)
	if err := os.WriteFile(filepath.Join(rulesDir, "60-broken.yaml"), []byte("routing:\n  - when: tier ==\n    team: sales\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body, hdr := api(t, h, "POST", "/rules/reload", hubtest.TestAdminKey, nil)
	if code != 422 || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), "60-broken.yaml:2:") ||
		!strings.Contains(string(body), "rules-invalid") {
		t.Errorf("reload: %d %s", code, body)
	}
	var after struct{ Version string }
	mustAPI(t, h, 200, "GET", "/rules", supKey, nil, &after)
	if after.Version != before.Version {
		t.Errorf("a refused reload changed the version %s -> %s", before.Version, after.Version)
	}

	// A customer writes; the supervisor answers as an agent through the channel.
	if code, err := hubtest.PostTest(context.Background(), h.Webhooks, "test", secret,
		testplugins.WebhookMessage{ID: "a1", User: "khach", Text: "Cho mình hỏi giá gói Pro"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	conv := "test:test:test:khach"
	msg := await(t, stream, "the new message event", func(e sse) bool { return e.event == "message" && e.data["conv"] == conv })
	hubtest.Eventually(t, 30*time.Second, "the bot's reply", func() bool {
		for _, m := range sink.Messages() {
			if m.To == "khach" {
				return true
			}
		}
		return false
	})
	var sent struct {
		State             string `json:"state"`
		ProviderMessageID string `json:"provider_message_id"`
	}
	mustAPI(t, h, 201, "POST", "/conversations/"+url.PathEscape(conv)+"/messages", supKey, map[string]any{"text": "Dạ gói Pro 500k/tháng ạ", "agent": "lan"}, &sent)
	if sent.State != "human" {
		t.Errorf("after the agent message: %+v", sent)
	}
	hubtest.Eventually(t, 10*time.Second, "the agent message at the sink", func() bool {
		for _, m := range sink.Messages() {
			if m.Text == "Dạ gói Pro 500k/tháng ạ" {
				return true
			}
		}
		return false
	})
	var detail struct {
		State   string
		History []struct{ Role, Text string }
	}
	mustAPI(t, h, 200, "GET", "/conversations/"+url.PathEscape(conv), supKey, nil, &detail)
	if last := detail.History[len(detail.History)-1]; detail.State != "human" || last.Role != "agent" {
		t.Errorf("conversation: %s %+v", detail.State, detail.History)
	}
	await(t, stream, "the agent message event", func(e sse) bool { return e.data["kind"] == "agent_message" && e.data["conv"] == conv })

	// The stream outlives the listener's 10s write timeout.
	time.Sleep(time.Until(opened.Add(11 * time.Second)))
	if code, err := hubtest.PostTest(context.Background(), h.Webhooks, "test", secret,
		testplugins.WebhookMessage{ID: "a2", User: "khach2", Text: "alo"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	late := await(t, stream, "an event after 11s", func(e sse) bool { return e.data["conv"] == "test:test:test:khach2" })
	if late.id == msg.id {
		t.Errorf("same event id twice")
	}

	// Everything that changed state is in the audit log.
	var audit struct {
		Items []struct {
			Action string
			Status int
			Actor  struct{ Name string }
		}
	}
	mustAPI(t, h, 200, "GET", "/audit", supKey, nil, &audit)
	var got []string
	for _, e := range audit.Items {
		got = append(got, fmt.Sprintf("%s %d %s", e.Action, e.Status, e.Actor.Name))
	}
	want := []string{"keys.create 201 switchboard keys", "rules.dry_run 200 floor lead", "rules.reload 422 bootstrap key", "conversations.send 201 floor lead"}
	if len(got) != len(want) {
		t.Fatalf("audit: %v", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("audit %d: %q, want %q…", i, got[i], want[i])
		}
	}
	if err := h.Stop(15 * time.Second); err != nil {
		t.Errorf("stop with an open event stream: %v", err)
	}
}

// TestAdminAPITwoHubsOnRedis: keys, revocation, rate limits and events are
// shared by replicas through the store.
func TestAdminAPITwoHubsOnRedis(t *testing.T) {
	hubtest.RequireRedis(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	rulesDir := copyRules(t)
	prefix := fmt.Sprintf("sbadm%d:", time.Now().UnixNano())
	t.Cleanup(func() { cleanRedis(prefix) })
	store := fmt.Sprintf("  redis: { url: %q, prefix: %q }", hubtest.RedisURL(), prefix)
	start := func() (*hubtest.Hub, string) {
		web, adm := hubtest.FreeAddr(t), hubtest.FreeAddr(t)
		path := filepath.Join(dir, fmt.Sprintf("hub-%d.yaml", time.Now().UnixNano()))
		if err := os.WriteFile(path, []byte(adminConfig(bins, sink.URL(), store, rulesDir, web, adm, 10)), 0o600); err != nil {
			t.Fatal(err)
		}
		return hubtest.StartFile(t, bins, path, "http://"+web, "http://"+adm), path
	}
	a, cfgPath := start()
	b, _ := start()

	// A key made with the CLI while both run works on both at once.
	code, key, stderr := keysCLI(bins, cfgPath, "create", "--role", "viewer", "--name", "dashboard")
	key = strings.TrimSpace(key)
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, stderr)
	}
	mustAPI(t, a, 200, "GET", "/me", key, nil, nil)
	mustAPI(t, b, 200, "GET", "/me", key, nil, nil)

	// One budget of 10 requests a minute per key across both replicas. A
	// burst that straddles a minute boundary is run again with a new key.
	for attempt := 0; ; attempt++ {
		var k struct{ Key string }
		mustAPI(t, a, 201, "POST", "/keys", hubtest.TestAdminKey, map[string]any{"name": "burst", "role": "viewer"}, &k)
		window := time.Now().Unix() / 60
		ok, limited := 0, 0
		for i := 0; i < 14; i++ {
			hub := a
			if i%2 == 1 {
				hub = b
			}
			c, _, hdr := api(t, hub, "GET", "/me", k.Key, nil)
			switch {
			case c == 200:
				ok++
			case c == 429 && hdr.Get("Retry-After") != "":
				limited++
			default:
				t.Fatalf("burst: %d", c)
			}
		}
		if time.Now().Unix()/60 != window && attempt == 0 {
			continue
		}
		if ok != 10 || limited != 4 {
			t.Errorf("14 requests over two replicas: %d accepted, %d limited; want 10 and 4", ok, limited)
		}
		break
	}

	// Events of messages the other replica handles reach this one's stream.
	admKey := hubtest.TestAdminKey
	stream, stop := follow(t, a, admKey)
	defer stop()
	for i := 0; i < 4; i++ {
		if code, err := hubtest.PostTest(context.Background(), b.Webhooks, "test", secret,
			testplugins.WebhookMessage{ID: fmt.Sprintf("r%d", i), User: fmt.Sprintf("u%d", i), Text: "xin chào"}); err != nil || code != 200 {
			t.Fatalf("webhook: %d %v", code, err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 4 {
		e := await(t, stream, "message events from the other replica", func(e sse) bool { return e.event == "message" && e.data["kind"] == "message" })
		seen[e.data["conv"].(string)] = true
	}

	// Revoked on one replica, refused on the other at once.
	id := strings.Split(strings.TrimPrefix(key, "sb_"), "_")[0]
	mustAPI(t, b, 200, "DELETE", "/keys/"+id, admKey, nil, nil)
	if c, body, _ := api(t, a, "GET", "/me", key, nil); c != 401 {
		t.Errorf("revoked key on the other replica: %d %s", c, body)
	}
}
