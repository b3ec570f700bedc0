package claude

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

const testdata = "../testdata"

func abs(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startFake serves a fake on loopback that caches even short prompts.
func startFake(t testing.TB, opts ...claudefake.Option) *claudefake.Server {
	t.Helper()
	f := claudefake.New(append([]claudefake.Option{claudefake.WithCacheMinTokens(0)}, opts...)...)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// testConfig is a working config pointed at the fake, with over merged in
// (a nil value deletes a key).
func testConfig(t testing.TB, f *claudefake.Server, over map[string]any) json.RawMessage {
	t.Helper()
	c := map[string]any{
		"api_key":             claudefake.DefaultAPIKey,
		"base_url":            f.URL(),
		"system_prompt_file":  abs(t, "system_prompt.txt"),
		"knowledge_file":      abs(t, "knowledge.yaml"),
		"retry_after_default": "5s",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newPlugin configures a plugin against a memory host and returns both.
func newPlugin(t testing.TB, cfg json.RawMessage, opts ...Option) (*Plugin, *sdk.MemoryHost) {
	t.Helper()
	host := sdk.NewMemoryHost(nil)
	p := New(opts...)
	if err := p.Configure(context.Background(), sdk.ConfigureRequest{Instance: "test", Config: cfg, Host: sdk.HostFromBackend(host)}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p, host
}

// ask builds a request whose history is the given customer messages.
func ask(conv string, customer ...string) *sdk.GenerateRequest {
	r := &sdk.GenerateRequest{ConversationKey: conv}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i, text := range customer {
		r.History = append(r.History, sdk.Turn{Role: "customer", Text: text, At: at.Add(time.Duration(i) * time.Minute)})
	}
	return r
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// facts is a valid answer for the built-in schema.
func facts(reply string) map[string]any {
	return map[string]any{
		"reply": reply, "intent": "quote", "need": "CRM cho 10 người", "budget": nil, "timeline": "tháng này",
		"decision_maker": true, "lead_estimate": 70, "action": "ask_info", "confidence": 0.8,
	}
}

func mustValid(t testing.TB, structured json.RawMessage) map[string]any {
	t.Helper()
	s, err := CompileSchema(LeadFactsSchema())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateJSON(structured); err != nil {
		t.Fatalf("structured output invalid: %v: %s", err, structured)
	}
	var m map[string]any
	_ = json.Unmarshal(structured, &m)
	return m
}
