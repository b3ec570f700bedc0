package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

const (
	mod       = "github.com/switchboard-hub/switchboard/"
	secret    = "admin-test-secret"
	bootstrap = "bootstrap-key-for-tests-0123456789"
	bootEnv   = "SB_ADMIN_TEST_BOOTSTRAP"
)

// testHub is a whole hub in this process: real store on disk, real plugin
// subprocesses, real HTTP on loopback, the admin API mounted.
type testHub struct {
	t        *testing.T
	app      *app.App
	base     string // http://addr/admin/v1
	webhooks string
	sink     *hubtest.Sink
	rulesDir string
	keys     map[string]string // role (or "agent:ID") → key
	log      *syncBuf
	stop     func() // stops the hub and waits for it
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type hubOpts struct {
	rateLimit int
	extra     string // more YAML
	now       func() time.Time
	// rules replaces the example rule set with this one file.
	rules string
	// noRules runs the hub without rules (and so without assignment).
	noRules bool
	// metrics is listen.metrics.
	metrics string
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func startHub(t *testing.T, o hubOpts) *testHub {
	t.Helper()
	ch := testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testchannel")
	llm := testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testllm")
	crm := testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testcrm")
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if o.rules != "" {
		if err := os.WriteFile(filepath.Join(rulesDir, "rules.yaml"), []byte(o.rules), 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		copyDir(t, "../../examples/rules", rulesDir)
	}
	sink := hubtest.NewSink(t)
	rulesLine := "rules: {dir: " + rulesDir + "}"
	if o.noRules {
		rulesLine = ""
	}
	if o.rateLimit == 0 {
		o.rateLimit = 100000
	}
	yaml := fmt.Sprintf(`
listen:
  webhooks: "%s"
  admin: "%s"
  metrics: "%s"
store:
  embedded: { path: %s/sb.db, no_sync: true }
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s }
  - { name: crm, kind: crm, path: %s }
%s
pipeline:
  llm: brain
  crm: crm
  retry_base: 20ms
  max_deliveries: 2
admin:
  bootstrap_key_env: %s
  rate_limit: %d
%s`, hubtest.FreeAddr(t), hubtest.FreeAddr(t), o.metrics, dir, ch, secret, sink.URL(), llm, crm, rulesLine, bootEnv, o.rateLimit, o.extra)
	cfg, err := config.Parse(filepath.Join(dir, "hub.yaml"), []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuf{}
	var api *admin.API
	mount := app.WithMount(func(a *app.App) {
		ao := admin.Options{EventPoll: 20 * time.Millisecond, Heartbeat: 200 * time.Millisecond, Now: o.now,
			Getenv: func(k string) string {
				if k == bootEnv {
					return bootstrap
				}
				return ""
			}}
		api = admin.New(a, ao)
		api.Register(a.AdminRouter())
	})
	a, err := app.New(ctx, cfg, logs, mount)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready:
	case err := <-done:
		cancel()
		t.Fatalf("hub did not start: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("hub not ready after 60s\n%s", logs.String())
	}
	h := &testHub{t: t, app: a, base: "http://" + a.AdminAddr + admin.Prefix, webhooks: "http://" + a.WebhookAddr,
		sink: sink, rulesDir: rulesDir, keys: map[string]string{"admin": bootstrap}, log: logs}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("hub did not stop")
			}
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("hub log:\n%s", tail(logs.String(), 6000))
		}
	})
	return h
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var client = &http.Client{Timeout: 30 * time.Second}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem decodes a problem+json answer, checking its media type.
func (r resp) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with content type %q, not a problem: %s", r.status, ct, r.body)
	}
	var m map[string]any
	r.json(t, &m)
	return m
}

func problemType(m map[string]any) string {
	s, _ := m["type"].(string)
	return strings.TrimPrefix(s, admin.ProblemBase)
}

// do calls the API with key ("" for none); body may be nil, a string or
// anything JSON-encodable.
func (h *testHub) do(method, path, key string, body any, header ...string) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = h.base + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// mustDo is do that fails the test unless the status is want.
func (h *testHub) mustDo(want int, method, path, key string, body any, header ...string) resp {
	h.t.Helper()
	r := h.do(method, path, key, body, header...)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// key creates a key through the API and remembers it.
func (h *testHub) key(role, agent string) string {
	h.t.Helper()
	body := map[string]any{"name": "test " + role + " " + agent, "role": role}
	if agent != "" {
		body["agent"] = agent
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	h.mustDo(201, "POST", "/keys", bootstrap, body).json(h.t, &k)
	name := role
	if agent != "" {
		name = "agent:" + agent
	}
	h.keys[name] = k.Key
	return k.Key
}

// seedConv writes a conversation straight into the store.
func (h *testHub) seedConv(id string, f func(*pipeline.Conversation)) {
	h.t.Helper()
	_, err := h.app.Pipeline.Conversations().Update(context.Background(), id, func() *pipeline.Conversation {
		return &pipeline.Conversation{Instance: "test", Channel: "test", Key: strings.TrimPrefix(id, "test:")}
	}, func(c *pipeline.Conversation) error { f(c); return nil })
	if err != nil {
		h.t.Fatal(err)
	}
}

// post sends a signed test-channel webhook.
func (h *testHub) post(msgs ...testplugins.WebhookMessage) {
	h.t.Helper()
	code, err := hubtest.PostTest(context.Background(), h.webhooks, "test", secret, msgs...)
	if err != nil || code != 200 {
		h.t.Fatalf("webhook: %d %v", code, err)
	}
}

// convID is the hub's id of the test channel's conversation with user.
func convID(user string) string { return pipeline.ConvID("test", "test:test:"+user) }

func esc(id string) string { return url.PathEscape(id) }

// waitConv waits until the conversation satisfies cond.
func (h *testHub) waitConv(id string, what string, cond func(*pipeline.Conversation) bool) *pipeline.Conversation {
	h.t.Helper()
	var got *pipeline.Conversation
	hubtest.Eventually(h.t, 30*time.Second, what, func() bool {
		c, _, err := h.app.Pipeline.Conversations().Get(context.Background(), id)
		if err != nil {
			return false
		}
		got = c
		return cond(c)
	})
	return got
}
