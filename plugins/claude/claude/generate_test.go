package claude

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

func TestStructuredOutputModes(t *testing.T) {
	noReply := facts("")
	delete(noReply, "reply")
	tests := []struct {
		name       string
		model      string
		modes      map[string]any
		reply      claudefake.Reply
		wantMode   claudefake.Mode
		wantText   string
		wantSource string
	}{
		{name: "forced tool on haiku 4.5", model: "claude-haiku-4-5",
			reply: claudefake.FactsReply(facts("Dạ, anh cần bao nhiêu người dùng ạ?")), wantMode: claudefake.ModeTool,
			wantText: "Dạ, anh cần bao nhiêu người dùng ạ?"},
		{name: "forced tool on a dated haiku id", model: "claude-haiku-4-5-20251001",
			reply: claudefake.FactsReply(facts("Dạ vâng ạ.")), wantMode: claudefake.ModeTool, wantText: "Dạ vâng ạ."},
		{name: "json_schema on sonnet 5.5", model: "claude-sonnet-5-5",
			reply: claudefake.FactsReply(facts("Dạ, em gửi anh thông tin ạ.")), wantMode: claudefake.ModeJSONSchema,
			wantText: "Dạ, em gửi anh thông tin ạ."},
		{name: "data block when the model ignores the forced tool", model: "claude-haiku-4-5",
			reply:    claudefake.DataBlockReply("Dạ, anh cho em xin số người dùng nhé.", noReply),
			wantMode: claudefake.ModeTool, wantText: "Dạ, anh cho em xin số người dùng nhé."},
		{name: "data block when the model ignores the json schema", model: "claude-sonnet-5-5",
			reply:    claudefake.DataBlockReply("Hello! How many users?", facts("Hello! How many users?")),
			wantMode: claudefake.ModeJSONSchema, wantText: "Hello! How many users?"},
		{name: "json in a code fence", model: "claude-sonnet-5-5",
			reply:    claudefake.RawReply("```json\n" + string(mustJSONBytes(facts("Dạ vâng."))) + "\n```"),
			wantMode: claudefake.ModeJSONSchema, wantText: "Dạ vâng."},
		{name: "text mode by config", model: "claude-sonnet-5-5", modes: map[string]any{"claude-sonnet-5-5": "text"},
			reply: claudefake.FactsReply(facts("Dạ có ạ.")), wantMode: claudefake.ModeText, wantText: "Dạ có ạ."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			over := map[string]any{"model": tt.model}
			if tt.modes != nil {
				over["structured_mode"] = tt.modes
			}
			p, _ := newPlugin(t, testConfig(t, f, over))
			f.Script("conv-1", tt.reply)
			res, err := p.Generate(ctxT(t), ask("conv-1", "Cho em hỏi giá phần mềm CRM?"))
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if res.Fallback {
				t.Fatalf("unexpected fallback %q", res.FallbackReason)
			}
			if got := f.Requests()[0].Mode; got != tt.wantMode {
				t.Errorf("request mode %q, want %q", got, tt.wantMode)
			}
			if res.Text != tt.wantText {
				t.Errorf("Text %q, want %q", res.Text, tt.wantText)
			}
			got := mustValid(t, res.Structured)
			if got["reply"] != tt.wantText {
				t.Errorf("structured reply %q, want %q", got["reply"], tt.wantText)
			}
			if got["intent"] != "quote" || got["lead_estimate"] != float64(70) {
				t.Errorf("facts not carried over: %v", got)
			}
			if res.Model != tt.model {
				t.Errorf("Model %q, want %q", res.Model, tt.model)
			}
		})
	}
}

