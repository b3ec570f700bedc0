// Package config loads the hub's one YAML file: listen addresses, the store,
// the plugins with their config blocks, the rules directory, the pipeline's
// knobs and the admin settings.
//
// Unknown keys and wrong types are errors that name file:line. Secrets are
// written as references, never as values: "${NAME}" takes an environment
// variable and "file:/path" a file's contents (trailing newline trimmed).
// Resolved secret values are remembered so Redact can scrub them from any
// text the hub prints.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole hub configuration.
type Config struct {
	Listen   Listen         `yaml:"listen"`
	Store    Store          `yaml:"store"`
	Plugins  []Plugin       `yaml:"plugins"`
	Rules    Rules          `yaml:"rules"`
	Pipeline Pipeline       `yaml:"pipeline"`
	Admin    Admin          `yaml:"admin"`
	Log      Log            `yaml:"log"`
	Handoff  HandoffOptions `yaml:"handoff"`
	// PluginHost tunes the supervision of plugin processes.
	PluginHost PluginHost `yaml:"plugin_host"`

	// File is the path the config was read from; relative paths in it are
	// resolved against its directory.
	File    string   `yaml:"-"`
	secrets []string `yaml:"-"`
}

// Listen holds the HTTP listen addresses.
type Listen struct {
	Webhooks string `yaml:"webhooks"` // provider webhooks, e.g. ":8080"
	Admin    string `yaml:"admin"`    // admin API, e.g. "127.0.0.1:8081"; empty: served on Webhooks
	Metrics  string `yaml:"metrics"`  // optional separate Prometheus listener
	// Pprof, when set, serves Go's profiler (net/http/pprof) on this
	// address, without authentication: keep it on loopback.
	Pprof string `yaml:"pprof"`
	// BodyLimit caps a webhook body; providers send kilobytes.
	BodyLimit int `yaml:"body_limit"`
}

// Store selects and configures the state store. With no Redis URL the
// embedded store is used.
type Store struct {
	Redis    *Redis    `yaml:"redis"`
	Embedded *Embedded `yaml:"embedded"`
	// Partitions of the inbound queue; fixed for the life of the data.
	Partitions int `yaml:"partitions"`
}

// Redis configures the Redis store (single node, Sentinel or Cluster).
type Redis struct {
	URL        string   `yaml:"url"`         // redis://user:pass@host:6379/0
	Addrs      []string `yaml:"addrs"`       // several: Cluster, or Sentinel with MasterName
	MasterName string   `yaml:"master_name"` // Sentinel
	Password   string   `yaml:"password"`
	Prefix     string   `yaml:"prefix"` // key prefix, default "sb:"
}

// Embedded configures the on-disk single-process store.
type Embedded struct {
	Path string `yaml:"path"`
	// BatchDelay lets concurrent writes share one fsync (default 1ms);
	// every write is still on disk before it returns.
	BatchDelay Duration `yaml:"batch_delay"`
	// NoSync skips fsync: survives a crash of the hub, not of the machine.
	NoSync bool `yaml:"no_sync"`
}

// Plugin is one plugin instance.
type Plugin struct {
	Name   string `yaml:"name"` // instance name, used in /webhooks/{name}
	Kind   string `yaml:"kind"` // channel | crm | llm
	Path   string `yaml:"path"` // the binary
	SHA256 string `yaml:"sha256"`
	// Env is the complete environment the plugin process gets; the hub's
	// own environment is never passed through.
	Env         map[string]string `yaml:"env"`
	CallTimeout Duration          `yaml:"call_timeout"`
	Config      yaml.Node         `yaml:"config"`

	// ConfigJSON is Config with secrets resolved, as the plugin gets it.
	ConfigJSON json.RawMessage `yaml:"-"`
	Line       int             `yaml:"-"`
}

// PluginHost tunes how crashed plugin processes are restarted. Zero values
// take the defaults noted.
type PluginHost struct {
	MinBackoff Duration `yaml:"min_backoff"` // first restart after a crash (200ms), doubling per failure in a row
	MaxBackoff Duration `yaml:"max_backoff"` // cap of the backoff, and the wait in a crash loop (30s)
	// CrashLoop crashes within CrashLoopWindow (5 in 1m) make a crash loop:
	// the plugin is reported crash_loop and restarted only every MaxBackoff.
	CrashLoop       int      `yaml:"crash_loop"`
	CrashLoopWindow Duration `yaml:"crash_loop_window"`
}

