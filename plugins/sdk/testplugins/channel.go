package testplugins

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// SignatureHeader carries the test channel's webhook signature:
// "sha256=" + hex(HMAC-SHA256(secret, body)).
const SignatureHeader = "X-Test-Signature"

// Sign returns the SignatureHeader value for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookBody is the test channel's inbound wire format.
type WebhookBody struct {
	Messages []WebhookMessage `json:"messages"`
}

// WebhookMessage is one message in a test webhook.
type WebhookMessage struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Name   string `json:"name,omitempty"`
	Phone  string `json:"phone,omitempty"`
	Text   string `json:"text"`
	Author string `json:"author,omitempty"` // customer (default) or agent
	Agent  string `json:"agent,omitempty"`
	TS     int64  `json:"ts,omitempty"` // unix milliseconds
}

// ChannelConfig is the test channel's config block.
type ChannelConfig struct {
	Secret string `json:"secret"`
	// SinkURL receives every sent message as JSON (SentMessage); tests count
	// replies there. Empty: sends are only counted in memory.
	SinkURL       string `json:"sink_url"`
	SendLatencyMS int    `json:"send_latency_ms"`
	// HangOn makes Send block until its context ends when the text contains it.
	HangOn string `json:"hang_on"`
	// WebhookGateURL, when set, makes HandleWebhook GET it (the request's
	// X-Request-Id in the query) before answering, so a test can hold
	// webhooks in the plugin and count them there.
	WebhookGateURL string `json:"webhook_gate_url"`
}

// Headers of a webhook that make the test channel misbehave, for fault
// tests: FaultErrorHeader names an error of WebhookErrors to return,
// FaultHangHeader blocks until the call's deadline, FaultCrashHeader exits
// the process.
const (
	FaultErrorHeader = "X-Test-Error"
	FaultHangHeader  = "X-Test-Hang"
	FaultCrashHeader = "X-Test-Crash"
)

// WebhookErrors are the errors FaultErrorHeader can name.
var WebhookErrors = map[string]error{
	"retryable":    sdk.Retryable(errors.New("provider 503"), 1500*time.Millisecond).WithProviderCode("503"),
	"ratelimited":  sdk.RateLimited(errors.New("slow down"), 7*time.Second).WithReason("per_number"),
	"permanent":    sdk.Permanent(errors.New("outside window")).WithReason("window_closed").WithProviderCode("131047"),
	"notfound":     sdk.NotFound(errors.New("no such user")),
	"unauthorized": sdk.Unauthorized(errors.New("token rejected")),
	"invalid":      sdk.Invalid(errors.New("bad phone")),
	"conflict":     sdk.Conflict(errors.New("lost the race")),
	"untyped":      errors.New("something odd"),
	"deadline":     context.DeadlineExceeded,
}

// SentMessage is what the sink receives for each Send.
type SentMessage struct {
	ProviderID      string `json:"provider_id"`
	IdempotencyKey  string `json:"idempotency_key"`
	ConversationKey string `json:"conversation_key"`
	To              string `json:"to"`
	Text            string `json:"text"`
	Instance        string `json:"instance"`
}

// Channel is the test channel plugin.
type Channel struct {
	mu       sync.RWMutex
	cfg      ChannelConfig
	instance string
	client   *http.Client
	seq      atomic.Int64
}

// NewChannel returns an unconfigured test channel.
func NewChannel() *Channel { return &Channel{client: &http.Client{Timeout: 10 * time.Second}} }

func (c *Channel) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "testchannel", Kind: sdk.KindChannel, Version: "1.0.0",
		Description:  "Switchboard's test channel: HMAC-signed JSON webhooks, sends to a sink URL",
		Capabilities: []string{"text"}}, nil
}

func (c *Channel) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var cfg ChannelConfig
	if err := json.Unmarshal(req.Config, &cfg); err != nil {
		return sdk.Invalid(fmt.Errorf("testchannel config: %w", err))
	}
	if cfg.Secret == "" {
		return sdk.Invalid(errors.New("testchannel config: secret is required"))
	}
	c.mu.Lock()
	c.cfg, c.instance = cfg, req.Instance
	c.mu.Unlock()
	return nil
}

func (c *Channel) config() (ChannelConfig, string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cfg, c.instance
}

