package claude

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// Config is one plugin instance's config block (snake_case JSON; the hub
// resolves ${ENV} and file: references before the plugin sees it).
type Config struct {
	APIKey  string `json:"api_key" jsonschema:"required,description=Anthropic API key (use a ${ENV} or file: reference)"`
	BaseURL string `json:"base_url,omitempty" jsonschema:"description=API base URL; the fake's URL in tests and the sandbox"`

	Model     string `json:"model,omitempty" jsonschema:"description=Model for composing replies (ModelHint smart or empty)"`
	FastModel string `json:"fast_model,omitempty" jsonschema:"description=Small model for classification-only calls (ModelHint fast)"`
	// StructuredMode picks, per model id prefix, how structured output is
	// asked for: json_schema (output_config.format), tool (a forced tool) or
	// text (a <data> block in plain text). The key "default" covers the rest.
	StructuredMode map[string]string `json:"structured_mode,omitempty" jsonschema:"description=Per model id prefix: json_schema | tool | text; key default for the rest"`

	MaxTokens   int      `json:"max_tokens,omitempty" jsonschema:"minimum=1,maximum=16000,description=Default output token limit"`
	Temperature *float64 `json:"temperature,omitempty" jsonschema:"minimum=0,maximum=1"`
	Timeout     Duration `json:"timeout,omitempty" jsonschema:"description=Per-call timeout when the request sets none (default 60s)"`

	SystemPrompt     string `json:"system_prompt,omitempty" jsonschema:"description=The business's instructions, used when the request carries none"`
	SystemPromptFile string `json:"system_prompt_file,omitempty"`

	KnowledgeFile     string `json:"knowledge_file,omitempty" jsonschema:"description=YAML or Markdown file of products, prices and policies"`
	KnowledgeTopK     int    `json:"knowledge_top_k,omitempty" jsonschema:"minimum=1,maximum=20"`
	KnowledgeMaxChars int    `json:"knowledge_max_chars,omitempty"`

	MaxCustomerChars int `json:"max_customer_chars,omitempty" jsonschema:"description=Cap on each customer message (runes)"`
	MaxHistoryTurns  int `json:"max_history_turns,omitempty"`
	MaxContextChars  int `json:"max_context_chars,omitempty"`

	Language      string    `json:"language,omitempty" jsonschema:"enum=vi,enum=en,description=Language of canned replies when the customer's is unclear"`
	FallbackReply Localized `json:"fallback_reply,omitempty" jsonschema:"description=Safe reply when the model's output is unusable"`
	BudgetReply   Localized `json:"budget_reply,omitempty" jsonschema:"description=Reply when a budget is exhausted"`
	PriceReply    Localized `json:"price_confirm_reply,omitempty" jsonschema:"description=Reply replacing one that states a price not in the knowledge file"`
	PriceGuard    *bool     `json:"price_guard,omitempty"`

	CacheTTL          string           `json:"cache_ttl,omitempty" jsonschema:"enum=5m,enum=1h"`
	Prices            map[string]Price `json:"prices,omitempty" jsonschema:"description=USD per million tokens by model id prefix; merged over the defaults"`
	Budget            Budget           `json:"budget,omitempty"`
	RetryAfterDefault Duration         `json:"retry_after_default,omitempty" jsonschema:"description=Retry-after hint for 529/5xx answers that carry none (default 30s)"`
	ReplayTTL         *Duration        `json:"replay_ttl,omitempty" jsonschema:"description=How long an answer is kept for replay by idempotency key (default 24h; 0 disables)"`
}

// Price is USD per million tokens.
type Price struct {
	Input        float64 `json:"input"`
	Output       float64 `json:"output"`
	CacheWrite   float64 `json:"cache_write,omitempty" jsonschema:"description=5-minute cache write (default 1.25 x input)"`
	CacheWrite1h float64 `json:"cache_write_1h,omitempty" jsonschema:"description=1-hour cache write (default 2 x input)"`
	CacheRead    float64 `json:"cache_read,omitempty" jsonschema:"description=Cache read (default 0.1 x input)"`
}

// Budget caps spending; zero means no cap. Tokens count everything the
// model processed: input, cache reads and writes, and output.
type Budget struct {
	PerConversationTokens int64    `json:"per_conversation_tokens,omitempty"`
	PerConversationUSD    float64  `json:"per_conversation_usd,omitempty"`
	PerDayTokens          int64    `json:"per_day_tokens,omitempty"`
	PerDayUSD             float64  `json:"per_day_usd,omitempty"`
	Timezone              string   `json:"timezone,omitempty" jsonschema:"description=IANA zone where the day starts (default UTC)"`
	ConversationTTL       Duration `json:"conversation_ttl,omitempty" jsonschema:"description=How long a conversation's spending is remembered (default 30 days)"`
}

