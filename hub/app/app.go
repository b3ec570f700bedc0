// Package app wires the hub together from its config: the store, the
// plugin host, the rules, the pipeline, the webhook ingress and the admin
// listener, and runs them until told to stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/ingress"
	"github.com/switchboard-hub/switchboard/hub/logging"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
	"github.com/switchboard-hub/switchboard/hub/version"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// App is a configured hub.
type App struct {
	Config   *config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Store    store.Store
	Plugins  *pluginhost.Manager
	Rules    *rules.Engine
	Pipeline *pipeline.Pipeline
	Assign   *assign.Assigner // nil without rules
	Ingress  *ingress.Handler
	Web      *fiber.App
	Admin    *fiber.App // nil when admin shares the webhook listener

	// Ready is closed once the hub listens.
	Ready chan struct{}
	// Addrs are the bound listen addresses (useful with ":0").
	WebhookAddr, AdminAddr string
	mounts                 []func(*App)
	specs                  []pluginhost.Spec
}

// Option changes how New builds the App.
type Option func(*App)

// WithMount registers a function that adds routes (the admin API) once the
// App is built.
func WithMount(f func(*App)) Option { return func(a *App) { a.mounts = append(a.mounts, f) } }

// New builds the hub from cfg, logging to logOut. It opens the store and
// loads the rules; Run starts the plugins and the listeners.
func New(ctx context.Context, cfg *config.Config, logOut io.Writer, opts ...Option) (*App, error) {
	a := &App{Config: cfg, Registry: prometheus.NewRegistry(), Ready: make(chan struct{})}
	a.Log = logging.New(logOut, logging.Options{Level: logging.ParseLevel(cfg.Log.Level), Content: cfg.Log.Content})
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range opts {
		o(a)
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.Store = st
	if cfg.Rules.Dir != "" {
		eng, err := rules.NewEngine(cfg.Rules.Dir)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("rules: %w", err)
		}
		a.Rules = eng
	}
	specs := make([]pluginhost.Spec, 0, len(cfg.Plugins))
	for _, p := range cfg.Plugins {
		specs = append(specs, pluginhost.Spec{Name: p.Name, Kind: sdk.Kind(p.Kind), Path: p.Path, SHA256: p.SHA256,
			Env: p.Env, Config: p.ConfigJSON, CallTimeout: p.CallTimeout.D()})
	}
	ph := cfg.PluginHost
	a.Plugins = pluginhost.New(pluginhost.Options{Logger: a.Log, HubVersion: version.Version, Registerer: a.Registry,
		MinBackoff: ph.MinBackoff.D(), MaxBackoff: ph.MaxBackoff.D(), CrashLoopCount: ph.CrashLoop, CrashLoopIn: ph.CrashLoopWindow.D(),
		Backend: func(instance string) sdk.HostBackend {
			return &hostBackend{s: st, ns: "plugin:" + instance, log: a.Log.With("plugin", instance)}
		}})
	a.specs = specs

	system := cfg.Pipeline.SystemPrompt
	if cfg.Pipeline.SystemPromptFile != "" {
		b, err := os.ReadFile(cfg.Pipeline.SystemPromptFile)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("system prompt: %w", err)
		}
		system = string(b)
	}
	deals := map[string]pipeline.DealStage{}
	for tier, d := range cfg.Pipeline.Deals {
		deals[tier] = pipeline.DealStage{Pipeline: d.Pipeline, Stage: d.Stage}
	}
	pc := cfg.Pipeline
	a.Pipeline = pipeline.New(pipeline.Options{
		Store: st, Plugins: pluginsAdapter{a.Plugins}, Rules: a.Rules, Logger: a.Log, Metrics: pipeline.NewMetrics(a.Registry),
		LLM: pc.LLM, CRM: pc.CRM, SystemPrompt: system, Workers: pc.Workers, HistoryTurns: pc.HistoryTurns,
		HistoryTTL: pc.HistoryTTL.D(), HardCap: pc.HistoryHardCap, DedupeTTL: pc.DedupeTTL.D(), QuietWindow: pc.QuietWindow.D(),
		MaxDeliveries: pc.MaxDeliveries, RetryBase: pc.RetryBase.D(), RetryMax: pc.RetryMax.D(), LeaseTTL: pc.LeaseTTL.D(),
		AuditRetention: pc.AuditRetention.D(), Deals: deals,
		Pacing: pipeline.Pacing{Enabled: pc.Pacing.Enabled, PerChar: pc.Pacing.PerChar.D(), Min: pc.Pacing.Min.D(), Max: pc.Pacing.Max.D()},
	})
	if err := a.installAssign(); err != nil {
		st.Close()
		return nil, err
	}
	a.Ingress = ingress.New(ingress.Options{Channels: a.channel, Pipeline: a.Pipeline, Store: st, Logger: a.Log,
		Registerer: a.Registry, RawRetention: pc.RawRetention.D()})
	a.Web = newFiber(cfg.Listen.BodyLimit)
	a.Ingress.Register(a.Web)
	if cfg.Listen.Admin != "" && cfg.Listen.Admin != cfg.Listen.Webhooks {
		a.Admin = newFiber(4 << 20)
	}
	a.mountBasics()
	for _, m := range a.mounts {
		m(a)
	}
	return a, nil
}

