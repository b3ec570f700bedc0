// Package main is an out-of-tree Switchboard channel plugin: "echo", a
// tiny chat provider whose webhooks carry a shared token and whose outbound
// messages are POSTed to an outbox URL. It shows everything a third party
// needs: the SDK's plain Go interfaces, typed errors, the host KV, and one
// call to serve.
package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Config is the plugin's config block in the hub's YAML.
type Config struct {
	Token     string `json:"token"`      // webhooks must carry "Authorization: Bearer <token>"
	OutboxURL string `json:"outbox_url"` // where Send POSTs messages; empty: accept and drop
}

// Echo is the channel.
type Echo struct {
	mu     sync.RWMutex
	cfg    Config
	host   sdk.Host
	client *http.Client
}

func (e *Echo) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{Name: "echo", Kind: sdk.KindChannel, Version: "0.1.0",
		Description: "Example out-of-tree channel plugin", Capabilities: []string{"text"}}, nil
}

func (e *Echo) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var cfg Config
	if err := json.Unmarshal(req.Config, &cfg); err != nil {
		return sdk.Invalid(fmt.Errorf("echo config: %w", err))
	}
	if cfg.Token == "" {
		return sdk.Invalid(errors.New("echo config: token is required"))
	}
	e.mu.Lock()
	e.cfg, e.host = cfg, req.Host
	e.client = &http.Client{Timeout: 10 * time.Second}
	e.mu.Unlock()
	return nil
}

type inbound struct {
	ID   string `json:"id"`
	From string `json:"from"`
	Name string `json:"name"`
	Text string `json:"text"`
}

func (e *Echo) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	e.mu.RLock()
	cfg, host := e.cfg, e.host
	e.mu.RUnlock()
	answer := func(status int) *sdk.WebhookResult {
		return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: status}}
	}
	want := []byte("Bearer " + cfg.Token)
	if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
		return answer(http.StatusUnauthorized), nil
	}
	var in inbound
	if err := json.Unmarshal(req.Body, &in); err != nil || in.ID == "" || in.From == "" {
		return answer(http.StatusBadRequest), nil
	}
	// Count messages per sender in the hub's KV, shared by every replica.
	if _, err := host.KV().Put(ctx, "last-seen:"+in.From, []byte(time.Now().UTC().Format(time.RFC3339)), 24*time.Hour); err != nil {
		return nil, err // the hub answers 5xx and the provider retries
	}
	res := answer(http.StatusOK)
	res.Events = []sdk.Event{{
		ID: in.ID, Kind: sdk.EventMessage, ConversationKey: "echo:" + in.From,
		Contact:   sdk.Identity{Channel: "echo", UserID: in.From, DisplayName: in.Name},
		Direction: sdk.DirectionInbound, Author: sdk.AuthorCustomer,
		Message: &sdk.Message{Type: "text", Text: in.Text}, Timestamp: req.ReceivedAt, Raw: req.Body,
	}}
	return res, nil
}

func (e *Echo) Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error) {
	e.mu.RLock()
	cfg, client := e.cfg, e.client
	e.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := "echo-" + msg.IdempotencyKey
	if cfg.OutboxURL == "" {
		return &sdk.SendResult{ProviderMessageID: id, AcceptedAt: time.Now()}, nil
	}
	body, _ := json.Marshal(map[string]string{"to": msg.To.UserID, "text": msg.Text, "id": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.OutboxURL, bytes.NewReader(body))
	if err != nil {
		return nil, sdk.Permanent(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, sdk.Retryable(err, 0)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, sdk.RateLimited(errors.New("outbox rate limited"), 5*time.Second)
	case resp.StatusCode >= 500:
		return nil, sdk.Retryable(fmt.Errorf("outbox answered %d", resp.StatusCode), 0)
	case resp.StatusCode >= 400:
		return nil, sdk.Permanent(fmt.Errorf("outbox answered %d", resp.StatusCode))
	}
	return &sdk.SendResult{ProviderMessageID: id, AcceptedAt: time.Now()}, nil
}

func main() { sdk.ServeChannel(&Echo{}) }
