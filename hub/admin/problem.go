package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// ProblemBase prefixes every problem type. The types are stable: clients
// switch on them, so a type is never renamed.
const ProblemBase = "https://switchboard.dev/problems/"

// Problem types of the admin API.
const (
	PUnauthorized  = "unauthorized"   // no key, or one not accepted
	PForbidden     = "forbidden"      // the key's role may not do this
	PNotFound      = "not-found"      // no such resource (or not one this key may see)
	PRateLimited   = "rate-limited"   // too many requests for this key
	PValidation    = "validation"     // a field of the request is wrong; see errors[]
	PRulesInvalid  = "rules-invalid"  // a rule set does not load; see problems[]
	PConflict      = "conflict"       // the resource's state does not allow it
	PUnavailable   = "unavailable"    // the store or a plugin does not answer
	PNotConfigured = "not-configured" // the hub runs without the part this needs
	PInternal      = "internal"       // a bug: the request id finds it in the log
	PAtCapacity    = "at-capacity"    // the agent has no free slot
	PPluginFailed  = "plugin-failed"  // a plugin refused the call
)

// problem is an RFC 9457 problem detail with this API's extensions.
type problem struct {
	Type      string        `json:"type"`
	Title     string        `json:"title"`
	Status    int           `json:"status"`
	Detail    string        `json:"detail,omitempty"`
	Instance  string        `json:"instance,omitempty"`
	RequestID string        `json:"request_id,omitempty"`
	Errors    []*FieldError `json:"errors,omitempty"`   // validation
	Problems  any           `json:"problems,omitempty"` // rules-invalid: file, line, col, msg
}

// apiError is an error a handler returns to be written as a problem.
type apiError struct {
	status int
	typ    string
	detail string
	fields []*FieldError
	extra  any
}

func (e *apiError) Error() string { return e.detail }

func errProblem(status int, typ, format string, a ...any) *apiError {
	return &apiError{status: status, typ: typ, detail: fmt.Sprintf(format, a...)}
}

func notFound(what, id string) *apiError {
	return errProblem(http.StatusNotFound, PNotFound, "No %s %q.", what, id)
}

// invalid is a validation error naming its field.
func invalid(field, format string, a ...any) *apiError {
	fe := &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
	return &apiError{status: http.StatusUnprocessableEntity, typ: PValidation, detail: fe.Error(), fields: []*FieldError{fe}}
}

// writeProblem writes p as application/problem+json.
func writeProblem(c *fiber.Ctx, status int, typ, detail string, fields []*FieldError, extra any) error {
	rid, _ := c.Locals("requestid").(string)
	b, _ := json.Marshal(problem{Type: ProblemBase + typ, Title: http.StatusText(status), Status: status, Detail: detail,
		Instance: string(c.Request().URI().Path()), RequestID: rid, Errors: fields, Problems: extra})
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.Status(status).Send(b)
}

// fail writes err as a problem: the handler's own problems as they are,
// an unavailable store as 503 (retry), anything else as a 500 logged with
// the request id (the client gets no internals).
func (api *API) fail(c *fiber.Ctx, err error) error {
	var ae *apiError
	var fe *FieldError
	var fbe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return writeProblem(c, ae.status, ae.typ, ae.detail, ae.fields, ae.extra)
	case errors.As(err, &fe):
		return writeProblem(c, http.StatusUnprocessableEntity, PValidation, fe.Error(), []*FieldError{fe}, nil)
	case errors.As(err, &fbe):
		typ := "http-" + strconv.Itoa(fbe.Code)
		if fbe.Code == http.StatusNotFound {
			typ = PNotFound
		}
		return writeProblem(c, fbe.Code, typ, fbe.Message, nil, nil)
	case errors.Is(err, store.ErrUnavailable):
		c.Set("Retry-After", "5")
		return writeProblem(c, http.StatusServiceUnavailable, PUnavailable, "The store does not answer; retry later.", nil, nil)
	}
	rid, _ := c.Locals("requestid").(string)
	api.log.Error("admin API request failed", "request_id", rid, "route", c.Route().Path, "err", err)
	return writeProblem(c, http.StatusInternalServerError, PInternal, "Internal error; the hub's log has it under this request id.", nil, nil)
}

// decodeBody reads a JSON body strictly into v: unknown fields and wrong
// types are validation errors that name the field.
func decodeBody(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return &apiError{status: http.StatusUnprocessableEntity, typ: PValidation, detail: "a JSON body is required",
			fields: []*FieldError{{Field: "body", Msg: "a JSON body is required"}}}
	}
	if ct := string(c.Request().Header.ContentType()); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Send the body as application/json, not %s.", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("body", "one JSON object expected, found more after it")
	}
	return nil
}

func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return invalid(field, "expected %s, got a JSON %s", te.Type.String(), te.Value)
	case errors.As(err, &se):
		return invalid("body", "malformed JSON at byte %d: %v", se.Offset, se)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return invalid(f, "unknown field")
	}
	if strings.Contains(msg, "parsing time") {
		return invalid("body", "a time is not RFC 3339 (2025-06-02T09:00:00+07:00): %v", err)
	}
	return invalid("body", "%v", strings.TrimPrefix(msg, "json: "))
}

// page is one page of a list.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

const (
	defaultLimit = 50
	maxLimit     = 500
)

// pageParams reads ?limit= and ?cursor=. Cursors are opaque to clients:
// the store's cursor wrapped in base64url so nobody builds them by hand.
func pageParams(c *fiber.Ctx) (limit int, cursor string, err error) {
	limit = defaultLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return 0, "", invalid("limit", "must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	if s := c.Query("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return 0, "", invalid("cursor", "not a cursor this API returned")
		}
		cursor = string(b)
	}
	return limit, cursor, nil
}

func encodeCursor(s string) string {
	if s == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// cursorErr turns a store's refusal of a cursor into a validation error.
func cursorErr(err error) error {
	if errors.Is(err, store.ErrInvalid) {
		return invalid("cursor", "not a cursor this API returned")
	}
	return err
}
