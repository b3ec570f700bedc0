// Package sandbox runs the whole hub on one machine with no accounts: fakes
// of Zalo, WhatsApp, HubSpot and Anthropic on loopback, the real plugin
// binaries pointed at them, and the hub in this process on the embedded
// store with the SQL CRM on an SQLite file. It then plays scripted
// conversations through the real webhook path (signed by the fakes) and
// shows, message by message, what the hub did: the rules that fired, the
// score, the team, the agent, the CRM writes and the reply. Everything it
// shows is read back from the hub's audit trail and conversation state, as
// an operator would, never from inside the pipeline.
//
// The hub config is examples/config/sandbox.yaml, unchanged: the sandbox only
// supplies the ${VARS} (the fakes' URLs and secrets), which is how the same
// file goes live with real ones.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// Options configure a sandbox. Zero values take the defaults noted.
type Options struct {
	// Root is the Switchboard checkout (examples/ and plugins/ are read
	// from it); found upwards from the working directory, then from the
	// running executable, when empty.
	Root string
	// Dir holds everything the sandbox writes: the store, the CRM's SQLite
	// file, the rules, the config and the hub's log (data/sandbox). It is
	// wiped on start unless Keep.
	Dir  string
	Keep bool
	// PluginDir holds the plugin binaries (Root/bin/plugins); missing ones
	// are built with the Go toolchain.
	PluginDir string
	// CRM is the CRM the pipeline writes to: "sql" (the SQL CRM on SQLite,
	// the default) or "hubspot" (the HubSpot plugin against the fake).
	CRM string
	// Listen and AdminListen are the hub's addresses (127.0.0.1:8080 and
	// 127.0.0.1:8081); ":0" ports pick free ones.
	Listen, AdminListen string
	// Out receives the terminal view (io.Discard when nil); Color adds ANSI
	// colours to it.
	Out   io.Writer
	Color bool
	// AppOptions are passed to app.New (the CLI mounts the admin API).
	AppOptions []app.Option
	// Now is the clock used to write the sandbox's rules (time.Now).
	Now func() time.Time
}

// Sandbox is a running hub with its fakes.
type Sandbox struct {
	o Options

	App      *app.App
	Zalo     *zalofake.Server
	WhatsApp *wafake.Fake
	HubSpot  *hsfake.Server
	Claude   *claudefake.Server

	// AdminKey is an admin-role API key created in the hub's store.
	AdminKey string
	// ConfigFile is the config the hub runs (a copy of the template);
	// RulesDir, CRMFile and LogFile are where those live.
	ConfigFile, RulesDir, CRMFile, LogFile string
	// Overlay describes the sandbox's changes to the default rules.
	Overlay Overlay

	view *view
	// mu serialises steps and the background tail: both read the audit
	// log through one cursor.
	mu     sync.Mutex
	cursor string            // in the audit log, for trail
	names  map[string]string // conversation id → customer, for the view
	played *Report
	// prompting is set while the terminal prompt waits for a line, so that
	// background lines put it back.
	prompting bool
	log       *os.File
	cancel    context.CancelFunc
	done      chan error
}

// marker marks a directory the sandbox created, so that it only ever
// wipes its own.
const marker = ".switchboard-sandbox"

// CRM choices.
const (
	CRMSQL     = "sql"
	CRMHubSpot = "hubspot"
)