func mustJSONBytes(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestInvalidOutputFallsBackSafely(t *testing.T) {
	bad := func(mut func(m map[string]any)) claudefake.Reply {
		m := facts("Dạ vâng ạ.")
		mut(m)
		return claudefake.FactsReply(m)
	}
	tests := []struct {
		name       string
		reply      claudefake.Reply
		customer   string
		wantReason string
		wantLang   string
	}{
		{"intent outside the enum", bad(func(m map[string]any) { m["intent"] = "admin_override" }), "Giá bao nhiêu ạ?", "invalid_output", "vi"},
		{"lead estimate out of range", bad(func(m map[string]any) { m["lead_estimate"] = 1000 }), "Giá bao nhiêu ạ?", "invalid_output", "vi"},
		{"extra property", bad(func(m map[string]any) { m["other_customers"] = []string{"x"} }), "How much is it?", "invalid_output", "en"},
		{"missing required", bad(func(m map[string]any) { delete(m, "action") }), "How much is it?", "invalid_output", "en"},
		{"wrong type", bad(func(m map[string]any) { m["decision_maker"] = "yes" }), "Giá bao nhiêu ạ?", "invalid_output", "vi"},
		{"not json", claudefake.RawReply("Sorry, I can't do JSON today."), "How much is it?", "invalid_output", "en"},
		{"plain text without data block", claudefake.TextReply("Dạ vâng ạ."), "Giá bao nhiêu ạ?", "invalid_output", "vi"},
		{"broken data block", claudefake.TextReply(`Dạ vâng. <data>{"intent": "quote",</data>`), "Giá bao nhiêu ạ?", "invalid_output", "vi"},
		{"json array", claudefake.RawReply(`[1,2,3]`), "How much is it?", "invalid_output", "en"},
		{"truncated at max_tokens", claudefake.Reply{Raw: `{"reply":"Dạ, gói Pro`, StopReason: "max_tokens"}, "Giá bao nhiêu ạ?", "max_tokens", "vi"},
		{"refusal", claudefake.Reply{Text: "I can't help with that.", IgnoreFormat: true, StopReason: "refusal"}, "How much is it?", "refusal", "en"},
		{"trailing garbage", claudefake.RawReply(string(mustJSONBytes(facts("ok"))) + ` {"x":1}`), "How much is it?", "invalid_output", "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			p, _ := newPlugin(t, testConfig(t, f, nil))
			f.Script("c", tt.reply)
			res, err := p.Generate(ctxT(t), ask("c", tt.customer))
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if !res.Fallback || res.FallbackReason != tt.wantReason {
				t.Fatalf("Fallback=%v reason %q, want true %q", res.Fallback, res.FallbackReason, tt.wantReason)
			}
			if res.Structured != nil {
				t.Errorf("no facts may leave with a fallback, got %s", res.Structured)
			}
			if want := defaultFallbackReply[tt.wantLang]; res.Text != want {
				t.Errorf("Text %q, want the %s fallback %q", res.Text, tt.wantLang, want)
			}
			if res.Usage.InputTokens == 0 {
				t.Error("the call was made and must be counted")
			}
		})
	}
}

