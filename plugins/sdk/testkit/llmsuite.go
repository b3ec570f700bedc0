package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// LLMFixture tells the LLM suite how to run a plugin.
type LLMFixture struct {
	Config json.RawMessage
	// Schema is the output schema to ask for; its top-level "required"
	// properties are checked in the answer.
	Schema json.RawMessage
	Host   sdk.HostBackend
}

// RunLLMSuite checks the behaviour every LLM plugin owes the hub.
func RunLLMSuite(t *testing.T, start func(t *testing.T) *sdk.RemoteLLM, fx LLMFixture) {
	configured := func(t *testing.T) *sdk.RemoteLLM {
		t.Helper()
		c := start(t)
		host := fx.Host
		if host == nil {
			host = sdk.NewMemoryHost(nil)
		}
		if err := c.Configure(Context(t, 10*time.Second), "conformance", fx.Config, host, "testkit"); err != nil {
			t.Fatalf("Configure: %v", err)
		}
		return c
	}
	request := func(n int) *sdk.GenerateRequest {
		return &sdk.GenerateRequest{
			IdempotencyKey:  fmt.Sprintf("conformance-%d", n),
			ConversationKey: fmt.Sprintf("conformance:conv:%d", n),
			System:          "You are the sales assistant of a small Vietnamese software company.",
			Context:         "Customer: Nguyễn Văn An, first contact.",
			History: []sdk.Turn{
				{Role: "customer", Text: "Chào shop, cho mình hỏi giá phần mềm CRM cho 10 người?", At: time.Now().Add(-time.Minute)},
			},
			OutputSchema: fx.Schema,
			MaxTokens:    512,
		}
	}

	t.Run("Describe", func(t *testing.T) {
		m, err := start(t).Describe(Context(t, 5*time.Second))
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		checkManifest(t, m, sdk.KindLLM)
	})

	t.Run("Generate", func(t *testing.T) {
		c := configured(t)
		res, err := c.Generate(Context(t, 30*time.Second), request(1))
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if res.Text == "" && len(res.Structured) == 0 {
			t.Fatal("Generate returned neither text nor structured output")
		}
		if res.Model == "" {
			t.Error("Generate did not say which model answered")
		}
		u := res.Usage
		if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadTokens < 0 || u.CacheWriteTokens < 0 || u.CostUSD < 0 {
			t.Errorf("negative usage: %+v", u)
		}
		if !res.Fallback && u.InputTokens+u.CacheReadTokens+u.CacheWriteTokens == 0 {
			t.Errorf("a model call that counted no input tokens: %+v", u)
		}
		if len(fx.Schema) > 0 && len(res.Structured) > 0 {
			checkRequired(t, fx.Schema, res.Structured)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		c := configured(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Generate(ctx, request(2)); err == nil {
			t.Error("Generate with a cancelled context succeeded")
		}
	})

	t.Run("Parallel", func(t *testing.T) {
		c := configured(t)
		for _, err := range parallel(8, func(i int) error {
			_, err := c.Generate(Context(t, 30*time.Second), request(10+i))
			return err
		}) {
			t.Error(err)
		}
	})
}

// checkRequired verifies the answer is a JSON object holding every
// top-level required property of the schema.
func checkRequired(t *testing.T, schema, doc json.RawMessage) {
	t.Helper()
	var s struct {
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatalf("fixture schema: %v", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		t.Fatalf("structured output is not a JSON object: %v: %s", err, doc)
	}
	for _, k := range s.Required {
		if _, ok := obj[k]; !ok {
			t.Errorf("structured output lacks required %q: %s", k, doc)
		}
	}
}
