// Package sqlcrm is Switchboard's built-in CRM: contacts, identities,
// notes, deals and tasks in its own SQL schema, on PostgreSQL (pgx) for
// production or on an embedded SQLite file (pure Go) with no setup.
//
// The CRM logic is written once; the two drivers differ only in a small
// dialect (see db.go) and in their DDL (migrations/postgres and
// migrations/sqlite). Methods are safe for concurrent use, within one
// process and across processes sharing a database.
package sqlcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Name and Version identify the plugin in its manifest.
const (
	Name    = "postgrescrm"
	Version = "0.1.0"
)

// CRM implements sdk.CRM and sdk.HealthChecker.
type CRM struct {
	mu     sync.Mutex // serialises Configure and Close
	raw    []byte     // the config the current store was opened with
	st     atomic.Pointer[store]
	clock  func() time.Time
	closed bool
}

var (
	_ sdk.CRM           = (*CRM)(nil)
	_ sdk.HealthChecker = (*CRM)(nil)
)

// New returns an unconfigured CRM; the hub calls Configure first.
func New() *CRM { return &CRM{clock: time.Now} }

// Describe does not depend on Configure.
func (c *CRM) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{
		Name:        Name,
		Kind:        sdk.KindCRM,
		Version:     Version,
		Description: "Built-in CRM on its own SQL schema: PostgreSQL (dsn) or an embedded SQLite file (sqlite_path, the default).",
		Capabilities: []string{
			"contacts", "identity_merge", "lead_facts", "notes", "deals", "tasks", "owners", "deep_links", "health",
		},
		ConfigSchema: json.RawMessage(configSchema),
	}, nil
}

// Configure opens the database, runs pending migrations and swaps the new
// store in. Calling it again with the same config keeps the open store.
func (c *CRM) Configure(ctx context.Context, req sdk.ConfigureRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return sdk.Invalid(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if req.Host != nil && req.Host.Logger() != nil {
		logger = req.Host.Logger()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return sdk.Permanent(errors.New("configure: the CRM was closed"))
	}
	if c.st.Load() != nil && bytes.Equal(c.raw, req.Config) {
		return nil
	}
	st, err := openStore(ctx, cfg, logger, c.clock)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	c.raw = bytes.Clone(req.Config)
	if old := c.st.Swap(st); old != nil {
		// Close waits for the calls still using the old pool.
		old.db.close()
	}
	return nil
}

// Close releases the database. The plugin process just exits; tests and
// embedders call Close.
func (c *CRM) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if old := c.st.Swap(nil); old != nil {
		old.db.close()
	}
	return nil
}

func (c *CRM) store() (*store, error) {
	st := c.st.Load()
	if st == nil {
		// The hub configures a plugin before anything else, also after a
		// restart, so a retry will find it configured.
		return nil, sdk.Retryable(errors.New("the CRM plugin is not configured yet"), 0)
	}
	return st, nil
}

// CheckHealth pings the database.
func (c *CRM) CheckHealth(ctx context.Context) error {
	st, err := c.store()
	if err != nil {
		return err
	}
	return st.db.ping(ctx)
}

// UpsertContact implements sdk.CRM.
func (c *CRM) UpsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error) {
	st, err := c.store()
	if err != nil {
		return nil, err
	}
	if req == nil {
		return nil, sdk.Invalid(errors.New("upsert contact: no request"))
	}
	return st.upsertContact(ctx, req)
}

// GetContact implements sdk.CRM.
func (c *CRM) GetContact(ctx context.Context, id string, identity *sdk.Identity) (*sdk.Contact, error) {
	st, err := c.store()
	if err != nil {
		return nil, err
	}
	return st.getContact(ctx, id, identity)
}

// AddNote implements sdk.CRM.
func (c *CRM) AddNote(ctx context.Context, key string, note *sdk.Note) (*sdk.Note, error) {
	st, err := c.store()
	if err != nil {
		return nil, err
	}
	if note == nil {
		return nil, sdk.Invalid(errors.New("add note: no note"))
	}
	return st.addNote(ctx, key, note)
}

// UpsertDeal implements sdk.CRM.
func (c *CRM) UpsertDeal(ctx context.Context, key string, deal *sdk.Deal) (*sdk.Deal, error) {
	st, err := c.store()
	if err != nil {
		return nil, err
	}
	if deal == nil {
		return nil, sdk.Invalid(errors.New("upsert deal: no deal"))
	}
	return st.upsertDeal(ctx, key, deal)
}

// CreateTask implements sdk.CRM.
func (c *CRM) CreateTask(ctx context.Context, key string, task *sdk.Task) (*sdk.Task, error) {
	st, err := c.store()
	if err != nil {
		return nil, err
	}
	if task == nil {
		return nil, sdk.Invalid(errors.New("create task: no task"))
	}
	return st.createTask(ctx, key, task)
}
