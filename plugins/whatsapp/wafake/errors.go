package wafake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// GraphError is an error the fake answers with, in Graph API's envelope:
//
//	{"error":{"message","type","code","error_data":{"messaging_product","details"},"error_subcode","fbtrace_id"}}
//
// Build one with the constructors below (Meta's codes, messages and HTTP
// statuses from the wire reference) and adjust fields as needed.
type GraphError struct {
	HTTPStatus int
	Code       int
	Subcode    int // 0: omitted (Meta says it is deprecated, yet still sends it)
	Type       string
	Message    string
	Details    string // error_data.details; "" omits error_data
	// Header is added to the response, e.g. Retry-After.
	Header http.Header
}

func (e *GraphError) Error() string { return e.Message }

type graphErrorJSON struct {
	Error graphErrorInner `json:"error"`
}

type graphErrorInner struct {
	Message      string        `json:"message"`
	Type         string        `json:"type"`
	Code         int           `json:"code"`
	ErrorData    *graphErrData `json:"error_data,omitempty"`
	ErrorSubcode int           `json:"error_subcode,omitempty"`
	FBTraceID    string        `json:"fbtrace_id"`
}

type graphErrData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

// Body renders the Graph error JSON with the given fbtrace_id.
func (e *GraphError) Body(fbtraceID string) []byte {
	in := graphErrorInner{Message: e.Message, Type: e.Type, Code: e.Code, ErrorSubcode: e.Subcode, FBTraceID: fbtraceID}
	if in.Type == "" {
		in.Type = "OAuthException"
	}
	if e.Details != "" {
		in.ErrorData = &graphErrData{MessagingProduct: "whatsapp", Details: e.Details}
	}
	b, _ := json.Marshal(graphErrorJSON{Error: in})
	return b
}

// webhookError is the same error as it appears inside a webhook (a failed
// status's errors[] or value.errors[]).
func (e *GraphError) webhookError() map[string]any {
	m := map[string]any{"code": e.Code, "title": stripCode(e.Message), "message": stripCode(e.Message),
		"href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}
	if e.Details != "" {
		m["error_data"] = map[string]any{"details": e.Details}
	}
	return m
}

// stripCode turns "(#131047) Re-engagement message" into "Re-engagement
// message", as webhook titles read.
func stripCode(s string) string {
	if strings.HasPrefix(s, "(#") {
		if i := strings.Index(s, ") "); i > 0 {
			return s[i+2:]
		}
	}
	return s
}

func withCode(code int, msg string) string { return "(#" + strconv.Itoa(code) + ") " + msg }

// ErrTokenExpired: code 190, subcode 463, HTTP 401.
func ErrTokenExpired() *GraphError {
	return &GraphError{HTTPStatus: http.StatusUnauthorized, Code: 190, Subcode: 463, Type: "OAuthException",
		Message: "Error validating access token: Session has expired on Tuesday, 01-Jul-25 10:00:00 PDT. The current time is Tuesday, 01-Jul-25 11:00:00 PDT."}
}

// ErrTokenInvalid: code 190, HTTP 401 (unknown or malformed token).
func ErrTokenInvalid() *GraphError {
	return &GraphError{HTTPStatus: http.StatusUnauthorized, Code: 190, Type: "OAuthException",
		Message: "Invalid OAuth access token - Cannot parse access token"}
}

// ErrReengagement: 131047, a free-form message outside the 24-hour window.
func ErrReengagement() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 131047, Subcode: 2494055, Type: "OAuthException",
		Message: withCode(131047, "Re-engagement message"),
		Details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}
}

// ErrThroughput: 130429, the number's messages-per-second limit.
func ErrThroughput() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 130429, Type: "OAuthException",
		Message: withCode(130429, "Rate limit hit"),
		Details: "Cloud API message throughput has been reached."}
}

// ErrPairRateLimit: 131056, too many messages to the same user too fast.
func ErrPairRateLimit() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 131056, Type: "OAuthException",
		Message: withCode(131056, "(Business Account, Consumer Account) pair rate limit hit"),
		Details: "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."}
}

// ErrAccountRateLimit: 80007, the WhatsApp Business Account's rate limit.
func ErrAccountRateLimit() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 80007, Type: "OAuthException",
		Message: withCode(80007, "Rate limit issues"),
		Details: "The WhatsApp Business Account has reached its rate limit."}
}

// ErrAppRateLimit: code 4, the app's API call limit (429 per Meta's table).
func ErrAppRateLimit() *GraphError {
	return &GraphError{HTTPStatus: http.StatusTooManyRequests, Code: 4, Type: "OAuthException",
		Message: withCode(4, "Application request limit reached")}
}

// ErrSpamRateLimit: 131048, sends restricted for quality reasons.
func ErrSpamRateLimit() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 131048, Type: "OAuthException",
		Message: withCode(131048, "Spam rate limit hit"),
		Details: "Message failed to send because there are restrictions on how many messages can be sent from this phone number."}
}

// ErrUndeliverable: 131026 (mostly seen as an async failed status).
func ErrUndeliverable() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 131026, Type: "OAuthException",
		Message: withCode(131026, "Message Undeliverable"), Details: "Message Undeliverable."}
}

// ErrInvalidParameter: code 100 with details.
func ErrInvalidParameter(details string) *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 100, Type: "OAuthException",
		Message: withCode(100, "Invalid parameter"), Details: details}
}

// ErrGeneric: 131000 "Something went wrong", HTTP 500.
func ErrGeneric() *GraphError {
	return &GraphError{HTTPStatus: http.StatusInternalServerError, Code: 131000, Type: "OAuthException",
		Message: withCode(131000, "Something went wrong"), Details: "Something went wrong"}
}

// ErrServiceUnavailable: 131016, HTTP 503.
func ErrServiceUnavailable() *GraphError {
	return &GraphError{HTTPStatus: http.StatusServiceUnavailable, Code: 131016, Type: "OAuthException",
		Message: withCode(131016, "Service unavailable"), Details: "A service is temporarily unavailable."}
}

// ErrTemplateNotFound: 132001.
func ErrTemplateNotFound() *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 132001, Type: "OAuthException",
		Message: withCode(132001, "Template name does not exist in the translation"),
		Details: "template name does not exist in the translation"}
}

// ErrUnknownObject: code 100 subcode 33, a phone number id the token cannot see.
func ErrUnknownObject(id, method string) *GraphError {
	return &GraphError{HTTPStatus: http.StatusBadRequest, Code: 100, Subcode: 33, Type: "GraphMethodException",
		Message: "Unsupported " + method + " request. Object with ID '" + id + "' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"}
}