func TestConfiguredFallbackReply(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, map[string]any{"fallback_reply": "Một bạn nhân viên sẽ trả lời ngay."}))
	f.ScriptNext(claudefake.RawReply("nope"))
	res, err := p.Generate(ctxT(t), ask("c", "How much?"))
	if err != nil || res.Text != "Một bạn nhân viên sẽ trả lời ngay." {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestAPIErrorsAreTyped(t *testing.T) {
	tests := []struct {
		name         string
		reply        claudefake.Reply
		wantCode     sdk.ErrorCode
		wantAfter    time.Duration
		wantReason   string
		wantProvider string
		retryable    bool
	}{
		{"429 with retry-after", claudefake.RateLimited(7 * time.Second), sdk.CodeRateLimited, 7 * time.Second, "", "rate_limit_error", true},
		{"429 spend limit", claudefake.SpendLimitReached(), sdk.CodePermanent, 0, "spend_limit_reached", "rate_limit_error", false},
		{"529 overloaded with retry-after", claudefake.Overloaded(12 * time.Second), sdk.CodeRetryable, 12 * time.Second, "", "overloaded_error", true},
		{"529 overloaded without retry-after", claudefake.Overloaded(0), sdk.CodeRetryable, 5 * time.Second, "", "overloaded_error", true},
		{"500 api_error", claudefake.ServerError(), sdk.CodeRetryable, 5 * time.Second, "", "api_error", true},
		{"401 authentication_error", claudefake.Unauthorized(), sdk.CodeUnauthorized, 0, "", "authentication_error", false},
		{"403 permission_error", claudefake.PermissionDenied(), sdk.CodeUnauthorized, 0, "", "permission_error", false},
		{"400 invalid_request_error", claudefake.InvalidRequest("messages.0.content: bad"), sdk.CodeInvalid, 0, "", "invalid_request_error", false},
		{"404 not_found_error", claudefake.NotFoundModel("claude-nope"), sdk.CodePermanent, 0, "model_not_found", "not_found_error", false},
		{"413 request_too_large", claudefake.TooLarge(), sdk.CodeInvalid, 0, "request_too_large", "request_too_large", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			p, _ := newPlugin(t, testConfig(t, f, nil))
			f.Script("c", tt.reply)
			res, err := p.Generate(ctxT(t), ask("c", "Giá gói Pro?"))
			if err == nil {
				t.Fatalf("want an error, got %+v", res)
			}
			var e *sdk.Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if e.Code != tt.wantCode || e.RetryAfter != tt.wantAfter || e.Reason != tt.wantReason || e.ProviderCode != tt.wantProvider {
				t.Errorf("got code %v after %v reason %q provider %q; want %v %v %q %q",
					e.Code, e.RetryAfter, e.Reason, e.ProviderCode, tt.wantCode, tt.wantAfter, tt.wantReason, tt.wantProvider)
			}
			if sdk.IsRetryable(err) != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", sdk.IsRetryable(err), tt.retryable)
			}
			if !strings.Contains(err.Error(), "request-id req_") {
				t.Errorf("error should carry the request id: %v", err)
			}
			if strings.Contains(err.Error(), claudefake.DefaultAPIKey) {
				t.Errorf("error leaks the API key: %v", err)
			}
			// The SDK's own retries are off: the hub's queue retries.
			if n := f.RequestCount(); n != 1 {
				t.Errorf("the fake saw %d requests, want exactly 1 (no SDK retries)", n)
			}
		})
	}
}

// A 429 without retry-after falls back on the exhausted limit's reset time.
func TestRateLimitWithoutRetryAfterUsesResetHeaders(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f := startFake(t, claudefake.WithClock(func() time.Time { return now }))
	p, _ := newPlugin(t, testConfig(t, f, nil), WithClock(func() time.Time { return now }))
	r := claudefake.RateLimited(0)
	r.RetryAfter = 0
	f.ScriptNext(r)
	_, err := p.Generate(ctxT(t), ask("c", "hi"))
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != time.Minute {
		t.Fatalf("got %v after %v, want rate limited after 1m", err, sdk.RetryAfterOf(err))
	}
}

func TestWrongAPIKeyIsUnauthorized(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, map[string]any{"api_key": "sk-ant-wrong-secret-123"}))
	_, err := p.Generate(ctxT(t), ask("c", "hi"))
	if sdk.CodeOf(err) != sdk.CodeUnauthorized || sdk.IsRetryable(err) {
		t.Fatalf("got %v, want a permanent unauthorized error", err)
	}
	if strings.Contains(err.Error(), "sk-ant-wrong-secret-123") {
		t.Errorf("error leaks the key: %v", err)
	}
	if err := p.CheckHealth(ctxT(t)); sdk.CodeOf(err) != sdk.CodeUnauthorized {
		t.Errorf("CheckHealth: %v, want unauthorized", err)
	}
}