func (b Budget) enabled() bool {
	return b.PerConversationTokens > 0 || b.PerConversationUSD > 0 || b.PerDayTokens > 0 || b.PerDayUSD > 0
}

// Duration reads "60s"-style strings (or a number of seconds).
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// JSONSchema describes Duration in the manifest's config schema.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: `^([0-9.]+(ns|us|µs|ms|s|m|h))+$`, Description: `a Go duration such as "30s" or "1h"`}
}

// Localized is a text per language ("vi", "en"); a plain string in config
// applies to every language.
type Localized map[string]string

func (l *Localized) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = Localized{"*": s}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("want a string or a map of language to string")
	}
	*l = m
	return nil
}

// JSONSchema describes Localized in the manifest's config schema.
func (Localized) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "string"},
		{Type: "object", AdditionalProperties: &jsonschema.Schema{Type: "string"}},
	}}
}

// pick returns the text for lang, else the text for every language, else
// def's text for lang.
func (l Localized) pick(lang string, def Localized) string {
	if s := l[lang]; s != "" {
		return s
	}
	if s := l["*"]; s != "" {
		return s
	}
	if s := def[lang]; s != "" {
		return s
	}
	return def["vi"]
}

// Defaults. The model line-up moves fast (reference §5): re-check before a
// release.
const (
	DefaultModel     = "claude-sonnet-5-5"
	DefaultFastModel = "claude-haiku-4-5"
)

var (
	// defaultStructuredMode: the newest models refuse a forced tool_choice;
	// the 4.x generation gets the forced tool.
	defaultStructuredMode = map[string]string{
		"claude-haiku-4":  modeTool,
		"claude-sonnet-4": modeTool,
		"claude-opus-4":   modeTool,
		"default":         modeJSONSchema,
	}
	// defaultPrices are list prices per million tokens (reference §5);
	// "default" prices unknown models like a Sonnet so budgets still bite.
	defaultPrices = map[string]Price{
		"claude-sonnet-5-5": {Input: 2, Output: 10, CacheWrite: 2.5, CacheWrite1h: 4, CacheRead: 0.2},
		"claude-sonnet-5":   {Input: 2, Output: 10, CacheWrite: 2.5, CacheWrite1h: 4, CacheRead: 0.2},
		"claude-opus-5-5":   {Input: 4, Output: 20, CacheWrite: 5, CacheWrite1h: 8, CacheRead: 0.4},
		"claude-haiku-5-5":  {Input: 0.1, Output: 0.5, CacheWrite: 0.125, CacheWrite1h: 0.2, CacheRead: 0.01},
		"claude-haiku-4-5":  {Input: 1, Output: 5, CacheWrite: 1.25, CacheWrite1h: 2, CacheRead: 0.1},
		"claude-sonnet-4-5": {Input: 3, Output: 15, CacheWrite: 3.75, CacheWrite1h: 6, CacheRead: 0.3},
		"claude-sonnet-4-6": {Input: 3, Output: 15, CacheWrite: 3.75, CacheWrite1h: 6, CacheRead: 0.3},
		"default":           {Input: 3, Output: 15, CacheWrite: 3.75, CacheWrite1h: 6, CacheRead: 0.3},
	}
	defaultFallbackReply = Localized{
		"vi": "Dạ, em đã nhận được tin nhắn của anh/chị. Nhân viên của chúng tôi sẽ phản hồi anh/chị trong thời gian sớm nhất ạ.",
		"en": "Thank you for your message. A member of our team will get back to you shortly.",
	}
	defaultBudgetReply = Localized{
		"vi": "Dạ, cảm ơn anh/chị. Em sẽ chuyển cuộc trò chuyện cho nhân viên tư vấn để tiếp tục hỗ trợ anh/chị ạ.",
		"en": "Thank you. I'm passing this conversation to a member of our team, who will continue from here.",
	}
	defaultPriceReply = Localized{
		"vi": "Dạ, nhân viên kinh doanh sẽ xác nhận giá chính xác cho anh/chị trong thời gian sớm nhất ạ.",
		"en": "A member of our sales team will confirm the exact price for you shortly.",
	}
)

const (
	modeTool       = "tool"
	modeJSONSchema = "json_schema"
	modeText       = "text"
)

