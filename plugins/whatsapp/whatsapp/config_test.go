package whatsapp

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

const (
	secretToken  = "EAAG-very-secret-token"
	secretApp    = "app-secret-42"
	secretVerify = "verify-me-please"
)

func validConfig() map[string]any {
	return map[string]any{"phone_number_id": "106540352242922", "access_token": secretToken,
		"app_secret": secretApp, "verify_token": secretVerify}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(mustJSON(validConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL != DefaultBaseURL || c.APIVersion != DefaultAPIVersion || c.SendRatePerSecond != DefaultSendRate ||
		c.SendBurst != DefaultSendBurst || !c.windowEnforced() || time.Duration(c.HTTPTimeout) != DefaultHTTPTimeout ||
		c.TemplateLanguage != DefaultTemplateLanguage {
		t.Fatalf("defaults not applied: %+v", c)
	}
	c, err = ParseConfig(mustJSON(merge(validConfig(), map[string]any{"base_url": "http://127.0.0.1:9/", "http_timeout": "3s",
		"enforce_window": false, "send_rate_per_second": 80})))
	if err != nil {
		t.Fatal(err)
	}
	if c.graphBase() != "http://127.0.0.1:9/"+DefaultAPIVersion || time.Duration(c.HTTPTimeout) != 3*time.Second ||
		c.windowEnforced() || c.SendRatePerSecond != 80 {
		t.Fatalf("overrides not applied: %+v", c)
	}

	bad := []struct {
		name  string
		patch map[string]any
		raw   string
		want  string
	}{
		{name: "not JSON", raw: `{"broken":`, want: "config"},
		{name: "empty", raw: ` `, want: "empty"},
		{name: "unknown key", patch: map[string]any{"acess_token": "typo"}, want: "acess_token"},
		{name: "no phone number id", patch: map[string]any{"phone_number_id": nil}, want: "phone_number_id"},
		{name: "phone number id not digits", patch: map[string]any{"phone_number_id": "+1 555"}, want: "phone_number_id"},
		{name: "no token", patch: map[string]any{"access_token": nil}, want: "access_token"},
		{name: "no app secret", patch: map[string]any{"app_secret": nil}, want: "app_secret"},
		{name: "relative base url", patch: map[string]any{"base_url": "graph.facebook.com"}, want: "base_url"},
		{name: "bad version", patch: map[string]any{"api_version": "25.0"}, want: "api_version"},
		{name: "negative rate", patch: map[string]any{"send_rate_per_second": -1}, want: "send_rate_per_second"},
		{name: "bad duration", patch: map[string]any{"http_timeout": "soon"}, want: "duration"},
		{name: "fallback without name", patch: map[string]any{"window_fallback_template": map[string]any{"language": "vi"}}, want: "window_fallback_template.name"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if tc.raw == "" {
				raw = mustJSON(merge(validConfig(), tc.patch))
			}
			_, err := ParseConfig(raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
			for _, s := range []string{secretToken, secretApp, secretVerify} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
			cerr := New().Configure(context.Background(), sdk.ConfigureRequest{Config: raw, Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))})
			if sdk.CodeOf(cerr) != sdk.CodeInvalid {
				t.Fatalf("Configure: %v, want invalid", cerr)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	m, err := New().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != ChannelName || m.Kind != sdk.KindChannel || m.Version == "" {
		t.Fatalf("manifest %+v", m)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
		Required   []string       `json:"required"`
	}
	if err := json.Unmarshal(m.ConfigSchema, &schema); err != nil {
		t.Fatalf("config schema is not JSON: %v", err)
	}
	// Every config key is in the schema, and nothing else.
	var keys []string
	b, _ := json.Marshal(Config{EnforceWindow: new(bool), WindowFallbackTemplate: &TemplateConfig{}})
	var asMap map[string]any
	_ = json.Unmarshal(b, &asMap)
	for k := range asMap {
		keys = append(keys, k)
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("config key %q missing from the schema", k)
		}
	}
	if len(keys) != len(schema.Properties) {
		t.Errorf("schema has %d properties, Config %d keys", len(schema.Properties), len(keys))
	}
}

// TestNoSecretsOrPIIInLogs drives webhooks (good and forged), sends and
// failures, then checks the hub-bound log: no secret anywhere, and no
// customer phone number or message text at info level or above.
func TestNoSecretsOrPIIInLogs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, wafake.Options{AccessToken: secretToken, AppSecret: secretApp, VerifyToken: secretVerify},
		map[string]any{"window_fallback_template": map[string]any{"name": "reopen"}})
	const text = "my card number is 4111"
	e.webhook(e.fake.WebhookRequest(e.fake.Inbound(wafake.Text(customer, text))))
	e.webhook(e.fake.ForgedWebhookRequest(e.fake.Inbound(wafake.Text(customer, text))))
	e.webhook(e.fake.WebhookRequest([]byte("{not json")))
	e.webhook(e.fake.VerificationRequest("subscribe", "wrong", "1"))
	e.webhook(e.fake.VerificationRequest("subscribe", secretVerify, "2"))
	e.webhook(e.fake.WebhookRequest(e.fake.AccountError(wafake.ErrThroughput())))
	_, _ = e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "a", To: toCustomer, Text: text})
	_, _ = e.conn.Send(ctx, &sdk.Outbound{To: sdk.Identity{UserID: "84900000001"}, Text: text}) // fallback template
	e.fake.FailNext(wafake.ErrGeneric())
	_, _ = e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "b", To: toCustomer, Text: text})
	e.fake.ExpireToken()
	_, _ = e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "c", To: toCustomer, Text: text})

	logs := e.host.Logs()
	for _, l := range logs {
		t.Logf("%s %s %v", l.Level, l.Message, l.Attrs)
	}
	if len(logs) == 0 {
		t.Fatal("nothing logged; the test would prove nothing")
	}
	for _, l := range logs {
		line := l.Message
		for k, v := range l.Attrs {
			line += " " + k + "=" + v
		}
		for _, s := range []string{secretToken, secretApp, secretVerify} {
			if strings.Contains(line, s) {
				t.Errorf("log leaks a secret: %s", line)
			}
		}
		if l.Level >= 0 { // info and above
			for _, pii := range []string{customer, "84900000001", text} {
				if strings.Contains(line, pii) {
					t.Errorf("info log carries customer data %q: %s", pii, line)
				}
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}
