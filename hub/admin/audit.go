package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// AuditLog is the Store log of state-changing admin calls.
const AuditLog = "admin_audit"

// AuditEntry is one state-changing call: who, what, on what, when, and
// how it ended.
type AuditEntry struct {
	ID        string    `json:"id,omitempty"` // the log record id (set when read)
	At        time.Time `json:"at"`
	Actor     Principal `json:"actor"`
	Action    string    `json:"action"` // e.g. conversations.takeover
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Target    string    `json:"target,omitempty"`
	Status    int       `json:"status"`
	RequestID string    `json:"request_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
}

// audited records the call after its handler ran, whatever the outcome:
// a refused change is worth knowing about too.
func (api *API) audited(rt route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		err := c.Next()
		p := principal(c)
		rid, _ := c.Locals("requestid").(string)
		e := AuditEntry{At: api.now().UTC(), Actor: *p, Action: rt.action, Method: c.Method(), Path: string(c.Request().URI().Path()),
			Status: c.Response().StatusCode(), RequestID: rid, ClientIP: c.IP()}
		if t, ok := c.Locals(localAuditTarget).(string); ok {
			e.Target = t
		} else if len(rt.params) > 0 {
			e.Target = param(c, rt.params[0])
		}
		if d, ok := c.Locals(localAuditDetail).(string); ok {
			e.Detail = d
		}
		// The call already happened: record it even if the client went away.
		api.appendAudit(context.WithoutCancel(c.UserContext()), e)
		return err
	}
}

func (api *API) appendAudit(ctx context.Context, e AuditEntry) {
	if err := AppendAudit(ctx, api.st, api.app.Config.Admin.AuditRetention.D(), e); err != nil {
		api.log.Error("admin audit append failed", "action", e.Action, "key_id", e.Actor.KeyID, "request_id", e.RequestID, "err", err)
	}
}

// AppendAudit writes one entry to the admin audit log (the CLI's key
// commands use it too).
func AppendAudit(ctx context.Context, s store.Logs, retention time.Duration, e AuditEntry) error {
	b, _ := json.Marshal(e)
	if _, err := s.Append(ctx, AuditLog, b, retention); err != nil {
		return fmt.Errorf("admin audit: %w", err)
	}
	return nil
}

// auditFilter selects audit entries.
type auditFilter struct {
	actor, action, target string
}

func (f auditFilter) match(e *AuditEntry) bool {
	if f.actor != "" && f.actor != e.Actor.KeyID && f.actor != e.Actor.Name && f.actor != e.Actor.Agent {
		return false
	}
	if f.action != "" && f.action != e.Action && !(strings.HasSuffix(f.action, ".") && strings.HasPrefix(e.Action, f.action)) {
		return false
	}
	return f.target == "" || f.target == e.Target
}

// scanCap bounds the records one list request reads, so a filter that
// matches nothing answers quickly; next_cursor lets the client go on.
const scanCap = 5000

// listAudit is GET /audit?actor=&action=&target=&from=&to=&limit=&cursor=.
func (api *API) listAudit(c *fiber.Ctx) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	from, to, err := timeRange(c)
	if err != nil {
		return err
	}
	f := auditFilter{actor: c.Query("actor"), action: c.Query("action"), target: c.Query("target")}
	out := page[AuditEntry]{Items: []AuditEntry{}}
	scanned := 0
	for {
		recs, next, err := api.st.Range(c.UserContext(), AuditLog, store.LogRange{From: from, To: to, After: cursor, Limit: 200})
		if err != nil {
			return cursorErr(err)
		}
		for _, r := range recs {
			scanned++
			cursor = r.ID
			var e AuditEntry
			if json.Unmarshal(r.Data, &e) != nil || !f.match(&e) {
				continue
			}
			e.ID = r.ID
			out.Items = append(out.Items, e)
			if len(out.Items) == limit {
				break
			}
		}
		if len(out.Items) == limit || scanned >= scanCap {
			if next != "" || len(out.Items) == limit {
				out.NextCursor = encodeCursor(cursor)
			}
			break
		}
		if next == "" {
			break
		}
	}
	return c.JSON(out)
}

// timeRange reads ?from= and ?to= (RFC 3339).
func timeRange(c *fiber.Ctx) (from, to time.Time, err error) {
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := c.Query(q.name); s != "" {
			t, perr := time.Parse(time.RFC3339, s)
			if perr != nil {
				return from, to, invalid(q.name, "must be an RFC 3339 time such as 2025-06-02T09:00:00Z")
			}
			*q.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return from, to, invalid("to", "is before from")
	}
	return from, to, nil
}
