package whatsapp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults. The send rate is Meta's fixed throughput for coexistence
// numbers (20 messages/s, Throughput page); a Cloud-API-only number gets 80
// and can raise send_rate_per_second.
const (
	DefaultBaseURL          = "https://graph.facebook.com"
	DefaultAPIVersion       = "v25.0"
	DefaultSendRate         = 20.0
	DefaultSendBurst        = 1
	DefaultTemplateLanguage = "en_US"
	DefaultHTTPTimeout      = 20 * time.Second
	// WindowDuration is Meta's customer-service window.
	WindowDuration = 24 * time.Hour
)

//go:embed config.schema.json
var configSchema []byte

// Config is the instance's config block (snake_case keys; the hub resolves
// ${ENV} and file: references in secrets before the plugin sees them).
type Config struct {
	// PhoneNumberID is the business phone number's Graph id: the sender of
	// every message, and the filter on incoming webhooks.
	PhoneNumberID string `json:"phone_number_id"`
	// AccessToken is a system-user or business token (secret).
	AccessToken string `json:"access_token"`
	// AppSecret signs webhooks: X-Hub-Signature-256 (secret).
	AppSecret string `json:"app_secret"`
	// VerifyToken is what you typed in the App Dashboard for the GET
	// verification handshake (secret).
	VerifyToken string `json:"verify_token"`
	// BaseURL is the Graph API host, without the version.
	BaseURL string `json:"base_url"`
	// APIVersion is the Graph API version, e.g. "v25.0".
	APIVersion string `json:"api_version"`
	// SendRatePerSecond caps this number's sends per plugin process; the
	// limiter waits (within the call's deadline) instead of failing.
	SendRatePerSecond float64 `json:"send_rate_per_second"`
	// SendBurst is how many sends may go at once before pacing. 1 keeps any
	// 1-second span at or under the rate (+1), which is what Meta counts.
	SendBurst int `json:"send_burst"`
	// EnforceWindow refuses free-form sends outside the 24-hour window
	// before calling Meta (default true). Set false when another system
	// also receives this number's webhooks, so the plugin cannot see every
	// inbound message; Meta then answers 131047 itself.
	EnforceWindow *bool `json:"enforce_window,omitempty"`
	// WindowFallbackTemplate, when set, is sent instead of a free-form
	// message whose window is closed.
	WindowFallbackTemplate *TemplateConfig `json:"window_fallback_template,omitempty"`
	// TemplateLanguage is used when an outbound template names none.
	TemplateLanguage string `json:"template_language"`
	// HTTPTimeout bounds one Graph API call ("20s").
	HTTPTimeout Duration `json:"http_timeout"`
}

// TemplateConfig names an approved template and its body parameters.
type TemplateConfig struct {
	Name     string   `json:"name"`
	Language string   `json:"language,omitempty"`
	Params   []string `json:"params,omitempty"`
}

// Duration is a time.Duration written as "20s" in config.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if nerr := json.Unmarshal(b, &n); nerr != nil {
			return fmt.Errorf("duration: want a string such as \"20s\"")
		}
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// windowEnforced reports the effective enforce_window.
func (c *Config) windowEnforced() bool { return c.EnforceWindow == nil || *c.EnforceWindow }

// ParseConfig decodes and validates a config block, filling defaults.
// Unknown keys are errors, so a typo is caught at Configure time. Error
// messages name fields, never their values.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, errors.New("whatsapp config is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("whatsapp config: %w", err)
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.SendRatePerSecond == 0 {
		c.SendRatePerSecond = DefaultSendRate
	}
	if c.SendBurst == 0 {
		c.SendBurst = DefaultSendBurst
	}
	if c.TemplateLanguage == "" {
		c.TemplateLanguage = DefaultTemplateLanguage
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = Duration(DefaultHTTPTimeout)
	}
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	if !isDigits(c.PhoneNumberID) {
		bad("phone_number_id is required (the Graph id of the business number, digits)")
	}
	if c.AccessToken == "" {
		bad("access_token is required")
	}
	if c.AppSecret == "" {
		bad("app_secret is required (webhooks cannot be verified without it)")
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url must be an absolute http(s) URL")
	}
	if !strings.HasPrefix(c.APIVersion, "v") || strings.ContainsAny(c.APIVersion, "/?# ") {
		bad("api_version must look like \"v25.0\"")
	}
	if c.SendRatePerSecond < 0 || c.SendRatePerSecond > 1000 {
		bad("send_rate_per_second must be between 0 and 1000 (Meta's highest throughput tier)")
	}
	if c.SendBurst < 1 || c.SendBurst > 1000 {
		bad("send_burst must be between 1 and 1000")
	}
	if c.HTTPTimeout < 0 {
		bad("http_timeout must be positive")
	}
	if t := c.WindowFallbackTemplate; t != nil && t.Name == "" {
		bad("window_fallback_template.name is required when the block is set")
	}
	if len(problems) > 0 {
		return c, errors.New("whatsapp config: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// graphBase is base_url + "/" + api_version.
func (c *Config) graphBase() string { return c.BaseURL + "/" + c.APIVersion }
