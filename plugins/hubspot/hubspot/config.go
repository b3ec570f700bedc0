package hubspot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Config is an instance's config block (snake_case JSON from the hub).
type Config struct {
	// Token is the private-app access token (pat-…); write it as
	// ${HUBSPOT_TOKEN} in the hub config. Never logged.
	Token string `json:"token"`
	// BaseURL of the API; https://api.hubapi.com unless pointing at a fake.
	BaseURL string `json:"base_url"`
	// AppURL of HubSpot's web UI for deep links (EU portals use
	// https://app-eu1.hubspot.com).
	AppURL string `json:"app_url"`
	// PortalID (the account/hub id) makes Contact.URL and Deal.URL deep links.
	PortalID string `json:"portal_id"`
	// Timeout bounds each HTTP request.
	Timeout Duration `json:"timeout"`
	// Tier picks the default rate limits: free, starter, professional,
	// enterprise or api_add_on.
	Tier      string          `json:"tier"`
	RateLimit RateLimitConfig `json:"rate_limit"`
	// Timezone of the HubSpot account, where the daily limit resets at midnight.
	Timezone string `json:"timezone"`
	// CreateProperties creates the switchboard_* contact properties when they
	// are missing. Without it a missing property is a clear Invalid error.
	CreateProperties bool `json:"create_properties"`
	// PropertyGroup holds created properties.
	PropertyGroup string `json:"property_group"`
	// ChannelProperties maps a channel name to an existing contact property
	// that holds its user ids (default switchboard_<channel>_id).
	ChannelProperties map[string]string `json:"channel_properties"`
	// ReadProperties are extra contact properties returned in Contact.Properties.
	ReadProperties []string `json:"read_properties"`
	// Owners maps hub agent ids to HubSpot owner ids.
	Owners map[string]string `json:"owners"`
	// OwnerEmails maps hub agent ids to HubSpot user emails, resolved to
	// owner ids through the owners API (an agent id that is an email is
	// looked up the same way).
	OwnerEmails map[string]string `json:"owner_emails"`
	// Pipeline is the deal pipeline id used when a deal names none.
	Pipeline string `json:"pipeline"`
	// Pipelines maps hub pipeline names to HubSpot pipeline ids.
	Pipelines map[string]string `json:"pipelines"`
	// Stages maps hub stage names (or tiers) to HubSpot dealstage ids;
	// unmapped stages are sent as given.
	Stages map[string]string `json:"stages"`
	// LockTTL bounds how long one upsert may hold its cross-replica lease.
	LockTTL Duration `json:"lock_ttl"`
}

// RateLimitConfig overrides the tier's client-side limits.
type RateLimitConfig struct {
	TenSecond       int `json:"ten_second"`        // requests per rolling 10 s
	Daily           int `json:"daily"`             // requests per day
	SearchPerSecond int `json:"search_per_second"` // search requests per second
	// Scope is "shared" (counters in the host KV, shared by hub replicas;
	// the default) or "process".
	Scope string `json:"scope"`
	// MaxWait is how long a call may wait for budget before it returns a
	// RateLimited error for the hub to retry later.
	MaxWait Duration `json:"max_wait"`
	// Disabled turns client-side limiting off (HubSpot's 429s still map to RateLimited).
	Disabled bool `json:"disabled"`
}

