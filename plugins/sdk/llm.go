package sdk

import (
	"context"
	"encoding/json"
	"time"
)

// LLM generates the bot's reply and structured facts about the lead.
type LLM interface {
	Plugin
	Generate(ctx context.Context, req *GenerateRequest) (*GenerateResponse, error)
}

// Turn is one entry of a conversation's history.
type Turn struct {
	Role string // customer, bot, agent, system
	Text string
	At   time.Time
}

// GenerateRequest is one model call.
type GenerateRequest struct {
	IdempotencyKey  string
	ConversationKey string
	System          string // the business's fixed instructions: cacheable
	Context         string // profile and rules context, after the system prompt
	History         []Turn // oldest first; the last is the message to answer
	OutputSchema    json.RawMessage
	ModelHint       string // "fast", "smart" or an explicit model id
	MaxTokens       int
	Temperature     float64
	Timeout         time.Duration
	Metadata        map[string]string
}

// Usage counts tokens, cache included, so the hub can count cost.
type Usage struct {
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	CostUSD          float64
}

// GenerateResponse is the model's answer.
type GenerateResponse struct {
	Text       string
	Structured json.RawMessage // JSON matching OutputSchema
	Usage      Usage
	Model      string
	StopReason string
	// Fallback is set when the plugin could not get valid output and answers
	// with a safe text; the hub hands the conversation to a person.
	Fallback       bool
	FallbackReason string
}
