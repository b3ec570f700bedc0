package sdk

import (
	"context"
	"encoding/json"
)

// ProtocolVersion is the plugin protocol this SDK speaks. Within a major
// version, changes are additive only.
const ProtocolVersion = 1

// Version is the SDK's own version, reported in Describe.
const Version = "0.1.0"

// Kind names the three plugin kinds.
type Kind string

const (
	KindChannel Kind = "channel"
	KindCRM     Kind = "crm"
	KindLLM     Kind = "llm"
)

// Manifest describes a plugin: what Describe returns and what the binary's
// `describe` subcommand prints.
type Manifest struct {
	Name         string          `json:"name"`
	Kind         Kind            `json:"kind"`
	Version      string          `json:"version"`
	Description  string          `json:"description,omitempty"`
	Capabilities []string        `json:"capabilities,omitempty"`
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	// Filled in by the SDK; authors leave them empty.
	ProtocolVersions []int  `json:"protocol_versions,omitempty"`
	SDKVersion       string `json:"sdk_version,omitempty"`
}

// Plugin is what every kind implements.
type Plugin interface {
	// Describe returns the plugin's manifest. It must not depend on Configure.
	Describe(ctx context.Context) (Manifest, error)
	// Configure receives the instance's config block (JSON, secrets already
	// resolved by the hub) and the host's services. It is called once after
	// start and again after each restart, before any other call.
	Configure(ctx context.Context, req ConfigureRequest) error
}

// ConfigureRequest carries the hub's configuration for one plugin instance.
type ConfigureRequest struct {
	Instance   string
	Config     json.RawMessage
	Host       Host
	HubVersion string
}

// HealthChecker is optional: a plugin that can tell whether its provider is
// reachable implements it, and the hub's readiness check calls it.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// Identity is one way to recognise or reach a person on one channel.
type Identity struct {
	Channel     string `json:"channel,omitempty"` // "zalo", "whatsapp", "email", "phone", ...
	UserID      string `json:"user_id,omitempty"` // channel-scoped id, kept as a string
	Phone       string `json:"phone,omitempty"`   // E.164
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Instance    string `json:"instance,omitempty"` // hub plugin instance that saw it
}

// IsZero reports whether the identity carries nothing to match on.
func (i Identity) IsZero() bool {
	return i.UserID == "" && i.Phone == "" && i.Email == ""
}

// LeadFacts are what the LLM and the rules learned about a lead.
type LeadFacts struct {
	Intent             string            `json:"intent,omitempty"`
	Need               string            `json:"need,omitempty"`
	Budget             string            `json:"budget,omitempty"`
	Timeline           string            `json:"timeline,omitempty"`
	DecisionMaker      bool              `json:"decision_maker,omitempty"`
	DecisionMakerKnown bool              `json:"decision_maker_known,omitempty"`
	Action             string            `json:"action,omitempty"`
	Confidence         float64           `json:"confidence,omitempty"`
	Estimate           int               `json:"estimate,omitempty"`
	Extra              map[string]string `json:"extra,omitempty"`
}
