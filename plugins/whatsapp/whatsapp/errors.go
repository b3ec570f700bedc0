package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Reasons set on typed errors (sdk.Error.Reason). The hub and the admin UI
// may match on them; they are part of this plugin's contract.
const (
	ReasonWindowClosed      = "window_closed"
	ReasonTokenInvalid      = "token_invalid"
	ReasonTokenExpired      = "token_expired"
	ReasonPermissionDenied  = "permission_denied"
	ReasonThroughputLimit   = "throughput_limit"
	ReasonPairRateLimit     = "pair_rate_limit"
	ReasonAppRateLimit      = "app_rate_limit"
	ReasonAccountRateLimit  = "account_rate_limit"
	ReasonSpamRateLimit     = "spam_rate_limit"
	ReasonUndeliverable     = "undeliverable"
	ReasonInvalidParameter  = "invalid_parameter"
	ReasonUnsupportedType   = "unsupported_type"
	ReasonMediaDownload     = "media_download_failed"
	ReasonMediaUpload       = "media_upload_failed"
	ReasonProviderError     = "provider_error"
	ReasonMaintenance       = "maintenance"
	ReasonTemplateNotFound  = "template_not_found"
	ReasonTemplatePaused    = "template_paused"
	ReasonTemplateDisabled  = "template_disabled"
	ReasonTemplateInvalid   = "template_invalid"
	ReasonPolicyBlocked     = "policy_blocked"
	ReasonAccountLocked     = "account_locked"
	ReasonEcosystemLimit    = "ecosystem_limit"
	ReasonExperiment        = "experiment"
	ReasonNotAllowed        = "recipient_not_allowed"
	ReasonPayment           = "payment_issue"
	ReasonNotRegistered     = "number_not_registered"
	ReasonCapability        = "capability_missing"
	ReasonInFlight          = "send_in_flight"
	ReasonTooManyAttachment = "one_attachment_per_message"
)

// errClass is how one Graph error code is handled.
type errClass struct {
	code   sdk.ErrorCode
	reason string
	after  time.Duration // default retry-after when Meta sends no header
}

// classify maps Meta's error code (and, for unknown codes, the HTTP status)
// to a typed error. Meta asks clients to build logic on `code`, not on the
// HTTP status, which differs between samples for the throttling codes.
// Sources: the reference's code table (Meta's error-code page, pywa's
// errors.py). Retry-after defaults follow the limit's time scale: the
// throughput limit is per second, the pair limit about one message per 6 s
// to one user, app and account limits are rolling over minutes to an hour.
func classify(code, subcode int) errClass {
	switch {
	case code == 190:
		if subcode == 463 {
			return errClass{sdk.CodeUnauthorized, ReasonTokenExpired, 0}
		}
		return errClass{sdk.CodeUnauthorized, ReasonTokenInvalid, 0}
	case code == 0:
		return errClass{sdk.CodeUnauthorized, ReasonTokenInvalid, 0}
	case code == 10 || (code >= 200 && code <= 299):
		return errClass{sdk.CodeUnauthorized, ReasonPermissionDenied, 0}
	case code == 3:
		return errClass{sdk.CodePermanent, ReasonCapability, 0}
	case code == 4:
		return errClass{sdk.CodeRateLimited, ReasonAppRateLimit, time.Minute}
	case code == 80007:
		return errClass{sdk.CodeRateLimited, ReasonAccountRateLimit, time.Minute}
	case code == 130429:
		return errClass{sdk.CodeRateLimited, ReasonThroughputLimit, time.Second}
	case code == 131056:
		return errClass{sdk.CodeRateLimited, ReasonPairRateLimit, 6 * time.Second}
	case code == 131048:
		return errClass{sdk.CodeRateLimited, ReasonSpamRateLimit, 15 * time.Minute}
	case code == 131047:
		return errClass{sdk.CodePermanent, ReasonWindowClosed, 0}
	case code == 131026:
		return errClass{sdk.CodePermanent, ReasonUndeliverable, 0}
	case code == 131051:
		return errClass{sdk.CodeInvalid, ReasonUnsupportedType, 0}
	case code == 131052:
		return errClass{sdk.CodePermanent, ReasonMediaDownload, 0}
	case code == 131053:
		return errClass{sdk.CodePermanent, ReasonMediaUpload, 0}
	case code == 1 || code == 2 || code == 131000 || code == 131016:
		return errClass{sdk.CodeRetryable, ReasonProviderError, 0}
	case code == 131057:
		return errClass{sdk.CodeRetryable, ReasonMaintenance, time.Minute}
	case code == 100 || code == 131008 || code == 131009 || code == 131021 || code == 131062:
		return errClass{sdk.CodeInvalid, ReasonInvalidParameter, 0}
	case code == 132001:
		return errClass{sdk.CodeInvalid, ReasonTemplateNotFound, 0}
	case code == 132015:
		return errClass{sdk.CodePermanent, ReasonTemplatePaused, 0}
	case code == 132016:
		return errClass{sdk.CodePermanent, ReasonTemplateDisabled, 0}
	case code >= 132000 && code <= 132099:
		return errClass{sdk.CodeInvalid, ReasonTemplateInvalid, 0}
	case code == 368:
		return errClass{sdk.CodePermanent, ReasonPolicyBlocked, 0}
	case code == 131031:
		return errClass{sdk.CodePermanent, ReasonAccountLocked, 0}
	case code == 131049:
		// Meta held a marketing message back for ecosystem health. A chat
		// reply delayed by a day is no use, so it is not retried.
		return errClass{sdk.CodePermanent, ReasonEcosystemLimit, 0}
	case code == 130472:
		return errClass{sdk.CodePermanent, ReasonExperiment, 0}
	case code == 131030:
		return errClass{sdk.CodePermanent, ReasonNotAllowed, 0}
	case code == 131042:
		return errClass{sdk.CodePermanent, ReasonPayment, 0}
	case code == 133010:
		return errClass{sdk.CodePermanent, ReasonNotRegistered, 0}
	}
	return errClass{code: sdk.CodeUnknown}
}

