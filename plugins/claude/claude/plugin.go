// Package claude is Switchboard's LLM plugin for Anthropic's Messages API:
// one call returns the reply for the customer and schema-valid facts about
// the lead, with prompt caching, model routing, a knowledge file as the only
// source of product facts, guards on what goes in and comes out, typed
// errors for the hub's retry queue, and a token and money budget.
package claude

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Version is the plugin's version, reported in Describe.
const Version = "0.1.0"

// Plugin implements sdk.LLM and sdk.HealthChecker. Its methods are safe for
// concurrent use; Configure swaps the whole state at once.
type Plugin struct {
	state      atomic.Pointer[state]
	now        func() time.Time
	httpClient *http.Client
}

// Option adjusts a Plugin, for tests.
type Option func(*Plugin)

// WithClock sets the clock for budgets' days and retry-after dates.
func WithClock(now func() time.Time) Option { return func(p *Plugin) { p.now = now } }

// WithHTTPClient sets the HTTP client the Anthropic SDK uses.
func WithHTTPClient(c *http.Client) Option { return func(p *Plugin) { p.httpClient = c } }

// New returns an unconfigured plugin.
func New(opts ...Option) *Plugin {
	p := &Plugin{now: time.Now}
	for _, o := range opts {
		o(p)
	}
	if p.httpClient == nil {
		// No client timeout: each call's context carries the deadline.
		p.httpClient = sdk.NewHTTPClient(0)
	}
	return p
}

// state is everything Configure decides, immutable once built.
type state struct {
	cfg     Config
	system  string
	kb      *Knowledge
	client  anthropic.Client
	kv      sdk.KV
	log     *slog.Logger
	loc     *time.Location
	now     func() time.Time
	builtin *Schema
}

var _ sdk.LLM = (*Plugin)(nil)
var _ sdk.HealthChecker = (*Plugin)(nil)

// Describe returns the manifest; it needs no configuration.
func (p *Plugin) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{
		Name:        "claude",
		Kind:        sdk.KindLLM,
		Version:     Version,
		Description: "Anthropic Claude (Messages API): reply and lead facts in one call, with caching, guardrails and budgets",
		Capabilities: []string{"structured_output", "json_schema", "forced_tool", "prompt_caching",
			"model_routing", "knowledge_file", "price_guard", "budget", "idempotent_replay"},
		ConfigSchema: configSchema(),
	}, nil
}

// Configure validates the config, loads the system prompt and knowledge
// files, and builds the API client. A bad config leaves the previous state
// in place.
func (p *Plugin) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return sdk.Invalid(err)
	}
	var kb *Knowledge
	if cfg.KnowledgeFile != "" {
		if kb, err = LoadKnowledge(cfg.KnowledgeFile); err != nil {
			return sdk.Invalid(fmt.Errorf("config: %w", err))
		}
	}
	loc, _ := time.LoadLocation(cfg.Budget.Timezone) // checked by parseConfig
	builtin, err := CompileSchema(leadFactsSchema)
	if err != nil {
		return fmt.Errorf("claude: built-in schema: %w", err) // a bug, not config
	}
	opts := []option.RequestOption{
		// The hub's config is the only source of settings: no
		// ANTHROPIC_* variables or profile files from the environment.
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(cfg.APIKey),
		// The hub owns retries (queue + backoff honouring RetryAfter);
		// SDK retries would multiply them.
		option.WithMaxRetries(0),
		option.WithHTTPClient(p.httpClient),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	log := slog.New(slog.DiscardHandler)
	var kv sdk.KV
	if req.Host != nil {
		log = req.Host.Logger()
		kv = req.Host.KV()
	}
	if kv == nil && (cfg.Budget.enabled() || *cfg.ReplayTTL > 0) {
		kv = sdk.HostFromBackend(sdk.NewMemoryHost(nil)).KV()
	}
	p.state.Store(&state{
		cfg: cfg, system: cfg.SystemPrompt, kb: kb, client: anthropic.NewClient(opts...),
		kv: kv, log: log.With("plugin", "claude"), loc: loc, now: p.now, builtin: builtin,
	})
	log.Info("claude configured", "model", cfg.Model, "fast_model", cfg.FastModel,
		"knowledge_sections", kb.Len(), "budget", cfg.Budget.enabled())
	return nil
}

// CheckHealth asks the API about the configured model: a cheap call that
// proves the key and the network path.
func (p *Plugin) CheckHealth(ctx context.Context) error {
	st := p.state.Load()
	if st == nil {
		return sdk.Invalid(errors.New("claude: not configured"))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(st.cfg.Timeout))
	defer cancel()
	if _, err := st.client.Models.Get(ctx, st.cfg.Model, anthropic.ModelGetParams{}); err != nil {
		return mapError(err, time.Duration(st.cfg.RetryAfterDefault), st.now())
	}
	return nil
}

// userID is the opaque metadata.user_id for a conversation (see
// claudefake.UserID, which must agree).
func userID(conversationKey string) string {
	sum := sha256.Sum256([]byte("switchboard:" + conversationKey))
	return hex.EncodeToString(sum[:16])
}

