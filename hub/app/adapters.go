package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/version"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func redisUniversal(r *config.Redis) *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: r.Addrs, MasterName: r.MasterName, Password: r.Password}
}

// hostBackend serves a plugin's host services from the hub's store, in a
// namespace of its own, so a plugin cannot read another's keys.
type hostBackend struct {
	s   store.Store
	ns  string
	log *slog.Logger
}

func kvErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return sdk.ErrNotFound
	case errors.Is(err, store.ErrConflict):
		return sdk.ErrConflict
	case errors.Is(err, store.ErrUnavailable):
		return sdk.Retryable(err, time.Second)
	case errors.Is(err, store.ErrInvalid):
		return sdk.Invalid(err)
	}
	return err
}

func (h *hostBackend) Get(ctx context.Context, key string) ([]byte, int64, error) {
	v, ver, err := h.s.Get(ctx, h.ns, key)
	return v, ver, kvErr(err)
}

func (h *hostBackend) Put(ctx context.Context, key string, v []byte, ttl time.Duration) (int64, error) {
	ver, err := h.s.Put(ctx, h.ns, key, v, ttl)
	return ver, kvErr(err)
}

func (h *hostBackend) CompareAndSwap(ctx context.Context, key string, expect int64, v []byte, ttl time.Duration) (int64, error) {
	ver, err := h.s.CompareAndSwap(ctx, h.ns, key, expect, v, ttl)
	return ver, kvErr(err)
}

func (h *hostBackend) Delete(ctx context.Context, key string) error {
	return kvErr(h.s.Delete(ctx, h.ns, key))
}

func (h *hostBackend) Log(ctx context.Context, level slog.Level, msg string, attrs map[string]string) {
	args := make([]any, 0, 2*len(attrs))
	for k, v := range attrs {
		args = append(args, k, v)
	}
	h.log.Log(ctx, level, msg, args...)
}

// pluginsAdapter exposes the plugin host to the pipeline.
type pluginsAdapter struct{ m *pluginhost.Manager }

func (p pluginsAdapter) Channel(name string) (pipeline.ChannelPlugin, bool) {
	c, ok := p.m.Channel(name)
	return c, ok
}

func (p pluginsAdapter) CRM(name string) (pipeline.CRMPlugin, bool) {
	c, ok := p.m.CRM(name)
	return c, ok
}

func (p pluginsAdapter) LLM(name string) (pipeline.LLMPlugin, bool) {
	c, ok := p.m.LLM(name)
	return c, ok
}

// mountBasics serves health, readiness, version and metrics on the admin
// router; the admin API proper mounts beside them.
func (a *App) mountBasics() {
	r := a.AdminRouter()
	r.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	r.Get("/readyz", func(c *fiber.Ctx) error {
		rep := a.Readiness(c.UserContext())
		if !rep.Ready {
			return c.Status(fiber.StatusServiceUnavailable).JSON(rep)
		}
		return c.JSON(rep)
	})
	r.Get("/version", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"version": version.Version, "protocol_version": sdk.ProtocolVersion})
	})
	if a.Config.Listen.Metrics == "" {
		r.Get("/metrics", a.metricsHandler())
	}
}

func (a *App) metricsHandler() fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

// Readiness is what /readyz reports.
type Readiness struct {
	Ready   bool              `json:"ready"`
	Store   string            `json:"store"`
	Plugins map[string]string `json:"plugins"`
	Rules   string            `json:"rules,omitempty"`
}

// Readiness checks the store and every plugin.
func (a *App) Readiness(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r := Readiness{Ready: true, Store: "ok", Plugins: map[string]string{}}
	if err := a.Store.Ping(ctx); err != nil {
		r.Ready, r.Store = false, err.Error()
	}
	for _, s := range a.Plugins.Statuses() {
		if s.State != pluginhost.StateRunning {
			r.Ready = false
			r.Plugins[s.Name] = string(s.State) + ": " + s.LastError
			continue
		}
		r.Plugins[s.Name] = "ok"
		if err := a.Plugins.Get(s.Name).Health(ctx); err != nil {
			r.Plugins[s.Name] = "unhealthy: " + err.Error()
			r.Ready = false
		}
	}
	if a.Rules != nil {
		r.Rules = a.Rules.Current().Version()
	}
	return r
}