// classifyStatus covers codes classify does not know, by HTTP status.
func classifyStatus(status int, transient bool) errClass {
	switch {
	case transient:
		return errClass{sdk.CodeRetryable, ReasonProviderError, 0}
	case status == http.StatusUnauthorized:
		return errClass{sdk.CodeUnauthorized, ReasonTokenInvalid, 0}
	case status == http.StatusForbidden:
		return errClass{sdk.CodeUnauthorized, ReasonPermissionDenied, 0}
	case status == http.StatusNotFound:
		return errClass{sdk.CodeNotFound, "", 0}
	case status == http.StatusTooManyRequests:
		return errClass{sdk.CodeRateLimited, ReasonAppRateLimit, time.Minute}
	case status >= 500:
		return errClass{sdk.CodeRetryable, ReasonProviderError, 0}
	case status >= 400:
		return errClass{sdk.CodeInvalid, "", 0}
	}
	return errClass{sdk.CodeRetryable, ReasonProviderError, 0}
}

// graphErrorBody is Graph API's error envelope.
type graphErrorBody struct {
	Error *struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		IsTransient  bool   `json:"is_transient"`
		ErrorData    struct {
			Details string `json:"details"`
		} `json:"error_data"`
		UserTitle string `json:"error_user_title"`
		UserMsg   string `json:"error_user_msg"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// mapGraphError turns a non-2xx Graph API answer into a typed error. The
// message carries Meta's code, text and fbtrace_id (what Meta support asks
// for) but never the access token, and long digit runs (phone numbers Meta
// sometimes echoes) are masked so the hub can log it.
func mapGraphError(op string, status int, header http.Header, body []byte, secrets ...string) *sdk.Error {
	var eb graphErrorBody
	_ = json.Unmarshal(body, &eb)
	var (
		cls  errClass
		msg  string
		code string
	)
	if e := eb.Error; e != nil {
		code = strconv.Itoa(e.Code)
		cls = classify(e.Code, e.ErrorSubcode)
		if cls.code == sdk.CodeUnknown {
			cls = classifyStatus(status, e.IsTransient)
		}
		msg = fmt.Sprintf("whatsapp %s: graph API error %d (HTTP %d): %s", op, e.Code, status, e.Message)
		if d := e.ErrorData.Details; d != "" && d != e.Message {
			msg += ": " + d
		}
		if e.FBTraceID != "" {
			msg += " [fbtrace_id " + e.FBTraceID + "]"
		}
	} else {
		cls = classifyStatus(status, false)
		msg = fmt.Sprintf("whatsapp %s: HTTP %d without a Graph error body", op, status)
	}
	msg = scrub(redactDigits(msg), secrets...)
	err := &sdk.Error{Code: cls.code, Message: msg, Reason: cls.reason, ProviderCode: code,
		RetryAfter: cls.after, Err: errors.New(msg)}
	if ra := retryAfterHeader(header); ra > 0 && (cls.code == sdk.CodeRateLimited || cls.code == sdk.CodeRetryable) {
		err.RetryAfter = ra
	}
	if err.Code == sdk.CodeUnknown {
		err.Code = sdk.CodeRetryable
	}
	return err
}

// retryAfterHeader reads Retry-After in seconds. Graph rarely sends it, but
// a proxy in front of it (or a future Graph version) may.
func retryAfterHeader(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 86400 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 && d < 24*time.Hour {
			return d.Round(time.Second)
		}
	}
	return 0
}

var digitRun = regexp.MustCompile(`\+?\d{7,}`)

// redactDigits masks runs of 7+ digits: phone numbers in Meta's messages
// are customer PII and must not reach info-level logs. Error codes have at
// most 6 digits and stay readable.
func redactDigits(s string) string {
	if !strings.ContainsAny(s, "0123456789") {
		return s
	}
	return digitRun.ReplaceAllString(s, "[redacted]")
}

// scrub removes secrets that must never appear in an error or a log line.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
