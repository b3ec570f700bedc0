package claudefake

import (
	"encoding/json"
	"net/http"
	"time"
)

// Reply is what the fake answers to one request: either a model output or an
// API error. Build it with the constructors below or fill the fields.
type Reply struct {
	// Facts is the structured answer. It is delivered the way the request
	// asked for: as the input of the forced tool, as a JSON text block under
	// output_config.format, or as a <data> block after Text otherwise.
	Facts any
	// Text is plain text. With IgnoreFormat (or when the request asked for
	// no format) it is the whole text block, followed by a <data> block when
	// Facts is set too.
	Text string
	// IgnoreFormat makes the model ignore the forced tool and the JSON
	// schema format and answer in plain text, as models sometimes do.
	IgnoreFormat bool
	// Raw, when set, is delivered verbatim through the structured channel
	// (the JSON text block, or the tool input when it is a JSON object):
	// for output that is not valid for the schema or not JSON at all.
	Raw string
	// StopReason overrides the stop reason ("max_tokens", "refusal", ...).
	StopReason string
	// Latency delays this reply (on top of the server's latency).
	Latency time.Duration

	// Status, when not 0 or 200, makes this reply an API error.
	Status       int
	ErrorType    string
	ErrorMessage string
	ErrorDetails map[string]any
	// RetryAfter, when set on an error, is sent as retry-after (whole
	// seconds, rounded up) and sets the anthropic-ratelimit-*-reset times.
	RetryAfter time.Duration
	Header     http.Header
}

// FactsReply answers with structured facts in the requested format.
func FactsReply(facts any) Reply { return Reply{Facts: facts} }

// TextReply answers with plain text only, ignoring any requested format.
func TextReply(text string) Reply { return Reply{Text: text, IgnoreFormat: true} }

// DataBlockReply answers in plain text with the facts in a trailing
// <data>{...}</data> block, ignoring the forced tool or JSON format.
func DataBlockReply(text string, facts any) Reply {
	return Reply{Text: text, Facts: facts, IgnoreFormat: true}
}

// RawReply delivers raw through the structured channel unchanged.
func RawReply(raw string) Reply { return Reply{Raw: raw} }

// ErrorReply is an API error with the real envelope.
func ErrorReply(status int, errType, message string) Reply {
	return Reply{Status: status, ErrorType: errType, ErrorMessage: message, Header: http.Header{}}
}

// RateLimited is a 429 rate_limit_error with retry-after (whole seconds,
// rounded up) and the anthropic-ratelimit-* headers showing the request
// budget spent until the reset.
func RateLimited(after time.Duration) Reply {
	r := ErrorReply(http.StatusTooManyRequests, "rate_limit_error",
		"This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.")
	r.RetryAfter = after
	r.Header.Set("x-should-retry", "true")
	r.Header.Set("anthropic-ratelimit-requests-remaining", "0")
	return r
}

// SpendLimitReached is the 429 of an exhausted spend limit: no retry-after,
// and error.details.error_code says so. Retrying does not help.
func SpendLimitReached() Reply {
	r := ErrorReply(http.StatusTooManyRequests, "rate_limit_error",
		"You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.")
	r.ErrorDetails = map[string]any{"error_code": "enforced_spend_limit_reached"}
	r.Header.Set("x-should-retry", "false")
	return r
}

// Overloaded is a 529 overloaded_error; after 0 sends no retry-after.
func Overloaded(after time.Duration) Reply {
	r := ErrorReply(529, "overloaded_error", "Overloaded")
	r.RetryAfter = after
	r.Header.Set("x-should-retry", "true")
	return r
}

// ServerError is a 500 api_error.
func ServerError() Reply {
	r := ErrorReply(http.StatusInternalServerError, "api_error", "Internal server error")
	r.Header.Set("x-should-retry", "true")
	return r
}

// Unauthorized is the 401 of a bad or missing key.
func Unauthorized() Reply {
	return ErrorReply(http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
}

// PermissionDenied is a 403 permission_error.
func PermissionDenied() Reply {
	return ErrorReply(http.StatusForbidden, "permission_error", "Your API key does not have permission to use the specified resource.")
}

// NotFoundModel is the 404 of an unknown model id.
func NotFoundModel(model string) Reply {
	return ErrorReply(http.StatusNotFound, "not_found_error", "model: "+model)
}

// InvalidRequest is a 400 invalid_request_error.
func InvalidRequest(message string) Reply {
	return ErrorReply(http.StatusBadRequest, "invalid_request_error", message)
}

// TooLarge is a 413 request_too_large.
func TooLarge() Reply {
	return ErrorReply(http.StatusRequestEntityTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
}

func (r Reply) isError() bool { return r.Status != 0 && r.Status != http.StatusOK }

func mustJSON(v any) json.RawMessage {
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("claudefake: facts are not JSON-encodable: " + err.Error())
	}
	return b
}
