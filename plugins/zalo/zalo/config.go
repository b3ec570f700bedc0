package zalo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default Zalo hosts.
const (
	DefaultOpenAPIURL = "https://openapi.zalo.me"
	DefaultOAuthURL   = "https://oauth.zaloapp.com"
)

// Config is the plugin instance's config block (snake_case JSON).
type Config struct {
	AppID       string `json:"app_id"`
	OAID        string `json:"oa_id"`
	AppSecret   string `json:"app_secret"`
	SecretKey   string `json:"secret_key"` // alias of app_secret, Zalo's own name for the header
	OASecretKey string `json:"oa_secret_key"`

	// Initial tokens; they seed the host KV only when it holds none for
	// this OA (or when they differ from the ones that seeded it, i.e. the
	// OA was authorised again).
	AccessToken          string    `json:"access_token"`
	RefreshToken         string    `json:"refresh_token"`
	AccessTokenExpiresAt time.Time `json:"access_token_expires_at"`

	BaseURL BaseURL `json:"base_url"`

	// WebhookMaxAge refuses webhooks whose timestamp is older: replays past
	// the hub's dedupe window could otherwise be processed again.
	WebhookMaxAge Duration `json:"webhook_max_age"`
	// WebhookMaxSkew refuses webhooks stamped too far in the future.
	WebhookMaxSkew Duration `json:"webhook_max_skew"`

	RefreshBefore Duration `json:"refresh_before"` // refresh the access token this long before it expires
	TokenLease    Duration `json:"token_lease"`    // how long one replica may hold the refresh lease
	HTTPTimeout   Duration `json:"http_timeout"`

	ReplyAllowance ReplyAllowance `json:"reply_allowance"`

	// RateLimitRetryAfter is the retry-after given for Zalo's -32 (its
	// answer names no delay).
	RateLimitRetryAfter Duration `json:"rate_limit_retry_after"`
	// EchoMemory is how long the ids of messages this plugin sent are
	// remembered to recognise their oa_send_* echoes.
	EchoMemory Duration `json:"echo_memory"`
	// FetchProfiles looks up a new user's display name once (cached in the
	// KV) so events carry it.
	FetchProfiles bool `json:"fetch_profiles"`
}

// ReplyAllowance is Zalo's free-reply rule: after a user's message the OA
// may reply FreeReplies times within Window (help centre: 8 in 48 h).
type ReplyAllowance struct {
	Enforce     *bool    `json:"enforce"`
	FreeReplies int      `json:"free_replies"`
	Window      Duration `json:"window"`
	// UnknownContact decides a send to a user with no record in the KV
	// (e.g. one who wrote before the plugin was installed): "allow" lets
	// Zalo decide, "refuse" refuses as window_closed.
	UnknownContact string `json:"unknown_contact"`
}

// BaseURL holds the base URL of each Zalo host. In JSON it is either one
// string (both hosts, e.g. a fake) or {"openapi": ..., "oauth": ...}.
type BaseURL struct {
	OpenAPI string `json:"openapi"`
	OAuth   string `json:"oauth"`
}

// UnmarshalJSON accepts a string or an object.
func (b *BaseURL) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		b.OpenAPI, b.OAuth = s, s
		return nil
	}
	type plain BaseURL
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("base_url: %w", err)
	}
	*b = BaseURL(p)
	return nil
}

// Duration is a time.Duration written as "48h" or "30s" in config.
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	var v time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok && isDecimal(n) {
		// Days, as the hub's own config writes them ("7d").
		days, err := strconv.Atoi(n)
		if err != nil || days > 100000 {
			return fmt.Errorf("duration %q is out of range", s)
		}
		v = time.Duration(days) * 24 * time.Hour
	} else if v, err = time.ParseDuration(s); err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// parseConfig decodes, defaults and validates a config block.