// Rules points at the rules directory.
type Rules struct {
	Dir    string   `yaml:"dir"`
	Reload Duration `yaml:"reload"` // how often to check the files for changes; 0: only on request
}

// Pipeline tunes message processing.
type Pipeline struct {
	Workers          int                  `yaml:"workers"`          // concurrent conversations per hub process
	HistoryTurns     int                  `yaml:"history_turns"`    // turns kept per conversation
	HistoryTTL       Duration             `yaml:"history_ttl"`      // how long an idle conversation's history lives
	HistoryHardCap   int                  `yaml:"history_hard_cap"` // past this many turns the conversation is flagged
	DedupeTTL        Duration             `yaml:"dedupe_ttl"`       // how long provider message ids are remembered
	QuietWindow      Duration             `yaml:"quiet_window"`     // wait this long after a message for more before replying
	MaxDeliveries    int                  `yaml:"max_deliveries"`   // then dead-letter
	RetryBase        Duration             `yaml:"retry_base"`
	RetryMax         Duration             `yaml:"retry_max"`
	LeaseTTL         Duration             `yaml:"lease_ttl"`     // partition ownership lease; a dead replica's partitions move after this
	RawRetention     Duration             `yaml:"raw_retention"` // raw inbound requests kept for replay
	AuditRetention   Duration             `yaml:"audit_retention"`
	SystemPrompt     string               `yaml:"system_prompt"`
	SystemPromptFile string               `yaml:"system_prompt_file"`
	LLM              string               `yaml:"llm"` // llm plugin instance
	CRM              string               `yaml:"crm"` // crm plugin instance
	Pacing           Pacing               `yaml:"pacing"`
	Deals            map[string]DealStage `yaml:"deals"` // tier → pipeline and stage
	// Consume false makes this hub an ingest replica: it takes webhooks
	// and queues them, and leaves processing to the replicas sharing its
	// Redis. The benchmark measures ingest alone with it.
	Consume *bool `yaml:"consume"`
}

// Pacing is an optional human-like pause before a reply, scaled to its
// length. It never delays the webhook ack and never holds a worker.
type Pacing struct {
	Enabled bool     `yaml:"enabled"`
	PerChar Duration `yaml:"per_char"`
	Min     Duration `yaml:"min"`
	Max     Duration `yaml:"max"`
}

// DealStage maps a tier to a CRM pipeline and stage.
type DealStage struct {
	Pipeline string `yaml:"pipeline"`
	Stage    string `yaml:"stage"`
}

// HandoffOptions tunes bot/human handoff, assignment and notifications.
type HandoffOptions struct {
	ReleaseAfter  Duration `yaml:"release_after"` // hand back to the bot after this long without an agent message
	WebhookURL    string   `yaml:"webhook_url"`   // outgoing handoff notifications, HMAC-signed
	WebhookSecret string   `yaml:"webhook_secret"`
	// NotifyChannels maps a notify target's channel ("zalo" in
	// notify: "zalo:<user id>") to the channel plugin instance that sends
	// it. A channel not listed uses the first instance whose plugin is
	// that channel.
	NotifyChannels map[string]string `yaml:"notify_channels"`
	// DefaultStatus is the status of an agent nobody set one for: online
	// (default), away or offline.
	DefaultStatus string `yaml:"default_status"`
}

// Admin configures the admin API.
type Admin struct {
	// BootstrapKeyEnv names an environment variable whose value is accepted
	// as an admin API key, for automation.
	BootstrapKeyEnv string `yaml:"bootstrap_key_env"`
	RateLimit       int    `yaml:"rate_limit"` // requests per minute per key
	// AuditRetention is how long the admin audit log (who changed what
	// through the admin API) is kept; default 365d.
	AuditRetention Duration `yaml:"audit_retention"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"` // debug, info, warn, error
	// Content logs message text, phone numbers and emails unmasked. Off by
	// default; for debugging only.
	Content bool `yaml:"content"`
}

// Duration is a time.Duration written as "1.5s", "24h", "7d".
type Duration time.Duration

// D returns the standard duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseDuration accepts Go durations plus a "d" suffix for days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 500ms, 30s, 5m, 24h, 7d)", s)
	}
	return v, nil
}

// Error is one problem in a config file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in one load.
type Errors []Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// Load reads, resolves and validates a config file. env looks variables up
// (os.LookupEnv when nil).
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, env)
}

