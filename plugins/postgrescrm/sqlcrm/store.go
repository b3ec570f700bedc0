package sqlcrm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// store is a configured CRM: one database and the config it serves.
type store struct {
	db    database
	d     *dialect
	cfg   Config
	log   *slog.Logger
	ns    string // namespaces advisory lock keys
	clock func() time.Time
}

func openStore(ctx context.Context, cfg Config, logger *slog.Logger, clock func() time.Time) (*store, error) {
	var (
		db  database
		ns  string
		err error
	)
	if cfg.DSN != "" {
		var p *pgDB
		p, err = openPostgres(ctx, cfg)
		if err == nil {
			db, ns = p, p.ns
		}
	} else {
		var s *sqliteDB
		s, err = openSQLite(ctx, cfg)
		db = s
	}
	if err != nil {
		return nil, err
	}
	ms, err := loadMigrations(db.dialect().name)
	if err != nil {
		db.close()
		return nil, sdk.Permanent(err)
	}
	applied, err := db.migrate(ctx, ms)
	if err != nil {
		db.close()
		return nil, err
	}
	logger.Info("SQL CRM ready", "driver", db.dialect().name, "schema_version", len(ms), "migrations_applied", applied)
	return &store{db: db, d: db.dialect(), cfg: cfg, log: logger, ns: ns, clock: clock}, nil
}

// now is truncated to microseconds, the precision both databases keep, so
// a value read back equals the value written.
func (s *store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

func newID() (string, error) {
	// Version 7 ids sort by creation time, which keeps the primary-key
	// index append-mostly.
	u, err := uuid.NewV7()
	if err != nil {
		return "", sdk.Retryable(fmt.Errorf("generate id: %w", err), 0)
	}
	return u.String(), nil
}

const (
	kindContact = "contact"
	kindNote    = "note"
	kindDeal    = "deal"
	kindTask    = "task"
)

// ---- contact rows

type contactRow struct {
	ID, Name, Phone, Email, OwnerID        string
	Score                                  int
	Tier, SourceChannel, Campaign          string
	Intent, Need, Budget, Timeline, Action string
	DecisionMaker                          sql.NullBool
	Confidence                             float64
	Estimate                               int
	Extra, Tags, Properties                string // JSON
	CreatedAt, UpdatedAt                   time.Time
}

const contactCols = `id, name, phone, email, owner_id, score, tier, source_channel, campaign,
	intent, need, budget, timeline, action, decision_maker, confidence, estimate,
	extra, tags, properties, created_at, updated_at`

func (r *contactRow) dest() []any {
	return []any{&r.ID, &r.Name, &r.Phone, &r.Email, &r.OwnerID, &r.Score, &r.Tier, &r.SourceChannel, &r.Campaign,
		&r.Intent, &r.Need, &r.Budget, &r.Timeline, &r.Action, &r.DecisionMaker, &r.Confidence, &r.Estimate,
		&r.Extra, &r.Tags, &r.Properties, &r.CreatedAt, &r.UpdatedAt}
}

func (s *store) loadContactRow(ctx context.Context, q querier, id string) (contactRow, error) {
	var r contactRow
	err := q.queryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = $1`, id).Scan(r.dest()...)
	if err != nil {
		return r, err
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// writeContactRow stores every column of r (used after a merge).
func (s *store) writeContactRow(ctx context.Context, q querier, r contactRow) error {
	_, err := q.exec(ctx, `UPDATE contacts SET name = $2, phone = $3, email = $4, owner_id = $5, score = $6, tier = $7,
	source_channel = $8, campaign = $9, intent = $10, need = $11, budget = $12, timeline = $13, action = $14,
	decision_maker = $15, confidence = $16, estimate = $17, extra = $18, tags = $19, properties = $20, updated_at = $21
WHERE id = $1`,
		r.ID, r.Name, r.Phone, r.Email, r.OwnerID, r.Score, r.Tier, r.SourceChannel, r.Campaign,
		r.Intent, r.Need, r.Budget, r.Timeline, r.Action, nullBool(r.DecisionMaker), r.Confidence, r.Estimate,
		r.Extra, r.Tags, r.Properties, r.UpdatedAt)
	return err
}

func nullBool(b sql.NullBool) any {
	if !b.Valid {
		return nil
	}
	return b.Bool
}

// loadContact reads a contact with its identities.
func (s *store) loadContact(ctx context.Context, q querier, id string) (*sdk.Contact, error) {
	r, err := s.loadContactRow(ctx, q, id)
	if err != nil {
		return nil, err
	}
	c := &sdk.Contact{
		ID: r.ID, Name: r.Name, Phone: r.Phone, Email: r.Email, OwnerID: r.OwnerID,
		Score: r.Score, Tier: r.Tier, SourceChannel: r.SourceChannel, Campaign: r.Campaign,
		Facts: sdk.LeadFacts{Intent: r.Intent, Need: r.Need, Budget: r.Budget, Timeline: r.Timeline, Action: r.Action,
			DecisionMaker: r.DecisionMaker.Bool, DecisionMakerKnown: r.DecisionMaker.Valid,
			Confidence: r.Confidence, Estimate: r.Estimate},
		URL: s.cfg.contactURL(r.ID), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if err := decodeJSON(r.Extra, &c.Facts.Extra); err != nil {
		return nil, err
	}
	if err := decodeJSON(r.Tags, &c.Tags); err != nil {
		return nil, err
	}
	if err := decodeJSON(r.Properties, &c.Properties); err != nil {
		return nil, err
	}
	rows, err := q.query(ctx, `SELECT channel, user_id, display_name, instance FROM identities
WHERE contact_id = $1 ORDER BY created_at, channel, user_id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k identityKey
		if err := rows.Scan(&k.Channel, &k.Value, &k.DisplayName, &k.Instance); err != nil {
			return nil, err
		}
		c.Identities = append(c.Identities, identityFromKey(k))
	}
	return c, rows.Err()
}

func decodeJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode stored JSON: %w", err)
	}
	return nil
}

func encodeJSON(v any) string {
	b, _ := json.Marshal(v) // maps of strings and string slices always encode
	return string(b)
}

// ---- resolving contacts

// resolveContactID follows merges: an id of a contact merged into another
// resolves to the survivor. errNoRows when neither exists.
func (s *store) resolveContactID(ctx context.Context, q querier, id string) (string, error) {
	var got sql.NullString
	err := q.queryRow(ctx, `SELECT COALESCE(
	(SELECT id FROM contacts WHERE id = $1),
	(SELECT into_id FROM contact_merges WHERE old_id = $1))`, id).Scan(&got)
	if err != nil {
		return "", err
	}
	if !got.Valid {
		return "", errNoRows
	}
	return got.String, nil
}

// lockContact resolves id and locks the contact row with clause. When a
// concurrent merge deletes the row while this waits for it, the id is
// resolved again to the contact it was merged into.
func (s *store) lockContact(ctx context.Context, q querier, id, clause string) (string, error) {
	for range 8 {
		cur, err := s.resolveContactID(ctx, q, id)
		if errors.Is(err, errNoRows) {
			return "", sdk.NotFound(fmt.Errorf("contact %q not found", id))
		}
		if err != nil {
			return "", err
		}
		var got string
		err = q.queryRow(ctx, `SELECT id FROM contacts WHERE id = $1`+clause, cur).Scan(&got)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, errNoRows) {
			return "", err
		}
		id = cur
	}
	return "", sdk.Retryable(fmt.Errorf("contact %q kept being merged away", id), 0)
}

// contactsByKeys returns the distinct contacts owning any of keys.
func (s *store) contactsByKeys(ctx context.Context, q querier, keys []identityKey) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var b strings.Builder
	args := make([]any, 0, 2*len(keys))
	b.WriteString(`SELECT DISTINCT contact_id FROM identities WHERE `)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "(channel = $%d AND user_id = $%d)", 2*i+1, 2*i+2)
		args = append(args, k.Channel, k.Value)
	}
	rows, err := q.query(ctx, b.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

type contactRef struct {
	ID        string
	CreatedAt time.Time
}

// lockMatching finds the contacts the request's identities (and id) point
// at, and locks them for update. On PostgreSQL a concurrent merge can move
// an identity or delete a contact between the lookup and the lock, so the
// lookup is repeated until it names only locked contacts. The result is
// oldest first.
func (s *store) lockMatching(ctx context.Context, q querier, in *contactInput) ([]contactRef, error) {
	locked := map[string]contactRef{}
	for range 16 {
		want, err := s.contactsByKeys(ctx, q, in.keys)
		if err != nil {
			return nil, err
		}
		if in.id != "" {
			id, err := s.resolveContactID(ctx, q, in.id)
			if errors.Is(err, errNoRows) {
				return nil, sdk.NotFound(fmt.Errorf("contact %q not found", in.id))
			}
			if err != nil {
				return nil, err
			}
			want = append(want, id)
		}
		var missing []string
		for _, id := range want {
			if _, ok := locked[id]; !ok && !contains(missing, id) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			refs := make([]contactRef, 0, len(want))
			for _, id := range want {
				if !containsRef(refs, id) {
					refs = append(refs, locked[id])
				}
			}
			sort.Slice(refs, func(i, j int) bool {
				if !refs[i].CreatedAt.Equal(refs[j].CreatedAt) {
					return refs[i].CreatedAt.Before(refs[j].CreatedAt)
				}
				return refs[i].ID < refs[j].ID
			})
			return refs, nil
		}
		sort.Strings(missing) // one lock order for everyone
		args := make([]any, len(missing))
		for i, id := range missing {
			args[i] = id
		}
		rows, err := q.query(ctx, `SELECT id, created_at FROM contacts WHERE id IN (`+placeholders(1, len(missing))+`) ORDER BY id`+s.d.forUpdate, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r contactRef
			if err := rows.Scan(&r.ID, &r.CreatedAt); err != nil {
				rows.Close()
				return nil, err
			}
			locked[r.ID] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		// A missing id that was not returned was merged away meanwhile:
		// the next round looks the identities up again.
	}
	return nil, sdk.Retryable(errors.New("upsert contact: the matching contacts kept changing"), 0)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func containsRef(rs []contactRef, id string) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}

// ---- idempotency

// idemLookup returns the record a key produced, and whether that call
// created it.
func (s *store) idemLookup(ctx context.Context, q querier, kind, key string) (id string, created, found bool, err error) {
	err = q.queryRow(ctx, `SELECT record_id, created FROM idempotency WHERE kind = $1 AND idem_key = $2`, kind, key).Scan(&id, &created)
	if errors.Is(err, errNoRows) {
		return "", false, false, nil
	}
	return id, created, err == nil, err
}

func (s *store) idemRecord(ctx context.Context, q querier, kind, key, id string, created bool, now time.Time) error {
	if key == "" {
		return nil
	}
	// The caller holds the key's lock (or SQLite's write lock), so the row
	// cannot appear between idemLookup and here; the primary key would
	// refuse a duplicate anyway.
	_, err := q.exec(ctx, `INSERT INTO idempotency (kind, idem_key, record_id, created, created_at) VALUES ($1, $2, $3, $4, $5)`,
		kind, key, id, created, now)
	return err
}

func (s *store) idemLock(kind, key string) []int64 {
	if key == "" {
		return nil
	}
	return []int64{lockKey(s.ns, "idempotency", kind, key)}
}
