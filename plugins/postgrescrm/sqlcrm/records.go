package sqlcrm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Notes, deals and tasks. Each write takes its idempotency key's lock, so a
// retried call returns the record the first one made, even when both run at
// once. Each attaches to a contact through lockContact, which follows
// merges and keeps the contact from being merged away mid-write.

// resolveDeal follows merged_into from a deal closed by a contact merge to
// the deal that absorbed it. errNoRows when id does not exist.
func (s *store) resolveDeal(ctx context.Context, q querier, id string) (string, error) {
	for range 8 {
		var next sql.NullString
		if err := q.queryRow(ctx, `SELECT merged_into FROM deals WHERE id = $1`, id).Scan(&next); err != nil {
			return "", err
		}
		if !next.Valid {
			return id, nil
		}
		id = next.String
	}
	return "", fmt.Errorf("deal %q: merge chain too long", id)
}

func (s *store) dealFor(ctx context.Context, q querier, id string) (string, error) {
	if id = strings.TrimSpace(id); id == "" {
		return "", nil
	}
	d, err := s.resolveDeal(ctx, q, id)
	if errors.Is(err, errNoRows) {
		return "", sdk.NotFound(fmt.Errorf("deal %q not found", id))
	}
	return d, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- notes

func (s *store) addNote(ctx context.Context, key string, n *sdk.Note) (*sdk.Note, error) {
	if strings.TrimSpace(n.ContactID) == "" {
		return nil, sdk.Invalid(errors.New("add note: contact id is required"))
	}
	if strings.TrimSpace(n.Body) == "" {
		return nil, sdk.Invalid(errors.New("add note: body is empty"))
	}
	var out *sdk.Note
	err := s.db.write(ctx, func(q querier) error {
		if err := s.db.lockKeys(ctx, q, s.idemLock(kindNote, key)); err != nil {
			return err
		}
		if key != "" {
			rec, _, found, err := s.idemLookup(ctx, q, kindNote, key)
			if err != nil {
				return err
			}
			if found {
				out, err = s.loadNote(ctx, q, rec)
				return err
			}
		}
		cid, err := s.lockContact(ctx, q, n.ContactID, s.d.forKeyShare)
		if err != nil {
			return err
		}
		dealID, err := s.dealFor(ctx, q, n.DealID)
		if err != nil {
			return err
		}
		id, err := newID()
		if err != nil {
			return err
		}
		now := s.now()
		at := now
		if !n.CreatedAt.IsZero() {
			at = n.CreatedAt.UTC().Truncate(time.Microsecond)
		}
		if _, err := q.exec(ctx, `INSERT INTO notes (id, contact_id, deal_id, body, author, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, cid, nullString(dealID), n.Body, strings.TrimSpace(n.Author), at); err != nil {
			return fmt.Errorf("insert note: %w", err)
		}
		if err := s.idemRecord(ctx, q, kindNote, key, id, true, now); err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		out = &sdk.Note{ID: id, ContactID: cid, DealID: dealID, Body: n.Body, Author: strings.TrimSpace(n.Author), CreatedAt: at}
		return nil
	})
	if err != nil {
		return nil, s.db.classify("add note", err)
	}
	return out, nil
}

func (s *store) loadNote(ctx context.Context, q querier, id string) (*sdk.Note, error) {
	var (
		n    sdk.Note
		deal sql.NullString
	)
	err := q.queryRow(ctx, `SELECT id, contact_id, deal_id, body, author, created_at FROM notes WHERE id = $1`, id).
		Scan(&n.ID, &n.ContactID, &deal, &n.Body, &n.Author, &n.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("load note: %w", err)
	}
	n.DealID, n.CreatedAt = deal.String, n.CreatedAt.UTC()
	return &n, nil
}

// ---- deals

type dealRow struct {
	ID, ContactID, Name, Pipeline, Stage string
	IsOpen                               bool
	Amount                               float64
	Currency, OwnerID, Properties        string
}

const dealCols = `id, contact_id, name, pipeline, stage, is_open, amount, currency, owner_id, properties`

func (r *dealRow) dest() []any {
	return []any{&r.ID, &r.ContactID, &r.Name, &r.Pipeline, &r.Stage, &r.IsOpen, &r.Amount, &r.Currency, &r.OwnerID, &r.Properties}
}

func (s *store) loadDeal(ctx context.Context, q querier, id string) (*sdk.Deal, error) {
	var r dealRow
	if err := q.queryRow(ctx, `SELECT `+dealCols+` FROM deals WHERE id = $1`, id).Scan(r.dest()...); err != nil {
		return nil, fmt.Errorf("load deal: %w", err)
	}
	d := &sdk.Deal{ID: r.ID, ContactID: r.ContactID, Name: r.Name, Pipeline: r.Pipeline, Stage: r.Stage,
		Amount: r.Amount, Currency: r.Currency, OwnerID: r.OwnerID, URL: s.cfg.dealURL(r.ID, r.ContactID)}
	if err := decodeJSON(r.Properties, &d.Properties); err != nil {
		return nil, err
	}
	return d, nil
}

// upsertDeal moves the deal named by ID, or else the contact's open deal in
// the pipeline, or creates one. The contact row is locked FOR NO KEY
// UPDATE, so two upserts for one contact cannot both find no open deal and
// both insert one; the partial unique index would refuse the second anyway.
// A deal keeps the pipeline it was created in.
func (s *store) upsertDeal(ctx context.Context, key string, d *sdk.Deal) (*sdk.Deal, error) {
	if strings.TrimSpace(d.ID) == "" && strings.TrimSpace(d.ContactID) == "" {
		return nil, sdk.Invalid(errors.New("upsert deal: a deal id or a contact id is required"))
	}
	pipeline := strings.TrimSpace(d.Pipeline)
	if pipeline == "" {
		pipeline = s.cfg.DefaultPipeline
	}
	stage := strings.TrimSpace(d.Stage)
	var out *sdk.Deal
	err := s.db.write(ctx, func(q querier) error {
		if err := s.db.lockKeys(ctx, q, s.idemLock(kindDeal, key)); err != nil {
			return err
		}
		if key != "" {
			rec, _, found, err := s.idemLookup(ctx, q, kindDeal, key)
			if err != nil {
				return err
			}
			if found {
				id, err := s.resolveDeal(ctx, q, rec)
				if err != nil {
					return fmt.Errorf("replay: %w", err)
				}
				out, err = s.loadDeal(ctx, q, id)
				return err
			}
		}
		var (
			cur     *dealRow
			cid     string
			err     error
			created bool
		)
		if id := strings.TrimSpace(d.ID); id != "" {
			if id, err = s.dealFor(ctx, q, id); err != nil {
				return err
			}
			var owner string
			if err := q.queryRow(ctx, `SELECT contact_id FROM deals WHERE id = $1`, id).Scan(&owner); err != nil {
				return err
			}
			if cid, err = s.lockContact(ctx, q, owner, s.d.forNoKeyUpdate); err != nil {
				return err
			}
			// Read the deal only under the contact's lock: a merge may
			// have moved or closed it meanwhile.
			if id, err = s.dealFor(ctx, q, id); err != nil {
				return err
			}
			cur = &dealRow{}
			if err := q.queryRow(ctx, `SELECT `+dealCols+` FROM deals WHERE id = $1`, id).Scan(cur.dest()...); err != nil {
				return err
			}
		} else {
			if cid, err = s.lockContact(ctx, q, d.ContactID, s.d.forNoKeyUpdate); err != nil {
				return err
			}
			r := dealRow{}
			err := q.queryRow(ctx, `SELECT `+dealCols+` FROM deals WHERE contact_id = $1 AND pipeline = $2 AND is_open`, cid, pipeline).Scan(r.dest()...)
			switch {
			case err == nil:
				cur = &r
			case !errors.Is(err, errNoRows):
				return err
			}
		}
		now := s.now()
		var id string
		if cur == nil {
			if stage == "" {
				return sdk.Invalid(errors.New("upsert deal: a new deal needs a stage"))
			}
			if id, err = newID(); err != nil {
				return err
			}
			created = true
			owner := strings.TrimSpace(d.OwnerID)
			if owner == "" {
				// A deal without an owner goes to the contact's owner.
				if err := q.queryRow(ctx, `SELECT owner_id FROM contacts WHERE id = $1`, cid).Scan(&owner); err != nil {
					return err
				}
			}
			props := map[string]string{}
			for k, v := range d.Properties {
				props[k] = v
			}
			if _, err := q.exec(ctx, `INSERT INTO deals (id, contact_id, name, pipeline, stage, is_open, amount, currency, owner_id, properties, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
				id, cid, strings.TrimSpace(d.Name), pipeline, stage, !s.cfg.stageClosed(stage), d.Amount,
				strings.TrimSpace(d.Currency), owner, encodeJSON(props), now); err != nil {
				return fmt.Errorf("insert deal: %w", err)
			}
		} else {
			id = cur.ID
			newStage := cur.Stage
			if stage != "" {
				newStage = stage
			}
			props, err := mergeMaps(cur.Properties, encodeJSON(d.Properties))
			if err != nil {
				return err
			}
			if _, err := q.exec(ctx, `UPDATE deals SET
	name = COALESCE($2, name),
	stage = $3,
	is_open = $4,
	amount = COALESCE($5, amount),
	currency = COALESCE($6, currency),
	owner_id = COALESCE($7, owner_id),
	properties = $8,
	updated_at = $9
WHERE id = $1`,
				id, orNil(strings.TrimSpace(d.Name)), newStage, !s.cfg.stageClosed(newStage), orNil(d.Amount),
				orNil(strings.TrimSpace(d.Currency)), orNil(strings.TrimSpace(d.OwnerID)), props, now); err != nil {
				return fmt.Errorf("update deal: %w", err)
			}
		}
		if err := s.idemRecord(ctx, q, kindDeal, key, id, created, now); err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		out, err = s.loadDeal(ctx, q, id)
		return err
	})
	if err != nil {
		return nil, s.db.classify("upsert deal", err)
	}
	return out, nil
}

// ---- tasks

const (
	defaultTaskTitle  = "Follow up"
	defaultTaskStatus = "open"
)

func (s *store) createTask(ctx context.Context, key string, t *sdk.Task) (*sdk.Task, error) {
	if strings.TrimSpace(t.ContactID) == "" {
		return nil, sdk.Invalid(errors.New("create task: contact id is required"))
	}
	var out *sdk.Task
	err := s.db.write(ctx, func(q querier) error {
		if err := s.db.lockKeys(ctx, q, s.idemLock(kindTask, key)); err != nil {
			return err
		}
		if key != "" {
			rec, _, found, err := s.idemLookup(ctx, q, kindTask, key)
			if err != nil {
				return err
			}
			if found {
				out, err = s.loadTask(ctx, q, rec)
				return err
			}
		}
		cid, err := s.lockContact(ctx, q, t.ContactID, s.d.forKeyShare)
		if err != nil {
			return err
		}
		dealID, err := s.dealFor(ctx, q, t.DealID)
		if err != nil {
			return err
		}
		owner := strings.TrimSpace(t.OwnerID)
		if owner == "" {
			// A follow-up nobody owns is a follow-up nobody does: default
			// to the contact's owner.
			if err := q.queryRow(ctx, `SELECT owner_id FROM contacts WHERE id = $1`, cid).Scan(&owner); err != nil {
				return err
			}
		}
		title, status := strings.TrimSpace(t.Title), strings.TrimSpace(t.Status)
		if title == "" {
			title = defaultTaskTitle
		}
		if status == "" {
			status = defaultTaskStatus
		}
		var due any
		if !t.DueAt.IsZero() {
			due = t.DueAt.UTC().Truncate(time.Microsecond)
		}
		id, err := newID()
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := q.exec(ctx, `INSERT INTO tasks (id, contact_id, deal_id, owner_id, title, body, type, priority, due_at, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			id, cid, nullString(dealID), owner, title, t.Body, strings.TrimSpace(t.Type), strings.TrimSpace(t.Priority),
			due, status, now); err != nil {
			return fmt.Errorf("insert task: %w", err)
		}
		if err := s.idemRecord(ctx, q, kindTask, key, id, true, now); err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		out, err = s.loadTask(ctx, q, id)
		return err
	})
	if err != nil {
		return nil, s.db.classify("create task", err)
	}
	return out, nil
}

func (s *store) loadTask(ctx context.Context, q querier, id string) (*sdk.Task, error) {
	var (
		t    sdk.Task
		deal sql.NullString
		due  sql.NullTime
	)
	err := q.queryRow(ctx, `SELECT id, contact_id, deal_id, owner_id, title, body, type, priority, due_at, status FROM tasks WHERE id = $1`, id).
		Scan(&t.ID, &t.ContactID, &deal, &t.OwnerID, &t.Title, &t.Body, &t.Type, &t.Priority, &due, &t.Status)
	if err != nil {
		return nil, fmt.Errorf("load task: %w", err)
	}
	t.DealID = deal.String
	if due.Valid {
		t.DueAt = due.Time.UTC()
	}
	return &t, nil
}