// The typed error and its RetryAfter survive the trip over gRPC to the hub.
func TestRetryAfterCrossesTheWire(t *testing.T) {
	f := startFake(t)
	remote := testkit.StartLLM(t, New())
	if err := remote.Configure(ctxT(t), "claude", testConfig(t, f, nil), sdk.NewMemoryHost(nil), "test"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		reply claudefake.Reply
		code  sdk.ErrorCode
		after time.Duration
	}{
		{claudefake.RateLimited(3 * time.Second), sdk.CodeRateLimited, 3 * time.Second},
		{claudefake.Overloaded(9 * time.Second), sdk.CodeRetryable, 9 * time.Second},
		{claudefake.Unauthorized(), sdk.CodeUnauthorized, 0},
	} {
		f.ScriptNext(tt.reply)
		_, err := remote.Generate(ctxT(t), ask("c", "hi"))
		if sdk.CodeOf(err) != tt.code || sdk.RetryAfterOf(err) != tt.after {
			t.Errorf("got %v (code %v after %v), want %v after %v", err, sdk.CodeOf(err), sdk.RetryAfterOf(err), tt.code, tt.after)
		}
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	f := startFake(t, claudefake.WithLatency(5*time.Second))
	p, _ := newPlugin(t, testConfig(t, f, nil))

	req := ask("c", "hi")
	req.Timeout = 50 * time.Millisecond
	_, err := p.Generate(ctxT(t), req)
	if sdk.CodeOf(err) != sdk.CodeRetryable || sdk.ReasonOf(err) != "timeout" {
		t.Errorf("per-call timeout: got %v, want retryable with reason timeout", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Generate(ctx, ask("c", "hi"))
	if !errors.Is(err, context.Canceled) || sdk.IsRetryable(err) {
		t.Errorf("cancelled context: got %v, want context.Canceled, not retryable", err)
	}
}

func TestBudgetExhaustedHandsOffWithoutACall(t *testing.T) {
	day := time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		budget map[string]any
		// other says whether another conversation is still served.
		other bool
	}{
		{"per conversation tokens", map[string]any{"per_conversation_tokens": 1}, true},
		{"per conversation usd", map[string]any{"per_conversation_usd": 0.0000001}, true},
		{"per day tokens", map[string]any{"per_day_tokens": 1}, false},
		{"per day usd", map[string]any{"per_day_usd": 0.0000001}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := day
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			f := startFake(t)
			p, _ := newPlugin(t, testConfig(t, f, map[string]any{"budget": tt.budget}), WithClock(clock))

			first, err := p.Generate(ctxT(t), ask("conv-a", "Giá gói Pro bao nhiêu?"))
			if err != nil || first.Fallback {
				t.Fatalf("first call: %+v, %v", first, err)
			}
			res, err := p.Generate(ctxT(t), ask("conv-a", "Còn gói Cơ bản?"))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Fallback || res.FallbackReason != "budget_exhausted" || res.Structured != nil {
				t.Fatalf("got %+v, want a budget_exhausted fallback", res)
			}
			if res.Text != defaultBudgetReply["vi"] {
				t.Errorf("Text %q, want the polite handoff", res.Text)
			}
			if n := f.RequestCount(); n != 1 {
				t.Fatalf("the fake saw %d requests, want 1: no model call once the budget is spent", n)
			}
			other, err := p.Generate(ctxT(t), ask("conv-b", "hello"))
			if err != nil {
				t.Fatal(err)
			}
			if served := !other.Fallback; served != tt.other {
				t.Errorf("another conversation served = %v, want %v", served, tt.other)
			}
			if !tt.other {
				mu.Lock()
				now = now.Add(2 * time.Hour) // the next day, UTC
				mu.Unlock()
				next, err := p.Generate(ctxT(t), ask("conv-a", "hello again"))
				if err != nil || next.Fallback {
					t.Errorf("a new day should reset the daily budget: %+v, %v", next, err)
				}
			}
		})
	}
}

// Two replicas (two plugin instances on one host KV) charging at once lose
// no spending.
func TestBudgetChargesAreAtomicAcrossReplicas(t *testing.T) {
	host := sdk.NewMemoryHost(nil)
	cfg, err := parseConfig([]byte(`{"api_key":"k","budget":{"per_conversation_tokens":1000000,"per_day_usd":100}}`))
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *state {
		return &state{cfg: cfg, kv: sdk.HostFromBackend(host).KV(), loc: time.UTC, now: time.Now}
	}
	replicas := []*state{mk(), mk()}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := replicas[i%2].charge(context.Background(), "conv", sdk.Usage{InputTokens: 10, OutputTokens: 5, CostUSD: 0.25}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, _, err := replicas[0].readSpend(context.Background(), convBudgetKey("conv"))
	if err != nil || s.Tokens != 600 {
		t.Errorf("conversation spend %+v, %v; want 600 tokens", s, err)
	}
	d, _, _ := replicas[0].readSpend(context.Background(), replicas[0].dayBudgetKey(time.Now()))
	if math.Abs(d.USD-10) > 1e-9 {
		t.Errorf("day spend %+v, want $10", d)
	}
}

func TestPromptCachingAndCost(t *testing.T) {
	for _, ttl := range []string{"5m", "1h"} {
		t.Run(ttl, func(t *testing.T) {
			f := startFake(t)
			p, _ := newPlugin(t, testConfig(t, f, map[string]any{"model": "claude-haiku-4-5", "cache_ttl": ttl}))
			first, err := p.Generate(ctxT(t), ask("c1", "Giá gói Pro?"))
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.Generate(ctxT(t), ask("c2", "Gói Cơ bản có gì?"))
			if err != nil {
				t.Fatal(err)
			}
			req := f.Requests()[0]
			for i := range 2 {
				cc := req.System[i].CacheControl
				if cc == nil || cc.Type != "ephemeral" || cc.TTL != ttl {
					t.Errorf("system block %d cache_control %+v, want ephemeral %s", i, cc, ttl)
				}
			}
			for i := 2; i < len(req.System); i++ {
				if req.System[i].CacheControl != nil {
					t.Errorf("per-message system block %d must not be a cache breakpoint", i)
				}
			}
			if first.Usage.CacheWriteTokens == 0 || first.Usage.CacheReadTokens != 0 {
				t.Errorf("first call usage %+v, want a cache write and no read", first.Usage)
			}
			if second.Usage.CacheReadTokens != first.Usage.CacheWriteTokens || second.Usage.CacheWriteTokens != 0 {
				t.Errorf("second call usage %+v, want to read what the first wrote (%d)", second.Usage, first.Usage.CacheWriteTokens)
			}
			write := 1.25
			if ttl == "1h" {
				write = 2
			}
			u := first.Usage
			want := (float64(u.InputTokens)*1 + float64(u.OutputTokens)*5 + float64(u.CacheWriteTokens)*write) / 1e6
			if math.Abs(u.CostUSD-want) > 1e-12 {
				t.Errorf("first cost %v, want %v (haiku 4.5 prices)", u.CostUSD, want)
			}
			u = second.Usage
			want = (float64(u.InputTokens)*1 + float64(u.OutputTokens)*5 + float64(u.CacheReadTokens)*0.1) / 1e6
			if math.Abs(u.CostUSD-want) > 1e-12 {
				t.Errorf("second cost %v, want %v", u.CostUSD, want)
			}
		})
	}
}

func TestConfiguredPricesOverrideDefaults(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, map[string]any{"model": "my-custom-model",
		"structured_mode": map[string]any{"my-custom": "json_schema"},
		"prices":          map[string]any{"my-custom": map[string]any{"input": 10, "output": 100}}}))
	res, err := p.Generate(ctxT(t), ask("c", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	u := res.Usage
	want := (float64(u.InputTokens)*10 + float64(u.OutputTokens)*100 + float64(u.CacheWriteTokens)*12.5 + float64(u.CacheReadTokens)*1) / 1e6
	if math.Abs(u.CostUSD-want) > 1e-12 {
		t.Errorf("cost %v, want %v", u.CostUSD, want)
	}
}

func TestModelRouting(t *testing.T) {
	tests := []struct {
		hint, wantModel string
		wantMode        claudefake.Mode
	}{
		{"", "claude-sonnet-5-5", claudefake.ModeJSONSchema},
		{"smart", "claude-sonnet-5-5", claudefake.ModeJSONSchema},
		{"fast", "claude-haiku-4-5", claudefake.ModeTool},
		{"claude-opus-5-5", "claude-opus-5-5", claudefake.ModeJSONSchema},
		{"claude-sonnet-4-6", "claude-sonnet-4-6", claudefake.ModeTool},
	}
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, nil))
	for _, tt := range tests {
		t.Run("hint="+tt.hint, func(t *testing.T) {
			req := ask("c", "Giá gói Pro?")
			req.ModelHint = tt.hint
			res, err := p.Generate(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			all := f.Requests()
			got := all[len(all)-1]
			if got.Model != tt.wantModel || got.Mode != tt.wantMode || res.Model != tt.wantModel {
				t.Errorf("sent %s in %s mode (answered by %s), want %s in %s mode", got.Model, got.Mode, res.Model, tt.wantModel, tt.wantMode)
			}
		})
	}
}

// The newest models refuse a forced tool: misconfiguring one to "tool" is a
// clear permanent error, not a retry loop.
func TestForcedToolOnANewModelIsInvalid(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, map[string]any{"structured_mode": map[string]any{"default": "tool"}}))
	_, err := p.Generate(ctxT(t), ask("c", "hi"))
	if sdk.CodeOf(err) != sdk.CodeInvalid || !strings.Contains(err.Error(), "forced tool use is not supported") {
		t.Fatalf("got %v", err)
	}
}

