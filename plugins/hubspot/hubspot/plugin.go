package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Version is the plugin's version, reported in Describe.
const Version = "0.1.0"

// CRM is the HubSpot CRM plugin. Create it with New; the hub calls
// Configure before anything else. Safe for concurrent use.
type CRM struct {
	clock Clock
	http  *http.Client

	mu sync.RWMutex
	st *state
}

// state is everything Configure builds; replaced whole on reconfigure.
type state struct {
	cfg    Config
	api    *client
	kv     sdk.KV
	log    *slog.Logger
	locks  *locker
	props  *propertySet
	owners *owners
	clock  Clock
}

// Option changes a CRM built by New.
type Option func(*CRM)

// WithClock sets the clock used for timestamps and rate limiting.
func WithClock(c Clock) Option { return func(p *CRM) { p.clock = c } }

// WithHTTPClient sets the HTTP client (its Timeout is left alone; the
// config's timeout applies per request).
func WithHTTPClient(c *http.Client) Option { return func(p *CRM) { p.http = c } }

// New returns an unconfigured plugin.
func New(opts ...Option) *CRM {
	p := &CRM{clock: realClock{}, http: sdk.NewHTTPClient(0)}
	for _, o := range opts {
		o(p)
	}
	return p
}

var _ sdk.CRM = (*CRM)(nil)
var _ sdk.HealthChecker = (*CRM)(nil)

// Describe implements sdk.Plugin.
func (p *CRM) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{
		Name:         "hubspot",
		Kind:         sdk.KindCRM,
		Version:      Version,
		Description:  "HubSpot CRM (v3 API, private-app token): contacts, notes, deals, tasks, owners",
		Capabilities: []string{"contacts", "notes", "deals", "tasks", "owners", "deep_links"},
		ConfigSchema: json.RawMessage(configSchema),
	}, nil
}

// Configure implements sdk.Plugin. It makes no HTTP call, so a hub can
// start while HubSpot is unreachable; CheckHealth probes the token.
func (p *CRM) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return sdk.Invalid(err).WithReason("bad_config")
	}
	if req.Host == nil {
		return sdk.Invalid(errors.New("hubspot: Configure without host services"))
	}
	loc, _ := time.LoadLocation(cfg.Timezone) // validated by parseConfig
	kv := req.Host.KV()
	limitKV := kv
	if cfg.RateLimit.Scope == "process" {
		limitKV = sdk.NewMemoryHost(nil)
	}
	api := &client{base: cfg.BaseURL, token: cfg.Token, http: p.http, timeout: time.Duration(cfg.Timeout), clock: p.clock, loc: loc}
	if !cfg.RateLimit.Disabled {
		api.limit = newLimiter(limitKV, p.clock, loc, cfg.RateLimit)
	}
	log := req.Host.Logger()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &state{
		cfg: cfg, api: api, kv: kv, log: log, clock: p.clock,
		locks:  newLocker(kv, time.Duration(cfg.LockTTL)),
		props:  &propertySet{api: api, create: cfg.CreateProperties, group: cfg.PropertyGroup, known: map[string]bool{}},
		owners: newOwners(api, kv, cfg),
	}
	p.mu.Lock()
	p.st = st
	p.mu.Unlock()
	log.Info("hubspot plugin configured", "base_url", cfg.BaseURL, "tier", cfg.Tier,
		"rate_limit_scope", cfg.RateLimit.Scope, "create_properties", cfg.CreateProperties)
	return nil
}

func (p *CRM) state() (*state, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.st == nil {
		return nil, sdk.Permanent(errors.New("hubspot: called before Configure")).WithReason("not_configured")
	}
	return p.st, nil
}

// CheckHealth implements sdk.HealthChecker: one cheap authenticated read.
func (p *CRM) CheckHealth(ctx context.Context) error {
	st, err := p.state()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {"1"}, "properties": {"hs_object_id"}}
	if err := st.api.do(ctx, http.MethodGet, "/crm/v3/objects/contacts", q, nil, nil); err != nil {
		return fmt.Errorf("hubspot health: %w", err)
	}
	return nil
}

// recordURL is the deep link to a record in HubSpot's UI, or "" without a
// portal id. objectType is 0-1 for contacts and 0-3 for deals.
func (s *state) recordURL(objectType, id string) string {
	if s.cfg.PortalID == "" || id == "" {
		return ""
	}
	return s.cfg.AppURL + "/contacts/" + url.PathEscape(s.cfg.PortalID) + "/record/" + objectType + "/" + url.PathEscape(id)
}
