package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// bearer reads the key from "Authorization: Bearer KEY" or "X-API-Key".
func bearer(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return strings.TrimSpace(c.Get("X-API-Key"))
}

// authenticate resolves the caller's key. Failures are counted per client
// address against the same limit as keys, so key guessing is slow as well
// as hopeless.
func (api *API) authenticate(c *fiber.Ctx) error {
	p, err := Authenticate(c.UserContext(), api.st, bearer(c), api.bootstrapHash, api.now())
	switch {
	case err == nil:
		c.Locals(localPrincipal, p)
		return c.Next()
	case errors.Is(err, errNoKey), errors.Is(err, errBadKey):
		if limited, retry, lerr := api.overLimit(c.UserContext(), "ip:"+c.IP()); lerr == nil && limited {
			return api.tooMany(c, retry)
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="switchboard-admin"`)
		return writeProblem(c, http.StatusUnauthorized, PUnauthorized,
			"Send an API key as Authorization: Bearer KEY: "+err.Error()+".", nil, nil)
	}
	return api.fail(c, err)
}

// rateLimit allows admin.rate_limit requests per minute per key. The
// counter is in the Store, so every replica counts against one budget.
func (api *API) rateLimit(c *fiber.Ctx) error {
	p := principal(c)
	limited, retry, err := api.overLimit(c.UserContext(), "key:"+p.KeyID)
	if err != nil {
		return api.fail(c, err)
	}
	if limited {
		return api.tooMany(c, retry)
	}
	return c.Next()
}

// overLimit counts one request for who in the current fixed one-minute
// window and reports whether the window's budget is spent.
func (api *API) overLimit(ctx context.Context, who string) (bool, time.Duration, error) {
	limit := api.app.Config.Admin.RateLimit
	if limit <= 0 {
		return false, 0, nil
	}
	now := api.now()
	window := now.Unix() / 60
	n, err := api.st.Incr(ctx, fmt.Sprintf("adminrl:%s:%d", who, window), 1, 2*time.Minute)
	if err != nil {
		return false, 0, err
	}
	retry := time.Unix((window+1)*60, 0).Sub(now)
	return n > int64(limit), retry, nil
}

func (api *API) tooMany(c *fiber.Ctx, retry time.Duration) error {
	secs := int(retry.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	return writeProblem(c, http.StatusTooManyRequests, PRateLimited,
		fmt.Sprintf("More than %d requests in a minute for this key; retry in %d s.", api.app.Config.Admin.RateLimit, secs), nil, nil)
}

// authorize lets through the roles of the route.
func (api *API) authorize(rt route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		if !slices.Contains(rt.roles, p.Role) {
			return writeProblem(c, http.StatusForbidden, PForbidden,
				fmt.Sprintf("The %s role may not %s.", p.Role, rt.summary), nil, nil)
		}
		return c.Next()
	}
}

// protectRootMetrics puts the root /metrics route (mounted by the app
// before the API exists) behind the API's auth. Fiber cannot remove a route
// or put middleware in front of one registered earlier, so the route's
// handler list gets the auth handlers prepended.
func (api *API) protectRootMetrics(r *fiber.App) {
	guard := api.authorize(route{roles: readRoles, summary: "read metrics"})
	for _, routes := range r.Stack() {
		for _, rt := range routes {
			if rt.Path == "/metrics" && (rt.Method == http.MethodGet || rt.Method == http.MethodHead) {
				rt.Handlers = append([]fiber.Handler{api.requestID, api.authenticate, api.rateLimit, guard}, rt.Handlers...)
			}
		}
	}
}

// metricsHandler serves the Prometheus registry.
func (api *API) metricsHandler() fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(api.app.Registry, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

// metricsListener serves /metrics without auth on listen.metrics, when
// configured: a scraper on a private network needs no key. It starts and
// stops with the admin listener.
func (api *API) metricsListener(r *fiber.App) {
	addr := api.app.Config.Listen.Metrics
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(api.app.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	r.Hooks().OnListen(func(fiber.ListenData) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			// A hook error would panic inside fiber; the hub keeps running
			// without the metrics listener and says so.
			api.log.Error("metrics listener not started", "addr", addr, "err", err)
			return nil
		}
		api.log.Info("metrics listening", "addr", ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
		return nil
	})
	r.Hooks().OnShutdown(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