func TestRequestParameters(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, nil))
	req := ask("zalo:oa1:u42", "hello")
	req.MaxTokens, req.Temperature = 300, 0.9
	req.System = "Custom instructions from the hub."
	if _, err := p.Generate(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	got := f.Requests()[0]
	if got.MaxTokens != 300 || got.Temperature == nil || *got.Temperature != 0.9 {
		t.Errorf("max_tokens %d temperature %v", got.MaxTokens, got.Temperature)
	}
	if got.UserID != claudefake.UserID("zalo:oa1:u42") || strings.Contains(string(got.Body), "zalo:oa1:u42") {
		t.Errorf("metadata.user_id %q must be the opaque hash of the conversation key", got.UserID)
	}
	if got.System[0].Text != req.System {
		t.Errorf("the request's System wins over the config's: got %q", got.System[0].Text)
	}
	if h := got.Header.Get("anthropic-version"); h != claudefake.APIVersion {
		t.Errorf("anthropic-version %q", h)
	}
}

func TestIdempotentReplay(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, nil))
	req := ask("c", "Giá gói Pro?")
	req.IdempotencyKey = "msg-123"
	first, err := p.Generate(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Generate(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.RequestCount() != 1 {
		t.Errorf("a retried request with the same idempotency key called the model again")
	}
	if again.Text != first.Text || string(again.Structured) != string(first.Structured) || again.Model != first.Model {
		t.Errorf("replay differs:\n%+v\n%+v", first, again)
	}
	if again.Usage != (sdk.Usage{}) {
		t.Errorf("a replay spends nothing, usage %+v", again.Usage)
	}

	// Another call for the same inbound message (same key) that asks for
	// something else is not a replay.
	classify := ask("c", "Giá gói Pro?")
	classify.IdempotencyKey, classify.ModelHint = "msg-123", "fast"
	if _, err := p.Generate(ctxT(t), classify); err != nil {
		t.Fatal(err)
	}
	if f.RequestCount() != 2 {
		t.Errorf("a different call with the same idempotency key was answered from the replay store")
	}
}

func TestCustomOutputSchema(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{
		"label":{"type":"string","enum":["hot","cold"]},
		"score":{"type":"integer","minimum":0,"maximum":10}},
		"required":["label","score"],"additionalProperties":false}`)
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, nil))
	req := ask("c", "I want to buy today, budget $5000")
	req.OutputSchema = schema
	res, err := p.Generate(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := CompileSchema(schema)
	if res.Fallback || s.ValidateJSON(res.Structured) != nil {
		t.Fatalf("got %+v", res)
	}
	// The wire schema drops the bounds the API rejects; the fake would 400.
	sent := string(f.Requests()[0].Format.Schema)
	if strings.Contains(sent, `"minimum"`) || !strings.Contains(sent, "minimum: 0") {
		t.Errorf("bounds must move into the description: %s", sent)
	}

	req.OutputSchema = json.RawMessage(`{"type":"array"}`)
	if _, err := p.Generate(ctxT(t), req); sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("a non-object schema: %v, want invalid", err)
	}
}

func TestConcurrentGenerate(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, map[string]any{"budget": map[string]any{"per_day_usd": 100}}))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := ask(fmt.Sprintf("c%d", i%4), "Giá gói Pro bao nhiêu?")
			if i%2 == 0 {
				req.ModelHint = "fast"
			}
			res, err := p.Generate(ctxT(t), req)
			if err == nil && res.Fallback {
				err = fmt.Errorf("fallback %s", res.FallbackReason)
			}
			if err != nil {
				errs <- err
			}
		}()
		if i == 16 { // reconfigure mid-flight: calls see one state or the other
			if err := p.Configure(ctxT(t), sdk.ConfigureRequest{Config: testConfig(t, f, nil), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	f := startFake(t)
	tests := []struct {
		name string
		over map[string]any
		want string
	}{
		{"missing api_key", map[string]any{"api_key": nil}, "api_key is required"},
		{"unknown key", map[string]any{"modle": "x"}, "unknown field"},
		{"bad structured mode", map[string]any{"structured_mode": map[string]any{"default": "xml"}}, "structured_mode"},
		{"bad timezone", map[string]any{"budget": map[string]any{"timezone": "Mars/Olympus"}}, "timezone"},
		{"missing knowledge file", map[string]any{"knowledge_file": "/nonexistent/kb.yaml"}, "knowledge file"},
		{"both prompts", map[string]any{"system_prompt": "x"}, "not both"},
		{"bad duration", map[string]any{"timeout": "soon"}, "duration"},
		{"bad cache ttl", map[string]any{"cache_ttl": "10m"}, "cache_ttl"},
		{"bad language", map[string]any{"language": "fr"}, "language"},
		{"negative budget", map[string]any{"budget": map[string]any{"per_day_usd": -1}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Configure(ctxT(t), sdk.ConfigureRequest{Config: testConfig(t, f, tt.over), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))})
			if sdk.CodeOf(err) != sdk.CodeInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want invalid mentioning %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), claudefake.DefaultAPIKey) {
				t.Errorf("config error leaks the key: %v", err)
			}
		})
	}
	if _, err := New().Generate(ctxT(t), ask("c", "hi")); sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("Generate before Configure: %v", err)
	}
}

func TestHealth(t *testing.T) {
	f := startFake(t)
	p, _ := newPlugin(t, testConfig(t, f, nil))
	if err := p.CheckHealth(ctxT(t)); err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
}

func TestNoSecretOrCustomerTextInLogs(t *testing.T) {
	f := startFake(t)
	p, host := newPlugin(t, testConfig(t, f, nil))
	secret := "Số điện thoại của tôi là 0912 345 678"
	f.ScriptNext(claudefake.RawReply("garbage"), claudefake.RateLimited(time.Second))
	_, _ = p.Generate(ctxT(t), ask("c", secret))
	_, _ = p.Generate(ctxT(t), ask("c", secret))
	for _, rec := range host.Logs() {
		line := rec.Message + fmt.Sprint(rec.Attrs)
		if strings.Contains(line, claudefake.DefaultAPIKey) || strings.Contains(line, "0912 345 678") {
			t.Errorf("log leaks a secret or customer text: %s", line)
		}
	}
}