// parseConfig decodes raw strictly (a typo is an error at Configure, not a
// silent default), fills defaults and checks values. Paths are read here so
// a missing file fails Configure.
func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if strings.TrimSpace(c.APIKey) == "" {
		return c, errors.New("config: api_key is required")
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.FastModel == "" {
		c.FastModel = DefaultFastModel
	}
	modes := map[string]string{}
	for k, v := range defaultStructuredMode {
		modes[k] = v
	}
	for k, v := range c.StructuredMode {
		if v != modeTool && v != modeJSONSchema && v != modeText {
			return c, fmt.Errorf("config: structured_mode[%q] = %q: want json_schema, tool or text", k, v)
		}
		modes[k] = v
	}
	c.StructuredMode = modes
	if c.MaxTokens == 0 {
		c.MaxTokens = 1024
	}
	// Above ~21k tokens the SDK insists on streaming; nothing a chat reply
	// needs comes close.
	if c.MaxTokens < 1 || c.MaxTokens > 16000 {
		return c, fmt.Errorf("config: max_tokens %d out of range 1..16000", c.MaxTokens)
	}
	if c.Temperature == nil {
		t := 0.3
		c.Temperature = &t
	} else if *c.Temperature < 0 || *c.Temperature > 1 {
		return c, fmt.Errorf("config: temperature %v out of range 0..1", *c.Temperature)
	}
	if c.Timeout <= 0 {
		c.Timeout = Duration(60 * time.Second)
	}
	if c.SystemPrompt != "" && c.SystemPromptFile != "" {
		return c, errors.New("config: set system_prompt or system_prompt_file, not both")
	}
	if c.SystemPromptFile != "" {
		b, err := os.ReadFile(c.SystemPromptFile)
		if err != nil {
			return c, fmt.Errorf("config: system_prompt_file: %w", err)
		}
		c.SystemPrompt = string(b)
	}
	if c.KnowledgeTopK == 0 {
		c.KnowledgeTopK = 3
	}
	if c.KnowledgeMaxChars == 0 {
		c.KnowledgeMaxChars = 6000
	}
	if c.MaxCustomerChars == 0 {
		c.MaxCustomerChars = 2000
	}
	if c.MaxHistoryTurns == 0 {
		c.MaxHistoryTurns = 40
	}
	if c.MaxContextChars == 0 {
		c.MaxContextChars = 8000
	}
	switch c.Language {
	case "":
		c.Language = "vi"
	case "vi", "en":
	default:
		return c, fmt.Errorf("config: language %q: want vi or en", c.Language)
	}
	if c.PriceGuard == nil {
		on := true
		c.PriceGuard = &on
	}
	switch c.CacheTTL {
	case "":
		c.CacheTTL = "5m"
	case "5m", "1h":
	default:
		return c, fmt.Errorf("config: cache_ttl %q: want 5m or 1h", c.CacheTTL)
	}
	prices := map[string]Price{}
	for k, v := range defaultPrices {
		prices[k] = v
	}
	for k, v := range c.Prices {
		if v.Input < 0 || v.Output < 0 || v.CacheWrite < 0 || v.CacheWrite1h < 0 || v.CacheRead < 0 {
			return c, fmt.Errorf("config: prices[%q]: negative price", k)
		}
		if v.CacheWrite == 0 {
			v.CacheWrite = 1.25 * v.Input
		}
		if v.CacheWrite1h == 0 {
			v.CacheWrite1h = 2 * v.Input
		}
		if v.CacheRead == 0 {
			v.CacheRead = 0.1 * v.Input
		}
		prices[k] = v
	}
	c.Prices = prices
	if c.Budget.PerConversationTokens < 0 || c.Budget.PerDayTokens < 0 || c.Budget.PerConversationUSD < 0 || c.Budget.PerDayUSD < 0 {
		return c, errors.New("config: budget: limits must not be negative")
	}
	if c.Budget.Timezone == "" {
		c.Budget.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(c.Budget.Timezone); err != nil {
		return c, fmt.Errorf("config: budget.timezone: %w", err)
	}
	if c.Budget.ConversationTTL <= 0 {
		c.Budget.ConversationTTL = Duration(30 * 24 * time.Hour)
	}
	if c.RetryAfterDefault <= 0 {
		c.RetryAfterDefault = Duration(30 * time.Second)
	}
	if c.ReplayTTL == nil {
		d := Duration(24 * time.Hour)
		c.ReplayTTL = &d
	}
	return c, nil
}

// longestPrefix finds the entry whose key is the longest prefix of model,
// so dated ids ("claude-haiku-4-5-20251001") match their family.
func longestPrefix[V any](m map[string]V, model string) (V, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		if k != "default" && strings.HasPrefix(model, k) {
			return m[k], true
		}
	}
	v, ok := m["default"]
	return v, ok
}

// configSchema is the manifest's JSON schema of Config.
func configSchema() json.RawMessage {
	r := &jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, RequiredFromJSONSchemaTags: true}
	s := r.Reflect(&Config{})
	s.Version = ""
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	return b
}