// route picks the model for a hint: "fast" → fast_model, "" or "smart" →
// model, anything else is taken as an explicit model id.
func (st *state) route(hint string) string {
	switch hint {
	case "", "smart":
		return st.cfg.Model
	case "fast":
		return st.cfg.FastModel
	}
	return hint
}

func (st *state) modeFor(model string) string {
	m, _ := longestPrefix(st.cfg.StructuredMode, model)
	if m == "" {
		return modeJSONSchema
	}
	return m
}

// Generate asks the model for the reply and the facts. See the package
// documentation for the guarantees; in short: Structured is nil or valid
// for the schema, Fallback is set whenever the text is a canned safe reply.
func (p *Plugin) Generate(ctx context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	st := p.state.Load()
	if st == nil {
		return nil, sdk.Invalid(errors.New("claude: Generate before Configure"))
	}
	if req == nil {
		return nil, sdk.Invalid(errors.New("claude: nil request"))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("claude: %w", err)
	}
	return st.generate(ctx, req)
}

func (st *state) generate(ctx context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	model := st.route(req.ModelHint)
	lang := detectLanguage(lastCustomerText(req.History), st.cfg.Language)

	replayKey := ""
	if req.IdempotencyKey != "" && *st.cfg.ReplayTTL > 0 {
		replayKey = replayKeyFor(req, model)
		if res, ok := st.replay(ctx, replayKey); ok {
			return res, nil
		}
	}

	if which, err := st.budgetExhausted(ctx, req.ConversationKey); err != nil {
		return nil, err
	} else if which != "" {
		st.log.Info("claude budget exhausted; handing off without a model call", "limit", which)
		return &sdk.GenerateResponse{Text: st.cfg.BudgetReply.pick(lang, defaultBudgetReply), Model: model,
			Fallback: true, FallbackReason: "budget_exhausted"}, nil
	}

	schema, builtin := st.builtin, true
	if len(req.OutputSchema) > 0 {
		s, err := CompileSchema(req.OutputSchema)
		if err != nil {
			return nil, sdk.Invalid(fmt.Errorf("claude: request output schema: %w", err))
		}
		schema, builtin = s, false
	}
	mode := st.modeFor(model)
	b, err := st.buildParams(req, model, mode, schema, builtin)
	if err != nil {
		return nil, err
	}

	timeout := time.Duration(st.cfg.Timeout)
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := st.client.Messages.New(callCtx, b.params)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("claude: %w", ctx.Err())
		}
		if callCtx.Err() != nil {
			return nil, sdk.Retryable(fmt.Errorf("claude: no answer from the Messages API within %s", timeout), 0).WithReason("timeout")
		}
		return nil, mapError(err, time.Duration(st.cfg.RetryAfterDefault), st.now())
	}

	res := &sdk.GenerateResponse{Model: string(msg.Model), StopReason: string(msg.StopReason), Usage: st.usage(msg)}
	if res.Model == "" {
		res.Model = model
	}
	if err := st.charge(ctx, req.ConversationKey, res.Usage); err != nil {
		// The money is spent either way; losing one charge is better than
		// failing a good answer.
		st.log.Warn("claude could not record spending in the host KV", "error", err)
	}
	st.finish(res, msg, schema, b, lang)
	st.log.Debug("claude generate", "model", res.Model, "mode", mode, "stop_reason", res.StopReason,
		"input_tokens", res.Usage.InputTokens, "output_tokens", res.Usage.OutputTokens,
		"cache_read_tokens", res.Usage.CacheReadTokens, "cache_write_tokens", res.Usage.CacheWriteTokens,
		"cost_usd", res.Usage.CostUSD, "fallback", res.FallbackReason, "knowledge_sections", len(b.knowledge))
	if replayKey != "" {
		st.remember(ctx, replayKey, res)
	}
	return res, nil
}

