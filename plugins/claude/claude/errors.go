package claude

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// apiErrorBody is the error envelope of reference §3.
type apiErrorBody struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Details struct {
			ErrorCode string `json:"error_code"`
		} `json:"details"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// mapError turns what the SDK returned into a typed error the hub can act
// on. The messages name the status, the API's error type and message and
// the request id; never the key, never the prompt.
func mapError(err error, defaultRetry time.Duration, now time.Time) error {
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		// No HTTP answer: connection refused, reset, DNS. Worth a retry.
		return sdk.Retryable(fmt.Errorf("claude: calling the Messages API: %w", redactTransport(err)), 0).WithReason("transport")
	}
	var body apiErrorBody
	_ = json.Unmarshal([]byte(apiErr.RawJSON()), &body)
	status := apiErr.StatusCode
	errType := body.Error.Type
	if errType == "" {
		errType = string(apiErr.Type())
	}
	reqID := apiErr.RequestID
	if reqID == "" {
		reqID = body.RequestID
	}
	var h http.Header
	if apiErr.Response != nil {
		h = apiErr.Response.Header
	}
	msg := fmt.Sprintf("claude: Messages API answered %d %s", status, errType)
	if body.Error.Message != "" {
		msg += ": " + capRunes(body.Error.Message, 300)
	}
	if reqID != "" {
		msg += " (request-id " + reqID + ")"
	}
	cause := errors.New(msg)
	after, hasAfter := retryAfter(h, now)
	shouldRetry := strings.ToLower(h.Get("x-should-retry"))

	switch {
	case status == http.StatusTooManyRequests && body.Error.Details.ErrorCode == "enforced_spend_limit_reached":
		return sdk.Permanent(fmt.Errorf("%w: the organisation's spend limit is reached; raise it in the Anthropic console", cause)).
			WithReason("spend_limit_reached").WithProviderCode(errType)
	case status == http.StatusTooManyRequests:
		if !hasAfter {
			after = resetAfter(h, now, defaultRetry)
		}
		return sdk.RateLimited(cause, after).WithProviderCode(errType)
	case shouldRetry == "false" && status >= 500:
		return sdk.Permanent(cause).WithProviderCode(errType)
	case status == 529 || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusConflict:
		if !hasAfter {
			after = defaultRetry
		}
		return sdk.Retryable(cause, after).WithProviderCode(errType)
	case status == http.StatusUnauthorized:
		return sdk.Unauthorized(fmt.Errorf("%w: check api_key", cause)).WithProviderCode(errType)
	case status == http.StatusForbidden:
		return sdk.Unauthorized(fmt.Errorf("%w: the key may not use this model or resource", cause)).WithProviderCode(errType)
	case status == http.StatusPaymentRequired:
		return sdk.Permanent(fmt.Errorf("%w: check the account's billing", cause)).WithReason("billing").WithProviderCode(errType)
	case status == http.StatusNotFound:
		return sdk.Permanent(fmt.Errorf("%w: check the model id", cause)).WithReason("model_not_found").WithProviderCode(errType)
	case status == http.StatusRequestEntityTooLarge:
		return sdk.Invalid(fmt.Errorf("%w: the prompt is too large; lower max_history_turns or knowledge_max_chars", cause)).
			WithReason("request_too_large").WithProviderCode(errType)
	case status >= 400 && status < 500:
		return sdk.Invalid(cause).WithProviderCode(errType)
	}
	return sdk.Retryable(cause, 0).WithProviderCode(errType)
}

// retryAfter reads retry-after-ms, then retry-after (seconds or an HTTP
// date), as the API and the official SDKs do.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := h.Get("retry-after")
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// resetAfter derives a wait from the anthropic-ratelimit-*-reset times of
// the exhausted limits when a 429 carries no retry-after.
func resetAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	var wait time.Duration
	for _, kind := range []string{"requests", "tokens", "input-tokens", "output-tokens"} {
		if h.Get("anthropic-ratelimit-"+kind+"-remaining") != "0" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, h.Get("anthropic-ratelimit-"+kind+"-reset")); err == nil {
			wait = max(wait, t.Sub(now))
		}
	}
	if wait <= 0 {
		return def
	}
	return wait
}

// redactTransport keeps a transport error's kind but drops the URL, which
// may carry a proxy's credentials.
func redactTransport(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