// Parse is Load on bytes already read; path is used in messages and to
// resolve relative paths.
func Parse(path string, data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErrors(path, err)
	}
	cfg := &Config{File: path}
	var errs Errors
	if len(root.Content) > 0 {
		r := &resolver{file: path, env: env, dir: filepath.Dir(path)}
		r.walk(root.Content[0])
		errs = append(errs, r.errs...)
		cfg.secrets = r.secrets
		// Node.Decode reports type errors with the right lines but ignores
		// unknown keys; a strict Decoder over the original bytes finds those.
		if err := root.Content[0].Decode(cfg); err != nil {
			errs = append(errs, yamlErrors(path, err)...)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&Config{}); err != nil {
			for _, e := range yamlErrors(path, err) {
				if strings.Contains(e.Msg, "is not a known key") {
					errs = append(errs, e)
				}
			}
		}
		cfg.pluginLines(root.Content[0])
	}
	cfg.File = path
	cfg.setDefaults()
	errs = append(errs, cfg.validate()...)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return cfg, nil
}

func yamlErrors(path string, err error) Errors {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out Errors
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		e := Error{File: path, Msg: m}
		if loc := yamlLine.FindStringSubmatchIndex(m); loc != nil {
			e.Line, _ = strconv.Atoi(m[loc[2]:loc[3]])
			e.Msg = m[:loc[0]] + m[loc[1]:]
		}
		if i := strings.Index(e.Msg, " not found in type config."); i >= 0 {
			e.Msg = strings.TrimPrefix(e.Msg[:i], "field ") + " is not a known key in " + strings.ToLower(e.Msg[i+len(" not found in type config."):])
		}
		out = append(out, e)
	}
	return out
}

// pluginLines records where each plugin is declared, for later messages,
// and turns each config block into JSON for the plugin.
func (c *Config) pluginLines(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "plugins" {
			continue
		}
		seq := root.Content[i+1]
		for j, item := range seq.Content {
			if j < len(c.Plugins) {
				c.Plugins[j].Line = item.Line
			}
		}
	}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		if p.Config.Kind == 0 {
			p.ConfigJSON = json.RawMessage("{}")
			continue
		}
		var v any
		if err := p.Config.Decode(&v); err == nil {
			if b, err := json.Marshal(jsonable(v)); err == nil {
				p.ConfigJSON = b
			}
		}
	}
}

// jsonable converts yaml.v3's map[string]any trees (which may hold
// map[any]any for odd keys) into something encoding/json accepts.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	}
	return v
}

