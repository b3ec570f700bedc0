package zalo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Zalo OpenAPI error codes with a meaning for the plugin (reference §4).
const (
	errRateLimited        = -32
	errParamInvalid       = -201
	errOADisabled         = -204
	errOANotExist         = -205
	errOutOfQuota         = -211
	errNotFollower        = -213
	errTokenInvalid       = -216
	errTokenExpired       = -220
	errNoPermission       = -223
	errTierRequired       = -224
	errUserInactive       = -227
	errNoInteraction      = -230
	errNoValidInteraction = -232
	errMessageType        = -233
	errAPIShutDown        = -240
	errUserRestricted     = -244
	errNeedsZCA           = -320
	errZCAOutOfMoney      = -321

	errInvalidRefreshToken = -14014
	errRefreshExpired      = -14020
)

// apiClient calls Zalo's OpenAPI and OAuth hosts.
type apiClient struct {
	http                *http.Client
	openapi, oauth      string
	appID, appSecret    string
	rateLimitRetryAfter time.Duration
}

// apiEnvelope is the OpenAPI answer: HTTP 200 whatever happened, "error"
// 0 on success.
type apiEnvelope struct {
	Error   flexString      `json:"error"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// providerError is a non-zero "error" from Zalo.
type providerError struct {
	Code    int
	Message string
}

func (e *providerError) Error() string {
	return fmt.Sprintf("zalo error %d: %s", e.Code, e.Message)
}

// do sends one request and decodes Zalo's envelope. HTTP-level failures
// (outages, proxies) come back as typed SDK errors; a non-zero "error" as
// *providerError for the caller to map.
func (a *apiClient) do(req *http.Request, out any) error {
	res, err := a.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return fmt.Errorf("zalo %s: %w", req.URL.Path, ctxErr)
		}
		// url.Error names the URL only; tokens travel in headers and bodies.
		return sdk.Retryable(fmt.Errorf("zalo %s: %w", req.URL.Path, err), 0).WithReason("network")
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return sdk.Retryable(fmt.Errorf("zalo %s: read answer: %w", req.URL.Path, err), 0).WithReason("network")
	}
	if res.StatusCode != http.StatusOK {
		return httpStatusError(req.URL.Path, res, a.rateLimitRetryAfter)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return sdk.Retryable(fmt.Errorf("zalo %s: unexpected answer (HTTP 200, not Zalo's JSON): %w", req.URL.Path, err), 0).WithReason("bad_answer")
	}
	return nil
}

func httpStatusError(path string, res *http.Response, defaultWait time.Duration) error {
	err := fmt.Errorf("zalo %s: HTTP %d", path, res.StatusCode)
	after := retryAfter(res.Header.Get("Retry-After"), time.Now())
	switch {
	case res.StatusCode == http.StatusTooManyRequests:
		if after == 0 {
			after = defaultWait
		}
		return sdk.RateLimited(err, after).WithReason("rate_limited").WithProviderCode(strconv.Itoa(res.StatusCode))
	case res.StatusCode >= 500:
		return sdk.Retryable(err, after).WithReason("provider_unavailable").WithProviderCode(strconv.Itoa(res.StatusCode))
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return sdk.Unauthorized(err).WithProviderCode(strconv.Itoa(res.StatusCode))
	}
	return sdk.Permanent(err).WithProviderCode(strconv.Itoa(res.StatusCode))
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// openAPI calls an OpenAPI endpoint with the OA access token and returns
// "data" on success.
func (a *apiClient) openAPI(ctx context.Context, method, path, token string, query url.Values, body []byte) (json.RawMessage, error) {
	u := a.openapi + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, sdk.Permanent(fmt.Errorf("zalo: build request: %w", err))
	}
	req.Header.Set("access_token", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var env apiEnvelope
	if err := a.do(req, &env); err != nil {
		return nil, err
	}
	code, err := strconv.Atoi(string(env.Error))
	if env.Error == "" {
		code, err = 0, nil
	}
	if err != nil {
		return nil, sdk.Retryable(fmt.Errorf("zalo %s: unexpected error field %q", path, env.Error), 0).WithReason("bad_answer")
	}
	if code != 0 {
		return nil, &providerError{Code: code, Message: env.Message}
	}
	return env.Data, nil
}

// tokenAnswer is the OAuth v4 token endpoint's answer, success or error.
type tokenAnswer struct {
	AccessToken      string     `json:"access_token"`
	RefreshToken     string     `json:"refresh_token"`
	ExpiresIn        flexString `json:"expires_in"` // "90000" (string) or a number
	Error            flexString `json:"error"`
	ErrorName        string     `json:"error_name"`
	ErrorDescription string     `json:"error_description"`
}

// refresh exchanges a refresh token for a new pair. The refresh token is
// spent by this call whenever Zalo answered success.
func (a *apiClient) refresh(ctx context.Context, refreshToken string) (access, refresh string, expiresIn time.Duration, err error) {
	form := url.Values{"refresh_token": {refreshToken}, "app_id": {a.appID}, "grant_type": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.oauth+"/v4/oa/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", 0, sdk.Permanent(fmt.Errorf("zalo oauth: build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("secret_key", a.appSecret)
	var ans tokenAnswer
	if err := a.do(req, &ans); err != nil {
		return "", "", 0, err
	}
	if ans.Error != "" && ans.Error != "0" {
		code, _ := strconv.Atoi(string(ans.Error))
		desc := ans.ErrorDescription
		if desc == "" {
			desc = ans.ErrorName
		}
		e := fmt.Errorf("zalo oauth refresh refused: %s", desc)
		switch code {
		case errInvalidRefreshToken:
			return "", "", 0, sdk.Unauthorized(e).WithReason("refresh_token_invalid").WithProviderCode(string(ans.Error))
		case errRefreshExpired:
			return "", "", 0, sdk.Unauthorized(e).WithReason("refresh_token_expired").WithProviderCode(string(ans.Error))
		}
		return "", "", 0, sdk.Unauthorized(e).WithReason("oauth_error").WithProviderCode(string(ans.Error))
	}
	if ans.AccessToken == "" {
		return "", "", 0, sdk.Retryable(errors.New("zalo oauth: answer carries no access_token"), 0).WithReason("bad_answer")
	}
	secs, _ := strconv.ParseInt(string(ans.ExpiresIn), 10, 64)
	return ans.AccessToken, ans.RefreshToken, time.Duration(secs) * time.Second, nil
}

// mapProviderError turns a Zalo error code into the SDK's typed error.
func (a *apiClient) mapProviderError(pe *providerError) error {
	code := strconv.Itoa(pe.Code)
	msg := func(s string) error { return fmt.Errorf("zalo: %s (Zalo says: %s)", s, pe.Message) }
	switch pe.Code {
	case errTokenInvalid, errTokenExpired:
		return sdk.Unauthorized(msg("the OA access token was rejected")).WithReason("token_invalid").WithProviderCode(code)
	case errRateLimited:
		return sdk.RateLimited(msg("the app reached Zalo's API call limit"), a.rateLimitRetryAfter).WithReason("rate_limited").WithProviderCode(code)
	case errParamInvalid:
		return sdk.Invalid(msg("Zalo refused a parameter of the message")).WithReason("invalid_parameter").WithProviderCode(code)
	case errMessageType:
		return sdk.Invalid(msg("Zalo does not accept this message type")).WithReason("message_type_unsupported").WithProviderCode(code)
	case errOADisabled, errOANotExist:
		return sdk.Permanent(msg("the Official Account is disabled or does not exist")).WithReason("oa_unavailable").WithProviderCode(code)
	case errOutOfQuota:
		return sdk.Permanent(msg("the OA is out of message quota for this user")).WithReason("quota_exhausted").WithProviderCode(code)
	case errNotFollower, errNoInteraction, errNoValidInteraction:
		return sdk.Permanent(msg("the user is outside Zalo's interaction window (no recent interaction with the OA); only a ZNS template could reach them")).
			WithReason("window_closed").WithProviderCode(code)
	case errNoPermission:
		return sdk.Unauthorized(msg("the OA has not granted this app the permission for this API")).WithReason("permission_denied").WithProviderCode(code)
	case errTierRequired:
		return sdk.Permanent(msg("the OA must upgrade its Zalo tier package for this API")).WithReason("tier_required").WithProviderCode(code)
	case errUserInactive:
		return sdk.Permanent(msg("the user is banned or inactive for more than 45 days")).WithReason("user_unreachable").WithProviderCode(code)
	case errUserRestricted:
		return sdk.Permanent(msg("the user restricted this message type from the OA")).WithReason("user_restricted").WithProviderCode(code)
	case errAPIShutDown:
		return sdk.Permanent(msg("Zalo shut this API version down")).WithReason("api_version").WithProviderCode(code)
	case errNeedsZCA, errZCAOutOfMoney:
		return sdk.Permanent(msg("the app's Zalo Cloud Account is missing or out of money")).WithReason("billing").WithProviderCode(code)
	}
	// Unknown codes: retry through the hub's backoff rather than drop a
	// reply on a code we have not seen; the hub dead-letters after its
	// attempts.
	return sdk.Retryable(msg("unexpected Zalo error"), 0).WithReason("provider_error").WithProviderCode(code)
}

func isTokenError(err error) bool {
	var pe *providerError
	return errors.As(err, &pe) && (pe.Code == errTokenInvalid || pe.Code == errTokenExpired)
}