func parseConfig(raw []byte) (*Config, error) {
	raw, err := quoteIDs(raw)
	if err != nil {
		return nil, fmt.Errorf("zalo config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("zalo config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("zalo config: trailing data after the object")
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("zalo config: %w", err)
	}
	return &c, nil
}

// quoteIDs turns app_id and oa_id written as bare numbers (an unquoted id
// in YAML) into strings, keeping every digit.
func quoteIDs(raw []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	changed := false
	for _, k := range []string{"app_id", "oa_id"} {
		v := bytes.TrimSpace(m[k])
		if len(v) > 0 && v[0] >= '0' && v[0] <= '9' && isDecimal(string(v)) {
			m[k], changed = json.RawMessage(`"`+string(v)+`"`), true
		}
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(m)
}

func (c *Config) setDefaults() {
	if c.AppSecret == "" {
		c.AppSecret = c.SecretKey
	}
	c.BaseURL.OpenAPI = strings.TrimRight(orDefault(c.BaseURL.OpenAPI, DefaultOpenAPIURL), "/")
	c.BaseURL.OAuth = strings.TrimRight(orDefault(c.BaseURL.OAuth, DefaultOAuthURL), "/")
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.WebhookMaxAge, 7*24*time.Hour)
	def(&c.WebhookMaxSkew, 15*time.Minute)
	def(&c.RefreshBefore, 10*time.Minute)
	def(&c.TokenLease, 30*time.Second)
	def(&c.HTTPTimeout, 10*time.Second)
	def(&c.RateLimitRetryAfter, 30*time.Second)
	def(&c.EchoMemory, 24*time.Hour)
	def(&c.ReplyAllowance.Window, 48*time.Hour)
	if c.ReplyAllowance.Enforce == nil {
		t := true
		c.ReplyAllowance.Enforce = &t
	}
	if c.ReplyAllowance.FreeReplies == 0 {
		c.ReplyAllowance.FreeReplies = 8
	}
	if c.ReplyAllowance.UnknownContact == "" {
		c.ReplyAllowance.UnknownContact = "allow"
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (c *Config) validate() error {
	var errs []error
	need := func(name, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need("app_id", c.AppID)
	need("oa_id", c.OAID)
	need("oa_secret_key", c.OASecretKey)
	for name, v := range map[string]string{"app_id": c.AppID, "oa_id": c.OAID} {
		if v != "" && !isDecimal(v) {
			errs = append(errs, fmt.Errorf("%s must be Zalo's decimal id (a string)", name))
		}
	}
	if c.SecretKey != "" && c.AppSecret != c.SecretKey {
		errs = append(errs, errors.New("app_secret and secret_key are the same setting and differ"))
	}
	if c.AccessToken == "" && c.RefreshToken == "" {
		errs = append(errs, errors.New("access_token or refresh_token is required (seeds the token store)"))
	}
	if c.RefreshToken != "" && c.AppSecret == "" {
		errs = append(errs, errors.New("app_secret is required to refresh tokens"))
	}
	for name, v := range map[string]string{"base_url.openapi": c.BaseURL.OpenAPI, "base_url.oauth": c.BaseURL.OAuth} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an http(s) URL", name))
		}
	}
	if c.ReplyAllowance.FreeReplies < 0 {
		errs = append(errs, errors.New("reply_allowance.free_replies must be positive"))
	}
	if u := c.ReplyAllowance.UnknownContact; u != "allow" && u != "refuse" {
		errs = append(errs, errors.New(`reply_allowance.unknown_contact must be "allow" or "refuse"`))
	}
	if c.TokenLease.D() <= c.HTTPTimeout.D() {
		errs = append(errs, errors.New("token_lease must be longer than http_timeout, or a slow refresh could outlive its lease"))
	}
	return errors.Join(errs...)
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// configSchema is the JSON schema reported in Describe.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Zalo OA channel",
  "type": "object",
  "additionalProperties": false,
  "required": ["app_id", "oa_id", "oa_secret_key"],
  "properties": {
    "app_id": {"type": "string", "pattern": "^[0-9]+$", "description": "Zalo app id"},
    "oa_id": {"type": "string", "pattern": "^[0-9]+$", "description": "Official Account id"},
    "app_secret": {"type": "string", "description": "App secret key (secret_key header of the OAuth v4 token endpoint)"},
    "secret_key": {"type": "string", "description": "Alias of app_secret"},
    "oa_secret_key": {"type": "string", "description": "OA secret key from the app's Webhook page; verifies X-ZEvent-Signature"},
    "access_token": {"type": "string", "description": "Initial OA access token; seeds the KV when it has none"},
    "refresh_token": {"type": "string", "description": "Initial refresh token; seeds the KV when it has none"},
    "access_token_expires_at": {"type": "string", "format": "date-time"},
    "base_url": {"oneOf": [
      {"type": "string", "format": "uri"},
      {"type": "object", "additionalProperties": false, "properties": {
        "openapi": {"type": "string", "format": "uri", "default": "https://openapi.zalo.me"},
        "oauth": {"type": "string", "format": "uri", "default": "https://oauth.zaloapp.com"}}}]},
    "webhook_max_age": {"type": "string", "default": "168h"},
    "webhook_max_skew": {"type": "string", "default": "15m"},
    "refresh_before": {"type": "string", "default": "10m"},
    "token_lease": {"type": "string", "default": "30s"},
    "http_timeout": {"type": "string", "default": "10s"},
    "rate_limit_retry_after": {"type": "string", "default": "30s"},
    "echo_memory": {"type": "string", "default": "24h"},
    "fetch_profiles": {"type": "boolean", "default": false},
    "reply_allowance": {"type": "object", "additionalProperties": false, "properties": {
      "enforce": {"type": "boolean", "default": true},
      "free_replies": {"type": "integer", "minimum": 1, "default": 8},
      "window": {"type": "string", "default": "48h"},
      "unknown_contact": {"enum": ["allow", "refuse"], "default": "allow"}}}
  }
}`
