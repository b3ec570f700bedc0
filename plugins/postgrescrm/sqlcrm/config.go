package sqlcrm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Config is the plugin instance's config block (snake_case JSON; the hub
// resolves ${ENV} and file: secret references before the plugin sees it).
type Config struct {
	// DSN selects PostgreSQL (pgx connection string or URL). When empty the
	// CRM runs on an embedded SQLite file at SQLitePath.
	DSN string `json:"dsn,omitempty"`
	// Schema is the PostgreSQL schema the CRM's tables live in; it is created
	// when missing. Empty: the connection's default search_path.
	Schema string `json:"schema,omitempty"`
	// SQLitePath is the SQLite database file, used when DSN is empty.
	SQLitePath string `json:"sqlite_path,omitempty"`
	// MaxConns bounds the connection pool.
	MaxConns int `json:"max_conns,omitempty"`
	// LinkTemplate builds Contact.URL: "{id}" is replaced by the contact id.
	LinkTemplate string `json:"link_template,omitempty"`
	// DealLinkTemplate builds Deal.URL from "{id}" (the deal id) and
	// "{contact_id}". Empty: the deal links to its contact's page.
	DealLinkTemplate string `json:"deal_link_template,omitempty"`
	// DefaultCountryCode turns national phone numbers ("0901 234 567") into
	// E.164 ("+84901234567"). Empty: national numbers are rejected.
	DefaultCountryCode string `json:"default_country_code,omitempty"`
	// DefaultPipeline is used for deals that name none.
	DefaultPipeline string `json:"default_pipeline,omitempty"`
	// ClosedStages are the deal stages that close a deal; a contact has at
	// most one open deal per pipeline.
	ClosedStages []string `json:"closed_stages,omitempty"`
}

// DefaultSQLitePath is where the zero-setup CRM keeps its data.
const DefaultSQLitePath = "./data/crm.db"

var (
	schemaName  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	countryCode = regexp.MustCompile(`^[1-9][0-9]{0,2}$`)
)

func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		// A misspelt key would otherwise silently fall back to a default
		// (e.g. SQLite instead of the PostgreSQL the operator meant).
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	if c.DSN == "" && c.SQLitePath == "" {
		c.SQLitePath = DefaultSQLitePath
	}
	if c.DSN != "" && c.SQLitePath != "" {
		return c, errors.New("config: set either dsn (PostgreSQL) or sqlite_path, not both")
	}
	if c.Schema != "" && (c.DSN == "" || !schemaName.MatchString(c.Schema)) {
		return c, errors.New("config: schema must be a lower-case SQL identifier, and needs dsn")
	}
	if c.MaxConns < 0 || c.MaxConns > 1000 {
		return c, errors.New("config: max_conns must be between 1 and 1000")
	}
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
	c.DefaultCountryCode = strings.TrimPrefix(strings.TrimSpace(c.DefaultCountryCode), "+")
	if c.DefaultCountryCode != "" && !countryCode.MatchString(c.DefaultCountryCode) {
		return c, fmt.Errorf("config: default_country_code %q is not a country calling code", c.DefaultCountryCode)
	}
	for _, tpl := range []string{c.LinkTemplate, c.DealLinkTemplate} {
		if tpl == "" {
			continue
		}
		if !strings.Contains(tpl, "{id}") && !strings.Contains(tpl, "{contact_id}") {
			return c, fmt.Errorf("config: link template %q has no {id} placeholder", tpl)
		}
		if u, err := url.Parse(strings.NewReplacer("{id}", "x", "{contact_id}", "x").Replace(tpl)); err != nil || u.Scheme == "" {
			return c, fmt.Errorf("config: link template %q is not an absolute URL", tpl)
		}
	}
	if c.DefaultPipeline == "" {
		c.DefaultPipeline = "default"
	}
	if c.ClosedStages == nil {
		c.ClosedStages = []string{"won", "lost", "closedwon", "closedlost", "closed_won", "closed_lost"}
	}
	return c, nil
}

func (c Config) stageClosed(stage string) bool {
	for _, s := range c.ClosedStages {
		if strings.EqualFold(s, stage) {
			return true
		}
	}
	return false
}

// contactURL fills the link template; ids are escaped as one path segment.
func (c Config) contactURL(id string) string {
	if c.LinkTemplate == "" || id == "" {
		return ""
	}
	e := url.PathEscape(id)
	return strings.NewReplacer("{id}", e, "{contact_id}", e).Replace(c.LinkTemplate)
}

func (c Config) dealURL(id, contactID string) string {
	if c.DealLinkTemplate == "" {
		return c.contactURL(contactID)
	}
	return strings.NewReplacer("{id}", url.PathEscape(id), "{contact_id}", url.PathEscape(contactID)).Replace(c.DealLinkTemplate)
}

// configSchema is the JSON schema published in the manifest.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "dsn": {"type": "string", "description": "PostgreSQL connection string (pgx). Empty: embedded SQLite."},
    "schema": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$", "description": "PostgreSQL schema for the CRM tables, created when missing."},
    "sqlite_path": {"type": "string", "default": "./data/crm.db", "description": "SQLite file used when dsn is empty."},
    "max_conns": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 8},
    "link_template": {"type": "string", "description": "Deep link to a contact, with {id}, e.g. https://crm.example.com/contacts/{id}"},
    "deal_link_template": {"type": "string", "description": "Deep link to a deal, with {id} and {contact_id}; default: the contact's link."},
    "default_country_code": {"type": "string", "pattern": "^\\+?[1-9][0-9]{0,2}$", "description": "Calling code for national phone numbers, e.g. 84."},
    "default_pipeline": {"type": "string", "default": "default"},
    "closed_stages": {"type": "array", "items": {"type": "string"}, "default": ["won", "lost", "closedwon", "closedlost", "closed_won", "closed_lost"]}
  }
}`