func reply(status int, body string) *sdk.WebhookResult {
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: status,
		Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: []byte(body)}}
}

func (c *Channel) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	cfg, instance := c.config()
	if err := c.webhookFaults(ctx, cfg, req); err != nil {
		return nil, err
	}
	if req.Method == http.MethodGet {
		return reply(200, "ok"), nil
	}
	got := req.Header.Get(SignatureHeader)
	if got == "" || !hmac.Equal([]byte(got), []byte(Sign(cfg.Secret, req.Body))) {
		return reply(401, "bad signature"), nil
	}
	var body WebhookBody
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return reply(400, "malformed body"), nil
	}
	res := reply(200, "ok")
	for _, m := range body.Messages {
		if m.ID == "" || m.User == "" {
			return reply(400, "message without id or user"), nil
		}
		e := sdk.Event{
			ID: m.ID, Kind: sdk.EventMessage, ConversationKey: "test:" + instance + ":" + m.User,
			Contact:   sdk.Identity{Channel: "test", UserID: m.User, DisplayName: m.Name, Phone: m.Phone, Instance: instance},
			Direction: sdk.DirectionInbound, Author: sdk.AuthorCustomer,
			Message: &sdk.Message{Type: "text", Text: m.Text}, Timestamp: time.UnixMilli(m.TS),
		}
		if m.TS == 0 {
			e.Timestamp = req.ReceivedAt
		}
		if m.Author == "agent" {
			e.Direction, e.Author, e.AgentID = sdk.DirectionOutbound, sdk.AuthorAgent, m.Agent
		}
		e.Raw, _ = json.Marshal(m)
		res.Events = append(res.Events, e)
	}
	return res, nil
}

func (c *Channel) webhookFaults(ctx context.Context, cfg ChannelConfig, req *sdk.WebhookRequest) error {
	if req.Header.Get(FaultCrashHeader) != "" {
		os.Exit(2)
	}
	if req.Header.Get(FaultHangHeader) != "" {
		<-ctx.Done()
		return ctx.Err()
	}
	if cfg.WebhookGateURL != "" {
		hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.WebhookGateURL+"?id="+url.QueryEscape(req.Header.Get("X-Request-Id")), nil)
		if err != nil {
			return sdk.Permanent(fmt.Errorf("gate request: %w", err))
		}
		resp, err := c.client.Do(hreq)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return sdk.Retryable(fmt.Errorf("gate: %w", err), 0)
		}
		resp.Body.Close()
	}
	if name := req.Header.Get(FaultErrorHeader); name != "" {
		if err, ok := WebhookErrors[name]; ok {
			return err
		}
		return sdk.Invalid(fmt.Errorf("no test error %q", name))
	}
	return nil
}

func (c *Channel) Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error) {
	cfg, instance := c.config()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.HangOn != "" && strings.Contains(msg.Text, cfg.HangOn) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if cfg.SendLatencyMS > 0 {
		select {
		case <-time.After(time.Duration(cfg.SendLatencyMS) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	id := fmt.Sprintf("tc-%d-%d", time.Now().UnixNano(), c.seq.Add(1))
	if cfg.SinkURL != "" {
		b, _ := json.Marshal(SentMessage{ProviderID: id, IdempotencyKey: msg.IdempotencyKey, ConversationKey: msg.ConversationKey,
			To: msg.To.UserID, Text: msg.Text, Instance: instance})
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.SinkURL, bytes.NewReader(b))
		if err != nil {
			return nil, sdk.Permanent(fmt.Errorf("sink request: %w", err))
		}
		hreq.Header.Set("Content-Type", "application/json")
		resp, err := c.client.Do(hreq)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, sdk.Retryable(fmt.Errorf("sink: %w", err), 0)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			return nil, sdk.RateLimited(errors.New("sink rate limited"), time.Second)
		case resp.StatusCode >= 500:
			return nil, sdk.Retryable(fmt.Errorf("sink answered %d", resp.StatusCode), 0)
		case resp.StatusCode >= 400:
			return nil, sdk.Permanent(fmt.Errorf("sink answered %d", resp.StatusCode))
		}
	}
	return &sdk.SendResult{ProviderMessageID: id, AcceptedAt: time.Now()}, nil
}
