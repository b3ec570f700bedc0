package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// client speaks HubSpot's REST API: auth, client-side rate limiting and
// the mapping of HTTP failures to typed sdk errors. It never retries: the
// hub's queue does, honouring the retry-after carried by the error.
type client struct {
	base    string
	token   string
	http    *http.Client
	timeout time.Duration
	limit   *limiter // nil: no client-side limiting
	clock   Clock
	loc     *time.Location
}

// apiError is a non-2xx answer, kept as the cause inside the typed sdk
// error so callers can look at the status (409 → existing id, 404).
type apiError struct {
	Method, Path  string
	Status        int
	Category      string
	Message       string
	CorrelationID string
	PolicyName    string
	SubCode       string // first errors[].code, e.g. PROPERTY_DOESNT_EXIST
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("hubspot %s %s: %d", e.Method, e.Path, e.Status)
	if e.Category != "" {
		s += " " + e.Category
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.CorrelationID != "" {
		s += " (correlationId " + e.CorrelationID + ")"
	}
	return s
}

// errorBody is HubSpot's error JSON (reference §8 and §9).
type errorBody struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
	Category      string `json:"category"`
	ErrorType     string `json:"errorType"`
	PolicyName    string `json:"policyName"`
	Errors        []struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"errors"`
}

const maxBody = 8 << 20

// do sends one request. search marks calls to a /search endpoint, which
// HubSpot limits separately.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	if c.limit != nil {
		if err := c.limit.acquire(ctx, isSearchCall(method, path)); err != nil {
			return err
		}
	}
	var body io.Reader
	if in != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // note bodies are HTML; keep them readable on the wire
		if err := enc.Encode(in); err != nil {
			return sdk.Invalid(fmt.Errorf("hubspot %s %s: encode request: %w", method, path, err))
		}
		body = &buf
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return sdk.Invalid(fmt.Errorf("hubspot %s %s: %w", method, path, err))
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil && errors.Is(err, context.Canceled) {
			return fmt.Errorf("hubspot %s %s: %w", method, path, ctxErr)
		}
		// url.Error carries the URL, never the Authorization header.
		return sdk.Retryable(fmt.Errorf("hubspot %s %s: %w", method, path, err), 0).WithReason("network")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return sdk.Retryable(fmt.Errorf("hubspot %s %s: read response: %w", method, path, err), 0).WithReason("network")
	}
	c.observe(ctx, resp.Header)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(raw) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return sdk.Retryable(fmt.Errorf("hubspot %s %s: decode response: %w", method, path, err), 0).WithReason("bad_response")
		}
		return nil
	}
	return c.mapError(ctx, method, path, resp, raw)
}

// observe honours an exhausted daily budget reported by the headers, so
// other replicas stop before HubSpot starts answering 429.
func (c *client) observe(ctx context.Context, h http.Header) {
	if c.limit == nil {
		return
	}
	if v := h.Get("X-HubSpot-RateLimit-Daily-Remaining"); v == "0" {
		c.limit.cooldown(ctx, policyDaily, untilMidnight(c.clock.Now(), c.loc))
	}
}

func (c *client) mapError(ctx context.Context, method, path string, resp *http.Response, raw []byte) error {
	var eb errorBody
	_ = json.Unmarshal(raw, &eb) // 5xx from HubSpot's edge may be HTML
	ae := &apiError{Method: method, Path: path, Status: resp.StatusCode, Category: eb.Category,
		Message: scrub(eb.Message), CorrelationID: eb.CorrelationID, PolicyName: eb.PolicyName}
	if len(eb.Errors) > 0 {
		ae.SubCode = eb.Errors[0].Code
	}
	if ae.Category == "" && eb.ErrorType != "" {
		ae.Category = eb.ErrorType
	}
	code := ae.Category
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		return &sdk.Error{Code: sdk.CodeUnauthorized, Err: ae, Reason: "token_rejected", ProviderCode: code,
			Message: "HubSpot rejected the private-app token: check HUBSPOT_TOKEN / its scopes (" + ae.Error() + ")"}
	case s == http.StatusForbidden:
		return &sdk.Error{Code: sdk.CodeUnauthorized, Err: ae, Reason: "missing_scopes", ProviderCode: code,
			Message: "HubSpot refused the call: the private app lacks a scope for it (" + ae.Error() + ")"}
	case s == http.StatusTooManyRequests:
		policy := rateLimitPolicy(eb, isSearchCall(method, path))
		after := c.retryAfter(resp.Header, policy)
		if c.limit != nil {
			c.limit.cooldown(ctx, policy, c.clock.Now().Add(after))
		}
		return sdk.RateLimited(ae, after).WithReason(strings.ToLower(policy)).WithProviderCode(code)
	case s == http.StatusNotFound:
		return sdk.NotFound(ae).WithProviderCode(code)
	case s == http.StatusConflict:
		return sdk.Conflict(ae).WithProviderCode(code)
	case s >= 500:
		return sdk.Retryable(ae, parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())).WithProviderCode(code)
	case s == http.StatusRequestTimeout:
		return sdk.Retryable(ae, 0).WithProviderCode(code)
	default:
		e := sdk.Invalid(ae).WithProviderCode(code)
		if ae.SubCode != "" {
			e.WithReason(strings.ToLower(ae.SubCode))
		}
		return e
	}
}

// isSearchCall: HubSpot limits the search endpoints separately.
func isSearchCall(method, path string) bool {
	return method == http.MethodPost && strings.HasSuffix(path, "/search")
}

const (
	policyTenSecond = "TEN_SECONDLY_ROLLING"
	policyDaily     = "DAILY"
	policySecondly  = "SECONDLY"
)

// rateLimitPolicy names the limit a 429 hit. Search 429s may carry no
// policyName, only the "secondly" message.
func rateLimitPolicy(eb errorBody, isSearch bool) string {
	switch {
	case eb.PolicyName == policyDaily || strings.Contains(strings.ToLower(eb.Message), "daily"):
		return policyDaily
	case eb.PolicyName == policySecondly || strings.Contains(strings.ToLower(eb.Message), "secondly limit"),
		isSearch && eb.PolicyName == "":
		return policySecondly
	default:
		return policyTenSecond
	}
}

// retryAfter: Retry-After if HubSpot sent one; otherwise the policy's
// window: midnight in the account's zone for the daily limit, one second
// for search, and the rolling interval for the 10-second limit.
func (c *client) retryAfter(h http.Header, policy string) time.Duration {
	now := c.clock.Now()
	if d := parseRetryAfter(h.Get("Retry-After"), now); d > 0 {
		return d
	}
	switch policy {
	case policyDaily:
		return untilMidnight(now, c.loc).Sub(now)
	case policySecondly:
		return time.Second
	}
	if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func untilMidnight(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
}

var (
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	phoneRe = regexp.MustCompile(`\+?\d[\d \-]{7,}\d`)
)

// scrub removes emails and phone numbers from provider messages before
// they travel into the hub's logs (validation errors echo the values).
func scrub(s string) string {
	s = emailRe.ReplaceAllString(s, "<email>")
	s = phoneRe.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "+") {
			return "<phone>"
		}
		return m // bare digit runs are usually record ids
	})
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// statusOf returns the HTTP status of a HubSpot error, or 0.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

var existingIDRe = regexp.MustCompile(`Existing ID: (\d+)`)

// existingID parses the id of the contact a 409 collided with.
func existingID(err error) string {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		return ""
	}
	if m := existingIDRe.FindStringSubmatch(ae.Message); m != nil {
		return m[1]
	}
	return ""
}
