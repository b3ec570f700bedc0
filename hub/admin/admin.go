// Package admin is the hub's REST admin API under /admin/v1: API keys with
// roles, per-key rate limits, an audit log of every state-changing call,
// and the resources admins and supervisors run the floor with (plugins,
// rules, teams and agents, conversations, leads, dead letters, the audit
// log and a live event stream).
//
// Conventions: errors are application/problem+json (RFC 9457) with a
// stable type; validation errors name the field; long lists page with
// ?limit=&cursor= and answer {items, next_cursor}; every response carries
// X-Request-Id. The OpenAPI 3.1 document (openapi.json, embedded) is served
// at /admin/v1/openapi.json, and a test checks it against the routes.
package admin

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Prefix is where the API is mounted.
const Prefix = "/admin/v1"

// OpenAPI is the API's OpenAPI 3.1 document.
//
//go:embed openapi.json
var OpenAPI []byte

// Assigner is what the API needs of the assignment service (hub/assign).
type Assigner interface {
	SetStatus(ctx context.Context, agent string, s assign.Status) error
	SetCapacity(ctx context.Context, agent string, n int) error
	Agent(ctx context.Context, id string) (assign.AgentState, error)
	Agents(ctx context.Context) ([]assign.AgentState, error)
	Teams(ctx context.Context) ([]assign.TeamState, error)
	Queue(ctx context.Context, team string) ([]assign.Waiting, error)
	Record(ctx context.Context, conv string) (*assign.Record, error)
	Reassign(ctx context.Context, conv, agent string) (*assign.Assignment, error)
	TakeOver(ctx context.Context, conv, agent string) (*assign.Assignment, error)
	Release(ctx context.Context, conv, reason string) error
	Close(ctx context.Context, conv, reason string) error
}

// Options configure the API.
type Options struct {
	// Assign is the assignment service; nil takes the App's. Without one
	// (a hub without rules) the team, agent and conversation-action routes
	// answer 503 not-configured.
	Assign Assigner
	// Now is the clock (time.Now).
	Now func() time.Time
	// Getenv reads the bootstrap key's variable (os.Getenv).
	Getenv func(string) string
	// EventPoll is how often the event stream reads the audit log (500ms).
	EventPoll time.Duration
	// Heartbeat is how often an idle event stream sends a comment (15s).
	Heartbeat time.Duration
}

// API serves /admin/v1.
type API struct {
	app           *app.App
	o             Options
	log           *slog.Logger
	st            store.Store
	bootstrapHash string
	routes        []route
}

// New builds the API for a.
func New(a *app.App, o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.EventPoll <= 0 {
		o.EventPoll = 500 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	// Not a typed nil in the interface: a hub without rules has no assigner.
	if o.Assign == nil && a.Assign != nil {
		o.Assign = a.Assign
	}
	api := &API{app: a, o: o, log: a.Log.With("component", "admin"), st: a.Store}
	if env := a.Config.Admin.BootstrapKeyEnv; env != "" {
		switch v := strings.TrimSpace(o.Getenv(env)); {
		case v == "":
			api.log.Warn("admin.bootstrap_key_env names an unset variable; no bootstrap key", "env", env)
		case len(v) < 24:
			// A short secret could be guessed; refusing it is kinder than
			// an admin API that anyone might open.
			api.log.Error("the bootstrap admin key is shorter than 24 characters; it is ignored", "env", env)
		default:
			api.bootstrapHash = HashKey(v)
		}
	}
	api.routes = api.table()
	return api
}

// Mount is the app option that serves the API on the admin listener.
func Mount(o Options) app.Option {
	return app.WithMount(func(a *app.App) { New(a, o).Register(a.AdminRouter()) })
}

// Register adds the routes to r, puts the root /metrics behind the API's
// auth, and starts the separate metrics listener when one is configured.
func (api *API) Register(r *fiber.App) {
	g := r.Group(Prefix)
	g.Use(api.requestID)
	for _, rt := range api.routes {
		handlers := []fiber.Handler{}
		if rt.roles != nil {
			handlers = append(handlers, api.authenticate, api.rateLimit, api.authorize(rt))
			if rt.method != http.MethodGet {
				handlers = append(handlers, api.audited(rt))
			}
		}
		handlers = append(handlers, api.wrap(rt.handler))
		g.Add(rt.method, rt.path, handlers...)
	}
	// Anything else under the prefix is a problem+json 404, not fiber's text.
	g.Use(func(c *fiber.Ctx) error {
		return writeProblem(c, http.StatusNotFound, PNotFound, "No route "+c.Method()+" "+c.Path()+".", nil, nil)
	})
	api.protectRootMetrics(r)
	api.metricsListener(r)
}

// requestID keeps only sane caller-supplied request ids: they are echoed
// and logged, so a long or binary one is replaced by a fresh one.
func (api *API) requestID(c *fiber.Ctx) error {
	rid, _ := c.Locals("requestid").(string)
	if len(rid) > 128 || strings.IndexFunc(rid, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		rid = newRequestID()
		c.Locals("requestid", rid)
		c.Set(fiber.HeaderXRequestID, rid)
	}
	return c.Next()
}

// wrap turns a handler's error into a problem response, so that the audit
// middleware sees the final status.
func (api *API) wrap(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := h(c); err != nil {
			return api.fail(c, err)
		}
		return nil
	}
}

// param returns a path parameter, unescaped: conversation ids hold ':'
// and may hold '/' (sent as %2F).
func param(c *fiber.Ctx, name string) string {
	v := c.Params(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return strings.Clone(v)
}

func principal(c *fiber.Ctx) *Principal {
	p, _ := c.Locals(localPrincipal).(*Principal)
	return p
}

type localKey int

const (
	localPrincipal localKey = iota
	localAuditDetail
	localAuditTarget
)

// noteAudit adds what a handler wants the audit record to say.
func noteAudit(c *fiber.Ctx, target, detail string) {
	if target != "" {
		c.Locals(localAuditTarget, target)
	}
	if detail != "" {
		c.Locals(localAuditDetail, detail)
	}
}

func (api *API) now() time.Time { return api.o.Now() }