// AdminRouter is where admin routes go: the admin listener, or the webhook
// one when they share an address.
func (a *App) AdminRouter() *fiber.App {
	if a.Admin != nil {
		return a.Admin
	}
	return a.Web
}

func newFiber(bodyLimit int) *fiber.App {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		BodyLimit:             bodyLimit,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			var fe *fiber.Error
			code := fiber.StatusInternalServerError
			if errors.As(err, &fe) {
				code = fe.Code
			}
			return ingress.Problem(c, code, "http-"+fmt.Sprint(code), err.Error())
		},
	})
	app.Use(recover.New())
	app.Use(requestid.New())
	return app
}

func (a *App) channel(name string) (ingress.Channel, bool) {
	c, ok := a.Plugins.Channel(name)
	if !ok {
		return nil, false
	}
	return c, true
}

// OpenStore opens the configured store: Redis when configured, otherwise
// the embedded file.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if r := cfg.Store.Redis; r != nil {
		o := redisstore.Options{URL: r.URL, Prefix: r.Prefix, Partitions: cfg.Store.Partitions}
		if r.URL == "" {
			o.Universal = redisUniversal(r)
		}
		s, err := redisstore.Open(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("open redis store: %s", cfg.Redact(err.Error()))
		}
		return s, nil
	}
	path := cfg.Store.Embedded.Path
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	s, err := embedded.Open(embedded.Options{Path: path, Partitions: cfg.Store.Partitions,
		BatchDelay: cfg.Store.Embedded.BatchDelay.D(), NoSync: cfg.Store.Embedded.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	return s, nil
}

// Run starts the plugins, the pipeline and the listeners, and blocks until
// ctx ends; then it shuts down in order: stop taking webhooks, drain the
// pipeline, stop the plugins, close the store.
func (a *App) Run(ctx context.Context) error {
	defer a.Store.Close()
	if err := a.Plugins.Start(ctx, a.specs); err != nil {
		return err
	}
	defer a.Plugins.Stop()
	if a.Rules != nil && a.Config.Rules.Reload > 0 {
		go func() {
			_ = a.Rules.Watch(ctx, a.Config.Rules.Reload.D(), func(r rules.ReloadResult) {
				if r.Err != nil {
					a.Log.Error("rules reload refused; the running rules stay", "err", r.Err)
					return
				}
				a.Log.Info("rules reloaded", "version", r.Version)
			})
		}()
	}
	webLn, err := net.Listen("tcp", a.Config.Listen.Webhooks)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.Config.Listen.Webhooks, err)
	}
	a.WebhookAddr = webLn.Addr().String()
	var adminLn net.Listener
	if a.Admin != nil {
		adminLn, err = net.Listen("tcp", a.Config.Listen.Admin)
		if err != nil {
			webLn.Close()
			return fmt.Errorf("listen %s: %w", a.Config.Listen.Admin, err)
		}
		a.AdminAddr = adminLn.Addr().String()
	} else {
		a.AdminAddr = a.WebhookAddr
	}
	if addr := a.Config.Listen.Pprof; addr != "" {
		stop, err := servePprof(addr)
		if err != nil {
			webLn.Close()
			if adminLn != nil {
				adminLn.Close()
			}
			return err
		}
		defer stop()
		a.Log.Warn("profiler listening (no authentication)", "addr", addr)
	}
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	var wg sync.WaitGroup
	if c := a.Config.Pipeline.Consume; c == nil || *c {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Pipeline.Run(pipeCtx, 20*time.Second) }()
	} else {
		a.Log.Info("pipeline.consume is false: this hub only queues webhooks; other replicas process them")
	}
	errs := make(chan error, 2)
	go func() { errs <- a.Web.Listener(webLn) }()
	if adminLn != nil {
		go func() { errs <- a.Admin.Listener(adminLn) }()
	}
	a.Log.Info("switchboard listening", "webhooks", a.WebhookAddr, "admin", a.AdminAddr, "version", version.Version,
		"plugins", len(a.specs), "store", storeKind(a.Config))
	close(a.Ready)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	a.Log.Info("shutting down: no new webhooks, draining in-flight work")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.Web.ShutdownWithContext(sctx)
	if a.Admin != nil {
		_ = a.Admin.ShutdownWithContext(sctx)
	}
	stopPipe()
	wg.Wait()
	a.Log.Info("stopped")
	return runErr
}

func storeKind(cfg *config.Config) string {
	if cfg.Store.Redis != nil {
		return "redis"
	}
	return "embedded"
}

// servePprof serves net/http/pprof on addr until stop is called.
func servePprof(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (pprof): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
