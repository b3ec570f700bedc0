package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// maxResponse bounds what we read of a Graph answer; real ones are < 2 KB.
const maxResponse = 1 << 20

// graphClient calls the Graph API for one phone number.
type graphClient struct {
	base  string // base_url/api_version
	pnid  string
	token string
	http  *http.Client
}

// sendResponse is the 200 answer of POST /{phone-number-id}/messages.
type sendResponse struct {
	MessagingProduct string `json:"messaging_product"`
	Contacts         []struct {
		Input  string `json:"input"`
		WaID   string `json:"wa_id"`
		UserID string `json:"user_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

func (g *graphClient) sendMessage(ctx context.Context, payload *outMessage) (*sendResponse, error) {
	var out sendResponse
	if err := g.do(ctx, "send", http.MethodPost, "/"+g.pnid+"/messages", payload, &out); err != nil {
		return nil, err
	}
	if len(out.Messages) == 0 || out.Messages[0].ID == "" {
		return nil, sdk.Retryable(errors.New("whatsapp send: Graph API answered 200 without a message id"), 0).
			WithReason(ReasonProviderError)
	}
	return &out, nil
}

// phoneNumberInfo reads the phone number object: a cheap authenticated
// call for health checks.
func (g *graphClient) phoneNumberInfo(ctx context.Context) error {
	var out map[string]any
	return g.do(ctx, "health", http.MethodGet, "/"+g.pnid+"?fields=id,display_phone_number,quality_rating", nil, &out)
}

func (g *graphClient) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return sdk.Invalid(fmt.Errorf("whatsapp %s: encode request: %w", op, err))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, body)
	if err != nil {
		return sdk.Invalid(fmt.Errorf("whatsapp %s: build request: %w", op, err))
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		// Transport error: connection refused, reset, timeout. Whether
		// Meta got the message is unknown; the hub's retry plus the
		// idempotency claim is the best we can do.
		return sdk.Retryable(fmt.Errorf("whatsapp %s: %s", op, scrub(err.Error(), g.token)), 0).WithReason(ReasonProviderError)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return sdk.Retryable(fmt.Errorf("whatsapp %s: read response: %w", op, err), 0).WithReason(ReasonProviderError)
	}
	if resp.StatusCode/100 != 2 {
		return mapGraphError(op, resp.StatusCode, resp.Header, raw, g.token)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			ct := resp.Header.Get("Content-Type")
			return sdk.Retryable(fmt.Errorf("whatsapp %s: unreadable 2xx answer (%s): %w", op, strings.SplitN(ct, ";", 2)[0], err), 0).
				WithReason(ReasonProviderError)
		}
	}
	return nil
}