// finish parses, validates and guards the model's answer into res.
func (st *state) finish(res *sdk.GenerateResponse, msg *anthropic.Message, schema *Schema, b *built, lang string) {
	fallback := func(reason string, text string) {
		res.Text, res.Structured, res.Fallback, res.FallbackReason = text, nil, true, reason
	}
	if msg.StopReason == anthropic.StopReasonRefusal {
		fallback("refusal", st.cfg.FallbackReply.pick(lang, defaultFallbackReply))
		return
	}
	p, err := parseOutput(msg.Content, schema)
	if err != nil {
		reason := "invalid_output"
		if msg.StopReason == anthropic.StopReasonMaxTokens {
			reason = "max_tokens"
		}
		// Problems name paths and types, never the customer's text.
		st.log.Warn("claude output unusable; answering with the fallback reply", "reason", reason,
			"source", p.source, "problem", err.Error())
		fallback(reason, st.cfg.FallbackReply.pick(lang, defaultFallbackReply))
		return
	}
	text := p.text
	if r, ok := p.obj["reply"].(string); ok {
		text = r
	}
	text = cleanReply(text)
	if _, ok := p.obj["reply"].(string); ok {
		p.obj["reply"] = text
	}
	guardReason := ""
	switch {
	case claimsHuman(text):
		guardReason, text = "human_claim", st.cfg.FallbackReply.pick(lang, defaultFallbackReply)
	case *st.cfg.PriceGuard && len(unverifiedAmounts(text, b.sources)) > 0:
		guardReason, text = "unverified_price", st.cfg.PriceReply.pick(lang, defaultPriceReply)
	}
	if guardReason != "" {
		if _, ok := p.obj["reply"].(string); ok {
			p.obj["reply"] = text
		}
		st.log.Info("claude reply replaced by a guard", "reason", guardReason)
	}
	// Whatever the guards changed, what leaves is valid or not at all.
	if err := schema.Validate(p.obj); err != nil {
		fallback("invalid_output", st.cfg.FallbackReply.pick(lang, defaultFallbackReply))
		return
	}
	structured, err := json.Marshal(p.obj)
	if err != nil {
		fallback("invalid_output", st.cfg.FallbackReply.pick(lang, defaultFallbackReply))
		return
	}
	res.Text, res.Structured = text, structured
	if guardReason != "" {
		res.Fallback, res.FallbackReason = true, guardReason
	}
}

// usage converts the API's usage and prices it. input_tokens excludes
// cached tokens, which are billed at their own rates.
func (st *state) usage(msg *anthropic.Message) sdk.Usage {
	u := msg.Usage
	price, _ := longestPrefix(st.cfg.Prices, string(msg.Model))
	w5, w1h := u.CacheCreation.Ephemeral5mInputTokens, u.CacheCreation.Ephemeral1hInputTokens
	if w5+w1h != u.CacheCreationInputTokens {
		// No split given: bill the writes at the configured TTL's rate.
		w5, w1h = u.CacheCreationInputTokens, 0
		if st.cfg.CacheTTL == "1h" {
			w5, w1h = 0, u.CacheCreationInputTokens
		}
	}
	cost := (float64(u.InputTokens)*price.Input + float64(u.OutputTokens)*price.Output +
		float64(w5)*price.CacheWrite + float64(w1h)*price.CacheWrite1h +
		float64(u.CacheReadInputTokens)*price.CacheRead) / 1e6
	return sdk.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadTokens: u.CacheReadInputTokens, CacheWriteTokens: u.CacheCreationInputTokens, CostUSD: cost}
}

// replayed is a stored answer, kept for a retried request with the same
// idempotency key (a worker that crashed after the call but before sending):
// the customer gets the same reply and the call is not paid twice.
type replayed struct {
	Text           string          `json:"text"`
	Structured     json.RawMessage `json:"structured,omitempty"`
	Model          string          `json:"model"`
	StopReason     string          `json:"stop_reason"`
	Fallback       bool            `json:"fallback,omitempty"`
	FallbackReason string          `json:"fallback_reason,omitempty"`
}

// replayKeyFor names a stored answer by the idempotency key and by what
// was asked (model, schema, prompt, history), so two different calls made
// for one inbound message (a "fast" classification and a "smart" reply)
// never get each other's answer.
func replayKeyFor(req *sdk.GenerateRequest, model string) string {
	h := sha256.New()
	for _, part := range []string{req.IdempotencyKey, model, string(req.OutputSchema), req.System, req.Context} {
		fmt.Fprintf(h, "%d:%s|", len(part), part)
	}
	for _, t := range req.History {
		fmt.Fprintf(h, "%s:%d:%s|", t.Role, len(t.Text), t.Text)
	}
	return "replay/" + hex.EncodeToString(h.Sum(nil)[:16])
}

// replay returns the stored answer; its Usage is zero because nothing was
// spent this time.
func (st *state) replay(ctx context.Context, key string) (*sdk.GenerateResponse, bool) {
	raw, _, err := st.kv.Get(ctx, key)
	if err != nil {
		return nil, false
	}
	var r replayed
	if json.Unmarshal(raw, &r) != nil {
		return nil, false
	}
	return &sdk.GenerateResponse{Text: r.Text, Structured: r.Structured, Model: r.Model, StopReason: r.StopReason,
		Fallback: r.Fallback, FallbackReason: r.FallbackReason}, true
}

func (st *state) remember(ctx context.Context, key string, res *sdk.GenerateResponse) {
	raw, _ := json.Marshal(replayed{Text: res.Text, Structured: res.Structured, Model: res.Model,
		StopReason: res.StopReason, Fallback: res.Fallback, FallbackReason: res.FallbackReason})
	if _, err := st.kv.Put(ctx, key, raw, time.Duration(*st.cfg.ReplayTTL)); err != nil {
		st.log.Warn("claude could not store the answer for replay", "error", err)
	}
}

func lastCustomerText(h []sdk.Turn) string {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Role == "customer" {
			return h[i].Text
		}
	}
	return ""
}
