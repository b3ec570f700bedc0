package testplugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// LLMConfig is the test LLM's config block.
type LLMConfig struct {
	LatencyMS int `json:"latency_ms"`
	// Markers in the last customer message that make the plugin misbehave,
	// for fault tests: ErrorOn returns an untyped error, PermanentOn a
	// permanent one, HangOn blocks until the deadline, CrashOn exits the
	// process (a crash loop when the message is redelivered).
	ErrorOn     string `json:"error_on"`
	PermanentOn string `json:"permanent_on"`
	HangOn      string `json:"hang_on"`
	CrashOn     string `json:"crash_on"`
}

// LLM is a deterministic keyword "model": it replies by echoing and derives
// lead facts from Vietnamese and English keywords.
type LLM struct {
	mu  sync.RWMutex
	cfg LLMConfig
}

// NewLLM returns an unconfigured test LLM.
func NewLLM() *LLM { return &LLM{} }

func (l *LLM) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "testllm", Kind: sdk.KindLLM, Version: "1.0.0",
		Description: "Switchboard's deterministic keyword LLM for tests", Capabilities: []string{"structured_output"}}, nil
}

func (l *LLM) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var cfg LLMConfig
	if len(req.Config) > 0 {
		if err := json.Unmarshal(req.Config, &cfg); err != nil {
			return sdk.Invalid(fmt.Errorf("testllm config: %w", err))
		}
	}
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
	return nil
}

// Facts is the structured output of the test LLM.
type Facts struct {
	Reply         string  `json:"reply"`
	Intent        string  `json:"intent"`
	Need          string  `json:"need"`
	Budget        string  `json:"budget"`
	Timeline      string  `json:"timeline"`
	DecisionMaker *bool   `json:"decision_maker"`
	LeadEstimate  int     `json:"lead_estimate"`
	Action        string  `json:"action"`
	Confidence    float64 `json:"confidence"`
}

func (l *LLM) Generate(ctx context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	l.mu.RLock()
	cfg := l.cfg
	l.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var last, all strings.Builder
	for _, t := range req.History {
		all.WriteString(t.Text)
		all.WriteByte('\n')
	}
	// The customer's trailing burst: every customer turn since the last
	// bot or agent turn, so a burst gets one answer to all of it.
	start := len(req.History)
	for start > 0 && req.History[start-1].Role == "customer" {
		start--
	}
	for i := start; i < len(req.History); i++ {
		if i > start {
			last.WriteString(" | ")
		}
		last.WriteString(req.History[i].Text)
	}
	text := last.String()
	switch {
	case cfg.CrashOn != "" && strings.Contains(text, cfg.CrashOn):
		os.Exit(7)
	case cfg.HangOn != "" && strings.Contains(text, cfg.HangOn):
		<-ctx.Done()
		return nil, ctx.Err()
	case cfg.ErrorOn != "" && strings.Contains(text, cfg.ErrorOn):
		return nil, errors.New("testllm: injected failure")
	case cfg.PermanentOn != "" && strings.Contains(text, cfg.PermanentOn):
		return nil, sdk.Permanent(errors.New("testllm: injected permanent failure"))
	}
	if cfg.LatencyMS > 0 {
		select {
		case <-time.After(time.Duration(cfg.LatencyMS) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := Classify(all.String())
	f.Reply = "Cảm ơn anh/chị! Bạn nói: " + text
	b, _ := json.Marshal(f)
	in := int64(len(req.System)+len(req.Context)+all.Len()) / 4
	return &sdk.GenerateResponse{Text: f.Reply, Structured: b, Model: "testllm-1", StopReason: "end_turn",
		Usage: sdk.Usage{InputTokens: in + 1, OutputTokens: int64(len(b))/4 + 1}}, nil
}

// Classify derives facts from keywords, folding Vietnamese diacritics so
// "giá" and "gia" both count.
func Classify(text string) Facts {
	t := fold(text)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(t, w) {
				return true
			}
		}
		return false
	}
	f := Facts{Intent: "inquiry", Action: "reply", Confidence: 0.8}
	switch {
	case has("spam", "kiem tien nhanh", "click here", "free money"):
		f.Intent, f.Confidence = "spam", 0.9
	case has("khieu nai", "complaint", "qua te", "terrible", "refund", "hoan tien"):
		f.Intent, f.Action = "complaint", "handoff_to_support"
	case has("gap nhan vien", "talk to a human", "nguoi that", "real person"):
		f.Intent, f.Action = "human_request", "handoff_to_sale"
	case has("demo"):
		f.Intent = "demo"
	case has("bao gia", "gia", "price", "quote", "bao nhieu"):
		f.Intent = "quote"
	}
	if has("crm", "phan mem", "software", "website", "app") {
		f.Need = "software"
	}
	if has("trieu", "ty", "$", "usd", "budget", "ngan sach") {
		f.Budget = "stated"
	}
	switch {
	case has("ngay", "tuan nay", "thang nay", "urgent", "asap", "this week"):
		f.Timeline = "urgent"
	case has("quy sau", "next quarter", "nam sau", "next year"):
		f.Timeline = "later"
	}
	if has("giam doc", "chu doanh nghiep", "toi quyet dinh", "i decide", "owner", "ceo") {
		yes := true
		f.DecisionMaker = &yes
	}
	return f
}

func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'đ' || r == 'Đ':
			b.WriteRune('d')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
