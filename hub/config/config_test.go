package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const good = `
listen:
  webhooks: ":8080"
  admin: "127.0.0.1:8081"
store:
  redis:
    url: ${REDIS_URL}
plugins:
  - name: zalo
    kind: channel
    path: ../bin/plugins/zalo
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    env: { TZ: Asia/Ho_Chi_Minh }
    config:
      app_id: "360846524940903967"
      oa_secret_key: ${ZALO_SECRET}
      token_file: file:secret.txt
      nested: { list: [1, 2], ok: true }
  - name: brain
    kind: llm
    path: /opt/sb/claude
    call_timeout: 45s
pipeline:
  llm: brain
  dedupe_ttl: 7d
  quiet_window: 1500ms
rules:
  dir: rules
`

func TestParseGood(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("s3cr3t-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hub.yaml")
	cfg, err := Parse(path, []byte(good), env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/3", "ZALO_SECRET": "oa-secret-value"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Redis.URL != "redis://127.0.0.1:6379/3" || cfg.Store.Redis.Prefix != "sb:" {
		t.Errorf("redis: %+v", cfg.Store.Redis)
	}
	z, _ := cfg.Plugin("zalo")
	if z.Path != filepath.Join(dir, "../bin/plugins/zalo") || z.Line != 9 {
		t.Errorf("zalo path %q line %d", z.Path, z.Line)
	}
	want := `{"app_id":"360846524940903967","nested":{"list":[1,2],"ok":true},"oa_secret_key":"oa-secret-value","token_file":"s3cr3t-from-file"}`
	if string(z.ConfigJSON) != want {
		t.Errorf("config JSON\n got %s\nwant %s", z.ConfigJSON, want)
	}
	b, _ := cfg.Plugin("brain")
	if b.CallTimeout.D() != 45*time.Second || string(b.ConfigJSON) != "{}" {
		t.Errorf("brain: %+v", b)
	}
	if cfg.Pipeline.DedupeTTL.D() != 7*24*time.Hour || cfg.Pipeline.QuietWindow.D() != 1500*time.Millisecond || cfg.Pipeline.HistoryTurns != 20 {
		t.Errorf("pipeline: %+v", cfg.Pipeline)
	}
	if got := cfg.Redact("token oa-secret-value and s3cr3t-from-file"); strings.Contains(got, "secret-value") || strings.Contains(got, "s3cr3t") {
		t.Errorf("Redact left a secret: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       []string
	}{
		{"unknown key", "listen:\n  webhook: \":80\"\n", nil, []string{"hub.yaml:2: webhook is not a known key in listen"}},
		{"unknown top key", "listen: {}\nplugin: []\n", nil, []string{"hub.yaml:2: plugin is not a known key in config"}},
		{"wrong type", "pipeline:\n  workers: many\n", nil, []string{"hub.yaml:2:", "cannot unmarshal !!str `many` into int"}},
		{"bad duration", "pipeline:\n  quiet_window: soon\n", nil, []string{"hub.yaml:2:", `invalid duration "soon"`}},
		{"missing env", "store:\n  redis:\n    url: ${NOPE}\n", nil, []string{"hub.yaml:3: environment variable NOPE is not set"}},
		{"missing file", "plugins:\n  - name: a\n    kind: crm\n    path: x\n    config: { k: \"file:/does/not/exist\" }\n", nil, []string{"hub.yaml:5: secret file:"}},
		{"bad kind", "plugins:\n  - name: a\n    kind: chanel\n    path: x\n", nil, []string{"hub.yaml:2: plugin \"a\": kind \"chanel\""}},
		{"duplicate", "plugins:\n  - {name: a, kind: crm, path: x}\n  - {name: a, kind: crm, path: y}\n", nil, []string{"hub.yaml:3: plugin name \"a\" is used twice"}},
		{"bad name", "plugins:\n  - {name: Zalo OA, kind: channel, path: x}\n", nil, []string{"use lower-case letters"}},
		{"bad sha", "plugins:\n  - {name: a, kind: crm, path: x, sha256: abc}\n", nil, []string{"sha256 must be 64 hex digits"}},
		{"pipeline llm kind", "plugins:\n  - {name: a, kind: crm, path: x}\npipeline: {llm: a}\n", nil, []string{`pipeline.llm "a" is not an llm plugin`}},
		{"syntax", "listen: [\n", nil, []string{"hub.yaml:"}},
		{"admin rate limit", "admin: {rate_limit: -5}\n", nil, []string{"admin.rate_limit -5 must be a positive"}},
		{"admin audit retention", "admin: {audit_retention: -1h}\n", nil, []string{"admin.audit_retention must not be negative"}},
		{"handoff webhook without secret", "handoff: {webhook_url: \"https://h.example/n\"}\n", nil, []string{"handoff.webhook_secret is required"}},
		{"handoff webhook not http", "handoff: {webhook_url: \"ftp://h\", webhook_secret: s}\n", nil, []string{"handoff.webhook_url must be an http"}},
		{"handoff notify channel", "plugins:\n  - {name: a, kind: crm, path: x}\nhandoff: {notify_channels: {zalo: a}}\n", nil, []string{`handoff.notify_channels.zalo: "a" is not a channel plugin instance`}},
		{"handoff default status", "handoff: {default_status: busy}\n", nil, []string{`handoff.default_status "busy" must be online, away or offline`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hub.yaml", []byte(tc.yaml), env(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	_, err := Parse("hub.yaml", []byte("store:\n  redis:\n    url: ${URL}\n    bogus: 1\n"), env(map[string]string{"URL": "redis://:hunter22@h:6379"}))
	if err == nil || strings.Contains(err.Error(), "hunter22") {
		t.Errorf("error %v", err)
	}
}

func TestEmptyConfigDefaults(t *testing.T) {
	cfg, err := Parse("/etc/sb/hub.yaml", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Embedded == nil || cfg.Store.Embedded.Path != "/etc/sb/data/switchboard.db" {
		t.Errorf("default store: %+v", cfg.Store)
	}
	if cfg.Admin.RateLimit != 600 || cfg.Admin.AuditRetention.D() != 365*24*time.Hour {
		t.Errorf("default admin: %+v", cfg.Admin)
	}
	if cfg.Handoff.DefaultStatus != "online" {
		t.Errorf("default handoff: %+v", cfg.Handoff)
	}
}

func TestIngestReplicaAndProfiler(t *testing.T) {
	cfg, err := Parse("hub.yaml", []byte("listen: { pprof: \"127.0.0.1:6060\" }\npipeline: { consume: false }\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Pprof != "127.0.0.1:6060" || cfg.Pipeline.Consume == nil || *cfg.Pipeline.Consume {
		t.Errorf("listen %+v, consume %v", cfg.Listen, cfg.Pipeline.Consume)
	}
	cfg, err = Parse("hub.yaml", []byte("pipeline: { workers: 8 }\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pipeline.Consume != nil {
		t.Errorf("consume defaults to unset (consuming), got %v", *cfg.Pipeline.Consume)
	}
}

func TestPluginHost(t *testing.T) {
	cfg, err := Parse("hub.yaml", []byte("plugin_host: { min_backoff: 50ms, max_backoff: 2s, crash_loop: 1000, crash_loop_window: 10s }\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.PluginHost; h.MinBackoff.D() != 50*time.Millisecond || h.MaxBackoff.D() != 2*time.Second || h.CrashLoop != 1000 || h.CrashLoopWindow.D() != 10*time.Second {
		t.Errorf("plugin_host %+v", h)
	}
	if _, err := Parse("hub.yaml", []byte("plugin_host: { crash_loop: -1 }\n"), env(nil)); err == nil {
		t.Error("a negative crash_loop was accepted")
	}
}