// Start prepares the data directory, builds missing plugins, starts the
// fakes and the hub, and returns once the hub is ready. Close stops it.
func Start(ctx context.Context, o Options) (_ *Sandbox, err error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CRM == "" {
		o.CRM = CRMSQL
	}
	if o.CRM != CRMSQL && o.CRM != CRMHubSpot {
		return nil, fmt.Errorf("crm %q: want sql or hubspot", o.CRM)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.AdminListen == "" {
		o.AdminListen = "127.0.0.1:8081"
	}
	if o.Root == "" {
		if o.Root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	if o.Dir == "" {
		o.Dir = filepath.Join("data", "sandbox")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if o.PluginDir == "" {
		o.PluginDir = filepath.Join(o.Root, "bin", "plugins")
	}
	if o.PluginDir, err = filepath.Abs(o.PluginDir); err != nil {
		return nil, err
	}
	s := &Sandbox{o: o, view: newView(o.Out, o.Color), done: make(chan error, 1), names: map[string]string{}}
	defer func() {
		if err != nil {
			s.closeFakes()
			if s.log != nil {
				s.log.Close()
			}
		}
	}()
	s.view.banner()
	if err := prepareDir(o.Dir, o.Keep); err != nil {
		return nil, err
	}
	if err := EnsurePlugins(ctx, o.Root, o.PluginDir, s.view.progress); err != nil {
		return nil, err
	}

	s.Zalo = zalofake.New(zalofake.Config{})
	s.WhatsApp = wafake.New(wafake.Options{})
	s.HubSpot = hsfake.New(hsfake.Options{NoRateLimit: true})
	s.Claude = claudefake.New()
	s.Claude.Start()

	s.RulesDir = filepath.Join(o.Dir, "rules")
	if s.Overlay, err = WriteRules(filepath.Join(o.Root, "examples", "rules"), s.RulesDir, o.Now(), o.Keep); err != nil {
		return nil, err
	}
	tmpl, err := os.ReadFile(filepath.Join(o.Root, "examples", "config", "sandbox.yaml"))
	if err != nil {
		return nil, fmt.Errorf("the sandbox's config template: %w", err)
	}
	s.ConfigFile = filepath.Join(o.Dir, "hub.yaml")
	if err := os.WriteFile(s.ConfigFile, tmpl, 0o600); err != nil {
		return nil, err
	}
	s.CRMFile = filepath.Join(o.Dir, "crm.db")
	env := s.env()
	cfg, err := config.Parse(s.ConfigFile, tmpl, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("config %s:\n%w", s.ConfigFile, err)
	}
	s.LogFile = filepath.Join(o.Dir, "hub.log")
	if s.log, err = os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	s.view.setup(s)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	a, err := app.New(runCtx, cfg, s.log, o.AppOptions...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start the hub: %s", cfg.Redact(err.Error()))
	}
	s.App = a
	key, _, err := admin.CreateKey(ctx, a.Store, admin.NewKey{Name: "sandbox", Role: admin.RoleAdmin, CreatedBy: "sandbox"}, time.Now())
	if err != nil {
		cancel()
		a.Store.Close()
		return nil, fmt.Errorf("create the admin key: %w", err)
	}
	s.AdminKey = key
	go func() { s.done <- a.Run(runCtx) }()
	select {
	case <-a.Ready:
	case err := <-s.done:
		cancel()
		if err == nil {
			err = errors.New("the hub stopped during start")
		}
		return nil, s.startHint(cfg.Redact(err.Error()))
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	s.view.ready(s)
	return s, nil
}

// env is what the config template's ${VARS} resolve to in the sandbox.
// Nothing comes from the process environment: a real key or token set in
// the shell must never reach a fake.
func (s *Sandbox) env() map[string]string {
	zc := s.Zalo.Config()
	access, refresh := s.Zalo.Tokens()
	crm := "crm"
	if s.o.CRM == CRMHubSpot {
		crm = "hubspot"
	}
	return map[string]string{
		"SWITCHBOARD_LISTEN":       s.o.Listen,
		"SWITCHBOARD_ADMIN_LISTEN": s.o.AdminListen,
		"SWITCHBOARD_DATA":         s.o.Dir,
		"SWITCHBOARD_PLUGINS":      s.o.PluginDir,
		"SWITCHBOARD_RULES":        s.RulesDir,
		"SWITCHBOARD_CRM":          crm,

		"ZALO_APP_ID":        zc.AppID,
		"ZALO_OA_ID":         zc.OAID,
		"ZALO_APP_SECRET":    zc.AppSecret,
		"ZALO_OA_SECRET_KEY": zc.OASecretKey,
		"ZALO_ACCESS_TOKEN":  access,
		"ZALO_REFRESH_TOKEN": refresh,
		"ZALO_OPENAPI_URL":   s.Zalo.URL(),
		"ZALO_OAUTH_URL":     s.Zalo.URL(),

		"WHATSAPP_PHONE_NUMBER_ID": s.WhatsApp.PhoneNumberID(),
		"WHATSAPP_TOKEN":           s.WhatsApp.AccessToken(),
		"WHATSAPP_APP_SECRET":      s.WhatsApp.AppSecret(),
		"WHATSAPP_VERIFY_TOKEN":    s.WhatsApp.VerifyToken(),
		"WHATSAPP_BASE_URL":        s.WhatsApp.URL,

		"ANTHROPIC_API_KEY":     claudefake.DefaultAPIKey,
		"ANTHROPIC_BASE_URL":    s.Claude.URL(),
		"CLAUDE_KNOWLEDGE_FILE": filepath.Join(s.o.Root, "examples", "config", "knowledge.yaml"),

		"CRM_SQLITE_PATH": s.CRMFile,

		"HUBSPOT_TOKEN":     s.HubSpot.Token(),
		"HUBSPOT_BASE_URL":  s.HubSpot.URL,
		"HUBSPOT_PORTAL_ID": "4242",
	}
}

// startHint adds what to do about the usual reason a start fails.
func (s *Sandbox) startHint(msg string) error {
	if strings.Contains(msg, "address already in use") {
		return fmt.Errorf("%s\n(another hub, perhaps an earlier sandbox, is using the port: stop it, or pick others with --listen and --admin-listen)", msg)
	}
	return fmt.Errorf("%s\n(the hub's log: %s)", msg, s.LogFile)
}

// waitReady waits until the store and every plugin answer.
func (s *Sandbox) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		r := s.App.Readiness(ctx)
		if r.Ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the hub is not ready after %s: store %s, plugins %v (the hub's log: %s)", d, r.Store, r.Plugins, s.LogFile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("the hub stopped: %v (the hub's log: %s)", err, s.LogFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WebhookURL is the base URL providers post to; AdminURL the admin API's.
func (s *Sandbox) WebhookURL() string { return "http://" + s.App.WebhookAddr }

// AdminURL is the admin listener's base URL.
func (s *Sandbox) AdminURL() string { return "http://" + s.App.AdminAddr }

// Wait blocks until ctx ends or the hub stops by itself, then stops
// everything.
func (s *Sandbox) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return s.Close()
	case err := <-s.done:
		s.done <- err
		s.Close()
		return err
	}
}

// Close stops the hub (draining in-flight work), then the fakes.
func (s *Sandbox) Close() error {
	err := s.stop()
	s.closeFakes()
	if s.log != nil {
		s.log.Close()
	}
	return err
}

func (s *Sandbox) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		return errors.New("the hub did not stop within 30s")
	}
}

func (s *Sandbox) closeFakes() {
	if s.Zalo != nil {
		s.Zalo.Close()
	}
	if s.WhatsApp != nil {
		s.WhatsApp.Close()
	}
	if s.HubSpot != nil {
		s.HubSpot.Close()
	}
	if s.Claude != nil {
		s.Claude.Close()
	}
}

// prepareDir creates dir, or wipes it when it is an earlier sandbox's
// (unless keep). A directory that is neither empty nor a sandbox's is
// refused rather than deleted: --dir may be mistyped.
func prepareDir(dir string, keep bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s is not empty and was not made by the sandbox; choose another --dir", dir)
		}
		if !keep {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), []byte("written by `switchboard sandbox`; the directory is wiped on its next start unless --keep\n"), 0o600)
}