func (c *Config) setDefaults() {
	if c.Listen.Webhooks == "" {
		c.Listen.Webhooks = "127.0.0.1:8080"
	}
	if c.Listen.BodyLimit == 0 {
		c.Listen.BodyLimit = 1 << 20
	}
	if c.Store.Redis == nil && c.Store.Embedded == nil {
		c.Store.Embedded = &Embedded{Path: "data/switchboard.db"}
	}
	if c.Store.Embedded != nil && c.Store.Embedded.Path != "" {
		c.Store.Embedded.Path = c.Rel(c.Store.Embedded.Path)
	}
	if c.Store.Embedded != nil && c.Store.Embedded.BatchDelay == 0 {
		c.Store.Embedded.BatchDelay = Duration(time.Millisecond)
	}
	if c.Store.Redis != nil && c.Store.Redis.Prefix == "" {
		c.Store.Redis.Prefix = "sb:"
	}
	if c.Store.Partitions == 0 {
		c.Store.Partitions = 16
	}
	p := &c.Pipeline
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	if p.Workers == 0 {
		p.Workers = 256
	}
	if p.HistoryTurns == 0 {
		p.HistoryTurns = 20
	}
	if p.HistoryHardCap == 0 {
		p.HistoryHardCap = 200
	}
	if p.MaxDeliveries == 0 {
		p.MaxDeliveries = 5
	}
	def(&p.HistoryTTL, 24*time.Hour)
	def(&p.DedupeTTL, 7*24*time.Hour)
	def(&p.RetryBase, 500*time.Millisecond)
	def(&p.RetryMax, 2*time.Minute)
	def(&p.LeaseTTL, 10*time.Second)
	def(&p.RawRetention, 7*24*time.Hour)
	def(&p.AuditRetention, 90*24*time.Hour)
	if p.Pacing.Enabled {
		def(&p.Pacing.PerChar, 30*time.Millisecond)
		def(&p.Pacing.Max, 8*time.Second)
	}
	if p.SystemPromptFile != "" {
		p.SystemPromptFile = c.Rel(p.SystemPromptFile)
	}
	if c.Rules.Dir != "" {
		c.Rules.Dir = c.Rel(c.Rules.Dir)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Handoff.DefaultStatus == "" {
		c.Handoff.DefaultStatus = "online"
	}
	if c.Admin.RateLimit == 0 {
		c.Admin.RateLimit = 600
	}
	def(&c.Admin.AuditRetention, 365*24*time.Hour)
	for i := range c.Plugins {
		pl := &c.Plugins[i]
		if pl.Path != "" {
			pl.Path = c.Rel(pl.Path)
		}
		if pl.CallTimeout == 0 {
			pl.CallTimeout = Duration(30 * time.Second)
		}
	}
}

// Rel resolves a path relative to the config file's directory.
func (c *Config) Rel(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

var (
	instanceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	hexSHA256    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (c *Config) validate() Errors {
	var errs Errors
	add := func(line int, format string, args ...any) {
		errs = append(errs, Error{File: c.File, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]bool{}
	for _, p := range c.Plugins {
		switch {
		case !instanceName.MatchString(p.Name):
			add(p.Line, "plugin name %q: use lower-case letters, digits, - and _ (it appears in the webhook URL)", p.Name)
		case seen[p.Name]:
			add(p.Line, "plugin name %q is used twice", p.Name)
		}
		seen[p.Name] = true
		switch p.Kind {
		case "channel", "crm", "llm":
		default:
			add(p.Line, "plugin %q: kind %q must be channel, crm or llm", p.Name, p.Kind)
		}
		if p.Path == "" {
			add(p.Line, "plugin %q: path to the plugin binary is required", p.Name)
		}
		if p.SHA256 != "" && !hexSHA256.MatchString(strings.ToLower(p.SHA256)) {
			add(p.Line, "plugin %q: sha256 must be 64 hex digits", p.Name)
		}
	}
	if c.Store.Redis != nil && c.Store.Redis.URL == "" && len(c.Store.Redis.Addrs) == 0 {
		add(0, "store.redis needs url or addrs")
	}
	kindOf := map[string]string{}
	for _, p := range c.Plugins {
		kindOf[p.Name] = p.Kind
	}
	if n := c.Pipeline.LLM; n != "" && kindOf[n] != "llm" {
		add(0, "pipeline.llm %q is not an llm plugin instance", n)
	}
	if n := c.Pipeline.CRM; n != "" && kindOf[n] != "crm" {
		add(0, "pipeline.crm %q is not a crm plugin instance", n)
	}
	if h := c.PluginHost; h.MinBackoff < 0 || h.MaxBackoff < 0 || h.CrashLoop < 0 || h.CrashLoopWindow < 0 {
		add(0, "plugin_host: backoffs, crash_loop and crash_loop_window must not be negative")
	}
	if c.Admin.RateLimit < 0 {
		add(0, "admin.rate_limit %d must be a positive number of requests per minute per key", c.Admin.RateLimit)
	}
	if c.Admin.AuditRetention < 0 {
		add(0, "admin.audit_retention must not be negative")
	}
	for ch, inst := range c.Handoff.NotifyChannels {
		if kindOf[inst] != "channel" {
			add(0, "handoff.notify_channels.%s: %q is not a channel plugin instance", ch, inst)
		}
	}
	switch c.Handoff.DefaultStatus {
	case "online", "away", "offline":
	default:
		add(0, "handoff.default_status %q must be online, away or offline", c.Handoff.DefaultStatus)
	}
	if u := c.Handoff.WebhookURL; u != "" {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			add(0, "handoff.webhook_url must be an http:// or https:// URL")
		}
		if c.Handoff.WebhookSecret == "" {
			add(0, "handoff.webhook_secret is required with webhook_url: receivers check the HMAC signature")
		}
	}
	if c.Handoff.ReleaseAfter < 0 {
		add(0, "handoff.release_after must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add(0, "log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	return errs
}

// Plugin returns the instance named name.
func (c *Config) Plugin(name string) (Plugin, bool) {
	for _, p := range c.Plugins {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}

// Redact replaces every resolved secret value in s with "[REDACTED]".
func (c *Config) Redact(s string) string {
	for _, v := range c.secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	return s
}

// Secrets reports how many secret references were resolved.
func (c *Config) Secrets() int { return len(c.secrets) }