// Duration reads "10s"-style strings (or nanoseconds as a number).
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string like \"10s\": %w", err)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// tierLimits are HubSpot's private-app limits per product tier (reference §9).
var tierLimits = map[string][2]int{
	"free":         {100, 250000},
	"starter":      {100, 250000},
	"professional": {190, 650000},
	"enterprise":   {190, 1000000},
	"api_add_on":   {250, 1000000},
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// parseConfig decodes and validates the config, filling defaults. Unknown
// keys are refused so a typo does not silently fall back to a default.
func parseConfig(raw []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("hubspot config: %w", err)
		}
	}
	var errs []error
	if strings.TrimSpace(c.Token) == "" {
		errs = append(errs, errors.New("token is required (a HubSpot private-app token, e.g. ${HUBSPOT_TOKEN})"))
	}
	if c.BaseURL == "" {
		c.BaseURL = "https://api.hubapi.com"
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("base_url %q is not an http(s) URL", c.BaseURL))
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.AppURL == "" {
		c.AppURL = "https://app.hubspot.com"
	}
	c.AppURL = strings.TrimRight(c.AppURL, "/")
	if c.Timeout <= 0 {
		c.Timeout = Duration(10 * time.Second)
	}
	if c.LockTTL <= 0 {
		c.LockTTL = Duration(30 * time.Second)
	}
	if c.Tier == "" {
		c.Tier = "starter" // the lowest limits: safe when the tier is unknown
	}
	lim, ok := tierLimits[c.Tier]
	if !ok {
		errs = append(errs, fmt.Errorf("tier %q: want free, starter, professional, enterprise or api_add_on", c.Tier))
	}
	if c.RateLimit.TenSecond == 0 {
		c.RateLimit.TenSecond = lim[0]
	}
	if c.RateLimit.Daily == 0 {
		c.RateLimit.Daily = lim[1]
	}
	if c.RateLimit.SearchPerSecond == 0 {
		c.RateLimit.SearchPerSecond = 5
	}
	if c.RateLimit.TenSecond < 0 || c.RateLimit.Daily < 0 || c.RateLimit.SearchPerSecond < 0 {
		errs = append(errs, errors.New("rate_limit values must be positive"))
	}
	switch c.RateLimit.Scope {
	case "":
		c.RateLimit.Scope = "shared"
	case "shared", "process":
	default:
		errs = append(errs, fmt.Errorf("rate_limit.scope %q: want shared or process", c.RateLimit.Scope))
	}
	if c.RateLimit.MaxWait == 0 {
		c.RateLimit.MaxWait = Duration(5 * time.Second)
	}
	if c.Timezone == "" {
		c.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("timezone %q: %w", c.Timezone, err))
	}
	if c.PropertyGroup == "" {
		c.PropertyGroup = "contactinformation"
	}
	if c.Pipeline == "" {
		c.Pipeline = "default"
	}
	for ch, p := range c.ChannelProperties {
		if !nameRe.MatchString(p) {
			errs = append(errs, fmt.Errorf("channel_properties.%s: %q is not a HubSpot property name", ch, p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("hubspot config: %w", err)
	}
	return c, nil
}

// configSchema is the JSON schema reported by Describe.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["token"],
  "properties": {
    "token": {"type": "string", "description": "HubSpot private-app token; use ${HUBSPOT_TOKEN}", "writeOnly": true},
    "base_url": {"type": "string", "default": "https://api.hubapi.com"},
    "app_url": {"type": "string", "default": "https://app.hubspot.com"},
    "portal_id": {"type": "string", "description": "HubSpot account id, for deep links"},
    "timeout": {"type": "string", "default": "10s"},
    "tier": {"enum": ["free", "starter", "professional", "enterprise", "api_add_on"], "default": "starter"},
    "rate_limit": {"type": "object", "additionalProperties": false, "properties": {
      "ten_second": {"type": "integer"}, "daily": {"type": "integer"}, "search_per_second": {"type": "integer", "default": 5},
      "scope": {"enum": ["shared", "process"], "default": "shared"}, "max_wait": {"type": "string", "default": "5s"},
      "disabled": {"type": "boolean"}}},
    "timezone": {"type": "string", "default": "UTC"},
    "create_properties": {"type": "boolean", "default": false},
    "property_group": {"type": "string", "default": "contactinformation"},
    "channel_properties": {"type": "object", "additionalProperties": {"type": "string"}},
    "read_properties": {"type": "array", "items": {"type": "string"}},
    "owners": {"type": "object", "additionalProperties": {"type": "string"}},
    "owner_emails": {"type": "object", "additionalProperties": {"type": "string"}},
    "pipeline": {"type": "string", "default": "default"},
    "pipelines": {"type": "object", "additionalProperties": {"type": "string"}},
    "stages": {"type": "object", "additionalProperties": {"type": "string"}},
    "lock_ttl": {"type": "string", "default": "30s"}
  }
}`
